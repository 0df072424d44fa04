//! Pool behaviour against a real MariaDB: status accounting, overflow,
//! timeout, recycle, FIFO/LIFO, null and static pools, concurrency, and the
//! reset-on-return rules.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::TestDb;
use orm_core::engine::{Engine, PooledConnection};
use orm_core::pool::PoolStatus;
use orm_core::value::Value;
use orm_core::Error;

fn engine(db: &TestDb, options: &str) -> Engine {
    orm_mysql::create_engine(&db.url_with(options)).expect("create engine")
}

fn server_id(conn: &mut PooledConnection) -> u64 {
    let rows = conn
        .query_rows("SELECT CONNECTION_ID()", &[])
        .expect("CONNECTION_ID()");
    match rows[0].get(0) {
        Some(Value::UInt(u)) => *u,
        Some(Value::Int(i)) => *i as u64,
        other => panic!("unexpected {other:?}"),
    }
}

fn status(size: usize, idle: usize, overflow: usize, checked_out: usize) -> PoolStatus {
    PoolStatus {
        size,
        idle,
        overflow,
        checked_out,
    }
}

/// Polls until the server sees `n` connections of this database (disconnects are asynchronous).
fn wait_for_server_connections(db: &TestDb, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let seen = db.server_connections();
        if seen == n || Instant::now() > deadline {
            return seen;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn overflow_is_closed_on_return_and_timeout_is_raised() {
    let db = TestDb::new("pool_overflow");
    let engine = engine(&db, "pool_size=2&max_overflow=1&pool_timeout=0.2");
    assert_eq!(engine.status(), status(2, 0, 0, 0), "the pool starts empty");
    let mut a = engine.connect().unwrap();
    let b = engine.connect().unwrap();
    let c = engine.connect().unwrap();
    assert_eq!(engine.status(), status(2, 0, 1, 3));
    assert_eq!(db.server_connections(), 3);

    let started = Instant::now();
    let err = engine.connect().unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            Error::PoolTimeout {
                size: 2,
                overflow: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("size 2 overflow 1") && message.contains("timed out"),
        "{message}"
    );
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(engine.stats().checkout_waits, 1);

    drop(c);
    assert_eq!(engine.status(), status(2, 1, 1, 2));
    drop(b);
    assert_eq!(engine.status(), status(2, 2, 1, 1));
    a.query_rows("SELECT 1", &[]).unwrap();
    drop(a); // the pool already holds pool_size idle connections: closed
    assert_eq!(engine.status(), status(2, 2, 0, 0));
    assert_eq!(wait_for_server_connections(&db, 2), 2);
    let stats = engine.stats();
    assert_eq!((stats.connections_opened, stats.connections_closed), (3, 1));

    engine.dispose();
    assert_eq!(engine.status(), status(2, 0, 0, 0));
    assert_eq!(wait_for_server_connections(&db, 0), 0);
}

#[test]
fn a_waiting_checkout_gets_the_returned_connection() {
    let db = TestDb::new("pool_wait");
    let engine = engine(&db, "pool_size=1&max_overflow=0&pool_timeout=5");
    let held = engine.connect().unwrap();
    let id = held.connection_id();
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        drop(held);
    });
    let started = Instant::now();
    let conn = engine.connect().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(conn.connection_id(), id);
    releaser.join().unwrap();
}

#[test]
fn a_failed_connect_does_not_leak_a_slot() {
    let db = TestDb::new("pool_leak");
    let fail = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&fail);
    let engine = orm_mysql::builder(&db.url_with("pool_size=1&max_overflow=0&pool_timeout=0.2"))
        .unwrap()
        .on_connect(move |_| {
            if flag.load(Ordering::SeqCst) {
                Err(Error::invalid("refused by the test"))
            } else {
                Ok(())
            }
        })
        .build()
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(engine.connect(), Err(Error::InvalidRequest(_))));
    }
    assert_eq!(engine.status(), status(1, 0, 0, 0));
    fail.store(false, Ordering::SeqCst);
    let _conn = engine.connect().expect("the slot is free again");
    assert_eq!(wait_for_server_connections(&db, 1), 1);
}

#[test]
fn recycle_replaces_old_connections() {
    let db = TestDb::new("pool_recycle");
    let engine = engine(&db, "pool_size=1&pool_recycle=1");
    let mut conn = engine.connect().unwrap();
    let first = server_id(&mut conn);
    drop(conn);
    let mut conn = engine.connect().unwrap();
    assert_eq!(server_id(&mut conn), first, "young connections are reused");
    drop(conn);
    thread::sleep(Duration::from_millis(1100));
    let mut conn = engine.connect().unwrap();
    assert_ne!(server_id(&mut conn), first, "an old connection is recycled");
    assert_eq!(wait_for_server_connections(&db, 1), 1);
}

