//! The ORM on a 3-node MariaDB Galera cluster (issue 13): writes replicate
//! with the keys the ORM wrote back, a certification conflict between two
//! nodes is retried to success, a node that leaves the primary component
//! fails with a retryable 1047 and the failover host list moves on, and a
//! node killed under a 16-thread write load loses no acknowledged commit.
//!
//! Forming a cluster takes 10-20 s, so ONE test starts it once and runs the
//! scenarios in sequence (the cluster is dropped, its servers killed and
//! their directories removed, when the test ends, failed or not). Needs
//! `galera-4` and `rsync` (see `common::galera`).

mod common;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::galera::GaleraCluster;
use mysql::prelude::Queryable;
use orm::prelude::*;
use orm::session::SessionFactory;
use orm::{RetryPolicy, Value};

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "items")]
struct Item {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "counters")]
struct Counter {
    #[orm(primary_key)]
    id: i64,
    value: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "writes")]
struct Write {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(40)")]
    token: String,
    thread: i64,
}

#[test]
fn orm_on_a_three_node_galera_cluster() {
    let mut cluster = GaleraCluster::start();
    let mut admin = cluster.nodes[0].admin();
    for ddl in [
        "CREATE TABLE test.items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(32) NOT NULL UNIQUE) ENGINE=InnoDB",
        "CREATE TABLE test.counters (id BIGINT PRIMARY KEY, value BIGINT NOT NULL) ENGINE=InnoDB",
        // The token is indexed, NOT unique: a retry that wrote a second row
        // for a token would show up as a duplicate instead of being refused.
        "CREATE TABLE test.writes (id BIGINT AUTO_INCREMENT PRIMARY KEY, token VARCHAR(40) NOT NULL, \
         thread BIGINT NOT NULL, KEY (token)) ENGINE=InnoDB",
    ] {
        admin.query_drop(ddl).expect(ddl);
    }
    drop(admin);

    writes_replicate_with_the_keys_written_back(&cluster);
    certification_conflicts_are_retried_to_success(&cluster);
    a_node_out_of_the_primary_component_is_retryable_and_failed_over(&cluster);
    a_node_killed_under_load_loses_no_acknowledged_commit(&mut cluster);
}

/// (a) A multi-object flush on node 0: every object's key is its row's, on
/// every node; Galera steps auto_increment by the cluster size (3).
fn writes_replicate_with_the_keys_written_back(cluster: &GaleraCluster) {
    for (options, tag) in [("", "ret"), ("insert_returning=off", "noret")] {
        let engine = orm::create_engine(&cluster.node_url(0, options)).expect("engine");
        let capture = engine.capture_statements();
        let session = SessionFactory::new(engine.clone()).session();
        let objects: Vec<Obj<Item>> = (0..5)
            .map(|i| {
                session
                    .add(Item {
                        id: None,
                        name: format!("{tag}{i}"),
                    })
                    .unwrap()
            })
            .collect();
        session.flush().unwrap();
        let keys: Vec<(String, i64)> = objects
            .iter()
            .map(|o| {
                let v = o.read().unwrap();
                (v.name.clone(), v.id.expect("a key after flush"))
            })
            .collect();
        session.commit().unwrap();
        let inserts = common::starting_with(capture.take(), "INSERT");
        if options.is_empty() {
            // MariaDB 10.11: one multi-row INSERT ... RETURNING.
            assert_eq!(inserts.len(), 1, "{inserts:?}");
            assert!(inserts[0].contains("RETURNING"), "{inserts:?}");
        } else {
            // Galera controls auto_increment: no `first + k * step`
            // guess, one row per statement.
            assert_eq!(inserts.len(), 5, "{inserts:?}");
        }
        // The keys are Galera's: 3 apart (auto_increment_increment = 3).
        for pair in keys.windows(2) {
            assert_eq!(
                (pair[1].1 - pair[0].1) % 3,
                0,
                "keys not stepped by the cluster size: {keys:?}"
            );
            assert!(pair[1].1 > pair[0].1 + 1, "{keys:?}");
        }
        for node in 0..3 {
            let rows: Vec<(String, i64)> = cluster
                .causal(node)
                .exec(
                    "SELECT name, id FROM test.items WHERE name LIKE ? ORDER BY id",
                    (format!("{tag}%"),),
                )
                .expect("read items");
            let mut expected = keys.clone();
            expected.sort_by_key(|(_, id)| *id);
            assert_eq!(
                rows, expected,
                "node {node} (options `{options}`): rows vs the objects' keys"
            );
        }
    }
}

