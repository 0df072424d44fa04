//! `orm::create_engine` picks the backend from the URL scheme, and the
//! SQLite backend's own choices: the pool per target, foreign keys, WAL,
//! error classification, RETURNING, DDL of reference cycles.

mod common;

use common::TestDb;
use orm::backend::ServerKind;
use orm::pool::PoolClass;
use orm::prelude::*;
use orm::session::SessionFactory;
use orm::DbErrorKind;

#[test]
fn an_unknown_scheme_is_an_error_listing_the_known_ones() {
    let err = orm::create_engine("postgres://u:secret@host/db").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{msg}");
    for scheme in ["mysql://", "mariadb://", "sqlite:"] {
        assert!(msg.contains(scheme), "{msg}");
    }
    assert!(msg.contains("`postgres`"), "{msg}");
    assert!(!msg.contains("secret"), "no password in errors: {msg}");
}

#[test]
fn mysql_and_mariadb_schemes_open_mariadb() {
    let db = TestDb::new("be_scheme");
    let mariadb_url = db.url.replacen("mysql://", "mariadb://", 1);
    for url in [db.url.clone(), mariadb_url] {
        let engine = orm::create_engine(&url).unwrap();
        let conn = engine.connect().unwrap();
        assert_ne!(conn.server_info().kind, ServerKind::Sqlite, "{url}");
    }
}

#[test]
fn sqlite_urls_open_sqlite_with_the_pool_that_fits() {
    let memory = orm::create_engine("sqlite::memory:").unwrap();
    assert_eq!(memory.options().class, PoolClass::Static);
    let db = TestDb::sqlite("be_file");
    let file = orm::create_engine(&db.url).unwrap();
    assert_eq!(file.options().class, PoolClass::Queue);
    let info = file.connect().unwrap().server_info().clone();
    assert_eq!(info.kind, ServerKind::Sqlite);
    assert!(info.version >= (3, 35, 0), "{info:?}");
    assert!(info.supports_returning);
    let off = orm::create_engine(&db.url_with("insert_returning=off")).unwrap();
    assert!(!off.connect().unwrap().server_info().supports_returning);
    let err = orm::create_engine("sqlite::memory:?poolclass=queue").unwrap_err();
    assert!(err.to_string().contains("poolclass=static"), "{err}");
}

/// One in-memory database, shared by every thread through the one connection.
#[test]
fn a_memory_database_is_one_connection_shared_by_threads() {
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    {
        let mut conn = engine.connect().unwrap();
        conn.execute_text("CREATE TABLE t (x INTEGER)").unwrap();
    }
    let other = engine.clone();
    std::thread::spawn(move || {
        let mut conn = other.connect().unwrap();
        conn.execute("INSERT INTO t (x) VALUES (?)", &[Value::Int(7)])
            .unwrap();
    })
    .join()
    .unwrap();
    let mut conn = engine.connect().unwrap();
    let rows = conn.query_rows("SELECT x FROM t", &[]).unwrap();
    assert_eq!(rows[0].values(), [Value::Int(7)]);
    assert_eq!(engine.status().size, 1, "one connection");
}

#[test]
fn every_file_connection_has_foreign_keys_and_wal() {
    let db = TestDb::sqlite("be_pragmas");
    let engine = orm::create_engine(&db.url_with("pool_size=2")).unwrap();
    let mut a = engine.connect().unwrap();
    let mut b = engine.connect().unwrap();
    assert_ne!(a.connection_id(), b.connection_id());
    for conn in [&mut a, &mut b] {
        let fk = conn.query_rows("PRAGMA foreign_keys", &[]).unwrap();
        assert_eq!(fk[0].values(), [Value::Int(1)]);
        let mode = conn.query_rows("PRAGMA journal_mode", &[]).unwrap();
        assert_eq!(mode[0].values(), [Value::Text("wal".into())]);
    }
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "parents")]
struct Parent {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Child)]
    favourite: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "children")]
