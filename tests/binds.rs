//! Several engines in one session (SQLAlchemy's `Session(binds={...})`,
//! after test/orm/test_bind.py and test/orm/test_transaction.py's two-phase
//! tests), on two DIFFERENT servers: the shared MariaDB at DATABASE_URL
//! (engine A, users) and a private mariadbd this test starts (engine B,
//! orders). Rows are read back with plain connections to each server; the
//! SQL sent is captured per engine; failures are injected by KILLing the
//! session's connection on B from an admin connection right before a
//! chosen statement goes out.
//!
//! These tests need MariaDB's server binaries (`mariadbd`,
//! `mariadb-install-db`); without them they FAIL saying so, never skip.

mod common;

use std::sync::{Arc, Mutex};

use common::private_server::PrivateServer;
use common::TestDb;
use mysql::prelude::Queryable;
use orm::prelude::*;
use orm::session::SessionFactory;

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "b_users")]
struct User {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    name: String,
    #[orm(one_to_many, key = "user_id", back_populates = "user")]
    orders: ToMany<Order>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "b_orders")]
struct Order {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    /// A foreign key no server can enforce: the users are on the other server.
    #[orm(references = User)]
    user_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    item: String,
    #[orm(many_to_one, back_populates = "orders")]
    user: ToOne<User>,
}

/// Which statement (by prefix) gets its connection KILLed right before it is sent.
type KillSwitch = Arc<Mutex<Option<&'static str>>>;

/// The two servers, the engines (B with a kill switch) and the tables.
struct Setup {
    a: TestDb,
    b: PrivateServer,
    engine_a: Engine,
    engine_b: Engine,
    kill_b: KillSwitch,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let a = TestDb::new(tag);
        a.exec("CREATE TABLE b_users (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(32) NOT NULL)");
        let b = PrivateServer::start(tag);
        b.admin()
            .query_drop(
                "CREATE TABLE test.b_orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                 user_id BIGINT NULL, item VARCHAR(32) NOT NULL)",
            )
            .expect("create b_orders on B");
        let engine_a = orm::create_engine(&a.url).expect("engine A");
        let kill_b: KillSwitch = Arc::default();
        let armed = Arc::clone(&kill_b);
        let admin_url = b.url("");
        let engine_b = orm::builder(&b.url(""))
            .expect("builder B")
            .before_execute(move |s| {
                let mut armed = armed.lock().expect("kill switch");
                if armed.is_some_and(|prefix| s.sql.starts_with(prefix)) {
                    *armed = None;
                    let opts = mysql::Opts::from_url(&admin_url).expect("admin url");
                    let mut admin = mysql::Conn::new(opts).expect("admin connection to B");
                    admin
                        .query_drop(format!("KILL {}", s.connection_id))
                        .expect("KILL");
                }
                Ok(())
            })
            .build()
            .expect("engine B");
        Setup {
            a,
            b,
            engine_a,
            engine_b,
            kill_b,
        }
    }

    fn factory(&self) -> SessionFactory {
        SessionFactory::new(self.engine_a.clone()).bind::<Order>(self.engine_b.clone())
    }

    fn users_on_a(&self) -> Vec<Vec<String>> {
        self.a.rows("SELECT id, name FROM b_users ORDER BY id")
    }

    fn orders_on_b(&self) -> Vec<(i64, Option<i64>, String)> {
        self.b
            .admin()
            .query("SELECT id, user_id, item FROM test.b_orders ORDER BY id")
            .expect("read b_orders on B")
    }

    fn arm(&self, prefix: &'static str) {
        *self.kill_b.lock().expect("kill switch") = Some(prefix);
    }

    /// `XA RECOVER` on B: the xids of prepared branches, as `gtrid` + `bqual`.
    fn xa_recover_b(&self) -> Vec<String> {
        let rows: Vec<(i64, i64, i64, Vec<u8>)> =
            self.b.admin().query("XA RECOVER").expect("XA RECOVER on B");
        rows.into_iter()
            .map(|(_, _, _, data)| String::from_utf8_lossy(&data).into_owned())
            .collect()
    }

    fn xa_recover_a(&self) -> Vec<String> {
        let mut conn = common::admin_conn();
        let rows: Vec<(i64, i64, i64, Vec<u8>)> =
            conn.query("XA RECOVER").expect("XA RECOVER on A");
        rows.into_iter()
            .map(|(_, _, _, data)| String::from_utf8_lossy(&data).into_owned())
            .collect()
    }
}