/// A factory on node `n` alone whose reads wait for what the cluster
/// committed before them (`wsrep_sync_wait = 1`).
fn causal_factory(url: &str) -> SessionFactory {
    let engine = orm::builder(url)
        .expect("engine URL")
        .on_connect(|c| {
            c.execute_text("SET SESSION wsrep_sync_wait = 1")
                .map(|_| ())
        })
        .build()
        .expect("engine");
    SessionFactory::new(engine)
}

/// Adds 1 to counter `id`. The row is read with `FOR UPDATE`: a plain
/// (snapshot) read followed by `UPDATE ... SET value = <read + 1>` loses an
/// update on any InnoDB server when another transaction commits in
/// between, Galera or not (neither side waits for or conflicts with the
/// other's write). A locking read sees the latest row and holds it: a write
/// replicated from another node then aborts this transaction (1213 at its
/// next statement or COMMIT, retryable) instead of being overwritten.
fn increment(s: &Session, id: i64) -> orm::Result<()> {
    let counter = s
        .query::<Counter>()
        .filter(Counter::ID.eq(id))
        .with_for_update()
        .one()?;
    counter.write()?.value += 1;
    s.flush()
}

fn counter_on(cluster: &GaleraCluster, node: usize, id: i64) -> i64 {
    let value: Option<i64> = cluster
        .causal(node)
        .exec_first("SELECT value FROM test.counters WHERE id = ?", (id,))
        .expect("read counter");
    value.expect("the counter row")
}

/// (b) Two sessions on two nodes update the same row: the one that commits
/// second fails certification (1213 at COMMIT), which is retryable, and run
/// through `retrying` it succeeds with both increments applied.
fn certification_conflicts_are_retried_to_success(cluster: &GaleraCluster) {
    cluster.nodes[0]
        .admin()
        .query_drop("INSERT INTO test.counters (id, value) VALUES (1, 0), (2, 0)")
        .unwrap();
    let f0 = causal_factory(&cluster.node_url(0, ""));
    let f1 = causal_factory(&cluster.node_url(1, ""));

    // The bare conflict: A flushed its UPDATE on node 0, B commits the
    // same row on node 1 first; A's COMMIT loses certification.
    let a = f0.session();
    increment(&a, 1).unwrap();
    f1.begin(|b| increment(b, 1)).unwrap();
    let err = a.commit().unwrap_err();
    assert_eq!(err.code(), Some(1213), "{err}");
    assert!(
        RetryPolicy::default().should_retry(&err),
        "a certification failure must be retryable: {err:?}"
    );
    a.rollback().unwrap();
    assert_eq!(counter_on(cluster, 2, 1), 1, "only B's increment");

    // The same conflict, the loser run through `retrying`.
    let policy = RetryPolicy {
        base_delay: Duration::from_millis(5),
        ..Default::default()
    };
    const ROUNDS: i64 = 5;
    let attempts = Cell::new(0);
    for _ in 0..ROUNDS {
        let first = Cell::new(true);
        f0.retrying(&policy, |a| {
            attempts.set(attempts.get() + 1);
            increment(a, 1)?;
            if first.replace(false) {
                f1.begin(|b| increment(b, 1))?;
            }
            Ok(())
        })
        .unwrap();
    }
    let forced = f0.engine().stats().unit_of_work_retries;
    assert_eq!(
        forced, ROUNDS as u64,
        "one certification failure per round, each retried once"
    );
    assert_eq!(attempts.get(), 2 * ROUNDS as u32);
    for node in 0..3 {
        assert_eq!(
            counter_on(cluster, node, 1),
            1 + 2 * ROUNDS,
            "node {node}: every increment of both sides"
        );
    }

    // Two threads on two nodes racing on one row, every increment through
    // `retrying`: none is lost.
    const PER_THREAD: i64 = 25;
    let racers: Vec<thread::JoinHandle<(u64, u32)>> = [0usize, 1]
        .into_iter()
        .map(|node| {
            let url = cluster.node_url(node, "");
            thread::spawn(move || {
                let factory = causal_factory(&url);
                let policy = RetryPolicy {
                    max_attempts: 50,
                    base_delay: Duration::from_millis(2),
                    max_delay: Duration::from_millis(100),
                    ..Default::default()
                };
                let mut most = 0;
                for _ in 0..PER_THREAD {
                    let tries = Cell::new(0);
                    factory
                        .retrying(&policy, |s| {
                            tries.set(tries.get() + 1);
                            increment(s, 2)
                        })
                        .expect("an increment through retrying");
                    most = most.max(tries.get() - 1);
                }
                (factory.engine().stats().unit_of_work_retries, most)
            })
        })
        .collect();
    let results: Vec<(u64, u32)> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    let retries: u64 = results.iter().map(|r| r.0).sum();
    let most = results.iter().map(|r| r.1).max().unwrap_or(0);
    for node in 0..3 {
        assert_eq!(counter_on(cluster, node, 2), 2 * PER_THREAD, "node {node}");
    }
    eprintln!(
        "galera figures: forced conflicts {ROUNDS}, retries {forced} ({} per conflict); \
         racing {} increments on two nodes: {retries} retries, at most {most} for one increment, \
         0 increments lost",
        forced as f64 / ROUNDS as f64,
        2 * PER_THREAD
    );
}