struct Child {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Parent)]
    parent_id: i64,
}

/// SQLite cannot ALTER TABLE ADD/DROP CONSTRAINT: the foreign keys of a
/// reference cycle are declared inline, and they are enforced.
#[test]
fn reference_cycles_get_inline_foreign_keys_that_are_enforced() {
    let db = TestDb::sqlite("be_cycle");
    let engine = orm::create_engine(&db.url).unwrap();
    let tables = [Parent::table(), Child::table()];
    let ddl = orm::schema::create_all_sql(engine.dialect(), &tables).unwrap();
    assert!(ddl.iter().all(|s| !s.starts_with("ALTER")), "{ddl:?}");
    orm::schema::create_all(&engine, &tables).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    s.add(Child {
        id: 1,
        parent_id: 99,
    })
    .unwrap();
    let err = s.flush().unwrap_err();
    assert!(err.is_integrity(), "{err}");
    assert_eq!(err.code(), Some(787), "SQLITE_CONSTRAINT_FOREIGNKEY: {err}");
    s.rollback().unwrap();
    drop(s);
    orm::schema::drop_all(&engine, &tables).unwrap();
    assert!(db
        .rows("SELECT name FROM sqlite_master WHERE type = 'table'")
        .is_empty());
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "notes")]
struct Note {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    body: String,
}

/// A lock held by another process (here: a raw connection) past
/// busy_timeout is a retryable error, and the session recovers after rollback.
#[test]
fn a_lock_held_elsewhere_past_busy_timeout_is_retryable() {
    let db = TestDb::sqlite("be_busy");
    let engine = orm::create_engine(&db.url_with("busy_timeout=0.1")).unwrap();
    orm::schema::create_all(&engine, &[Note::table()]).unwrap();
    let other = db.sqlite_conn();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    s.add(Note {
        id: None,
        body: "x".into(),
    })
    .unwrap();
    let err = s.flush().unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        match &err {
            Error::Database(e) => e.kind,
            _ => DbErrorKind::Other,
        },
        DbErrorKind::Retryable
    );
    assert!(
        err.to_string().contains("busy_timeout"),
        "says what to do: {err}"
    );
    s.rollback().unwrap();
    other.execute_batch("COMMIT").unwrap();
    s.add(Note {
        id: None,
        body: "y".into(),
    })
    .unwrap();
    s.commit().unwrap();
    assert_eq!(db.rows("SELECT id, body FROM notes"), vec![vec!["1", "y"]]);
}

/// INSERT ... RETURNING on SQLite, and the one-row-at-a-time fallback.
#[test]
fn generated_keys_come_back_with_and_without_returning() {
    for options in ["", "insert_returning=off"] {
        let db = TestDb::sqlite("be_keys");
        let engine = orm::create_engine(&db.url_with(options)).unwrap();
        orm::schema::create_all(&engine, &[Note::table()]).unwrap();
        let s = SessionFactory::new(engine.clone()).session();
        let capture = engine.capture_statements();
        let notes: Vec<_> = (0..3)
            .map(|i| {
                s.add(Note {
                    id: None,
                    body: format!("n{i}"),
                })
                .unwrap()
            })
            .collect();
        s.commit().unwrap();
        let inserts = common::starting_with(capture.take(), "INSERT");
        if options.is_empty() {
            assert_eq!(
                inserts,
                ["INSERT INTO \"notes\" (\"body\") VALUES (?), (?), (?) RETURNING \"id\""]
            );
        } else {
            assert_eq!(
                inserts,
                vec!["INSERT INTO \"notes\" (\"body\") VALUES (?)"; 3]
            );
        }
        let rows = db.rows("SELECT id, body FROM notes ORDER BY id");
        for (obj, row) in notes.iter().zip(&rows) {
            let n = obj.read().unwrap();
            assert_eq!(
                (n.id.unwrap().to_string(), n.body.clone()),
                (row[0].clone(), row[1].clone())
            );
        }
    }
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "scores")]
struct Score {
    #[orm(primary_key)]
    id: i64,
    points: i64,
    #[orm(version)]
    version: i64,
}

