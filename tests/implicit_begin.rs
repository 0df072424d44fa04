//! Transactions without a BEGIN round trip against a real MariaDB: the
//! connection runs with autocommit off, so a transaction's first statement
//! opens it; a session that only read ends with one round trip, and none
//! with `autocommit_reads=on` (reads on their own, BEGIN before the first
//! write).

mod common;

use common::TestDb;
use orm::prelude::*;
use orm::session::SessionFactory;

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "counters")]
struct Counter {
    #[orm(primary_key)]
    id: i64,
    n: i32,
}

fn setup(db: &TestDb, options: &str) -> (Engine, SessionFactory) {
    let engine = orm::create_engine(&db.url_with(options)).unwrap();
    orm::schema::create_all(&engine, &[Counter::table()]).unwrap();
    db.exec("INSERT INTO counters (id, n) VALUES (1, 0), (2, 0)");
    let factory = SessionFactory::new(engine.clone());
    (engine, factory)
}

#[test]
fn a_short_transaction_is_three_statements() {
    let db = TestDb::new("ib_short");
    let (engine, factory) = setup(&db, "pool_size=1");
    let capture = engine.capture_statements();
    let s = factory.session();
    let c = s.get::<Counter>(1).unwrap().unwrap();
    c.write().unwrap().n += 1;
    s.commit().unwrap();
    drop(s);
    let sent = capture.take();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[0].starts_with("SELECT"), "{sent:?}");
    assert!(sent[1].starts_with("UPDATE"), "{sent:?}");
    assert_eq!(sent[2], "COMMIT");
    assert_eq!(db.rows("SELECT n FROM counters WHERE id = 1"), [["1"]]);
}

#[test]
fn a_session_that_only_read_ends_with_one_rollback() {
    let db = TestDb::new("ib_read");
    let (engine, factory) = setup(&db, "pool_size=1");
    let capture = engine.capture_statements();
    let s = factory.session();
    assert_eq!(s.query::<Counter>().all().unwrap().len(), 2);
    s.close();
    let sent = capture.take();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1], "ROLLBACK", "the reads' snapshot is released");
    // A session that never ran a statement sends nothing, even on commit.
    let s = factory.session();
    s.begin().unwrap();
    s.commit().unwrap();
    assert!(capture.take().is_empty());
}

#[test]
fn reads_share_one_snapshot_until_the_session_ends() {
    let db = TestDb::new("ib_snapshot");
    let (_engine, factory) = setup(&db, "pool_size=1");
    let s = factory.session();
    let rows = |s: &Session| s.query_rows("SELECT n FROM counters WHERE id = 2", &[]);
    let before = rows(&s).unwrap();
    db.exec("UPDATE counters SET n = 5 WHERE id = 2");
    // REPEATABLE READ: the transaction the first read opened still sees 0.
    assert_eq!(rows(&s).unwrap()[0].get(0), before[0].get(0));
    s.close();
    let s = factory.session();
    assert_eq!(rows(&s).unwrap()[0].get(0), Some(&Value::Int(5)));
}

#[test]
fn autocommit_reads_end_a_read_only_session_with_no_round_trip() {
    let db = TestDb::new("ib_autocommit_reads");
    let (engine, factory) = setup(&db, "pool_size=1&autocommit_reads=on");
    let capture = engine.capture_statements();
    let s = factory.session();
    assert_eq!(s.query::<Counter>().all().unwrap().len(), 2);
    s.close();
    let sent = capture.take();
    assert_eq!(sent.len(), 1, "no ROLLBACK: {sent:?}");
    // A write: BEGIN right before it, and the commit keeps it.
    let s = factory.session();
    let c = s.get::<Counter>(2).unwrap().unwrap();
    c.write().unwrap().n = 7;
    s.commit().unwrap();
    let sent = capture.take();
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert!(sent[0].starts_with("SELECT"), "{sent:?}");
    assert_eq!(sent[1], "BEGIN");
    assert!(sent[2].starts_with("UPDATE"), "{sent:?}");
    assert_eq!(sent[3], "COMMIT");
    assert_eq!(db.rows("SELECT n FROM counters WHERE id = 2"), [["7"]]);
    // A failed write still rolls back all of the transaction's writes.
    let s = factory.session();
    s.add(Counter { id: 3, n: 0 }).unwrap();
    s.flush().unwrap();
    s.add(Counter { id: 1, n: 0 }).unwrap();
    s.flush().unwrap_err();
    s.rollback().unwrap();
    assert_eq!(db.rows("SELECT COUNT(*) FROM counters"), [["2"]]);
}