/// The server port of the session's connection.
fn port_of(s: &Session) -> orm::Result<u16> {
    let rows = s.query_rows("SELECT @@port", &[])?;
    match rows.first().and_then(|r| r.get(0)) {
        Some(Value::Int(p)) => Ok(*p as u16),
        Some(Value::UInt(p)) => Ok(*p as u16),
        other => Err(orm::Error::invalid(format!("@@port: {other:?}"))),
    }
}

/// (d) Node 2 is cut off the group (`gmcast.isolate`): a query on it fails
/// with 1047, classified retryable, and the failover host list (node 2
/// first) moves on to a node of the primary component.
fn a_node_out_of_the_primary_component_is_retryable_and_failed_over(cluster: &GaleraCluster) {
    let factory = SessionFactory::new(orm::create_engine(&cluster.url(2, "")).expect("engine"));
    let session = factory.session();
    assert_eq!(port_of(&session).unwrap(), cluster.nodes[2].port);
    assert!(session.get::<Counter>(1).unwrap().is_some());
    // A single-host engine on node 2, connected before the isolation.
    let single = SessionFactory::new(orm::create_engine(&cluster.node_url(2, "")).expect("engine"));
    let lone = single.session();
    assert!(lone.get::<Counter>(1).unwrap().is_some());
    lone.rollback().unwrap();

    cluster.isolate(2, true);
    cluster.wait_not_ready(2);
    cluster.wait_ready(0, 2);

    let err = session
        .query::<Counter>()
        .filter(Counter::ID.eq(1))
        .one()
        .unwrap_err();
    assert_eq!(err.code(), Some(1047), "{err}");
    assert!(
        RetryPolicy::default().should_retry(&err),
        "node not ready must be retryable: {err:?}"
    );
    session.rollback().unwrap();
    // The next connection skips node 2 (not ready) for node 0.
    assert_eq!(port_of(&session).unwrap(), cluster.nodes[0].port);
    session.close();

    // A unit of work through `retrying` on the failover engine succeeds.
    factory
        .retrying(&RetryPolicy::default(), |s| {
            assert_eq!(port_of(s)?, cluster.nodes[0].port);
            increment(s, 1)
        })
        .unwrap();

    // A single host is used as it is (so that it can be inspected), and
    // its statements fail with a retryable 1047 until it rejoins.
    let status: Vec<(String, String)> = lone
        .query_rows("SHOW GLOBAL STATUS LIKE 'wsrep_ready'", &[])
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let text = |i: usize| match r.get(i) {
                        Some(Value::Text(t)) => t.clone(),
                        other => format!("{other:?}"),
                    };
                    (text(0), text(1))
                })
                .collect()
        })
        .unwrap();
    assert_eq!(status, [("wsrep_ready".to_string(), "OFF".to_string())]);
    let err = single
        .retrying(
            &RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
                ..Default::default()
            },
            |s| increment(s, 1),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some(1047), "{err}");
    assert_eq!(single.engine().stats().unit_of_work_retries, 1);

    let rejoin = Instant::now();
    cluster.isolate(2, false);
    for node in 0..3 {
        cluster.wait_ready(node, 3);
    }
    eprintln!(
        "galera figures: node 2 rejoined the cluster {:?} after gmcast.isolate=0",
        rejoin.elapsed()
    );
    // 1 (the bare conflict) + 2 per forced round + 1 above.
    assert_eq!(counter_on(cluster, 2, 1), 1 + 2 * 5 + 1, "node 2 caught up");
}

