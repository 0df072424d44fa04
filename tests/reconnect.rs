//! Lost connections against a real MariaDB: KILL, server-side idle
//! timeouts, pre-ping, pool-wide invalidation, and the transaction rules.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::proxy::Proxy;
use common::TestDb;
use orm_core::engine::{Engine, PooledConnection};
use orm_core::value::Value;
use orm_core::{DbErrorKind, Error};

fn engine(db: &TestDb, options: &str) -> Engine {
    orm_mysql::create_engine(&db.url_with(options)).expect("create engine")
}

fn server_id(conn: &mut PooledConnection) -> orm_core::Result<u64> {
    let rows = conn.query_rows("SELECT CONNECTION_ID()", &[])?;
    Ok(match rows[0].get(0) {
        Some(Value::UInt(u)) => *u,
        Some(Value::Int(i)) => *i as u64,
        other => panic!("unexpected {other:?}"),
    })
}

/// Checks out, learns the server id, returns the connection idle, kills it.
fn kill_idle(db: &TestDb, engine: &Engine) -> u64 {
    let mut conn = engine.connect().unwrap();
    let id = server_id(&mut conn).unwrap();
    drop(conn);
    db.kill(id);
    id
}

#[test]
fn killed_idle_connection_with_pre_ping_is_replaced_silently() {
    let db = TestDb::new("rc_preping");
    let engine = engine(&db, "pool_size=1&pool_pre_ping=true&pool_pre_ping_idle=0");
    let old = kill_idle(&db, &engine);
    let mut conn = engine
        .connect()
        .expect("pre-ping replaces the dead connection");
    let new = server_id(&mut conn).expect("no error reaches the caller");
    assert_ne!(new, old);
    let stats = engine.stats();
    assert!(
        stats.pings >= 1 && stats.connections_invalidated >= 1,
        "{stats:?}"
    );
}

#[test]
fn killed_idle_connection_without_pre_ping_retries_a_read_once() {
    let db = TestDb::new("rc_noping");
    let engine = engine(&db, "pool_size=1");
    let old = kill_idle(&db, &engine);
    let mut conn = engine.connect().unwrap();
    // Outside a transaction a read cannot have left anything behind: it is
    // sent again, once, on a fresh connection.
    assert_ne!(server_id(&mut conn).unwrap(), old);
    assert_eq!(engine.stats().statement_retries, 1);
    drop(conn);
    let mut conn = engine.connect().unwrap();
    server_id(&mut conn).unwrap();
}

#[test]
fn killed_idle_connection_without_pre_ping_fails_an_autocommit_write_once() {
    let db = TestDb::new("rc_noping_w");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let engine = engine(&db, "pool_size=1");
    let old = kill_idle(&db, &engine);
    let mut conn = engine.connect().unwrap();
    let err = conn
        .execute("INSERT INTO t VALUES (?)", &[Value::Int(1)])
        .unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::ConnectionLost), "{err:?}");
    assert_eq!(
        engine.stats().statement_retries,
        0,
        "a write is never resent"
    );
    // The same guard reconnects on its next call.
    assert_ne!(server_id(&mut conn).unwrap(), old);
    conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(1)])
        .unwrap();
    // Autocommit is off: a plain connection commits as it goes.
    conn.commit().unwrap();
    drop(conn);
    assert_eq!(db.rows("SELECT COUNT(*) FROM t"), [["1"]]);
}

/// Kills every idle pooled connection of `engine` (the pool holds `n`).
fn kill_all_idle(db: &TestDb, engine: &Engine, n: usize) {
    let mut conns: Vec<PooledConnection> = (0..n).map(|_| engine.connect().unwrap()).collect();
    let ids: Vec<u64> = conns.iter_mut().map(|c| server_id(c).unwrap()).collect();
    drop(conns);
    for id in ids {
        db.kill(id);
    }
}

#[test]
fn sessions_and_plain_reads_survive_killed_idle_connections_without_pre_ping() {
    let db = TestDb::new("rc_killall");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL)");
    db.exec("INSERT INTO t VALUES (0, 0)");
    let engine = engine(&db, "pool_size=5");
    // (a) ten sessions, each a read and a write.
    kill_all_idle(&db, &engine, 5);
    let factory = orm_core::session::SessionFactory::new(engine.clone());
    for i in 1..=10 {
        let s = factory.session();
        let rows = s.query_rows("SELECT n FROM t WHERE id = 0", &[]).unwrap();
        assert_eq!(rows.len(), 1);
        s.execute(
            "INSERT INTO t VALUES (?, ?)",
            &[Value::Int(i), Value::Int(i)],
        )
        .unwrap();
        s.commit().unwrap();
    }
    assert_eq!(db.rows("SELECT COUNT(*), SUM(n) FROM t"), [["11", "55"]]);
    // (b) ten plain checkouts, each a SELECT.
    kill_all_idle(&db, &engine, 5);
    for _ in 0..10 {
        let mut conn = engine.connect().unwrap();
        assert_eq!(
            conn.query_rows("SELECT COUNT(*) FROM t", &[])
                .unwrap()
                .len(),
            1
        );
    }
    assert!(
        engine.stats().statement_retries >= 2,
        "{:?}",
        engine.stats()
    );
}