fn reuse_order(db: &TestDb, options: &str) -> (Vec<u64>, u64) {
    let engine = engine(db, options);
    let mut conns: Vec<PooledConnection> = (0..3).map(|_| engine.connect().unwrap()).collect();
    let ids: Vec<u64> = conns.iter_mut().map(server_id).collect();
    for conn in conns {
        drop(conn); // returned in order ids[0], ids[1], ids[2]
    }
    let mut next = engine.connect().unwrap();
    (ids, server_id(&mut next))
}

#[test]
fn fifo_by_default_and_lifo_on_request() {
    let db = TestDb::new("pool_order");
    let (ids, next) = reuse_order(&db, "pool_size=3");
    assert_eq!(next, ids[0], "FIFO reuses the least recently returned");
    let (ids, next) = reuse_order(&db, "pool_size=3&pool_use_lifo=true");
    assert_eq!(next, ids[2], "LIFO reuses the most recently returned");
}

#[test]
fn null_pool_leaves_nothing_open() {
    let db = TestDb::new("pool_null");
    let engine = engine(&db, "poolclass=null");
    let mut a = engine.connect().unwrap();
    let mut b = engine.connect().unwrap();
    let (ia, ib) = (server_id(&mut a), server_id(&mut b));
    assert_ne!(ia, ib);
    assert_eq!(db.server_connections(), 2);
    drop((a, b));
    assert_eq!(engine.status().idle, 0);
    assert_eq!(wait_for_server_connections(&db, 0), 0);
    let mut c = engine.connect().unwrap();
    assert!(![ia, ib].contains(&server_id(&mut c)));
}

#[test]
fn static_pool_shares_one_connection() {
    let db = TestDb::new("pool_static");
    let engine = engine(&db, "poolclass=static");
    let mut a = engine.connect().unwrap();
    let id = server_id(&mut a);
    let other = engine.clone();
    let waiter = thread::spawn(move || {
        let mut b = other.connect().unwrap();
        server_id(&mut b)
    });
    thread::sleep(Duration::from_millis(100));
    drop(a);
    assert_eq!(
        waiter.join().unwrap(),
        id,
        "the second checkout waited for the same connection"
    );
    assert!(engine.stats().checkout_waits >= 1);
    assert_eq!(db.server_connections(), 1);
    let mut c = engine.connect().unwrap();
    c.invalidate();
    assert_ne!(server_id(&mut c), id, "recreated after invalidation");
}

