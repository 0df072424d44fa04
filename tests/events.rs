//! Session and model events against MariaDB and an SQLite file (one body,
//! two backends): the order hooks run in, hooks that change the flush,
//! `ModelEvents` under `#[orm(events)]`, `on_load`, and what an error from
//! a hook does. SQLAlchemy's test/orm/test_events.py behaviours that apply,
//! re-expressed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{Backend, TestDb};
use orm::prelude::*;
use orm::session::{ModelEvents, ObjState, Session, SessionFactory};

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "users")]
struct User {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "audit")]
struct Audit {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    what: String,
}

/// A model whose own `ModelEvents` methods run (`#[orm(events)]`).
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "articles", events)]
struct Article {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    title: String,
    #[orm(sql_type = "VARCHAR(64)")]
    slug: String,
    revision: i32,
    /// Not a column: set by `on_load`.
    #[orm(skip)]
    loaded: u32,
}

impl ModelEvents for Article {
    fn before_insert(_: &Session, obj: &Obj<Self>) -> orm::Result<()> {
        let mut a = obj.write()?;
        a.slug = a.title.to_lowercase().replace(' ', "-");
        LOG.lock()
            .unwrap()
            .push(format!("trait before_insert {}", a.title));
        Ok(())
    }

    fn before_update(_: &Session, obj: &Obj<Self>) -> orm::Result<()> {
        let mut a = obj.write()?;
        a.revision += 1;
        a.slug = a.title.to_lowercase().replace(' ', "-");
        Ok(())
    }

    fn on_load(_: &Session, obj: &Obj<Self>) -> orm::Result<()> {
        obj.write()?.loaded += 1;
        Ok(())
    }
}

/// What the trait methods of `Article` saw (tests using it run one at a time
/// through `ARTICLE_LOCK`).
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static ARTICLE_LOCK: Mutex<()> = Mutex::new(());

type Log = Arc<Mutex<Vec<String>>>;

fn setup(backend: Backend, tag: &str) -> (TestDb, Engine) {
    let db = TestDb::on(backend, tag);
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[User::table(), Audit::table(), Article::table()]).unwrap();
    (db, engine)
}