#[test]
fn the_first_statement_of_a_transaction_on_a_dead_connection_is_retried_once() {
    let db = TestDb::new("rc_begin");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    // Autocommit off (the default): begin() sends nothing, the INSERT opens
    // the transaction; with autocommit_reads=on, BEGIN goes out before it.
    for (k, options) in ["pool_size=1", "pool_size=1&autocommit_reads=on"]
        .into_iter()
        .enumerate()
    {
        let engine = engine(&db, options);
        let capture = engine.capture_statements();
        kill_idle(&db, &engine);
        capture.take();
        let mut conn = engine.connect().unwrap();
        conn.begin().expect("begin() sends nothing that could fail");
        conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(k as i64)])
            .expect("the transaction's first statement is resent on a fresh connection");
        assert_eq!(engine.stats().statement_retries, 1, "{options}");
        // A statement after the first is never resent.
        let id = server_id(&mut conn).unwrap();
        conn.commit().unwrap();
        drop(conn);
        assert_eq!(
            db.rows(&format!("SELECT COUNT(*) FROM t WHERE id = {k}")),
            [["1"]],
            "{options}"
        );
        let sent = capture.take();
        let count = |verb: &str| sent.iter().filter(|s| s.starts_with(verb)).count();
        if k == 0 {
            assert_eq!(count("INSERT"), 2, "{options}: sent, resent: {sent:?}");
            assert_eq!(count("BEGIN"), 0, "{options}: {sent:?}");
        } else {
            // BEGIN met the dead connection: it is resent, then the INSERT.
            assert_eq!(count("BEGIN"), 2, "{options}: {sent:?}");
            assert_eq!(count("INSERT"), 1, "{options}: {sent:?}");
        }
        db.kill(id);
        let mut conn = engine.connect().unwrap();
        conn.begin().unwrap();
        conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(10 + k as i64)])
            .expect("retried");
        conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(20 + k as i64)])
            .unwrap();
        assert_eq!(engine.stats().statement_retries, 2, "{options}");
        conn.rollback().unwrap();
    }
}

#[test]
fn connection_lost_inside_a_transaction_requires_rollback() {
    let db = TestDb::new("rc_txn");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let engine = engine(&db, "pool_size=2");
    let mut conn = engine.connect().unwrap();
    conn.begin().unwrap();
    conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(1)])
        .unwrap();
    let id = server_id(&mut conn).unwrap();
    db.kill(id);

    let err = conn
        .execute("INSERT INTO t VALUES (?)", &[Value::Int(2)])
        .unwrap_err();
    assert!(
        matches!(err, Error::ConnectionLostInTransaction(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("rollback()"), "{err}");
    assert!(conn.in_transaction() && conn.needs_rollback());
    for result in [
        conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(3)])
            .map(|_| ()),
        conn.commit(),
        conn.begin(),
        conn.query_rows("SELECT 1", &[]).map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(Error::InvalidTransaction)),
            "{result:?}"
        );
    }
    conn.rollback().expect("rollback succeeds quietly");
    assert!(!conn.in_transaction());
    let new = server_id(&mut conn).expect("the next call reconnects");
    assert_ne!(new, id);
    conn.begin().unwrap();
    conn.execute("INSERT INTO t VALUES (?)", &[Value::Int(4)])
        .unwrap();
    conn.commit().unwrap();
    drop(conn);
    assert_eq!(
        db.rows("SELECT id FROM t ORDER BY id"),
        [["4"]],
        "the lost transaction's row is gone"
    );
}

#[test]
fn explicit_invalidate_inside_a_transaction() {
    let db = TestDb::new("rc_invalidate");
    let invalidated = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&invalidated);
    let engine = orm_mysql::builder(&db.url_with("pool_size=1"))
        .unwrap()
        .on_invalidate(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let mut conn = engine.connect().unwrap();
    let id = server_id(&mut conn).unwrap();
    conn.begin().unwrap();
    conn.invalidate();
    assert!(matches!(
        conn.execute_text("DO 1"),
        Err(Error::InvalidTransaction)
    ));
    conn.rollback().unwrap();
    assert_ne!(server_id(&mut conn).unwrap(), id);
    assert_eq!(invalidated.load(Ordering::SeqCst), 1);
    assert_eq!(engine.stats().connections_invalidated, 1);
}

fn short_wait_timeout(db: &TestDb, options: &str) -> Engine {
    orm_mysql::builder(&db.url_with(options))
        .unwrap()
        .on_connect(|c| c.execute_text("SET SESSION wait_timeout = 1").map(|_| ()))
        .build()
        .unwrap()
}