/// A user on A and an order on B, linked in memory.
fn user_with_order(session: &Session, name: &str, item: &str) -> (Obj<User>, Obj<Order>) {
    let user = session
        .add(User {
            name: name.into(),
            ..User::default()
        })
        .unwrap();
    let order = session
        .add(Order {
            item: item.into(),
            ..Order::default()
        })
        .unwrap();
    order.set(Order::USER, Some(&user)).unwrap();
    (user, order)
}

fn writes(statements: &[String]) -> Vec<String> {
    statements
        .iter()
        .filter(|s| !s.starts_with("SELECT @@") && !s.starts_with("SET "))
        .cloned()
        .collect()
}

#[test]
fn one_unit_of_work_writes_each_model_on_its_own_server_and_reads_from_it() {
    let s = Setup::new("binds_uow");
    let factory = s.factory();
    let capture_a = s.engine_a.capture_statements();
    let capture_b = s.engine_b.capture_statements();
    let session = factory.session();
    let (user, order) = user_with_order(&session, "alice", "book");
    session.commit().unwrap();
    let sent_a = writes(&capture_a.take());
    let sent_b = writes(&capture_b.take());
    assert!(
        sent_a
            .iter()
            .any(|s| s.starts_with("INSERT INTO `b_users`")),
        "{sent_a:?}"
    );
    assert!(!sent_a.iter().any(|s| s.contains("b_orders")), "{sent_a:?}");
    assert!(
        sent_b
            .iter()
            .any(|s| s.starts_with("INSERT INTO `b_orders`")),
        "{sent_b:?}"
    );
    assert!(!sent_b.iter().any(|s| s.contains("b_users")), "{sent_b:?}");
    assert_eq!(sent_a.last().map(String::as_str), Some("COMMIT"));
    assert_eq!(sent_b.last().map(String::as_str), Some("COMMIT"));

    // The rows, on each server: the order's user_id is the key A generated.
    let users = s.users_on_a();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0][1], "alice");
    let user_id: i64 = users[0][0].parse().unwrap();
    assert_eq!(
        s.orders_on_b(),
        vec![(1, Some(user_id), "book".to_string())]
    );
    assert_eq!(user.key::<i64>().unwrap(), user_id);
    assert_eq!(order.read().unwrap().user_id, Some(user_id));

    // Reads go to each model's engine, including a lazy load across servers.
    let session = factory.session();
    let order = session.query::<Order>().one().unwrap();
    let user = order.one(Order::USER).unwrap().expect("the order's user");
    assert_eq!(user.read().unwrap().name, "alice");
    let got = session.get::<User>(user_id).unwrap().unwrap();
    assert!(got.ptr_eq(&user));
    let sent_a = capture_a.take();
    let sent_b = capture_b.take();
    assert!(
        sent_a.iter().any(|s| s.contains("FROM `b_users`")),
        "{sent_a:?}"
    );
    assert!(!sent_a.iter().any(|s| s.contains("b_orders")), "{sent_a:?}");
    assert!(
        sent_b.iter().any(|s| s.contains("FROM `b_orders`")),
        "{sent_b:?}"
    );
    assert!(!sent_b.iter().any(|s| s.contains("b_users")), "{sent_b:?}");
    assert!(session.engine_for::<Order>().ptr_eq(&s.engine_b));
    assert!(session.engine_for::<User>().ptr_eq(&s.engine_a));

    // Raw SQL: the default engine, or a model's.
    let rows = session
        .query_rows("SELECT COUNT(*) FROM b_users", &[])
        .unwrap();
    assert_eq!(rows[0].values()[0], Value::Int(1));
    let rows = session
        .query_rows_for::<Order>("SELECT COUNT(*) FROM b_orders", &[])
        .unwrap();
    assert_eq!(rows[0].values()[0], Value::Int(1));
    session.rollback().unwrap();
}