fn push(log: &Log, what: impl Into<String>) -> orm::Result<()> {
    log.lock().unwrap().push(what.into());
    Ok(())
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// A factory recording every session event and every `User` event.
fn recording(engine: &Engine, log: &Log) -> SessionFactory {
    let l = |log: &Log| log.clone();
    let (a, b, c, d, e) = (l(log), l(log), l(log), l(log), l(log));
    let (f, g, h, i, j, k, m) = (l(log), l(log), l(log), l(log), l(log), l(log), l(log));
    SessionFactory::new(engine.clone())
        .before_flush(move |_| push(&a, "before_flush"))
        .after_flush(move |_| push(&b, "after_flush"))
        .after_begin(move |_, _| push(&c, "after_begin"))
        .after_commit(move |_| push(&d, "after_commit"))
        .after_rollback(move |_| push(&e, "after_rollback"))
        .before_insert::<User>(move |_, u| push(&f, format!("before_insert {}", u.read()?.name)))
        .after_insert::<User>(move |_, u| {
            // The generated key is there.
            push(
                &g,
                format!("after_insert {} {}", u.read()?.name, u.key::<i64>()?),
            )
        })
        .before_update::<User>(move |_, u| push(&h, format!("before_update {}", u.read()?.name)))
        .after_update::<User>(move |_, u| push(&i, format!("after_update {}", u.read()?.name)))
        .before_delete::<User>(move |_, u| push(&j, format!("before_delete {}", u.read()?.name)))
        .after_delete::<User>(move |_, u| push(&k, format!("after_delete {}", u.read()?.name)))
        .on_load::<User>(move |_, u| push(&m, format!("on_load {}", u.read()?.name)))
}

fn hooks_run_in_flush_and_transaction_order(backend: Backend) {
    let (_db, engine) = setup(backend, "ev_order");
    let log: Log = Arc::default();
    let s = recording(&engine, &log).session();
    let ann = s
        .add(User {
            id: None,
            name: "ann".into(),
        })
        .unwrap();
    s.add(User {
        id: None,
        name: "bob".into(),
    })
    .unwrap();
    s.flush().unwrap();
    let first = ann.key::<i64>().unwrap();
    assert_eq!(
        take(&log),
        [
            "before_flush".to_string(),
            "before_insert ann".into(),
            "before_insert bob".into(),
            "after_begin".into(),
            format!("after_insert ann {first}"),
            format!("after_insert bob {}", first + 1),
            "after_flush".into(),
        ]
    );
    ann.write().unwrap().name = "anne".into();
    s.flush().unwrap();
    assert_eq!(
        take(&log),
        [
            "before_flush",
            "before_update anne",
            "after_update anne",
            "after_flush"
        ]
    );
    // Written back to the same value: no net change, no before_update, no flush at all.
    ann.write().unwrap().name = "anne".into();
    s.flush().unwrap();
    assert_eq!(take(&log), ["before_flush", "after_flush"]);
    s.delete(&ann).unwrap();
    s.commit().unwrap();
    assert_eq!(
        take(&log),
        [
            "before_flush",
            "before_delete anne",
            "after_delete anne",
            "after_flush",
            "after_commit"
        ]
    );
    // Loading: on_load once per new object; an identity-map hit is not a load.
    let all = s.query::<User>().all().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(take(&log), ["after_begin", "on_load bob"]);
    s.query::<User>().all().unwrap();
    assert!(take(&log).is_empty());
    // An expired object's reload is a load.
    s.expire(&all[0]).unwrap();
    all[0].read().unwrap();
    assert_eq!(take(&log), ["on_load bob"]);
    s.rollback().unwrap();
    assert_eq!(take(&log), ["after_rollback"]);
    // Nothing open: neither commit nor rollback runs a hook.
    s.commit().unwrap();
    s.rollback().unwrap();
    assert!(take(&log).is_empty());
}

fn before_flush_may_add_objects_and_they_are_flushed(backend: Backend) {
    let (db, engine) = setup(backend, "ev_add");
    let factory = SessionFactory::new(engine.clone())
        .before_flush(|s| {
            for u in s.new_objects::<User>()? {
                let what = format!("created {}", u.read()?.name);
                s.add(Audit { id: None, what })?;
            }
            Ok(())
        })
        // Objects added by before_flush get their own before_insert.
        .before_insert::<Audit>(|_, a| {
            a.write()?.what.push('!');
            Ok(())
        });
    let s = factory.session();
    s.add(User {
        id: None,
        name: "ann".into(),
    })
    .unwrap();
    s.commit().unwrap();
    assert_eq!(db.rows("SELECT what FROM audit"), [["created ann!"]]);
    assert_eq!(db.rows("SELECT name FROM users"), [["ann"]]);
}

fn before_insert_changes_are_flushed_and_before_update_may_add_columns(backend: Backend) {
    let _guard = ARTICLE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (db, engine) = setup(backend, "ev_change");
    let s = SessionFactory::new(engine.clone()).session();
    let a = s
        .add(Article {
            id: None,
            title: "Hello World".into(),
            slug: String::new(),
            revision: 0,
            loaded: 0,
        })
        .unwrap();
    s.flush().unwrap();
    assert_eq!(a.read().unwrap().slug, "hello-world");
    a.write().unwrap().title = "Second Title".into();
    let capture = engine.capture_statements();
    s.commit().unwrap();
    let sent = capture.take();
    // The hook's columns are in the one UPDATE, planned after it ran.
    let update = sent
        .iter()
        .find(|q| q.starts_with("UPDATE"))
        .expect("an UPDATE");
    assert!(
        update.contains("slug") && update.contains("revision"),
        "{update}"
    );
    assert_eq!(
        db.rows("SELECT title, slug, revision FROM articles"),
        [["Second Title", "second-title", "1"]]
    );
}

fn model_events_method_runs_before_closures_and_on_load_sets_state(backend: Backend) {
    let _guard = ARTICLE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (_db, engine) = setup(backend, "ev_trait");
    LOG.lock().unwrap().clear();
    let s = SessionFactory::new(engine.clone())
        .before_insert::<Article>(|_, a| {
            let a = a.read()?;
            LOG.lock()
                .unwrap()
                .push(format!("closure before_insert {}", a.slug));
            Ok(())
        })
        .session();
    s.add(Article {
        id: None,
        title: "A B".into(),
        slug: String::new(),
        revision: 0,
        loaded: 0,
    })
    .unwrap();
    s.commit().unwrap();
    assert_eq!(
        std::mem::take(&mut *LOG.lock().unwrap()),
        ["trait before_insert A B", "closure before_insert a-b"]
    );
    let s = engine_session(&engine);
    let a = s.query::<Article>().one().unwrap();
    assert_eq!(a.read().unwrap().loaded, 1);
    s.query::<Article>().one().unwrap();
    assert_eq!(
        a.read().unwrap().loaded,
        1,
        "an identity-map hit is not a load"
    );
}

fn engine_session(engine: &Engine) -> Session {
    SessionFactory::new(engine.clone()).session()
}

fn error_from_a_before_hook_stops_the_flush_before_any_sql(backend: Backend) {
    let (db, engine) = setup(backend, "ev_before_err");
    let refuse = Arc::new(AtomicBool::new(true));
    let r = refuse.clone();
    let s = SessionFactory::new(engine.clone())
        .before_insert::<User>(move |_, u| {
            if r.load(Ordering::SeqCst) {
                return Err(Error::invalid(format!("no user called {}", u.read()?.name)));
            }
            Ok(())
        })
        .session();
    let ann = s
        .add(User {
            id: None,
            name: "ann".into(),
        })
        .unwrap();
    let capture = engine.capture_statements();
    let err = s.flush().unwrap_err();
    match &err {
        Error::Hook {
            event,
            model,
            source,
        } => {
            assert_eq!((*event, *model), ("before_insert", Some("User")));
            assert!(source.to_string().contains("no user called ann"), "{err}");
        }
        other => panic!("expected Error::Hook, got {other}"),
    }
    assert!(capture.take().is_empty(), "nothing was sent");
    // The session is as it was: no rollback needed, the object still pending.
    assert_eq!(ann.state(), ObjState::Pending);
    refuse.store(false, Ordering::SeqCst);
    s.commit().unwrap();
    assert_eq!(db.rows("SELECT name FROM users"), [["ann"]]);
}

fn error_from_an_after_hook_rolls_back_and_requires_rollback(backend: Backend) {
    let (db, engine) = setup(backend, "ev_after_err");
    let log: Log = Arc::default();
    let l = log.clone();
    let s = SessionFactory::new(engine.clone())
        .after_insert::<User>(|_, _| Err(Error::invalid("after_insert says no")))
        .after_rollback(move |_| push(&l, "after_rollback"))
        .session();
    let ann = s
        .add(User {
            id: None,
            name: "ann".into(),
        })
        .unwrap();
    let err = s.flush().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Hook {
                event: "after_insert",
                ..
            }
        ),
        "{err}"
    );
    // The INSERT was rolled back, the object is transient again, and the
    // session says why it needs a rollback.
    assert!(db.rows("SELECT name FROM users").is_empty());
    assert_eq!(ann.state(), ObjState::Transient);
    let again = s.query::<User>().all().unwrap_err();
    match &again {
        Error::PendingRollback(cause) => {
            assert!(
                matches!(
                    **cause,
                    Error::Hook {
                        event: "after_insert",
                        ..
                    }
                ),
                "{again}"
            )
        }
        other => panic!("expected PendingRollback, got {other}"),
    }
    s.rollback().unwrap();
    assert_eq!(take(&log), ["after_rollback"]);
    assert!(s.query::<User>().all().unwrap().is_empty());
}