#[test]
fn server_idle_timeout_is_survived_with_recycle_or_pre_ping() {
    let db = TestDb::new("rc_waittimeout");
    let plain = short_wait_timeout(&db, "pool_size=1");
    let recycle = short_wait_timeout(&db, "pool_size=1&pool_recycle=1");
    let pre_ping = short_wait_timeout(&db, "pool_size=1&pool_pre_ping=true");
    for engine in [&plain, &recycle, &pre_ping] {
        let mut conn = engine.connect().unwrap();
        server_id(&mut conn).unwrap();
    }
    thread::sleep(Duration::from_millis(2100));
    let mut conn = plain.connect().unwrap();
    // (A read would be resent transparently; a statement that may write is not.)
    let err = conn.execute_text("DO 1").unwrap_err();
    assert!(
        err.is_connection_lost(),
        "without recycle or pre-ping the caller sees it: {err:?}"
    );
    for engine in [&recycle, &pre_ping] {
        let mut conn = engine.connect().unwrap();
        server_id(&mut conn).expect("recycle / pre-ping avoid the error");
    }
}

#[test]
fn a_detected_disconnect_invalidates_the_older_connections() {
    let db = TestDb::new("rc_poolwide");
    let engine = engine(&db, "pool_size=3");
    let mut conns: Vec<PooledConnection> = (0..3).map(|_| engine.connect().unwrap()).collect();
    let old: Vec<u64> = conns.iter_mut().map(|c| server_id(c).unwrap()).collect();
    drop(conns);
    // FIFO: the first returned is the next checked out. Kill it.
    db.kill(old[0]);
    let mut conn = engine.connect().unwrap();
    assert!(conn.execute_text("DO 1").unwrap_err().is_connection_lost());
    drop(conn);
    // The other two were opened before the disconnect: replaced at checkout.
    let mut conns: Vec<PooledConnection> = (0..3).map(|_| engine.connect().unwrap()).collect();
    let new: Vec<u64> = conns
        .iter_mut()
        .map(|c| server_id(c).expect("no second error"))
        .collect();
    assert!(
        new.iter().all(|id| !old.contains(id)),
        "old {old:?} new {new:?}"
    );
    assert!(engine.stats().connections_invalidated >= 3);
}

/// An engine on `db` whose connections go through a proxy of the test's own.
fn proxied_engine(db: &TestDb, options: &str) -> (Proxy, Engine) {
    let (proxy, url) = Proxy::in_front_of(&db.url);
    let engine = orm_mysql::create_engine(&format!("{url}?{options}")).unwrap();
    (proxy, engine)
}

#[test]
fn a_commit_cut_in_flight_has_an_unknown_outcome() {
    let db = TestDb::new("rc_commit_cut");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let (proxy, engine) = proxied_engine(&db, "pool_size=1&read_timeout=0.5&connect_timeout=1");
    let factory = orm_core::session::SessionFactory::new(engine.clone());
    let s = factory.session();
    s.execute("INSERT INTO t VALUES (?)", &[Value::Int(1)])
        .unwrap();
    proxy.stall(true);
    let err = s.commit().unwrap_err();
    assert!(matches!(err, Error::CommitOutcomeUnknown(_)), "{err:?}");
    assert!(err.to_string().contains("may or may not"), "{err}");
    assert!(err.is_connection_lost());
    assert!(!err.is_retryable(), "never retried as if rolled back");
    proxy.stall(false);
    s.rollback().unwrap();
    // Here the COMMIT never reached the server: the row is not there.
    assert_eq!(db.rows("SELECT COUNT(*) FROM t"), [["0"]]);
    s.execute("INSERT INTO t VALUES (?)", &[Value::Int(2)])
        .unwrap();
    s.commit().expect("the session reconnects");
    assert_eq!(db.rows("SELECT id FROM t"), [["2"]]);
}

/// There is no read timeout for statements by default; the pre-ping's own
/// short `ping_timeout` finds the half-open socket, and the reconnect's
/// handshake is bounded by `connect_timeout`.
#[test]
fn a_half_open_connection_cannot_hang_a_ping() {
    let db = TestDb::new("rc_halfopen");
    let (proxy, url) = Proxy::in_front_of(&db.url);
    let engine = orm_mysql::create_engine(&format!(
        "{url}?pool_size=1&pool_pre_ping=true&pool_pre_ping_idle=0&ping_timeout=0.5&connect_timeout=1"
    ))
    .unwrap();
    let mut conn = engine.connect().unwrap();
    server_id(&mut conn).unwrap();
    drop(conn);

    proxy.stall(true);
    let started = std::time::Instant::now();
    let err = engine.connect().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err.db_kind(),
            Some(DbErrorKind::Connect | DbErrorKind::ConnectionLost)
        ),
        "{err:?}"
    );
    assert!(engine.stats().connections_invalidated >= 1);

    proxy.stall(false);
    let mut conn = engine.connect().expect("recovers once traffic flows again");
    server_id(&mut conn).unwrap();
}

#[test]
fn engine_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Engine>();
    fn assert_send<T: Send>() {}
    assert_send::<PooledConnection>();
}
