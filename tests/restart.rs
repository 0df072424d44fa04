//! Server restarts against a PRIVATE MariaDB that each test starts, stops and
//! restarts itself (its own data directory under the cargo target dir, its
//! own loopback port and socket), so the shared server at DATABASE_URL is
//! never touched.
//!
//! The pool's promise under test, as SQLAlchemy's: a detected lost
//! connection invalidates that connection and every pooled connection opened
//! before it, so one server restart costs at most one error, and none with
//! pre-ping; a transaction cut by the restart must be rolled back, then the
//! session works again; a server that is down fails checkouts promptly and
//! the pool recovers by itself once it is back.
//!
//! These tests need MariaDB's server binaries (`mariadbd`, `mariadb-install-db`);
//! without them they FAIL saying so, never skip.

mod common;

use std::time::{Duration, Instant};

use common::private_server::PrivateServer;
use mysql::prelude::Queryable;
use orm::session::SessionFactory;
use orm::{DbErrorKind, Engine, Error, Value};

/// Checks out three connections at once, so three distinct ones exist, runs
/// a statement on each and returns them all to the pool.
fn fill_pool(engine: &Engine) {
    let mut conns: Vec<_> = (0..3)
        .map(|_| engine.connect().expect("checkout"))
        .collect();
    for conn in &mut conns {
        conn.query_rows("SELECT 1", &[]).expect("SELECT 1");
    }
    let mut ids: Vec<u64> = conns.iter().map(|c| c.connection_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct server connections");
    drop(conns);
    assert_eq!(engine.status().idle, 3);
    assert_eq!(engine.stats().connections_opened, 3);
}

/// Six checkouts in a row, each running `work`; the errors, by index.
fn six_checkouts(
    engine: &Engine,
    work: impl Fn(&mut orm_core::engine::PooledConnection) -> orm_core::Result<()>,
) -> Vec<(usize, Error)> {
    let mut failures = Vec::new();
    for i in 0..6 {
        let result = engine.connect().and_then(|mut conn| work(&mut conn));
        if let Err(e) = result {
            failures.push((i, e));
        }
    }
    failures
}

fn select_one(conn: &mut orm_core::engine::PooledConnection) -> orm_core::Result<()> {
    assert_eq!(conn.query_rows("SELECT 1", &[])?.len(), 1);
    Ok(())
}

#[test]
fn a_restart_costs_one_error_without_pre_ping_for_writes_and_none_for_reads() {
    let mut server = PrivateServer::start("noping");
    let engine = server.engine("pool_size=3");
    fill_pool(&engine);

    server.restart();

    // An autocommit statement that may write is never sent twice: the first
    // use of a stale connection fails, once.
    let failures = six_checkouts(&engine, |conn| conn.execute_text("DO 1").map(|_| ()));
    assert_eq!(
        failures.len(),
        1,
        "exactly one checkout sees the restart: {failures:?}"
    );
    let (index, err) = &failures[0];
    assert_eq!(
        *index, 0,
        "the first use of a stale connection fails: {err:?}"
    );
    assert!(err.is_connection_lost(), "{err:?}");
    assert_eq!(err.db_kind(), Some(DbErrorKind::ConnectionLost), "{err:?}");

    let stats = engine.stats();
    assert_eq!(
        stats.connections_invalidated, 3,
        "the failed connection and the two older idle ones: {stats:?}"
    );
    assert_eq!(
        stats.connections_opened, 5,
        "two replacements, then reuse: {stats:?}"
    );
    assert_eq!(stats.statement_retries, 0);
    assert_eq!(engine.status().checked_out, 0);

    // A read outside a transaction is sent again on a fresh connection.
    let engine = server.engine("pool_size=3");
    fill_pool(&engine);
    server.restart();
    let failures = six_checkouts(&engine, select_one);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(engine.stats().statement_retries, 1);
}

#[test]
fn a_restart_costs_nothing_with_pre_ping() {
    let mut server = PrivateServer::start("preping");
    let engine = server.engine("pool_size=3&pool_pre_ping=true&pool_pre_ping_idle=0");
    fill_pool(&engine);
    let pings_before = engine.stats().pings;

    server.restart();

    let failures = six_checkouts(&engine, select_one);
    assert!(
        failures.is_empty(),
        "pre-ping hides the restart: {failures:?}"
    );
    let stats = engine.stats();
    // One failed ping finds the restart; the two older idle connections are
    // replaced without a ping each; the three checkouts after that ping the
    // new connections, which answer.
    assert_eq!(
        stats.pings - pings_before,
        4,
        "one failed ping, not one per stale connection: {stats:?}"
    );
    assert_eq!(
        stats.connections_invalidated, 3,
        "the one whose ping failed and the two older idle ones: {stats:?}"
    );
    assert_eq!(engine.status().checked_out, 0);
}

#[test]
fn a_transaction_cut_by_a_restart_must_be_rolled_back_then_the_session_works() {
    let mut server = PrivateServer::start("session");
    server
        .admin()
        .query_drop("CREATE TABLE test.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        .expect("create table");
    let engine = server.engine("pool_size=2");
    let sessions = SessionFactory::new(engine.clone());
    let s = sessions.session();
    s.execute("INSERT INTO t VALUES (?)", &[Value::Int(1)])
        .expect("insert inside the transaction");
    assert!(s.in_transaction());
    assert_eq!(engine.status().checked_out, 1);

    server.restart();

    let err = s
        .execute("INSERT INTO t VALUES (?)", &[Value::Int(2)])
        .unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(
        matches!(err, Error::ConnectionLostInTransaction(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("rollback()"),
        "the message says to roll back: {err}"
    );
    let err = s.query_rows("SELECT 1", &[]).unwrap_err();
    assert!(
        matches!(err, Error::PendingRollback(_)),
        "nothing runs until rollback(): {err:?}"
    );

    s.rollback().expect("rollback after the lost transaction");
    s.execute("INSERT INTO t VALUES (?)", &[Value::Int(3)])
        .expect("a new transaction on a new connection");
    s.commit().expect("commit");
    assert_eq!(
        server.ids(),
        [3],
        "the cut transaction's row is gone, the new one is committed"
    );
    drop(s);
    assert_eq!(engine.status().checked_out, 0, "nothing stranded");
}

#[test]
fn a_stopped_server_fails_checkouts_promptly_and_the_pool_recovers() {
    let mut server = PrivateServer::start("down");
    // Never connected before the stop / warm with a pinged idle connection.
    let cold = server.engine("pool_size=1&max_overflow=0&pool_timeout=1&connect_timeout=2");
    let warm = server.engine(
        "pool_size=1&max_overflow=0&pool_timeout=1&connect_timeout=2\
         &pool_pre_ping=true&pool_pre_ping_idle=0",
    );
    warm.connect()
        .and_then(|mut c| c.query_rows("SELECT 1", &[]))
        .expect("warm up");

    server.stop();

    for (name, engine) in [("cold", &cold), ("warm", &warm)] {
        // Three attempts through a single slot: a failed connect must give
        // its slot back, or the later ones would be pool timeouts.
        for attempt in 0..3 {
            let started = Instant::now();
            let err = engine
                .connect()
                .err()
                .unwrap_or_else(|| panic!("{name}: checkout succeeded with the server down"));
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(3),
                "{name} #{attempt}: failing took {took:?}, past connect_timeout"
            );
            assert_eq!(
                err.db_kind(),
                Some(DbErrorKind::Connect),
                "{name} #{attempt}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains("cannot connect") && message.contains(&server.port.to_string()),
                "{name} #{attempt}: the message says where it could not connect: {message}"
            );
            assert_eq!(engine.status().checked_out, 0, "{name} #{attempt}");
        }
    }
    assert_eq!(
        warm.stats().connections_invalidated,
        1,
        "the idle connection whose ping failed"
    );

    server.boot();

    for (name, engine) in [("cold", &cold), ("warm", &warm)] {
        for attempt in 0..3 {
            engine
                .connect()
                .and_then(|mut c| c.query_rows("SELECT 1", &[]))
                .unwrap_or_else(|e| panic!("{name} #{attempt} after the restart: {e:?}"));
        }
        assert_eq!(engine.status().checked_out, 0);
    }
}