fn hooks_may_query_without_autoflush_but_not_flush(backend: Backend) {
    let (_db, engine) = setup(backend, "ev_nested");
    let seen: Log = Arc::default();
    let sn = seen.clone();
    let s = SessionFactory::new(engine.clone())
        .before_insert::<User>(move |s, _| {
            // A query inside the flush does not autoflush (the row being
            // inserted is not there yet)...
            let n = s.query::<User>().all()?.len();
            push(&sn, format!("{n} rows"))?;
            // ...and a nested flush is refused.
            match s.flush() {
                Err(Error::InvalidRequest(m)) if m.contains("already in progress") => Ok(()),
                other => Err(Error::invalid(format!("nested flush: {other:?}"))),
            }
        })
        .session();
    s.add(User {
        id: None,
        name: "ann".into(),
    })
    .unwrap();
    s.commit().unwrap();
    assert_eq!(take(&seen), ["0 rows"]);
}

fn after_commit_error_is_returned_after_the_commit(backend: Backend) {
    let (db, engine) = setup(backend, "ev_commit_err");
    let s = SessionFactory::new(engine.clone())
        .after_commit(|_| Err(Error::invalid("after_commit says no")))
        .session();
    s.add(User {
        id: None,
        name: "ann".into(),
    })
    .unwrap();
    let err = s.commit().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Hook {
                event: "after_commit",
                model: None,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        db.rows("SELECT name FROM users"),
        [["ann"]],
        "the commit happened"
    );
}

