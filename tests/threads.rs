//! Sessions and threads: merge (SQLAlchemy's test_merge.py), scoped sessions
//! (test_scoping.py), and a merge-and-commit stress test on versioned rows.
//! Every test runs on MariaDB and on an SQLite file (`mysql::name`, `sqlite::name`).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{Backend, TestDb};
use orm::prelude::*;
use orm::session::{ObjState, ScopedSession, SessionFactory};

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "items")]
struct Item {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
    qty: i32,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "counters")]
struct Counter {
    #[orm(primary_key)]
    id: i64,
    hits: i64,
    #[orm(version)]
    version: i64,
}

fn setup(backend: Backend, tag: &str, options: &str) -> (TestDb, Engine, SessionFactory) {
    let db = TestDb::on(backend, tag);
    let engine = orm::create_engine(&db.url_with(options)).expect("engine");
    orm::schema::create_all(&engine, &[Item::table(), Counter::table()]).expect("tables");
    let factory = SessionFactory::new(engine.clone());
    (db, engine, factory)
}

fn item(id: Option<i64>, name: &str, qty: i32) -> Item {
    Item {
        id,
        name: name.into(),
        qty,
    }
}

fn merge_transient_without_key_becomes_pending_with_no_sql(b: Backend) {
    let (db, engine, factory) = setup(b, "m_pending", "");
    let s = factory.session();
    let capture = engine.capture_statements();
    let value = item(None, "new", 1);
    let merged = s.merge(&value).unwrap();
    assert!(capture.take().is_empty(), "no key: no SQL");
    assert_eq!(merged.state(), ObjState::Pending);
    assert!(s.is_new(&merged));
    s.commit().unwrap();
    assert_eq!(value.id, None, "the source value is untouched");
    assert_eq!(
        db.rows("SELECT name, qty FROM items"),
        vec![vec!["new", "1"]]
    );
}

fn merge_transient_with_unknown_key_is_pending_after_one_select(b: Backend) {
    let (db, engine, factory) = setup(b, "m_pending_key", "");
    let s = factory.session();
    let capture = engine.capture_statements();
    let merged = s.merge(&item(Some(42), "keyed", 2)).unwrap();
    let sent = capture.take();
    assert_eq!(
        sent.iter().filter(|q| q.starts_with("SELECT")).count(),
        1,
        "{sent:?}"
    );
    assert_eq!(merged.state(), ObjState::Pending);
    s.commit().unwrap();
    assert_eq!(
        db.rows("SELECT id, name FROM items"),
        vec![vec!["42", "keyed"]]
    );
}

fn merge_onto_a_persistent_row_updates_only_changed_columns(b: Backend) {
    let (db, engine, factory) = setup(b, "m_persist", "");
    db.exec("INSERT INTO items (id, name, qty) VALUES (1, 'bolt', 10)");
    let s = factory.session();
    let capture = engine.capture_statements();
    let value = item(Some(1), "bolt", 11);
    let merged = s.merge(&value).unwrap();
    assert_eq!(merged.state(), ObjState::Persistent);
    assert_eq!(merged.read().unwrap().qty, 11);
    assert!(s.is_dirty(&merged));
    s.commit().unwrap();
    let updates = common::starting_with(capture.take(), "UPDATE");
    assert_eq!(updates.len(), 1);
    assert!(
        updates[0].contains(&db.sql("SET `qty` = ?")) && !updates[0].contains(&db.sql("`name` =")),
        "{updates:?}"
    );
    assert_eq!(
        db.rows("SELECT name, qty FROM items"),
        vec![vec!["bolt", "11"]]
    );
    // Merging identical values onto a loaded object sends no UPDATE.
    let again = s.merge(&item(Some(1), "bolt", 11)).unwrap();
    assert!(
        again.ptr_eq(&merged),
        "the identity map's object is the target (no second object)"
    );
    s.commit().unwrap();
    assert!(capture.take().iter().all(|q| !q.starts_with("UPDATE")));
}

fn merge_detached_value_from_another_session_into_the_map_hit_sends_no_select(b: Backend) {
    let (db, engine, factory) = setup(b, "m_detached", "");
    db.exec("INSERT INTO items (id, name, qty) VALUES (1, 'nut', 5)");
    let s1 = factory.session();
    let loaded = s1.get::<Item>(1).unwrap().unwrap();
    let value = loaded.value().unwrap();
    s1.close();
    assert_eq!(loaded.state(), ObjState::Detached);

    let s2 = factory.session();
    let target = s2.get::<Item>(1).unwrap().unwrap();
    let capture = engine.capture_statements();
    let merged = s2.merge(&Item { qty: 6, ..value }).unwrap();
    assert!(merged.ptr_eq(&target));
    assert!(capture.take().is_empty(), "identity-map hit: no SQL");
    s2.commit().unwrap();
    assert_eq!(db.rows("SELECT qty FROM items"), vec![vec!["6"]]);
}

fn merge_no_load_sends_nothing_and_stamps_the_object_clean(b: Backend) {
    let (db, engine, factory) = setup(b, "m_noload", "");
    db.exec("INSERT INTO items (id, name, qty) VALUES (1, 'cog', 3)");
    let s = factory.session();
    let capture = engine.capture_statements();
    let merged = s.merge_no_load(&item(Some(1), "cog", 3)).unwrap();
    assert_eq!(merged.state(), ObjState::Persistent);
    assert!(!s.is_dirty(&merged));
    s.flush().unwrap();
    assert!(
        capture.take().is_empty(),
        "load=False: no SQL at merge or flush"
    );
    // Later changes are tracked against the stamped values.
    merged.write().unwrap().qty = 4;
    s.commit().unwrap();
    assert_eq!(db.rows("SELECT qty FROM items"), vec![vec!["4"]]);
    let err = s.merge_no_load(&item(None, "nokey", 1)).unwrap_err();
    assert!(err.to_string().contains("primary key"), "{err}");
}

