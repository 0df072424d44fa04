//! Read replicas with read-your-writes against a real MariaDB GTID primary
//! and replica pair of private servers (tests/common/replication.rs): reads
//! routed to the replica and writes to the primary, read-your-writes after a
//! commit (`MASTER_GTID_WAIT`, and the fallback to the primary when the
//! replica does not catch up in time), a lagging replica skipped, a stopped
//! replica skipped with no error reaching the caller and used again once it
//! is back.
//!
//! Which server answered a read is read through the session's own read
//! path (`SELECT @@server_id`: 1 is the primary, 2 the replica) and from
//! each engine's statement capture.
//!
//! These tests need MariaDB's server binaries (`mariadbd`,
//! `mariadb-install-db`); without them they FAIL saying so, never skip.

mod common;

use std::time::{Duration, Instant};

use common::replication::Replication;
use orm::prelude::*;
use orm::replicas::{ReplicaOptions, ReplicaSet};
use orm::session::SessionFactory;

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "items")]
struct Item {
    #[orm(primary_key)]
    id: i64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "notes")]
struct Note {
    #[orm(primary_key)]
    id: i64,
    item_id: i64,
}

const PRIMARY: i64 = 1;
const REPLICA: i64 = 2;

/// Short bounds, so that the tests run in seconds.
fn options() -> ReplicaOptions {
    ReplicaOptions {
        max_lag: Duration::from_millis(300),
        wait_timeout: Duration::from_millis(200),
        retry_down_after: Duration::from_millis(500),
        lag_check_interval: Duration::from_millis(100),
    }
}

/// [`options`] where the lag is checked only at the first read: a lag
/// check also learns the replica's position, after which a read need not
/// wait; the read-your-writes tests want every wait to happen.
fn options_checking_lag_once() -> ReplicaOptions {
    ReplicaOptions {
        lag_check_interval: Duration::from_secs(3600),
        ..options()
    }
}

/// A started pair with `test.items` (rows 1 and 2) on both servers, and a
/// factory on the primary with the replica as its read replica.
fn setup(tag: &str, options: ReplicaOptions) -> (Replication, Engine, Engine, SessionFactory) {
    let pair = Replication::start(tag);
    pair.primary_exec(
        "CREATE TABLE test.items (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL) ENGINE=InnoDB",
    );
    pair.primary_exec("INSERT INTO test.items VALUES (1, 'one'), (2, 'two')");
    pair.sync();
    let primary = pair.primary.engine("pool_size=2");
    let replica = pair.replica.engine("pool_size=2");
    let factory = SessionFactory::new(primary.clone())
        .replicas(ReplicaSet::new(vec![replica.clone()], options));
    (pair, primary, replica, factory)
}

/// `@@server_id` read through the session's read path.
fn server_id(s: &Session) -> i64 {
    let rows = s
        .query_rows("SELECT @@server_id", &[])
        .expect("read @@server_id");
    match rows[0].values()[0] {
        Value::Int(v) => v,
        Value::UInt(v) => v as i64,
        ref other => panic!("@@server_id came back as {other:?}"),
    }
}

fn stats(factory: &SessionFactory) -> orm::replicas::ReplicaStats {
    factory.replica_set().expect("replicas configured").stats()
}

fn ids(s: &Session) -> Vec<i64> {
    let mut ids: Vec<i64> = s
        .query::<Item>()
        .all()
        .expect("read items")
        .iter()
        .map(|o| o.read().expect("read object").id)
        .collect();
    ids.sort_unstable();
    ids
}

fn mentions(statements: &[String], needle: &str) -> usize {
    statements.iter().filter(|s| s.contains(needle)).count()
}