#[test]
fn many_threads_never_exceed_the_limit() {
    let db = TestDb::new("pool_threads");
    let engine = engine(&db, "pool_size=4&max_overflow=4");
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let done = Arc::clone(&done);
        let db_name = db.name.clone();
        thread::spawn(move || {
            let mut max = 0;
            let probe = TestDb::existing(db_name);
            while !done.load(Ordering::SeqCst) {
                max = max.max(probe.server_connections());
                thread::sleep(Duration::from_millis(10));
            }
            std::mem::forget(probe); // do not drop the database from here
            max
        })
    };
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let engine = engine.clone();
            thread::spawn(move || {
                for i in 0..200 {
                    let mut conn = engine.connect().expect("checkout");
                    if i % 10 == 0 {
                        conn.query_rows("SELECT 1", &[]).expect("query");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker finished");
    }
    done.store(true, Ordering::SeqCst);
    let max = monitor.join().unwrap();
    assert!(max <= 8, "saw {max} server connections");
    let status = engine.status();
    assert_eq!(status.checked_out, 0);
    assert!(status.idle <= 4);
    assert_eq!(engine.stats().checkouts, 32 * 200);
}

#[test]
fn no_reset_round_trip_after_commit() {
    let db = TestDb::new("pool_reset");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let engine = engine(&db, "pool_size=1");
    let capture = engine.capture_statements();

    let mut conn = engine.connect().unwrap();
    conn.begin().unwrap();
    assert!(conn.in_transaction());
    conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(1)])
        .unwrap();
    conn.commit().unwrap();
    assert!(!conn.in_transaction());
    drop(conn);
    // No BEGIN either: the connection runs with autocommit off, so the
    // transaction's first statement opened it.
    assert_eq!(capture.take(), ["INSERT INTO t VALUES (?)", "COMMIT"]);

    // A begun transaction that sent nothing ends with no round trip.
    let mut conn = engine.connect().unwrap();
    conn.begin().unwrap();
    conn.commit().unwrap();
    conn.begin().unwrap();
    conn.rollback().unwrap();
    drop(conn);
    assert!(capture.take().is_empty());

    // A read-only checkout opened a transaction (autocommit off): one
    // ROLLBACK on return releases its snapshot.
    let mut conn = engine.connect().unwrap();
    conn.query_rows("SELECT id FROM t", &[]).unwrap();
    drop(conn);
    assert_eq!(capture.take(), ["SELECT id FROM t", "ROLLBACK"]);

    // Arbitrary SQL outside a known transaction: the state is unknown, so reset.
    let mut conn = engine.connect().unwrap();
    conn.execute_text("START TRANSACTION").unwrap();
    conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(2)])
        .unwrap();
    drop(conn);
    assert_eq!(
        capture.take(),
        ["START TRANSACTION", "INSERT INTO t VALUES (?)", "ROLLBACK"]
    );
    assert_eq!(
        db.rows("SELECT COUNT(*) FROM t"),
        [["1"]],
        "the reset rolled back"
    );

    // An open transaction is rolled back on return.
    let before = engine.stats().statements;
    let mut conn = engine.connect().unwrap();
    conn.begin().unwrap();
    conn.savepoint("sp1").unwrap();
    conn.rollback_to_savepoint("sp1").unwrap();
    conn.release_savepoint("sp1").unwrap();
    drop(conn);
    assert_eq!(
        capture.take(),
        [
            "SAVEPOINT `sp1`",
            "ROLLBACK TO SAVEPOINT `sp1`",
            "RELEASE SAVEPOINT `sp1`",
            "ROLLBACK"
        ]
    );
    assert_eq!(engine.stats().statements - before, 4);

    // Captures are independent; a dropped one costs nothing.
    let second = engine.capture_statements();
    drop(capture);
    engine.connect().unwrap().execute_text("DO 1").unwrap();
    assert_eq!(second.take(), ["DO 1", "ROLLBACK"]);
}

#[test]
fn plain_connections_commit_as_you_go() {
    let db = TestDb::new("pool_commit_as_you_go");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let engine = engine(&db, "pool_size=1");
    // A write without commit() is rolled back when the connection returns.
    let mut conn = engine.connect().unwrap();
    conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(1)])
        .unwrap();
    drop(conn);
    assert_eq!(db.rows("SELECT COUNT(*) FROM t"), [["0"]]);
    // commit() keeps it.
    let mut conn = engine.connect().unwrap();
    conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(2)])
        .unwrap();
    conn.commit().unwrap();
    drop(conn);
    assert_eq!(db.rows("SELECT id FROM t"), [["2"]]);
}

#[test]
fn autocommit_reads_send_begin_before_the_first_write_only() {
    let db = TestDb::new("pool_autocommit_reads");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let engine = engine(&db, "pool_size=1&autocommit_reads=on");
    let capture = engine.capture_statements();
    // Reads outside a transaction need no reset.
    let mut conn = engine.connect().unwrap();
    conn.query_rows("SELECT id FROM t", &[]).unwrap();
    drop(conn);
    assert_eq!(capture.take(), ["SELECT id FROM t"]);
    // Inside one, reads run on their own until the first write.
    let mut conn = engine.connect().unwrap();
    conn.begin().unwrap();
    conn.query_rows("SELECT id FROM t", &[]).unwrap();
    conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(1)])
        .unwrap();
    conn.commit().unwrap();
    drop(conn);
    assert_eq!(
        capture.take(),
        [
            "SELECT id FROM t",
            "BEGIN",
            "INSERT INTO t VALUES (?)",
            "COMMIT"
        ]
    );
    assert_eq!(db.rows("SELECT id FROM t"), [["1"]]);
    // A transaction that only read ends with nothing sent.
    let mut conn = engine.connect().unwrap();
    conn.begin().unwrap();
    conn.query_rows("SELECT id FROM t", &[]).unwrap();
    conn.rollback().unwrap();
    drop(conn);
    assert_eq!(capture.take(), ["SELECT id FROM t"]);
    // A write outside begin() autocommits, as the option says.
    let mut conn = engine.connect().unwrap();
    conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(2)])
        .unwrap();
    drop(conn);
    assert_eq!(db.rows("SELECT COUNT(*) FROM t"), [["2"]]);
}