/// Batched UPDATEs on SQLite: `UPDATE ... FROM (VALUES ...)` by default,
/// one prepared UPDATE per row with `update_batch=per_row`; both check
/// every row's version and name the stale one.
#[test]
fn batched_updates_from_values_or_per_row_check_versions() {
    for (options, statements) in [("", 1), ("update_batch=per_row", 3)] {
        let db = TestDb::sqlite("be_update");
        let engine = orm::create_engine(&db.url_with(options)).unwrap();
        orm::schema::create_all(&engine, &[Score::table()]).unwrap();
        db.exec("INSERT INTO scores (id, points, version) VALUES (1, 0, 1), (2, 0, 1), (3, 0, 1)");
        let s = SessionFactory::new(engine.clone()).session();
        let all = s.query::<Score>().all().unwrap();
        for (n, o) in all.iter().enumerate() {
            o.write().unwrap().points = 10 + n as i64;
        }
        let capture = engine.capture_statements();
        s.commit().unwrap();
        let updates = common::starting_with(capture.take(), "UPDATE");
        assert_eq!(updates.len(), statements, "{options}: {updates:?}");
        if options.is_empty() {
            assert_eq!(
                updates[0],
                "UPDATE \"scores\" SET \"points\" = \"__b\".\"column2\", \"version\" = \
                 \"scores\".\"version\" + 1 FROM (VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)) AS \"__b\" \
                 WHERE \"scores\".\"id\" = \"__b\".\"column1\" AND \"scores\".\"version\" = \"__b\".\"column3\""
            );
        }
        assert_eq!(
            db.rows("SELECT points, version FROM scores ORDER BY id"),
            vec![vec!["10", "2"], vec!["11", "2"], vec!["12", "2"]],
            "{options}"
        );
        // A row changed behind the session's back is named.
        let all = s.query::<Score>().all().unwrap();
        db.exec("UPDATE scores SET version = 9 WHERE id = 3");
        for o in &all {
            o.write().unwrap().points += 1;
        }
        match s.commit().unwrap_err() {
            Error::StaleData { table, key, .. } => {
                assert_eq!((table, key.as_str()), ("scores", "3"))
            }
            other => panic!("{options}: expected StaleData, got {other}"),
        }
        s.rollback().unwrap();
        assert_eq!(
            db.rows("SELECT points FROM scores ORDER BY id"),
            vec![vec!["10"], vec!["11"], vec!["12"]],
            "{options}: rolled back"
        );
    }
}

/// Two writers of one engine: the second waits for the first's transaction
/// (the engine's write queue), fails as retryable after busy_timeout, and
/// gets in once the first has committed.
#[test]
fn a_second_writer_of_the_engine_waits_its_turn() {
    let db = TestDb::sqlite("be_gate");
    let engine = orm::create_engine(&db.url_with("busy_timeout=0.1")).unwrap();
    orm::schema::create_all(&engine, &[Note::table()]).unwrap();
    let factory = SessionFactory::new(engine.clone());
    let first = factory.session();
    first
        .add(Note {
            id: None,
            body: "first".into(),
        })
        .unwrap();
    first.flush().unwrap(); // holds the write lock until commit
    let second = factory.session();
    second
        .add(Note {
            id: None,
            body: "second".into(),
        })
        .unwrap();
    let err = second.flush().unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("busy_timeout"), "{err}");
    second.rollback().unwrap();
    first.commit().unwrap();
    second
        .add(Note {
            id: None,
            body: "second".into(),
        })
        .unwrap();
    second.commit().unwrap();
    assert_eq!(
        db.rows("SELECT body FROM notes ORDER BY id"),
        vec![vec!["first"], vec!["second"]]
    );
    drop((first, second));
    assert_eq!(engine.status().checked_out, 0);
}