#[test]
fn reads_go_to_the_replica_and_writes_and_what_follows_them_to_the_primary() {
    let (pair, primary, replica, factory) = setup("route", options_checking_lag_once());
    let on_primary = primary.capture_statements();
    let on_replica = replica.capture_statements();

    // A session that has not written reads from the replica.
    let s = factory.session();
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(ids(&s), [1, 2]);
    assert!(s.in_transaction(), "a read autobegins, as without replicas");
    let replica_sent = on_replica.take();
    assert_eq!(
        mentions(&replica_sent, "FROM `items`"),
        1,
        "{replica_sent:?}"
    );
    let primary_sent = on_primary.take();
    assert_eq!(
        primary_sent,
        ["SELECT @@gtid_binlog_pos"],
        "only the replica's first lag check asks the primary: {primary_sent:?}"
    );

    // The first write moves the session to the primary: the replica's read
    // snapshot is ended (its connection returned), and the rows the
    // transaction wrote are seen by its reads before the commit.
    s.add(Item {
        id: 3,
        name: "three".into(),
    })
    .unwrap();
    s.flush().unwrap();
    assert_eq!(replica.status().checked_out, 0, "the replica read ended");
    assert_eq!(server_id(&s), PRIMARY);
    assert_eq!(s.query::<Item>().count().unwrap(), 3, "its own insert");
    let primary_sent = on_primary.take();
    assert_eq!(
        mentions(&primary_sent, "INSERT INTO `items`"),
        1,
        "{primary_sent:?}"
    );
    assert_eq!(mentions(&primary_sent, "COUNT(*)"), 1, "{primary_sent:?}");
    assert_eq!(
        pair.replica_ids("items"),
        [1, 2],
        "nothing reached the replica before the commit"
    );
    s.commit().unwrap();
    let primary_sent = on_primary.take();
    assert_eq!(
        primary_sent.iter().map(String::as_str).collect::<Vec<_>>(),
        ["COMMIT", "SELECT @@last_gtid"],
        "the commit's GTID is read right after COMMIT"
    );

    // After the commit the session reads from the replica again, once it
    // has the commit.
    assert_eq!(ids(&s), [1, 2, 3]);
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(mentions(&on_replica.take(), "MASTER_GTID_WAIT"), 1);
    s.close();

    // A query that locks rows goes to the primary, in its transaction.
    let s = factory.session();
    assert_eq!(server_id(&s), REPLICA);
    let locked = s.query::<Item>().with_for_update().all().unwrap();
    assert_eq!(locked.len(), 3);
    assert_eq!(server_id(&s), PRIMARY);
    assert_eq!(mentions(&on_primary.take(), "FOR UPDATE"), 1);
    s.rollback().unwrap();

    // A streamed query reads from the replica too (and, while it streams,
    // no other SQL runs on the session); with a row lock, from the primary.
    let s = factory.session();
    let mut seen = 0;
    s.query::<Item>()
        .for_each(|_| {
            seen += 1;
            assert!(s.query_rows("SELECT 1", &[]).is_err(), "the stream is busy");
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, 3);
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(mentions(&on_replica.take(), "FROM `items`"), 1);
    let locked = s
        .query::<Item>()
        .with_for_update()
        .for_each(|_| Ok(()))
        .unwrap();
    assert_eq!(locked, 3);
    assert_eq!(server_id(&s), PRIMARY);
    assert_eq!(mentions(&on_primary.take(), "FOR UPDATE"), 1);
    s.rollback().unwrap();

    // A bulk delete that fetches the keys it will delete reads them on the
    // primary, as part of the write.
    let s = factory.session();
    assert_eq!(ids(&s), [1, 2, 3]);
    on_replica.take();
    on_primary.take();
    let deleted = s
        .query::<Item>()
        .filter(Item::ID.eq(3))
        .delete(orm::query::Synchronize::Fetch)
        .unwrap();
    assert_eq!(deleted, 1);
    let primary_sent = on_primary.take();
    assert_eq!(
        mentions(&primary_sent, "SELECT `id` FROM `items`"),
        1,
        "{primary_sent:?}"
    );
    assert_eq!(on_replica.take(), ["ROLLBACK"], "the replica read ended");
    s.rollback().unwrap();

    // So does everything after an explicit begin(), a savepoint, and a raw execute.
    let s = factory.session();
    s.begin().unwrap();
    assert_eq!(server_id(&s), PRIMARY);
    s.rollback().unwrap();
    let s = factory.session();
    assert_eq!(server_id(&s), REPLICA);
    let nested = s.begin_nested().unwrap();
    assert_eq!(server_id(&s), PRIMARY);
    nested.rollback().unwrap();
    s.rollback().unwrap();
    let s = factory.session();
    s.execute("UPDATE items SET name = 'uno' WHERE id = 1", &[])
        .unwrap();
    assert_eq!(server_id(&s), PRIMARY);
    s.rollback().unwrap();

    // A session of a factory without replicas is unchanged.
    let plain = SessionFactory::new(primary.clone()).session();
    assert_eq!(server_id(&plain), PRIMARY);

    let st = stats(&factory);
    assert!(st.replica_reads >= 5, "{st:?}");
    assert_eq!(st.gtid_waits, 1, "{st:?}");
    assert_eq!(
        (
            st.fallback_down,
            st.fallback_lagging,
            st.fallback_gtid_timeout
        ),
        (0, 0, 0),
        "{st:?}"
    );
}

#[test]
fn read_your_writes_waits_for_the_commit_and_falls_back_to_the_primary_on_timeout() {
    let (pair, primary, replica, factory) = setup("ryw", options_checking_lag_once());
    // The one lag check, before anything is written.
    assert_eq!(server_id(&factory.session()), REPLICA);
    let on_primary = primary.capture_statements();
    let on_replica = replica.capture_statements();

    // Committed, then read at once by a new session of the same factory:
    // the replica waits for the commit and answers.
    factory
        .begin(|s| {
            s.add(Item {
                id: 10,
                name: "ten".into(),
            })?;
            Ok(())
        })
        .unwrap();
    let written = factory.replica_set().unwrap().written_position();
    assert!(!written.is_empty());
    assert_eq!(written.to_string(), pair.primary_position());
    let s = factory.session();
    let found = s.get::<Item>(10).unwrap().expect("read its own write");
    assert_eq!(found.read().unwrap().name, "ten");
    assert_eq!(server_id(&s), REPLICA);
    s.close();
    let replica_sent = on_replica.take();
    assert_eq!(
        replica_sent[0], "SELECT MASTER_GTID_WAIT(?, ?)",
        "{replica_sent:?}"
    );
    assert!(
        replica_sent[1].contains("FROM `items`"),
        "the wait comes before the read: {replica_sent:?}"
    );
    assert_eq!(stats(&factory).gtid_waits, 1);

    // The replica is known to be past that position: no second wait.
    let s = factory.session();
    assert_eq!(ids(&s), [1, 2, 10]);
    s.close();
    assert_eq!(mentions(&on_replica.take(), "MASTER_GTID_WAIT"), 0);

    // The replica stops applying: the next read of a fresh write waits
    // wait_timeout, then reads from the primary, and finds the row.
    pair.replica_exec("STOP SLAVE SQL_THREAD");
    factory
        .begin(|s| {
            s.add(Item {
                id: 11,
                name: "eleven".into(),
            })?;
            Ok(())
        })
        .unwrap();
    on_primary.take();
    let s = factory.session();
    let started = Instant::now();
    let found = s.get::<Item>(11).unwrap().expect("read its own write");
    let waited = started.elapsed();
    assert_eq!(found.read().unwrap().name, "eleven");
    assert_eq!(server_id(&s), PRIMARY);
    s.close();
    assert!(
        waited >= Duration::from_millis(200),
        "waited wait_timeout first: {waited:?}"
    );
    assert_eq!(
        pair.replica_ids("items"),
        [1, 2, 10],
        "the replica is behind"
    );
    assert_eq!(mentions(&on_replica.take(), "MASTER_GTID_WAIT"), 1);
    assert_eq!(mentions(&on_primary.take(), "FROM `items`"), 1);
    let st = stats(&factory);
    assert_eq!(st.fallback_gtid_timeout, 1, "{st:?}");
    assert_eq!(st.marked_down, 0, "a timeout is not an outage: {st:?}");

    // Applying again: the replica answers again.
    pair.replica_exec("START SLAVE SQL_THREAD");
    let s = factory.session();
    assert_eq!(ids(&s), [1, 2, 10, 11]);
    assert_eq!(server_id(&s), REPLICA);
    s.close();
    assert_eq!(mentions(&on_replica.take(), "MASTER_GTID_WAIT"), 1);

    // With `last_gtid` in the primary's session tracking, the GTID comes
    // with the COMMIT's reply: no SELECT @@last_gtid.
    pair.primary_exec(
        "SET GLOBAL session_track_system_variables = \
         CONCAT(@@global.session_track_system_variables, ',last_gtid')",
    );
    primary.dispose(); // new connections take the new default
    on_primary.take();
    factory
        .begin(|s| {
            s.add(Item {
                id: 12,
                name: "twelve".into(),
            })?;
            Ok(())
        })
        .unwrap();
    let primary_sent = on_primary.take();
    assert_eq!(
        mentions(&primary_sent, "@@last_gtid"),
        0,
        "{primary_sent:?}"
    );
    assert_eq!(
        factory
            .replica_set()
            .unwrap()
            .written_position()
            .to_string(),
        pair.primary_position()
    );
    let s = factory.session();
    assert!(s.get::<Item>(12).unwrap().is_some());
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(mentions(&on_replica.take(), "MASTER_GTID_WAIT"), 1);
}

#[test]
fn a_replica_lagging_past_max_lag_is_skipped_until_it_catches_up() {
    let (pair, _primary, _replica, factory) = setup("lag", options());
    let set = factory.replica_set().unwrap().clone();
    let read_on = |expect: i64| {
        let s = factory.session();
        assert_eq!(server_id(&s), expect);
        assert!(ids(&s).contains(&1), "reads still succeed");
    };
    read_on(REPLICA);

    // Writes the replica does not apply (not through the factory, so no
    // read waits for them): it falls behind.
    pair.replica_exec("STOP SLAVE SQL_THREAD");
    pair.primary_exec("INSERT INTO test.items VALUES (20, 'twenty')");
    std::thread::sleep(Duration::from_millis(150));
    read_on(REPLICA); // first seen behind: not yet past max_lag
    assert!(!set.status()[0].lagging);
    std::thread::sleep(Duration::from_millis(400));
    read_on(PRIMARY);
    let status = &set.status()[0];
    assert!(status.lagging, "{status:?}");
    assert!(status.lag >= Duration::from_millis(300), "{status:?}");
    read_on(PRIMARY); // skipped without another check until the interval passes
    let st = set.stats();
    assert_eq!(st.skipped_lagging, 2, "{st:?}");
    assert_eq!(st.fallback_lagging, 2, "{st:?}");
    assert_eq!(st.marked_down, 0, "{st:?}");

    // Caught up: used again at the next check.
    pair.replica_exec("START SLAVE SQL_THREAD");
    pair.sync();
    std::thread::sleep(Duration::from_millis(150));
    read_on(REPLICA);
    assert!(!set.status()[0].lagging);
    assert_eq!(set.status()[0].lag, Duration::ZERO);
}

#[test]
fn a_stopped_replica_is_skipped_with_no_error_and_used_again_once_back() {
    let (mut pair, _primary, replica, factory) = setup("down", options());
    let set = factory.replica_set().unwrap().clone();

    // A session reading from the replica when it stops: its next read is
    // sent again, to the primary, and succeeds.
    let s = factory.session();
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(ids(&s), [1, 2]);
    pair.replica.stop();
    assert_eq!(ids(&s), [1, 2], "no error reaches the caller");
    assert_eq!(server_id(&s), PRIMARY);
    s.close();
    let st = set.stats();
    assert_eq!(st.read_retries, 1, "{st:?}");
    assert_eq!(st.marked_down, 1, "{st:?}");
    assert!(set.status()[0].down);

    // New sessions skip it while it is down, without trying to connect.
    let opened = replica.stats().connections_opened;
    for _ in 0..3 {
        let s = factory.session();
        assert_eq!(server_id(&s), PRIMARY);
        assert_eq!(ids(&s), [1, 2]);
    }
    assert_eq!(replica.stats().connections_opened, opened);
    let st = set.stats();
    assert_eq!(st.skipped_down, 3 + 1, "{st:?}");
    assert_eq!(st.fallback_down, 3 + 1, "{st:?}");

    // Still down after retry_down_after: tried once, marked down again.
    std::thread::sleep(Duration::from_millis(600));
    let s = factory.session();
    assert_eq!(server_id(&s), PRIMARY);
    drop(s);
    assert_eq!(set.stats().marked_down, 2);

    // Back: used again once retry_down_after has passed.
    pair.replica.boot();
    pair.wait_running();
    std::thread::sleep(Duration::from_millis(600));
    let s = factory.session();
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(ids(&s), [1, 2]);
    assert!(!set.status()[0].down);
    drop(s);

    // Restarted between two sessions: the pooled connections are dead, the
    // next checkout's statements are sent again on fresh ones, and the
    // replica is not marked down.
    pair.replica.restart();
    pair.wait_running();
    std::thread::sleep(Duration::from_millis(150)); // a lag check is due
    let s = factory.session();
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(set.stats().marked_down, 2);
    assert!(replica.stats().statement_retries >= 1);
}

#[test]
fn two_replicas_take_turns_and_a_read_on_a_hung_one_is_sent_again_to_the_other() {
    let (pair, _primary, _replica, _factory) = setup("turns", options());
    // Two replica engines: one straight to the replica, one through a proxy
    // that can stall it (a replica that hangs mid-read), with short timeouts.
    let a = pair.replica.engine("pool_size=2");
    let proxy = common::proxy::Proxy::start(&format!("127.0.0.1:{}", pair.replica.port));
    let b = orm::create_engine(&format!(
        "mysql://root@127.0.0.1:{}/test?pool_size=2&read_timeout=1&connect_timeout=1",
        proxy.port
    ))
    .unwrap();
    let primary = pair.primary.engine("pool_size=2");
    let factory = SessionFactory::new(primary.clone())
        .replicas(ReplicaSet::new(vec![a.clone(), b.clone()], options()));
    let set = factory.replica_set().unwrap().clone();
    let (on_a, on_b, on_primary) = (
        a.capture_statements(),
        b.capture_statements(),
        primary.capture_statements(),
    );

    // Round-robin per session: a, b, a, b.
    let sessions: Vec<Session> = (0..4).map(|_| factory.session()).collect();
    for s in &sessions {
        assert_eq!(server_id(s), REPLICA);
    }
    assert_eq!(mentions(&on_a.take(), "@@server_id"), 2);
    assert_eq!(mentions(&on_b.take(), "@@server_id"), 2);

    // The replica behind b hangs: the read of the session on b times out,
    // b is marked down, and the read is sent again, to a.
    proxy.stall(true);
    let on_b_session = &sessions[3];
    assert_eq!(ids(on_b_session), [1, 2], "no error reaches the caller");
    assert_eq!(mentions(&on_a.take(), "FROM `items`"), 1);
    let st = set.stats();
    assert_eq!((st.read_retries, st.marked_down), (1, 1), "{st:?}");
    assert_eq!(
        set.status().iter().map(|r| r.down).collect::<Vec<_>>(),
        [false, true]
    );

    // While b is down every session reads from a; the primary serves none.
    for _ in 0..3 {
        let s = factory.session();
        assert_eq!(server_id(&s), REPLICA);
    }
    assert_eq!(mentions(&on_a.take(), "@@server_id"), 3);
    assert_eq!(mentions(&on_primary.take(), "@@server_id"), 0);
    let st = set.stats();
    assert!(st.skipped_down >= 1, "{st:?}");
    assert_eq!(st.fallback_down, 0, "{st:?}");
}

#[test]
fn joined_queries_read_from_the_replica_and_take_their_row_locks_on_the_primary() {
    fn joined(s: &Session) -> orm::join::JoinQuery<'_, Item, (Note,)> {
        s.query::<Item>()
            .join_on::<Note, _>(Item::ID.eq_col(Note::ITEM_ID))
    }
    let (pair, primary, replica, factory) = setup("joinlock", options());
    pair.primary_exec("CREATE TABLE test.notes (id BIGINT PRIMARY KEY, item_id BIGINT NOT NULL)");
    pair.primary_exec("INSERT INTO test.notes VALUES (1, 1), (2, 1)");
    pair.sync();
    let on_primary = primary.capture_statements();
    let on_replica = replica.capture_statements();

    let s = factory.session();
    assert_eq!(joined(&s).all().unwrap().len(), 1);
    let rows: Vec<(String, i64)> = joined(&s).select((Item::NAME, Note::ID)).all().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(mentions(&on_replica.take(), "JOIN `notes`"), 2);
    s.close();

    let s = factory.session();
    let locked = s
        .query::<Item>()
        .with_for_update()
        .join_on::<Note, _>(Item::ID.eq_col(Note::ITEM_ID))
        .all()
        .unwrap();
    assert_eq!(locked.len(), 1);
    assert_eq!(server_id(&s), PRIMARY);
    s.rollback().unwrap();
    let s = factory.session();
    let rows: Vec<(String, i64)> = s
        .query::<Item>()
        .for_share()
        .join_on::<Note, _>(Item::ID.eq_col(Note::ITEM_ID))
        .select((Item::NAME, Note::ID))
        .all()
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(server_id(&s), PRIMARY);
    s.rollback().unwrap();
    let primary_sent = on_primary.take();
    assert_eq!(mentions(&primary_sent, "FOR UPDATE"), 1, "{primary_sent:?}");
    assert_eq!(
        mentions(&primary_sent, "LOCK IN SHARE MODE") + mentions(&primary_sent, "FOR SHARE"),
        1,
        "{primary_sent:?}"
    );
    assert_eq!(mentions(&on_replica.take(), "JOIN `notes`"), 0);
}