/// What one writer thread of scenario (c) saw.
struct WriterReport {
    first_node: usize,
    acknowledged: Vec<String>,
    failed: Vec<String>,
    /// The first acknowledged commit after the kill.
    first_ok_after_kill: Option<Instant>,
    retries: u64,
    /// Units of work whose rerun found their row already written (their
    /// first COMMIT's outcome was unknown, and it had committed).
    found_written: u64,
}

/// (c) 16 threads, each on a failover URL starting with a different node,
/// insert rows with unique tokens through `retrying` (idempotent: the work
/// first looks its token up with a causal read, so running it again after
/// a COMMIT whose outcome is unknown cannot write a second row). Node 1 is
/// killed with SIGKILL mid-run. Every acknowledged token is on both
/// survivors exactly once.
fn a_node_killed_under_load_loses_no_acknowledged_commit(cluster: &mut GaleraCluster) {
    const THREADS: usize = 16;
    const VICTIM: usize = 1;
    let stop = Arc::new(AtomicBool::new(false));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let writers: Vec<thread::JoinHandle<WriterReport>> = (0..THREADS)
        .map(|t| {
            let first_node = t % 3;
            let url = cluster.url(first_node, "pool_size=1&max_overflow=0");
            let stop = Arc::clone(&stop);
            let killed_at = Arc::clone(&killed_at);
            thread::spawn(move || {
                let factory = causal_factory(&url);
                let policy = RetryPolicy {
                    max_attempts: 40,
                    base_delay: Duration::from_millis(10),
                    max_delay: Duration::from_millis(250),
                    jitter: true,
                    idempotent: true,
                };
                let mut report = WriterReport {
                    first_node,
                    acknowledged: Vec::new(),
                    failed: Vec::new(),
                    first_ok_after_kill: None,
                    retries: 0,
                    found_written: 0,
                };
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let token = format!("t{t}-{n}");
                    n += 1;
                    let attempt = Cell::new(0);
                    let found = Cell::new(false);
                    let result = factory.retrying(&policy, |s| {
                        attempt.set(attempt.get() + 1);
                        let done = s
                            .query::<Write>()
                            .filter(Write::TOKEN.eq(token.clone()))
                            .first()?
                            .is_some();
                        found.set(done && attempt.get() > 1);
                        if !done {
                            s.add(Write {
                                id: None,
                                token: token.clone(),
                                thread: t as i64,
                            })?;
                        }
                        Ok(())
                    });
                    match result {
                        Ok(()) => {
                            report.found_written += u64::from(found.get());
                            let now = Instant::now();
                            let killed = *killed_at.lock().unwrap();
                            if report.first_ok_after_kill.is_none()
                                && killed.is_some_and(|k| now > k)
                            {
                                report.first_ok_after_kill = Some(now);
                            }
                            report.acknowledged.push(token);
                        }
                        Err(e) => report.failed.push(format!("{token}: {e}")),
                    }
                }
                report.retries = factory.engine().stats().unit_of_work_retries;
                report
            })
        })
        .collect();

    thread::sleep(Duration::from_secs(2));
    let kill = Instant::now();
    *killed_at.lock().unwrap() = Some(kill);
    cluster.nodes[VICTIM].kill();
    thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<WriterReport> = writers.into_iter().map(|h| h.join().unwrap()).collect();

    let survivors: Vec<usize> = (0..3).filter(|n| *n != VICTIM).collect();
    for &node in &survivors {
        cluster.wait_ready(node, 2);
    }
    let acknowledged: Vec<&String> = reports.iter().flat_map(|r| &r.acknowledged).collect();
    let mut lost_total = 0;
    let mut duplicates_total = 0;
    let mut unacknowledged_present = 0;
    let mut tables: Vec<HashMap<String, u64>> = Vec::new();
    for &node in &survivors {
        let rows: Vec<(String, u64)> = cluster
            .causal(node)
            .query("SELECT token, COUNT(*) FROM test.writes GROUP BY token")
            .expect("read writes");
        let counts: HashMap<String, u64> = rows.into_iter().collect();
        let lost: Vec<&&String> = acknowledged
            .iter()
            .filter(|t| !counts.contains_key(t.as_str()))
            .collect();
        let duplicates: Vec<(&String, &u64)> = counts.iter().filter(|(_, c)| **c > 1).collect();
        let acked: HashSet<&str> = acknowledged.iter().map(|t| t.as_str()).collect();
        unacknowledged_present = counts
            .keys()
            .filter(|t| !acked.contains(t.as_str()))
            .count();
        assert!(
            lost.is_empty(),
            "node {node}: {} acknowledged writes lost: {lost:?}",
            lost.len()
        );
        assert!(
            duplicates.is_empty(),
            "node {node}: tokens written more than once: {duplicates:?}"
        );
        lost_total += lost.len();
        duplicates_total += duplicates.len();
        tables.push(counts);
    }
    assert_eq!(tables[0], tables[1], "the survivors hold the same rows");

    let on_victim: Vec<&WriterReport> = reports.iter().filter(|r| r.first_node == VICTIM).collect();
    let recoveries: Vec<Duration> = on_victim
        .iter()
        .map(|r| {
            r.first_ok_after_kill
                .unwrap_or_else(|| {
                    panic!(
                        "a writer that was on the killed node never committed again; failures: {:?}",
                        r.failed
                    )
                })
                .duration_since(kill)
        })
        .collect();
    let after_kill = |r: &&WriterReport| r.first_ok_after_kill.is_some();
    assert!(
        reports.iter().all(|r| after_kill(&r)),
        "every writer committed after the kill"
    );
    let failed: Vec<&String> = reports.iter().flat_map(|r| &r.failed).collect();
    let retries: u64 = reports.iter().map(|r| r.retries).sum();
    let found_written: u64 = reports.iter().map(|r| r.found_written).sum();
    eprintln!(
        "galera figures: {THREADS} writers, node {VICTIM} killed with SIGKILL: {} writes acknowledged, \
         {lost_total} lost, {duplicates_total} duplicated, {unacknowledged_present} unacknowledged \
         rows present, {} units of work failed, {retries} retries ({found_written} of them found \
         their row already committed); writers that were on the killed \
         node committed again after {:?} (first) to {:?} (last)",
        acknowledged.len(),
        failed.len(),
        recoveries.iter().min().copied().unwrap_or_default(),
        recoveries.iter().max().copied().unwrap_or_default(),
    );
    assert!(
        acknowledged.len() > THREADS,
        "the load wrote too little to mean anything"
    );
}
