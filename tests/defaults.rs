//! Column defaults and generated values against MariaDB and an SQLite file:
//! `default = expr` and `on_update = expr` (values the session sends),
//! `server_default` and `server_on_update` (DDL, values the server fills in,
//! fetched with `RETURNING` or expired to load on next access), and the
//! README's `created_at`/`updated_at` example. SQLAlchemy's
//! test/orm/test_defaults.py and test/sql/test_defaults.py behaviours that
//! apply, re-expressed.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};

use common::{Backend, TestDb};
use orm::prelude::*;
use orm::session::SessionFactory;
use orm::value::DateTime;

static NEXT_TICKET: AtomicI64 = AtomicI64::new(100);
static NEXT_STAMP: AtomicI64 = AtomicI64::new(1);

fn next_ticket() -> i64 {
    NEXT_TICKET.fetch_add(1, Ordering::SeqCst)
}

fn next_stamp() -> i64 {
    NEXT_STAMP.fetch_add(1, Ordering::SeqCst)
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "tasks")]
struct Task {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    title: String,
    #[orm(default = 3)]
    priority: Option<i32>,
    #[orm(default = "open", sql_type = "VARCHAR(16)")]
    status: Option<String>,
    /// Evaluated at each INSERT, like SQLAlchemy's callable default.
    #[orm(default = next_ticket())]
    ticket: Option<i64>,
    /// Set by every UPDATE that does not set it itself.
    #[orm(on_update = next_stamp())]
    stamp: i64,
}

fn task(title: &str) -> Task {
    Task {
        id: None,
        title: title.into(),
        priority: None,
        status: None,
        ticket: None,
        stamp: 0,
    }
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "notes")]
struct Note {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    body: String,
    #[orm(server_default = "7")]
    weight: Option<i32>,
    #[orm(server_default = "'fresh'", sql_type = "VARCHAR(16)")]
    label: Option<String>,
}

fn default_values_are_inserted_for_unset_fields_and_written_back(backend: Backend) {
    let db = TestDb::on(backend, "df_default");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[Task::table()]).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    let a = s.add(task("a")).unwrap();
    let b = s
        .add(Task {
            priority: Some(1),
            status: Some("closed".into()),
            ticket: Some(7),
            ..task("b")
        })
        .unwrap();
    let c = s.add(task("c")).unwrap();
    s.commit().unwrap();
    let rows = db.rows("SELECT title, priority, status, ticket, stamp FROM tasks ORDER BY id");
    let (ta, tc) = (
        a.read().unwrap().ticket.unwrap(),
        c.read().unwrap().ticket.unwrap(),
    );
    assert_ne!(ta, tc, "the expression is evaluated per row");
    assert_eq!(
        rows,
        [
            vec![
                "a".to_string(),
                "3".into(),
                "open".into(),
                ta.to_string(),
                "0".into()
            ],
            vec![
                "b".to_string(),
                "1".into(),
                "closed".into(),
                "7".into(),
                "0".into()
            ],
            vec![
                "c".to_string(),
                "3".into(),
                "open".into(),
                tc.to_string(),
                "0".into()
            ],
        ],
        "explicit values win; `on_update` is not used at INSERT"
    );
    // Written into the objects by the flush (read after commit reloads, so
    // check a fresh flush without commit too).
    assert_eq!(b.read().unwrap().priority, Some(1));
    let d = s.add(task("d")).unwrap();
    s.flush().unwrap();
    {
        let d = d.read().unwrap();
        assert_eq!((d.priority, d.status.as_deref()), (Some(3), Some("open")));
        assert!(d.ticket.is_some());
    }
    s.rollback().unwrap();
}

