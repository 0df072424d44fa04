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