#[test]
fn rollback_after_flush_leaves_nothing_on_either_server() {
    let s = Setup::new("binds_rb");
    let session = s.factory().session();
    let (user, order) = user_with_order(&session, "bob", "pen");
    session.flush().unwrap();
    // Flushed: visible inside the transaction, on each server.
    assert_eq!(session.query::<Order>().all().unwrap().len(), 1);
    assert_eq!(session.query::<User>().all().unwrap().len(), 1);
    let capture_a = s.engine_a.capture_statements();
    let capture_b = s.engine_b.capture_statements();
    session.rollback().unwrap();
    assert_eq!(capture_a.take(), ["ROLLBACK"]);
    assert_eq!(capture_b.take(), ["ROLLBACK"]);
    assert!(s.users_on_a().is_empty());
    assert!(s.orders_on_b().is_empty());
    assert_eq!(user.state(), ObjState::Transient);
    assert_eq!(order.state(), ObjState::Transient);
}

#[test]
fn commit_order_is_first_use_and_a_failing_second_commit_is_a_partial_commit() {
    let s = Setup::new("binds_partial");
    let factory = s.factory();
    let session = factory.session();
    user_with_order(&session, "carol", "cup");
    session.flush().unwrap();
    // The flush used A (users, parents first) then B: COMMIT goes to A, then B.
    s.arm("COMMIT");
    let err = session.commit().unwrap_err();
    match &err {
        Error::PartialCommit {
            committed,
            failed,
            not_committed,
            ..
        } => {
            assert_eq!(committed, &vec![s.engine_a.describe()]);
            assert_eq!(failed, &s.engine_b.describe());
            assert_eq!(not_committed, &vec![s.engine_b.describe()]);
        }
        other => panic!("expected PartialCommit, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("inconsistent"), "{message}");
    assert!(message.contains("two_phase"), "{message}");
    // A committed, B did not.
    assert_eq!(s.users_on_a().len(), 1);
    assert!(s.orders_on_b().is_empty());
    // The session is idle and usable: B reconnects.
    assert!(!session.in_transaction());
    user_with_order(&session, "dave", "mug");
    session.commit().unwrap();
    assert_eq!(s.users_on_a().len(), 2);
    assert_eq!(s.orders_on_b().len(), 1);
}

#[test]
fn a_failing_first_commit_commits_nothing() {
    let s = Setup::new("binds_first");
    // B used first: an order alone, then a user.
    let session = s.factory().session();
    session
        .add(Order {
            item: "lamp".into(),
            ..Order::default()
        })
        .unwrap();
    session.flush().unwrap();
    session
        .add(User {
            name: "erin".into(),
            ..User::default()
        })
        .unwrap();
    s.arm("COMMIT");
    let err = session.commit().unwrap_err();
    assert!(
        !matches!(err, Error::PartialCommit { .. }),
        "the first COMMIT failed: nothing committed, not a partial commit: {err:?}"
    );
    assert!(s.users_on_a().is_empty());
    assert!(s.orders_on_b().is_empty());
    assert!(!session.in_transaction());
}

#[test]
fn a_lost_connection_on_any_engine_requires_a_rollback_of_everything() {
    let s = Setup::new("binds_lost");
    let session = s.factory().session();
    user_with_order(&session, "fay", "hat");
    session.flush().unwrap();
    s.arm("SELECT");
    let err = session.query::<Order>().all().unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    let err = session.query::<User>().all().unwrap_err();
    assert!(matches!(err, Error::PendingRollback(_)), "{err:?}");
    session.rollback().unwrap();
    assert!(s.users_on_a().is_empty());
    assert!(s.orders_on_b().is_empty());
    user_with_order(&session, "gus", "cap");
    session.commit().unwrap();
    assert_eq!(s.users_on_a().len(), 1);
    assert_eq!(s.orders_on_b().len(), 1);
}

#[test]
fn savepoints_span_every_engine_including_one_first_used_inside() {
    let s = Setup::new("binds_sp");
    let session = s.factory().session();
    session
        .add(User {
            name: "kept".into(),
            ..User::default()
        })
        .unwrap();
    session.flush().unwrap();
    let capture_b = s.engine_b.capture_statements();
    {
        let nested = session.begin_nested().unwrap();
        // B's connection is opened inside the savepoint: it takes it too.
        session
            .add(Order {
                item: "dropped".into(),
                ..Order::default()
            })
            .unwrap();
        session
            .add(User {
                name: "dropped".into(),
                ..User::default()
            })
            .unwrap();
        session.flush().unwrap();
        nested.rollback().unwrap();
    }
    let sent_b = capture_b.take();
    assert!(
        sent_b.iter().any(|s| s.starts_with("SAVEPOINT")),
        "{sent_b:?}"
    );
    assert!(
        sent_b
            .iter()
            .any(|s| s.starts_with("ROLLBACK TO SAVEPOINT")),
        "{sent_b:?}"
    );
    session.commit().unwrap();
    let users = s.users_on_a();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0][1], "kept");
    assert!(s.orders_on_b().is_empty());
}