#[test]
fn a_pool_timeout_of_duration_max_waits_until_a_connection_is_returned() {
    let db = TestDb::new("pool_forever");
    let engine = orm_mysql::builder(&db.url_with("pool_size=1&max_overflow=0"))
        .unwrap()
        .pool_timeout(Duration::MAX)
        .build()
        .unwrap();
    let held = engine.connect().unwrap();
    let id = held.connection_id();
    let waiter = {
        let engine = engine.clone();
        thread::spawn(move || engine.connect().map(|c| c.connection_id()))
    };
    // Return the connection only once the other thread is waiting for it.
    while engine.stats().checkout_waits == 0 {
        assert!(!waiter.is_finished(), "the waiter ended without waiting");
        thread::sleep(Duration::from_millis(5));
    }
    drop(held);
    let got = waiter
        .join()
        .expect("the waiting checkout must not panic")
        .expect("the waiting checkout gets the returned connection");
    assert_eq!(got, id);
}

/// This connection's `Com_stmt_prepare` and `Com_stmt_close` counters.
fn statement_counters(conn: &mut PooledConnection) -> (u64, u64) {
    let rows = conn
        .query_rows(
            "SHOW SESSION STATUS WHERE Variable_name IN ('Com_stmt_prepare', 'Com_stmt_close')",
            &[],
        )
        .expect("SHOW SESSION STATUS");
    let (mut prepared, mut closed) = (None, None);
    for row in rows {
        let text = |v: Option<&Value>| match v {
            Some(Value::Text(s)) => s.clone(),
            Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("unexpected status value {other:?}"),
        };
        let count: u64 = text(row.get(1)).parse().expect("a count");
        match text(row.get(0)).to_ascii_lowercase().as_str() {
            "com_stmt_prepare" => prepared = Some(count),
            "com_stmt_close" => closed = Some(count),
            other => panic!("unexpected status {other}"),
        }
    }
    (
        prepared.expect("Com_stmt_prepare"),
        closed.expect("Com_stmt_close"),
    )
}

fn int(rows: &[orm_core::row::Row]) -> i64 {
    match rows[0].get(0) {
        Some(Value::Int(i)) => *i,
        Some(Value::UInt(u)) => *u as i64,
        other => panic!("unexpected {other:?}"),
    }
}

/// A connection prepares a statement once and reuses it, keeps at most 128
/// open on the server (closing the least recently used one to prepare
/// another), and prepares an evicted statement again when it comes back.
#[test]
fn a_connection_prepares_each_statement_once_and_keeps_at_most_128_open() {
    let db = TestDb::new("stmt_cache");
    let engine = engine(&db, "pool_size=1");
    let mut conn = engine.connect().expect("connect");
    // The first reading prepares the status statement itself.
    let (p0, c0) = statement_counters(&mut conn);
    for k in 1..=3 {
        let rows = conn
            .query_rows("SELECT ? - 1", &[Value::Int(k)])
            .expect("SELECT");
        assert_eq!(int(&rows), k - 1);
    }
    conn.execute("DO ?", &[Value::Int(1)]).expect("DO");
    conn.execute("DO ?", &[Value::Int(2)]).expect("DO");
    let (p1, c1) = statement_counters(&mut conn);
    assert_eq!(
        (p1 - p0, c1 - c0),
        (2, 0),
        "each statement prepared once, whatever its parameters"
    );
    // 130 more distinct statements: with the status statement, `SELECT ? - 1`
    // and `DO ?` that is 133 for 128 places.
    for k in 0..130 {
        let rows = conn
            .query_rows(&format!("SELECT ? + {k}"), &[Value::Int(1)])
            .expect("SELECT");
        assert_eq!(int(&rows), k + 1);
    }
    let (p2, c2) = statement_counters(&mut conn);
    // The status statement was evicted (least recently used) and is
    // prepared again by this reading, evicting one more.
    assert_eq!(
        (p2 - p1, c2 - c1),
        (131, 6),
        "the 5 least recently used statements closed, the status one prepared again"
    );
    // `SELECT ? - 1` was evicted: it works again, prepared anew.
    let rows = conn
        .query_rows("SELECT ? - 1", &[Value::Int(43)])
        .expect("SELECT after eviction");
    assert_eq!(int(&rows), 42);
    let (p3, c3) = statement_counters(&mut conn);
    assert_eq!((p3 - p2, c3 - c2), (1, 1));
}
