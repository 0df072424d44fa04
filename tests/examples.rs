//! The examples run in the test suite, each against a private database.

mod common;

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[allow(dead_code)]
#[path = "../examples/worker_threads.rs"]
mod worker_threads;

#[test]
fn quickstart_runs() {
    let db = common::TestDb::new("ex_quick");
    quickstart::run(&db.url).expect("the quickstart example");
    assert!(
        db.rows("SHOW TABLES").is_empty(),
        "the example cleans up its tables"
    );
}

#[test]
fn worker_threads_runs() {
    let db = common::TestDb::new("ex_workers");
    worker_threads::run(&db.url, 4, 200).expect("the worker_threads example");
}

/// Without DATABASE_URL the quickstart uses SQLite in memory; here on a file
/// too, to check that it cleans up.
#[test]
fn quickstart_runs_on_sqlite() {
    quickstart::run("sqlite::memory:").expect("the quickstart on sqlite::memory:");
    let db = common::TestDb::sqlite("ex_quick");
    quickstart::run(&db.url).expect("the quickstart on an SQLite file");
    assert!(
        db.rows("SELECT name FROM sqlite_master WHERE type = 'table'")
            .is_empty(),
        "the example cleans up its tables"
    );
}

#[test]
fn worker_threads_runs_on_sqlite() {
    let db = common::TestDb::sqlite("ex_workers");
    worker_threads::run(&db.url, 4, 200).expect("the worker_threads example on SQLite");
}