fn merge_with_a_stale_version_is_stale_data(b: Backend) {
    let (db, _engine, factory) = setup(b, "m_version", "");
    db.exec("INSERT INTO counters (id, hits, version) VALUES (1, 0, 3)");
    let s = factory.session();
    let err = s
        .merge(&Counter {
            id: 1,
            hits: 5,
            version: 2,
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::StaleData {
                table: "counters",
                ..
            }
        ),
        "{err}"
    );
    let ok = s
        .merge(&Counter {
            id: 1,
            hits: 5,
            version: 3,
        })
        .unwrap();
    s.commit().unwrap();
    assert_eq!(
        db.rows("SELECT hits, version FROM counters"),
        vec![vec!["5", "4"]]
    );
    assert_eq!(ok.read().unwrap().version, 4);
}

fn scoped_session_is_one_per_thread_and_remove_gives_a_fresh_one(b: Backend) {
    let (_db, engine, factory) = setup(b, "m_scoped", "");
    let scoped = Arc::new(ScopedSession::new(factory));
    let a = scoped.current();
    let b = scoped.current();
    a.add(item(None, "x", 1)).unwrap();
    assert_eq!(
        b.new_objects::<Item>().unwrap().len(),
        1,
        "same session within a thread"
    );

    let other = Arc::clone(&scoped);
    let seen_in_other =
        std::thread::spawn(move || other.current().new_objects::<Item>().unwrap().len())
            .join()
            .unwrap();
    assert_eq!(seen_in_other, 0, "another thread has its own session");

    scoped.flush().unwrap();
    assert_eq!(engine.status().checked_out, 1);
    scoped.remove();
    assert_eq!(
        engine.status().checked_out,
        0,
        "remove() closes and returns the connection"
    );
    assert!(!scoped.has_current());
    assert_eq!(
        scoped.current().new_objects::<Item>().unwrap().len(),
        0,
        "a fresh session after remove()"
    );
    drop((a, b));

    // A thread that ends releases its session's connection.
    let other = Arc::clone(&scoped);
    std::thread::spawn(move || {
        other.add(item(None, "t", 1)).unwrap();
        other.flush().unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(engine.status().checked_out, 0);

    // Caller-defined scopes within a thread.
    let request = Arc::new(std::sync::Mutex::new(String::from("r1")));
    let r = Arc::clone(&request);
    let by_request = ScopedSession::with_scope(SessionFactory::new(engine.clone()), move || {
        r.lock().unwrap().clone()
    });
    by_request.add(item(None, "r1", 1)).unwrap();
    *request.lock().unwrap() = "r2".into();
    assert_eq!(by_request.current().new_objects::<Item>().unwrap().len(), 0);
    *request.lock().unwrap() = "r1".into();
    assert_eq!(by_request.current().new_objects::<Item>().unwrap().len(), 1);
    by_request.remove();
}

/// 8 threads x 1,000 merge-and-commit cycles over 100 versioned rows. Every
/// lost race must be a StaleData error; no increment may be lost silently.
fn stress_merge_and_commit_loses_no_update(b: Backend) {
    let (db, engine, factory) = setup(b, "m_stress", "pool_size=4&max_overflow=4");
    db.exec(&format!(
        "INSERT INTO counters (id, hits, version) SELECT seq, 0, 1 FROM {}",
        db.seq(100)
    ));
    let successes = Arc::new(AtomicU64::new(0));
    let stale = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let factory = factory.clone();
            let successes = Arc::clone(&successes);
            let stale = Arc::clone(&stale);
            std::thread::spawn(move || {
                let mut seed = t * 7919 + 1;
                for _ in 0..1000 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let id = (seed >> 33) % 100 + 1;
                    // Read a plain value in one session...
                    let value = {
                        let s = factory.session();
                        let obj = s.get::<Counter>(id as i64).unwrap().unwrap();
                        let v = obj.value().unwrap();
                        s.close();
                        v
                    };
                    // ...and merge a modified copy in another.
                    let s = factory.session();
                    let result = s
                        .merge(&Counter {
                            hits: value.hits + 1,
                            ..value
                        })
                        .and_then(|_| s.commit());
                    match result {
                        Ok(()) => {
                            successes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::StaleData { .. }) => {
                            stale.fetch_add(1, Ordering::Relaxed);
                            s.rollback().unwrap();
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ok = successes.load(Ordering::Relaxed);
    let lost = stale.load(Ordering::Relaxed);
    assert_eq!(ok + lost, 8000);
    let total: u64 = db.rows("SELECT SUM(hits) FROM counters")[0][0]
        .parse()
        .unwrap();
    assert_eq!(
        total, ok,
        "every successful commit is counted, none lost silently"
    );
    let versions: u64 = db.rows("SELECT SUM(version) - COUNT(*) FROM counters")[0][0]
        .parse()
        .unwrap();
    assert_eq!(versions, ok, "each success bumped a version exactly once");
    assert_eq!(engine.status().checked_out, 0);
}

backend_tests!(
    merge_transient_without_key_becomes_pending_with_no_sql,
    merge_transient_with_unknown_key_is_pending_after_one_select,
    merge_onto_a_persistent_row_updates_only_changed_columns,
    merge_detached_value_from_another_session_into_the_map_hit_sends_no_select,
    merge_no_load_sends_nothing_and_stamps_the_object_clean,
    merge_with_a_stale_version_is_stale_data,
    scoped_session_is_one_per_thread_and_remove_gives_a_fresh_one,
    stress_merge_and_commit_loses_no_update,
);