#[test]
fn two_phase_commit_sends_xa_to_every_engine() {
    let s = Setup::new("binds_xa");
    let factory = s.factory().two_phase(true);
    let capture_a = s.engine_a.capture_statements();
    let capture_b = s.engine_b.capture_statements();
    let session = factory.session();
    user_with_order(&session, "hal", "kite");
    session.commit().unwrap();
    for sent in [writes(&capture_a.take()), writes(&capture_b.take())] {
        let xa: Vec<&str> = sent
            .iter()
            .filter(|s| s.starts_with("XA "))
            .map(|s| s.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .map(|s| match s.as_str() {
                "XA START" => "XA START",
                "XA END" => "XA END",
                "XA PREPARE" => "XA PREPARE",
                "XA COMMIT" => "XA COMMIT",
                _ => "other",
            })
            .collect();
        assert_eq!(
            xa,
            ["XA START", "XA END", "XA PREPARE", "XA COMMIT"],
            "{sent:?}"
        );
        assert!(sent[0].starts_with("XA START 'orm-"), "{sent:?}");
        assert!(!sent.iter().any(|s| s == "COMMIT"), "{sent:?}");
    }
    assert_eq!(s.users_on_a().len(), 1);
    assert_eq!(s.orders_on_b().len(), 1);
    // No branch left behind; the pooled connections are reusable.
    assert!(s.xa_recover_b().is_empty());
    user_with_order(&session, "ida", "yoyo");
    session.rollback().unwrap();
    user_with_order(&session, "jon", "top");
    session.commit().unwrap();
    assert_eq!(s.users_on_a().len(), 2);
    assert_eq!(s.orders_on_b().len(), 2);
    // Savepoints are refused inside XA.
    let err = match session.begin_nested() {
        Err(e) => e,
        Ok(_) => panic!("begin_nested() in a two-phase session must be refused"),
    };
    assert!(err.to_string().contains("XA"), "{err}");
}

#[test]
fn two_phase_a_failing_prepare_commits_nothing_anywhere() {
    let s = Setup::new("binds_xa_prep");
    let session = s.factory().two_phase(true).session();
    let capture_a = s.engine_a.capture_statements();
    user_with_order(&session, "kim", "ball");
    session.flush().unwrap();
    s.arm("XA PREPARE");
    let err = session.commit().unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    // A was prepared first, then rolled back.
    let sent_a = capture_a.take();
    assert!(sent_a[0].starts_with("XA START '"), "{sent_a:?}");
    let gtrid = sent_a[0].split('\'').nth(1).unwrap_or_default().to_string();
    assert!(
        sent_a.iter().any(|s| s.starts_with("XA PREPARE")),
        "{sent_a:?}"
    );
    assert!(
        sent_a.iter().any(|s| s.starts_with("XA ROLLBACK")),
        "{sent_a:?}"
    );
    assert!(s.users_on_a().is_empty());
    assert!(s.orders_on_b().is_empty());
    assert!(s.xa_recover_b().is_empty());
    assert!(!s.xa_recover_a().iter().any(|x| x.starts_with(&gtrid)));
    assert!(!session.in_transaction());
}

#[test]
fn two_phase_a_failing_xa_commit_leaves_the_branch_prepared_for_recovery() {
    let s = Setup::new("binds_xa_commit");
    let session = s.factory().two_phase(true).session();
    user_with_order(&session, "lea", "drum");
    session.flush().unwrap();
    s.arm("XA COMMIT");
    let err = session.commit().unwrap_err();
    let (gtrid, in_doubt) = match &err {
        Error::XaCommitIncomplete {
            gtrid,
            committed,
            in_doubt,
            ..
        } => {
            assert_eq!(committed, &vec![s.engine_a.describe()]);
            assert_eq!(in_doubt.len(), 1);
            (gtrid.clone(), in_doubt[0].clone())
        }
        other => panic!("expected XaCommitIncomplete, got {other:?}"),
    };
    assert!(in_doubt.contains(&s.engine_b.describe()), "{in_doubt}");
    assert!(err.to_string().contains("XA RECOVER"), "{err}");
    // A committed; B's branch is prepared, listed by XA RECOVER, its row not visible.
    assert_eq!(s.users_on_a().len(), 1);
    assert!(s.orders_on_b().is_empty());
    let recovered = s.xa_recover_b();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert!(recovered[0].starts_with(&gtrid), "{recovered:?} vs {gtrid}");
    // Finishing it by hand, as the error says, commits the order.
    let bqual = &recovered[0][gtrid.len()..];
    s.b.admin()
        .query_drop(format!("XA COMMIT '{gtrid}','{bqual}'"))
        .expect("XA COMMIT by hand");
    assert_eq!(s.orders_on_b().len(), 1);
    // The session is usable.
    assert!(!session.in_transaction());
    user_with_order(&session, "max", "flag");
    session.commit().unwrap();
    assert_eq!(s.orders_on_b().len(), 2);
}

#[test]
fn a_pooled_connection_returned_inside_an_xa_branch_is_rolled_back_and_reusable() {
    let a = TestDb::new("binds_xa_pool");
    a.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let engine = orm::create_engine(&a.url_with("pool_size=1&max_overflow=0")).unwrap();
    let capture = engine.capture_statements();
    {
        let mut conn = engine.connect().unwrap();
        conn.xa_start("orm-test-pool", "0").unwrap();
        conn.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        assert_eq!(conn.xa_id(), Some("'orm-test-pool','0'"));
        // A plain COMMIT is refused inside the branch.
        assert!(conn.commit().is_err());
    }
    assert_eq!(
        capture.take(),
        [
            "XA START 'orm-test-pool','0'",
            "INSERT INTO t VALUES (1)",
            "XA END 'orm-test-pool','0'",
            "XA ROLLBACK 'orm-test-pool','0'",
        ]
    );
    assert!(a.rows("SELECT id FROM t").is_empty());
    // The same (only) connection works normally, and XA again after a prepare.
    let mut conn = engine.connect().unwrap();
    conn.begin().unwrap();
    conn.execute("INSERT INTO t VALUES (2)", &[]).unwrap();
    conn.commit().unwrap();
    conn.xa_start("orm-test-pool", "1").unwrap();
    conn.execute("INSERT INTO t VALUES (3)", &[]).unwrap();
    conn.xa_prepare().unwrap();
    drop(conn);
    // A prepared branch dropped is rolled back too (nothing was committed).
    assert_eq!(a.rows("SELECT id FROM t"), [["2"]]);
    let mut admin = common::admin_conn();
    let recovered: Vec<(i64, i64, i64, Vec<u8>)> = admin.query("XA RECOVER").unwrap();
    assert!(!recovered
        .iter()
        .any(|r| String::from_utf8_lossy(&r.3).starts_with("orm-test-pool")));
    let mut conn = engine.connect().unwrap();
    assert!(conn.xa_start("bad id", "0").is_err());
    conn.xa_start("orm-test-pool", "2").unwrap();
    conn.rollback().unwrap();
    conn.begin().unwrap();
    conn.commit().unwrap();
}

/// `Query::for_each` on a model bound to engine B streams on B's
/// transaction connection (it sees the row this transaction flushed on B),
/// refuses SQL to any engine while it streams, and puts the connection back
/// in its place in the commit order (B was used first, so B's COMMIT is
/// still the first: its failure commits nothing, not a partial commit).
#[test]
fn for_each_on_a_bound_model_streams_on_its_engines_connection_and_gives_it_back() {
    let s = Setup::new("binds_stream");
    let factory = s.factory();
    {
        let session = factory.session();
        for item in ["a", "b", "c"] {
            session
                .add(Order {
                    item: item.into(),
                    ..Order::default()
                })
                .unwrap();
        }
        session.commit().unwrap();
    }
    let session = factory.session();
    // B first, then A: the commit order.
    session
        .add(Order {
            item: "d".into(),
            ..Order::default()
        })
        .unwrap();
    session.flush().unwrap();
    session
        .add(User {
            name: "carol".into(),
            ..User::default()
        })
        .unwrap();
    session.flush().unwrap();
    let capture_a = s.engine_a.capture_statements();
    let capture_b = s.engine_b.capture_statements();
    let mut items = Vec::new();
    let mut refused = Vec::new();
    let rows = session
        .query::<Order>()
        .order_by(Order::ID.asc())
        .for_each(|order| {
            items.push(order.read()?.item.clone());
            // Any SQL, to either engine, waits for the stream.
            if let Err(e) = session.query::<User>().all() {
                refused.push(e.to_string());
            }
            if let Err(e) = session.query_rows_for::<Order>("SELECT 1", &[]) {
                refused.push(e.to_string());
            }
            // A commit would miss the lent connection: refused too.
            if let Err(e) = session.commit() {
                refused.push(e.to_string());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(rows, 4);
    // The row flushed on B in this transaction is seen: B's own connection.
    assert_eq!(items, ["a", "b", "c", "d"]);
    assert_eq!(refused.len(), 12, "{refused:?}");
    assert!(
        refused.iter().all(|e| e.contains("for_each()")),
        "{refused:?}"
    );
    let sent_a = capture_a.take();
    let sent_b = capture_b.take();
    assert!(!sent_a.iter().any(|s| s.contains("b_orders")), "{sent_a:?}");
    assert_eq!(
        sent_b
            .iter()
            .filter(|s| s.contains("FROM `b_orders`"))
            .count(),
        1,
        "{sent_b:?}"
    );
    // After the stream: B's connection is back, SQL runs on it again.
    let rows = session
        .query_rows_for::<Order>("SELECT COUNT(*) FROM b_orders", &[])
        .unwrap();
    assert_eq!(rows[0].values()[0], Value::Int(4));
    // B is still first in the commit order: its COMMIT failing commits nothing.
    s.arm("COMMIT");
    let err = session.commit().unwrap_err();
    assert!(
        !matches!(err, Error::PartialCommit { .. }),
        "B's COMMIT must still go first: {err:?}"
    );
    assert!(s.users_on_a().is_empty());
    assert_eq!(s.orders_on_b().len(), 3);

    // A stream, then a write on B, committed.
    let session = factory.session();
    let mut seen = 0;
    session
        .query::<Order>()
        .for_each(|_| {
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, 3);
    session
        .add(Order {
            item: "e".into(),
            ..Order::default()
        })
        .unwrap();
    session.commit().unwrap();
    assert_eq!(
        s.orders_on_b()
            .into_iter()
            .map(|(_, _, item)| item)
            .collect::<Vec<_>>(),
        ["a", "b", "c", "e"]
    );
}