fn on_update_values_go_with_updates_that_do_not_set_the_column(backend: Backend) {
    let db = TestDb::on(backend, "df_onupdate");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[Task::table()]).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    let a = s.add(task("a")).unwrap();
    s.flush().unwrap();
    a.write().unwrap().title = "a2".into();
    let capture = engine.capture_statements();
    s.flush().unwrap();
    let update = common::starting_with(capture.take(), "UPDATE");
    assert_eq!(update.len(), 1);
    assert!(update[0].contains("stamp"), "{}", update[0]);
    let stamp = a.read().unwrap().stamp;
    assert_ne!(stamp, 0, "written into the object");
    // Setting the column explicitly: the explicit value is sent.
    {
        let mut w = a.write().unwrap();
        w.title = "a3".into();
        w.stamp = -5;
    }
    s.commit().unwrap();
    assert_eq!(db.rows("SELECT title, stamp FROM tasks"), [["a3", "-5"]]);
    // No change, no UPDATE: `on_update` alone does not make an object dirty.
    let a = s.query::<Task>().one().unwrap();
    let _ = a.write().unwrap();
    let capture = engine.capture_statements();
    s.commit().unwrap();
    assert!(capture.take().iter().all(|q| !q.starts_with("UPDATE")));
}

fn server_defaults_are_in_the_ddl_and_come_back_with_returning(backend: Backend) {
    let db = TestDb::on(backend, "df_server");
    let engine = orm::create_engine(&db.url).unwrap();
    let ddl = orm::schema::create_table_sql(engine.dialect(), Note::table());
    assert!(
        ddl[0].contains(&db.sql("`weight` INT DEFAULT 7"))
            || ddl[0].contains(&db.sql("`weight` INTEGER DEFAULT 7")),
        "{}",
        ddl[0]
    );
    assert!(
        ddl[0].contains(&db.sql("`label` VARCHAR(16) DEFAULT 'fresh'")),
        "{}",
        ddl[0]
    );
    orm::schema::create_all(&engine, &[Note::table()]).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    let n = s
        .add(Note {
            id: None,
            body: "x".into(),
            weight: None,
            label: None,
        })
        .unwrap();
    let m = s
        .add(Note {
            id: None,
            body: "y".into(),
            weight: Some(1),
            label: None,
        })
        .unwrap();
    let capture = engine.capture_statements();
    s.flush().unwrap();
    let sent = capture.take();
    // One statement per column set; each fetches what the server filled in.
    assert!(
        sent.contains(
            &db.sql("INSERT INTO `notes` (`body`) VALUES (?) RETURNING `id`, `weight`, `label`")
        ),
        "{sent:?}"
    );
    assert!(
        sent.contains(
            &db.sql("INSERT INTO `notes` (`body`, `weight`) VALUES (?) RETURNING `id`, `label`")
        ) || sent.contains(
            &db.sql("INSERT INTO `notes` (`body`, `weight`) VALUES (?, ?) RETURNING `id`, `label`")
        ),
        "{sent:?}"
    );
    assert!(!n.is_expired());
    // No SELECT: the values are in the objects already.
    let capture = engine.capture_statements();
    assert_eq!(n.read().unwrap().weight, Some(7));
    assert_eq!(n.read().unwrap().label.as_deref(), Some("fresh"));
    assert_eq!(m.read().unwrap().weight, Some(1));
    assert!(capture.take().is_empty());
    s.commit().unwrap();
    assert_eq!(
        db.rows("SELECT body, weight, label FROM notes ORDER BY id"),
        [["x", "7", "fresh"], ["y", "1", "fresh"]]
    );
}

backend_tests!(
    without_returning_server_defaults_expire_the_object_and_load_on_access,
    default_values_are_inserted_for_unset_fields_and_written_back,
    on_update_values_go_with_updates_that_do_not_set_the_column,
    server_defaults_are_in_the_ddl_and_come_back_with_returning,
);