fn sessions_without_hooks_are_unaffected(backend: Backend) {
    let (_db, engine) = setup(backend, "ev_none");
    let log: Log = Arc::default();
    let factory = recording(&engine, &log);
    // A plain session of the same engine sees none of the factory's hooks.
    let s = Session::new(engine.clone());
    s.add(User {
        id: None,
        name: "ann".into(),
    })
    .unwrap();
    s.commit().unwrap();
    assert!(take(&log).is_empty());
    // A clone of the factory keeps its hooks; a hook added to the clone
    // does not reach the original.
    let l = log.clone();
    let more = factory.clone().before_flush(move |_| push(&l, "extra"));
    let s = factory.session();
    s.add(User {
        id: None,
        name: "bob".into(),
    })
    .unwrap();
    s.commit().unwrap();
    assert!(!take(&log).contains(&"extra".to_string()));
    let s = more.session();
    s.add(User {
        id: None,
        name: "cid".into(),
    })
    .unwrap();
    s.commit().unwrap();
    assert_eq!(take(&log).iter().filter(|e| *e == "extra").count(), 1);
}

fn an_after_hook_error_inside_a_savepoint_rolls_back_only_the_savepoint(backend: Backend) {
    let (db, engine) = setup(backend, "ev_savepoint");
    let s = SessionFactory::new(engine.clone())
        .after_insert::<Audit>(|_, _| Err(Error::invalid("no audit today")))
        .session();
    s.add(User {
        id: None,
        name: "ann".into(),
    })
    .unwrap();
    s.flush().unwrap();
    let sp = s.begin_nested().unwrap();
    s.add(Audit {
        id: None,
        what: "x".into(),
    })
    .unwrap();
    let err = s.flush().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Hook {
                event: "after_insert",
                model: Some("Audit"),
                ..
            }
        ),
        "{err}"
    );
    sp.rollback().unwrap();
    s.commit().unwrap();
    assert_eq!(db.rows("SELECT name FROM users"), [["ann"]]);
    assert!(db.rows("SELECT what FROM audit").is_empty());
}

backend_tests!(
    an_after_hook_error_inside_a_savepoint_rolls_back_only_the_savepoint,
    hooks_run_in_flush_and_transaction_order,
    before_flush_may_add_objects_and_they_are_flushed,
    before_insert_changes_are_flushed_and_before_update_may_add_columns,
    model_events_method_runs_before_closures_and_on_load_sets_state,
    error_from_a_before_hook_stops_the_flush_before_any_sql,
    error_from_an_after_hook_rolls_back_and_requires_rollback,
    hooks_may_query_without_autoflush_but_not_flush,
    after_commit_error_is_returned_after_the_commit,
    sessions_without_hooks_are_unaffected,
);

#[test]
fn after_begin_runs_sql_on_the_transaction_connection() {
    let (_db, engine) = setup(Backend::MySql, "ev_begin");
    let s = SessionFactory::new(engine.clone())
        .after_begin(|_, conn| {
            conn.execute("SET @orm_app_user = ?", &[Value::Text("ann".into())])?;
            Ok(())
        })
        .session();
    let rows = s.query_rows("SELECT @orm_app_user", &[]).unwrap();
    assert_eq!(rows[0].values()[0], Value::Text("ann".into()));
}

#[test]
fn an_after_begin_error_fails_the_operation_and_begins_nothing() {
    let (_db, engine) = setup(Backend::MySql, "ev_begin_err");
    let s = SessionFactory::new(engine.clone())
        .after_begin(|_, _| Err(Error::invalid("not today")))
        .session();
    let capture = engine.capture_statements();
    let err = s.query::<User>().all().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Hook {
                event: "after_begin",
                ..
            }
        ),
        "{err}"
    );
    // The transaction begins implicitly with its first statement (no BEGIN
    // round trip): the hook failed before any, so nothing was sent at all.
    assert!(capture.take().is_empty());
}