/// A model bound to another engine (SessionFactory::bind) beside replicas.
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "memos")]
struct Memo {
    #[orm(primary_key)]
    id: i64,
    text: String,
}

/// Replicas serve the default engine only: a model bound to another engine
/// reads and writes on that engine, and its writes leave the default
/// engine's reads on the replica (and record no GTID: nothing was written
/// to the primary); a write to the default engine then moves its reads to
/// the primary, and its commit's GTID is read on the primary's connection.
#[test]
fn a_bound_model_uses_its_own_engine_and_replicas_serve_the_default_engine_only() {
    let (pair, primary, replica, factory) = setup("bound", options_checking_lag_once());
    let other_db = common::TestDb::new("replicas_bound");
    other_db.exec("CREATE TABLE memos (id BIGINT PRIMARY KEY, text VARCHAR(50) NOT NULL)");
    other_db.exec("INSERT INTO memos VALUES (1, 'first')");
    let other = orm::create_engine(&other_db.url).expect("engine of the bound model");
    let factory = factory.bind::<Memo>(other.clone());
    let on_primary = primary.capture_statements();
    let on_replica = replica.capture_statements();
    let on_other = other.capture_statements();

    let s = factory.session();
    assert_eq!(server_id(&s), REPLICA);
    let memos = s.query::<Memo>().all().unwrap();
    assert_eq!(memos.len(), 1);
    assert_eq!(mentions(&on_other.take(), "FROM `memos`"), 1);
    s.add(Memo {
        id: 2,
        text: "second".into(),
    })
    .unwrap();
    s.flush().unwrap();
    assert_eq!(mentions(&on_other.take(), "INSERT INTO `memos`"), 1);
    // The write went to the other engine: the default engine still reads
    // from the replica.
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(ids(&s), [1, 2]);
    let replica_sent = on_replica.take();
    assert_eq!(
        mentions(&replica_sent, "FROM `items`"),
        1,
        "{replica_sent:?}"
    );
    assert!(!replica_sent.iter().any(|s| s.contains("memos")));
    s.commit().unwrap();
    assert_eq!(on_other.take().last().map(String::as_str), Some("COMMIT"));
    let primary_sent = on_primary.take();
    assert!(
        !primary_sent
            .iter()
            .any(|s| s.contains("memos") || s.contains("last_gtid") || s == "COMMIT"),
        "the primary took no part: {primary_sent:?}"
    );
    assert_eq!(
        other_db.rows("SELECT id, text FROM memos ORDER BY id"),
        [["1", "first"], ["2", "second"]]
    );

    // A write to each engine: the default engine's reads move to the
    // primary; the commit reads the GTID there.
    s.add(Memo {
        id: 3,
        text: "third".into(),
    })
    .unwrap();
    s.add(Item {
        id: 3,
        name: "three".into(),
    })
    .unwrap();
    s.flush().unwrap();
    assert_eq!(server_id(&s), PRIMARY);
    s.commit().unwrap();
    let primary_sent = on_primary.take();
    assert_eq!(mentions(&primary_sent, "INSERT INTO `items`"), 1);
    let tail: Vec<&str> = primary_sent
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["COMMIT", "SELECT @@last_gtid"], "{primary_sent:?}");
    assert_eq!(other_db.rows("SELECT COUNT(*) FROM memos"), [["3"]]);
    // Read-your-writes: the next read of items, on the replica, waits for
    // the commit and sees it.
    assert_eq!(ids(&s), [1, 2, 3]);
    assert_eq!(server_id(&s), REPLICA);
    assert_eq!(mentions(&on_replica.take(), "MASTER_GTID_WAIT"), 1);
    assert_eq!(pair.replica_ids("items"), [1, 2, 3]);
    s.close();
}