fn without_returning_server_defaults_expire_the_object_and_load_on_access(backend: Backend) {
    let db = TestDb::on(backend, "df_noreturning");
    let engine = orm::create_engine(&db.url_with("insert_returning=off")).unwrap();
    orm::schema::create_all(&engine, &[Note::table()]).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    let n = s
        .add(Note {
            id: None,
            body: "x".into(),
            weight: None,
            label: Some("mine".into()),
        })
        .unwrap();
    let capture = engine.capture_statements();
    s.flush().unwrap();
    let sent = capture.take();
    assert!(
        sent.contains(&db.sql("INSERT INTO `notes` (`body`, `label`) VALUES (?, ?)")),
        "{sent:?}"
    );
    assert!(n.is_expired(), "the server's values are not known yet");
    assert!(n.key::<i64>().is_ok(), "the key is known without loading");
    assert_eq!(n.read().unwrap().weight, Some(7));
    assert_eq!(n.read().unwrap().label.as_deref(), Some("mine"));
    assert_eq!(
        capture
            .take()
            .iter()
            .filter(|q| q.starts_with("SELECT"))
            .count(),
        1
    );
    // A row with every server-default column set is not expired.
    let m = s
        .add(Note {
            id: None,
            body: "y".into(),
            weight: Some(2),
            label: Some("l".into()),
        })
        .unwrap();
    s.flush().unwrap();
    assert!(!m.is_expired());
    s.commit().unwrap();
}

/// The README's `created_at` / `updated_at` example (MySQL/MariaDB).
mod readme {
    use super::*;

    #[derive(Debug, Clone, Model)]
    #[orm(table = "posts")]
    pub struct Post {
        #[orm(auto_increment)]
        pub id: Option<i64>,
        pub title: String,
        /// Set by the server at INSERT.
        #[orm(server_default = "CURRENT_TIMESTAMP")]
        pub created_at: Option<DateTime>,
        /// Set by the server at INSERT and at every UPDATE of the row.
        #[orm(
            server_default = "CURRENT_TIMESTAMP",
            server_on_update = "CURRENT_TIMESTAMP"
        )]
        pub updated_at: Option<DateTime>,
    }

    #[test]
    fn created_at_and_updated_at_are_set_by_the_server() {
        let db = TestDb::new("df_readme");
        let engine = orm::create_engine(&db.url).unwrap();
        let ddl = orm::schema::create_table_sql(engine.dialect(), Post::table());
        assert!(
            ddl[0].contains(
                "`updated_at` DATETIME(6) DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
            ),
            "{}",
            ddl[0]
        );
        orm::schema::create_all(&engine, &[Post::table()]).unwrap();
        let s = SessionFactory::new(engine.clone()).session();
        let post = s
            .add(Post {
                id: None,
                title: "Hello".into(),
                created_at: None,
                updated_at: None,
            })
            .unwrap();
        s.flush().unwrap(); // INSERT ... RETURNING `id`, `created_at`, `updated_at`
        let created = post
            .read()
            .unwrap()
            .created_at
            .expect("fetched with RETURNING");
        assert_eq!(post.read().unwrap().updated_at, Some(created));
        s.commit().unwrap();
        // Make the stored values old, so the ON UPDATE value is visibly new.
        db.exec("UPDATE posts SET created_at = '2000-01-01', updated_at = '2000-01-01'");
        post.write().unwrap().title = "Hello again".into();
        s.flush().unwrap(); // UPDATE; the server sets updated_at, the object is expired
        assert!(post.is_expired());
        let p = post.read().unwrap(); // loads the server's values
        assert_eq!(p.created_at.unwrap().date.year, 2000);
        assert!(p.updated_at.unwrap().date.year > 2000, "{:?}", p.updated_at);
        drop(p);
        s.commit().unwrap();
    }

    #[test]
    fn on_sqlite_the_on_update_clause_is_left_out() {
        let db = TestDb::sqlite("df_readme_sqlite");
        let engine = orm::create_engine(&db.url).unwrap();
        let ddl = orm::schema::create_table_sql(engine.dialect(), Post::table());
        assert!(
            ddl[0].contains("\"updated_at\" DATETIME DEFAULT CURRENT_TIMESTAMP,"),
            "{}",
            ddl[0]
        );
        assert!(!ddl[0].contains("ON UPDATE"), "{}", ddl[0]);
        orm::schema::create_all(&engine, &[Post::table()]).unwrap();
        let s = SessionFactory::new(engine.clone()).session();
        let post = s
            .add(Post {
                id: None,
                title: "Hello".into(),
                created_at: None,
                updated_at: None,
            })
            .unwrap();
        s.flush().unwrap();
        assert!(
            post.read().unwrap().created_at.is_some(),
            "fetched with RETURNING"
        );
        s.commit().unwrap();
    }
}
