//! The unit of work's failure paths: nothing lost, nothing half-done.
//!
//! Each test asserts the database's rows afterwards (read over a separate
//! admin connection), not only the objects. Re-expressed from SQLAlchemy's
//! test/orm/test_transaction.py (RollbackRecoverTest, SavepointTest,
//! AutoExpireTest and its key-switch cases), test_unitofworkv2.py's failure
//! cases and test_versioning.py.

mod common;

use std::cell::RefCell;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestDb;
use mysql::prelude::Queryable;
use orm::prelude::*;
use orm::session::{ObjState, Session, SessionFactory};
use orm::value::{ColumnType, ConversionError, FromValue, SqlType, ToValue, Value};

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "items")]
struct Item {
    #[orm(primary_key)]
    id: i64,
    qty: i32,
    #[orm(sql_type = "VARCHAR(32)")]
    note: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "users")]
struct User {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(unique, sql_type = "VARCHAR(64)")]
    name: String,
    age: i32,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "accounts")]
struct Account {
    #[orm(primary_key)]
    id: i64,
    balance: i64,
    #[orm(version)]
    version: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "nodes")]
struct Node {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Node)]
    parent_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    label: String,
}

/// Two tables that reference each other (a department's manager is an
/// employee, an employee belongs to a department).
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "depts")]
struct Dept {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Emp)]
    manager_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "emps")]
struct Emp {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Dept)]
    dept_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    name: String,
}

struct Fixture {
    db: TestDb,
    engine: Engine,
    factory: SessionFactory,
}

fn setup(tag: &str) -> Fixture {
    setup_with(tag, "")
}

fn setup_with(tag: &str, options: &str) -> Fixture {
    let db = TestDb::new(tag);
    let engine = orm::create_engine(&db.url_with(options)).expect("engine");
    orm::schema::create_all(
        &engine,
        &[
            Item::table(),
            User::table(),
            Account::table(),
            Node::table(),
            Dept::table(),
            Emp::table(),
        ],
    )
    .expect("create tables");
    let factory = SessionFactory::new(engine.clone());
    Fixture {
        db,
        engine,
        factory,
    }
}

impl Fixture {
    fn items(&self) -> Vec<(i64, i32)> {
        self.db
            .rows("SELECT id, qty FROM items ORDER BY id")
            .into_iter()
            .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
            .collect()
    }

    fn users(&self) -> Vec<(String, i32)> {
        self.db
            .rows("SELECT name, age FROM users ORDER BY name")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].parse().unwrap()))
            .collect()
    }

    fn seed_items(&self, n: i64) {
        for id in 1..=n {
            self.db.exec(&format!(
                "INSERT INTO items (id, qty, note) VALUES ({id}, {id}, 'n{id}')"
            ));
        }
    }

    /// A raw connection to this test's database, outside the ORM.
    fn raw(&self) -> mysql::Conn {
        let mut conn = common::admin_conn();
        conn.query_drop(format!("USE `{}`", self.db.name)).unwrap();
        conn
    }
}

fn user(name: &str, age: i32) -> User {
    User {
        id: None,
        name: name.to_string(),
        age,
    }
}

// ----- 1. a flush that fails before sending SQL keeps everything ------------

#[test]
fn failed_autoflush_keeps_pending_updates() {
    let f = setup("fp_borrow");
    f.seed_items(2);
    let s = f.factory.session();
    let a = s.get::<Item>(1).unwrap().unwrap();
    let b = s.get::<Item>(2).unwrap().unwrap();
    a.write().unwrap().qty = 10;
    let capture = f.engine.capture_statements();
    {
        let mut g = b.write().unwrap();
        g.qty = 20;
        let err = s.query::<Item>().all().unwrap_err();
        assert!(
            matches!(err, Error::AlreadyBorrowed { table: "items", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("autoflush"), "{err}");
    }
    assert!(
        capture.take().is_empty(),
        "nothing may be sent by a flush that fails before its first statement"
    );
    // The session is not in the rollback-required state: the query works now.
    assert_eq!(s.query::<Item>().all().unwrap().len(), 2);
    s.commit().unwrap();
    assert_eq!(f.items(), vec![(1, 10), (2, 20)]);
}

#[test]
fn read_guard_alive_during_flush_sends_nothing_and_loses_nothing() {
    let f = setup("fp_readguard");
    f.db.exec("INSERT INTO accounts (id, balance, version) VALUES (1, 100, 1)");
    let s = f.factory.session();
    let acct = s.get::<Account>(1).unwrap().unwrap();
    acct.write().unwrap().balance = 150;
    let pending = s.add(user("ann", 30)).unwrap();
    let capture = f.engine.capture_statements();
    {
        // The flush must write the new version into `acct`: a live read
        // guard makes it fail before any SQL, not after the UPDATE.
        let _r = acct.read().unwrap();
        let err = s.flush().unwrap_err();
        assert!(matches!(err, Error::AlreadyBorrowed { .. }), "{err}");
    }
    {
        // The same for the generated key of a pending object.
        let _r = pending.read().unwrap();
        let err = s.flush().unwrap_err();
        assert!(matches!(err, Error::AlreadyBorrowed { .. }), "{err}");
    }
    assert!(capture.take().is_empty());
    assert_eq!(pending.state(), ObjState::Pending);
    s.flush().unwrap();
    assert_eq!(acct.read().unwrap().version, 2);
    assert!(pending.read().unwrap().id.is_some());
    // The in-memory version matches the row: a second change is no false StaleData.
    acct.write().unwrap().balance = 175;
    s.commit().unwrap();
    assert_eq!(
        f.db.rows("SELECT balance, version FROM accounts"),
        vec![vec!["175".to_string(), "3".to_string()]]
    );
    assert_eq!(f.users(), vec![("ann".to_string(), 30)]);
}

#[test]
fn flush_cycle_keeps_pending_inserts_and_updates() {
    let f = setup("fp_cycle");
    f.seed_items(1);
    let s = f.factory.session();
    let item = s.get::<Item>(1).unwrap().unwrap();
    item.write().unwrap().qty = 7;
    let a = s
        .add(Node {
            id: 1,
            parent_id: Some(2),
            label: "a".into(),
        })
        .unwrap();
    s.add(Node {
        id: 2,
        parent_id: Some(1),
        label: "b".into(),
    })
    .unwrap();
    let err = s.flush().unwrap_err();
    assert!(
        matches!(&err, Error::FlushCycle { models } if models == &vec!["Node"]),
        "{err}"
    );
    assert!(
        !err.to_string().contains('"'),
        "model names unquoted: {err}"
    );
    // Break the cycle; the flush now sends everything, the UPDATE included.
    a.write().unwrap().parent_id = None;
    s.commit().unwrap();
    assert_eq!(f.items(), vec![(1, 7)]);
    assert_eq!(
        f.db.rows("SELECT id, parent_id FROM nodes ORDER BY id"),
        vec![
            vec!["1".to_string(), "NULL".to_string()],
            vec!["2".to_string(), "1".to_string()]
        ]
    );
}

// ----- 2. the server ends the transaction ------------------------------------

/// Waits until `connection_id` is running its `FOR UPDATE` of row 1 (which
/// can only wait for the lock the session holds).
fn wait_for_lock_wait(f: &Fixture, connection_id: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Its FOR UPDATE is running (it waits for the lock, which InnoDB
        // may report in the optimizer's "Statistics" stage for a key lookup).
        let waiting = f.db.rows(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE ID = {connection_id} AND INFO LIKE 'SELECT id FROM items WHERE id = 1 FOR UPDATE'"
        ));
        if waiting[0][0] != "0" {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "the other transaction never blocked: {:?} {:?}",
                f.db.rows("SELECT trx_mysql_thread_id, trx_state, trx_query FROM information_schema.INNODB_TRX"),
                f.db.rows(&format!(
                    "SELECT ID, COMMAND, STATE, INFO FROM information_schema.PROCESSLIST WHERE ID = {connection_id}"
                ))
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The session holds row 1; another transaction, heavier (it changed rows),
/// holds row 2 and waits for row 1; the session then asks for row 2 and is
/// the deadlock victim. Returns the other side's thread.
fn deadlock_session(f: &Fixture, s: &Session) -> (Error, std::thread::JoinHandle<()>) {
    s.query_rows("SELECT id FROM items WHERE id = 1 FOR UPDATE", &[])
        .unwrap();
    let mut other = f.raw();
    let other_id: u64 = other
        .query_first("SELECT CONNECTION_ID()")
        .unwrap()
        .unwrap();
    let (locked_tx, locked_rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        other.query_drop("START TRANSACTION").unwrap();
        // One row per statement: a key lookup locks only that row (an IN
        // list on a 5-row table may be a scan that waits on row 1).
        for id in [2, 4, 5] {
            other
                .query_drop(format!("UPDATE items SET note = 'other' WHERE id = {id}"))
                .unwrap();
        }
        locked_tx.send(()).unwrap();
        // Blocks until the session's transaction is rolled back.
        let _ = other.query_drop("SELECT id FROM items WHERE id = 1 FOR UPDATE");
        other.query_drop("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    wait_for_lock_wait(f, other_id);
    let err = s
        .query_rows("SELECT id FROM items WHERE id = 2 FOR UPDATE", &[])
        .unwrap_err();
    (err, handle)
}

#[test]
fn deadlock_victim_session_requires_rollback_and_never_autocommits() {
    let f = setup("fp_deadlock");
    f.seed_items(5);
    let s = f.factory.session();
    // Work flushed before the deadlock: the server rolls it back.
    s.add(Item {
        id: 100,
        qty: 1,
        note: "before".into(),
    })
    .unwrap();
    s.flush().unwrap();
    let (err, other) = deadlock_session(&f, &s);
    assert_eq!(err.code(), Some(1213), "{err}");
    assert!(err.is_retryable(), "{err}");
    other.join().unwrap();
    // The session knows its transaction is gone.
    assert!(s.in_transaction(), "still needs its rollback()");
    let item = Item {
        id: 101,
        qty: 1,
        note: "after".into(),
    };
    let refused = s.add(item.clone()).unwrap_err();
    assert!(matches!(refused, Error::PendingRollback(_)), "{refused}");
    assert!(
        refused.to_string().contains("1213"),
        "names the cause: {refused}"
    );
    assert!(
        refused.to_string().contains("rolled back by the server"),
        "{refused}"
    );
    assert!(matches!(s.flush(), Err(Error::PendingRollback(_))));
    assert!(matches!(
        s.query_rows("SELECT 1", &[]),
        Err(Error::PendingRollback(_))
    ));
    assert!(matches!(s.commit(), Err(Error::PendingRollback(_))));
    assert!(matches!(s.get::<Item>(3), Err(Error::PendingRollback(_))));
    // Nothing of the session's reached the table, before or after.
    assert_eq!(
        f.db.rows("SELECT COUNT(*) FROM items WHERE id >= 100"),
        vec![vec!["0".to_string()]]
    );
    s.rollback().unwrap();
    s.add(item).unwrap();
    s.flush().unwrap();
    // Flushed, not committed: invisible to others until commit.
    assert_eq!(
        f.db.rows("SELECT COUNT(*) FROM items WHERE id >= 100"),
        vec![vec!["0".to_string()]]
    );
    s.rollback().unwrap();
    assert_eq!(
        f.db.rows("SELECT COUNT(*) FROM items WHERE id >= 100"),
        vec![vec!["0".to_string()]]
    );
}

#[test]
fn deadlock_inside_a_flush_and_inside_a_savepoint_needs_full_rollback() {
    let f = setup("fp_deadlock_sp");
    f.seed_items(5);
    let s = f.factory.session();
    let one = s.get::<Item>(3).unwrap().unwrap();
    one.write().unwrap().qty = 33;
    s.flush().unwrap();
    let nested = s.begin_nested().unwrap();
    let (err, other) = deadlock_session(&f, &s);
    assert_eq!(err.code(), Some(1213));
    other.join().unwrap();
    // Rolling back only the savepoint cannot help: the whole transaction is gone.
    nested.rollback().unwrap();
    assert!(matches!(s.flush(), Err(Error::PendingRollback(_))));
    s.rollback().unwrap();
    assert_eq!(
        one.read().unwrap().qty,
        3,
        "reloaded: the UPDATE was rolled back"
    );
    assert_eq!(f.items()[2], (3, 3));
}

#[test]
fn lock_wait_timeout_without_rollback_on_timeout_keeps_the_transaction() {
    let f = setup("fp_lockwait");
    f.seed_items(2);
    let mut other = f.raw();
    other.query_drop("START TRANSACTION").unwrap();
    other
        .query_drop("SELECT id FROM items WHERE id = 2 FOR UPDATE")
        .unwrap();
    let s = f.factory.session();
    s.execute("SET SESSION innodb_lock_wait_timeout = 1", &[])
        .unwrap();
    let one = s.get::<Item>(1).unwrap().unwrap();
    one.write().unwrap().qty = 11;
    s.flush().unwrap();
    let err = s
        .execute("UPDATE items SET qty = 22 WHERE id = 2", &[])
        .unwrap_err();
    assert_eq!(err.code(), Some(1205), "{err}");
    // innodb_rollback_on_timeout is off (the default): only the statement
    // was rolled back, the transaction and its flushed UPDATE live on.
    s.commit().unwrap();
    other.query_drop("ROLLBACK").unwrap();
    assert_eq!(f.items(), vec![(1, 11), (2, 2)]);
}

#[test]
fn implicit_commit_is_noticed_and_named() {
    let f = setup("fp_implicit");
    let s = f.factory.session();
    s.add(user("ann", 30)).unwrap();
    s.flush().unwrap();
    let err = s
        .execute("CREATE TABLE side_table (id INT PRIMARY KEY)", &[])
        .unwrap_err();
    assert!(matches!(err, Error::ImplicitCommit { .. }), "{err}");
    assert!(err.to_string().contains("CREATE TABLE side_table"), "{err}");
    // The server committed the flushed INSERT with the DDL.
    assert_eq!(f.users(), vec![("ann".to_string(), 30)]);
    // Nothing more runs in that (finished) transaction.
    let refused = s.add(user("bob", 40)).unwrap_err();
    assert!(matches!(refused, Error::PendingRollback(_)), "{refused}");
    s.rollback().unwrap();
    s.add(user("bob", 40)).unwrap();
    s.commit().unwrap();
    assert_eq!(
        f.users(),
        vec![("ann".to_string(), 30), ("bob".to_string(), 40)]
    );
}

#[test]
fn plain_connection_refuses_statements_after_a_deadlock_until_rollback() {
    let f = setup("fp_conn_deadlock");
    f.seed_items(5);
    let mut conn = f.engine.connect().unwrap();
    conn.begin().unwrap();
    conn.query_rows("SELECT id FROM items WHERE id = 1 FOR UPDATE", &[])
        .unwrap();
    let mut other = f.raw();
    let other_id: u64 = other
        .query_first("SELECT CONNECTION_ID()")
        .unwrap()
        .unwrap();
    let handle = std::thread::spawn(move || {
        other.query_drop("START TRANSACTION").unwrap();
        for id in [2, 4, 5] {
            other
                .query_drop(format!("UPDATE items SET note = 'x' WHERE id = {id}"))
                .unwrap();
        }
        let _ = other.query_drop("SELECT id FROM items WHERE id = 1 FOR UPDATE");
        other.query_drop("COMMIT").unwrap();
    });
    wait_for_lock_wait(&f, other_id);
    let err = conn
        .query_rows("SELECT id FROM items WHERE id = 2 FOR UPDATE", &[])
        .unwrap_err();
    assert_eq!(err.code(), Some(1213));
    handle.join().unwrap();
    assert!(conn.needs_rollback());
    let refused = conn
        .execute(
            "INSERT INTO items (id, qty, note) VALUES (200, 1, 'x')",
            &[],
        )
        .unwrap_err();
    assert!(matches!(refused, Error::TransactionEnded(_)), "{refused}");
    assert!(
        refused.is_retryable(),
        "keeps the deadlock's kind: {refused}"
    );
    assert!(matches!(conn.commit(), Err(Error::TransactionEnded(_))));
    conn.rollback().unwrap();
    assert!(!conn.needs_rollback());
    assert_eq!(
        f.db.rows("SELECT COUNT(*) FROM items WHERE id = 200"),
        vec![vec!["0".to_string()]]
    );
}

// ----- 3, 4, 10. savepoints ---------------------------------------------------

#[test]
fn savepoint_skips_integrity_errors_and_goes_on() {
    let f = setup("fp_sp_skip");
    let s = f.factory.session();
    let mut skipped = Vec::new();
    for name in ["a", "b", "a", "c", "b"] {
        let result = s.nested(|s| {
            s.add(user(name, 1))?;
            Ok(())
        });
        if let Err(e) = result {
            assert!(e.is_integrity(), "{e}");
            skipped.push(name);
        }
    }
    assert_eq!(skipped, ["a", "b"]);
    assert!(!s.in_nested_transaction());
    s.commit().unwrap();
    assert_eq!(
        f.users(),
        vec![
            ("a".to_string(), 1),
            ("b".to_string(), 1),
            ("c".to_string(), 1)
        ]
    );
}

#[test]
fn failed_nested_commit_rolls_the_savepoint_back_and_keeps_the_outer_work() {
    let f = setup("fp_sp_commit");
    let s = f.factory.session();
    s.add(user("outer", 1)).unwrap();
    let nested = s.begin_nested().unwrap();
    let dup = s.add(user("outer", 2)).unwrap();
    let err = nested.commit().unwrap_err();
    assert!(err.is_integrity(), "{err}");
    assert!(!s.in_nested_transaction(), "no savepoint is left behind");
    assert_eq!(dup.state(), ObjState::Transient);
    s.add(user("later", 3)).unwrap();
    s.commit().unwrap();
    assert_eq!(
        f.users(),
        vec![("later".to_string(), 3), ("outer".to_string(), 1)]
    );
}

#[test]
fn flush_failing_inside_a_savepoint_expires_what_it_changed() {
    let f = setup("fp_sp_expire");
    f.db.exec("INSERT INTO users (id, name, age) VALUES (1, 'ann', 30), (2, 'bob', 40)");
    let s = f.factory.session();
    let ann = s.get::<User>(1).unwrap().unwrap();
    let bob = s.get::<User>(2).unwrap().unwrap();
    bob.write().unwrap().age = 41; // before the savepoint: flushed by begin_nested
    let nested = s.begin_nested().unwrap();
    ann.write().unwrap().age = 31;
    s.add(user("bob", 1)).unwrap();
    let err = s.flush().unwrap_err();
    assert!(err.is_integrity(), "{err}");
    // The UPDATE of ann was in the failed flush: ann is expired, not clean
    // with a value that was never stored.
    assert!(ann.is_expired());
    assert!(matches!(s.flush(), Err(Error::PendingRollback(_))));
    nested.rollback().unwrap();
    assert_eq!(ann.read().unwrap().age, 30);
    assert_eq!(bob.read().unwrap().age, 41);
    s.commit().unwrap();
    assert_eq!(
        f.users(),
        vec![("ann".to_string(), 30), ("bob".to_string(), 41)]
    );
}

#[test]
fn begin_nested_that_cannot_get_a_connection_leaves_no_savepoint() {
    let f = setup_with(
        "fp_sp_timeout",
        "pool_size=1&max_overflow=0&pool_timeout=0.1",
    );
    let s = f.factory.session();
    let held = f.engine.connect().unwrap();
    // No connection yet: the SAVEPOINT cannot be sent.
    let err = s.begin_nested().err().expect("no connection to be had");
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err}");
    assert!(!s.in_nested_transaction());
    // With pending work, begin_nested's flush cannot get one either: nothing
    // reached the server, so nothing is lost and no rollback is required.
    let ann = s.add(user("ann", 30)).unwrap();
    let err = s.begin_nested().err().expect("no connection to be had");
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err}");
    assert!(!s.in_nested_transaction());
    assert_eq!(ann.state(), ObjState::Pending);
    drop(held);
    s.commit().unwrap();
    assert_eq!(f.users(), vec![("ann".to_string(), 30)]);
}

// ----- 6. tables that reference each other ------------------------------------

#[test]
fn updates_to_mutually_referencing_tables_need_no_order() {
    let f = setup("fp_mutual");
    f.db.exec("INSERT INTO depts (id, manager_id, name) VALUES (1, NULL, 'eng')");
    f.db.exec("INSERT INTO emps (id, dept_id, name) VALUES (1, 1, 'ann'), (2, 1, 'bob')");
    f.db.exec("UPDATE depts SET manager_id = 1 WHERE id = 1");
    let s = f.factory.session();
    let dept = s.get::<Dept>(1).unwrap().unwrap();
    let bob = s.get::<Emp>(2).unwrap().unwrap();
    dept.write().unwrap().manager_id = Some(2);
    bob.write().unwrap().name = "robert".into();
    s.commit().unwrap();
    assert_eq!(
        f.db.rows("SELECT manager_id FROM depts"),
        vec![vec!["2".to_string()]]
    );
    assert_eq!(
        f.db.rows("SELECT name FROM emps WHERE id = 2"),
        vec![vec!["robert".to_string()]]
    );
    // An INSERT into one of them with UPDATEs of the other orders fine too.
    let s = f.factory.session();
    let dept = s.get::<Dept>(1).unwrap().unwrap();
    dept.write().unwrap().name = "engineering".into();
    s.add(Emp {
        id: 3,
        dept_id: Some(1),
        name: "cy".into(),
    })
    .unwrap();
    s.commit().unwrap();
    assert_eq!(
        f.db.rows("SELECT COUNT(*) FROM emps"),
        vec![vec!["3".to_string()]]
    );
    // Inserting into both, each referencing the other, cannot be ordered.
    let s = f.factory.session();
    s.add(Dept {
        id: 2,
        manager_id: Some(4),
        name: "ops".into(),
    })
    .unwrap();
    s.add(Emp {
        id: 4,
        dept_id: Some(2),
        name: "dee".into(),
    })
    .unwrap();
    let err = s.flush().unwrap_err();
    assert!(
        matches!(&err, Error::FlushCycle { models } if models == &vec!["Dept", "Emp"]),
        "{err}"
    );
}

// ----- 7, 8, 9, 11. keys, row switches, expunge --------------------------------

#[test]
fn primary_key_change_rolled_back_restores_the_old_key() {
    let f = setup("fp_keyswitch");
    f.seed_items(1);
    let s = f.factory.session();
    let item = s.get::<Item>(1).unwrap().unwrap();
    item.write().unwrap().id = 10;
    s.flush().unwrap();
    assert!(s.get::<Item>(10).unwrap().unwrap().ptr_eq(&item));
    s.rollback().unwrap();
    assert_eq!(item.read().unwrap().id, 1, "reloaded under its old key");
    assert!(s.get::<Item>(1).unwrap().unwrap().ptr_eq(&item));
    assert!(s.get::<Item>(10).unwrap().is_none());
    assert_eq!(f.items(), vec![(1, 1)]);
}

#[test]
fn primary_key_change_in_a_rolled_back_savepoint_is_reverted() {
    let f = setup("fp_keyswitch_sp");
    f.seed_items(1);
    let s = f.factory.session();
    let item = s.get::<Item>(1).unwrap().unwrap();
    item.write().unwrap().qty = 5;
    s.flush().unwrap();
    s.nested(|s| {
        item.write()?.id = 10;
        s.flush()?;
        Err::<(), _>(Error::invalid("changed my mind"))
    })
    .unwrap_err();
    assert_eq!(item.read().unwrap().id, 1);
    assert_eq!(item.read().unwrap().qty, 5);
    s.commit().unwrap();
    assert_eq!(f.items(), vec![(1, 5)]);
}

#[test]
fn row_switch_sends_changes_made_before_delete() {
    let f = setup("fp_rowswitch");
    f.db.exec("INSERT INTO users (id, name, age) VALUES (1, 'ann', 30)");
    let s = f.factory.session();
    let old = s.get::<User>(1).unwrap().unwrap();
    old.write().unwrap().age = 99;
    s.delete(&old).unwrap();
    s.add(User {
        id: Some(1),
        name: "ann".into(),
        age: 99,
    })
    .unwrap();
    s.commit().unwrap();
    assert_eq!(f.users(), vec![("ann".to_string(), 99)]);
}

#[test]
fn detached_object_cannot_take_the_key_of_a_deleted_one() {
    let f = setup("fp_detached_key");
    f.db.exec("INSERT INTO users (id, name, age) VALUES (1, 'ann', 30)");
    let other = f.factory.session();
    let detached = other.get::<User>(1).unwrap().unwrap();
    other.close();
    assert_eq!(detached.state(), ObjState::Detached);
    let s = f.factory.session();
    let ann = s.get::<User>(1).unwrap().unwrap();
    s.delete(&ann).unwrap();
    let err = s.add(&detached).unwrap_err();
    assert!(err.to_string().contains("already present"), "{err}");
    assert_eq!(detached.state(), ObjState::Detached);
    s.commit().unwrap();
    assert!(f.users().is_empty());
}

#[test]
fn expunged_deleted_object_stays_out_after_rollback() {
    let f = setup("fp_expunge_deleted");
    f.db.exec("INSERT INTO users (id, name, age) VALUES (1, 'ann', 30)");
    let s = f.factory.session();
    let ann = s.get::<User>(1).unwrap().unwrap();
    s.delete(&ann).unwrap();
    s.flush().unwrap();
    assert_eq!(ann.state(), ObjState::Deleted);
    s.expunge(&ann).unwrap();
    s.rollback().unwrap();
    assert_eq!(ann.state(), ObjState::Detached);
    assert!(!s.contains(&ann));
    assert_eq!(s.identity_count().unwrap(), 0);
    let again = s.get::<User>(1).unwrap().unwrap();
    assert!(!again.ptr_eq(&ann));
    assert_eq!(f.users(), vec![("ann".to_string(), 30)]);
}

// ----- SQLAlchemy's RollbackRecoverTest / AutoExpireTest ------------------------

#[test]
fn pk_violation_then_recover() {
    // test_transaction.py RollbackRecoverTest.test_pk_violation
    let f = setup("fp_recover");
    let s = f.factory.session();
    let ed = s.add(user("ed", 1)).unwrap();
    s.commit().unwrap();
    ed.write().unwrap().age = 2; // dirty
    let dup = s.add(user("ed", 3)).unwrap();
    let err = s.commit().unwrap_err();
    assert!(err.is_integrity(), "{err}");
    // Restored at once: the pending duplicate is transient, ed expired.
    assert_eq!(dup.state(), ObjState::Transient);
    for _ in 0..3 {
        // test_preserve_flush_error: the same error each time, naming the cause.
        let again = s.commit().unwrap_err();
        assert!(matches!(again, Error::PendingRollback(_)), "{again}");
        let text = again.to_string();
        assert!(text.contains("previous error during flush"), "{text}");
        assert!(text.contains("Duplicate entry"), "{text}");
    }
    s.rollback().unwrap();
    assert_eq!(ed.read().unwrap().age, 1);
    ed.write().unwrap().age = 4;
    s.commit().unwrap();
    assert_eq!(f.users(), vec![("ed".to_string(), 4)]);
}

#[test]
fn pk_violation_with_savepoint_then_recover() {
    // RollbackRecoverTest.test_pk_violation_with_savepoint
    let f = setup("fp_recover_sp");
    let s = f.factory.session();
    let ed = s.add(user("ed", 1)).unwrap();
    s.commit().unwrap();
    let nested = s.begin_nested().unwrap();
    ed.write().unwrap().age = 2;
    s.add(user("ed", 3)).unwrap();
    assert!(s.commit().unwrap_err().is_integrity());
    drop(nested); // rolls the savepoint back
    assert!(!s.in_nested_transaction());
    assert_eq!(ed.read().unwrap().age, 1);
    ed.write().unwrap().age = 5;
    s.commit().unwrap();
    assert_eq!(f.users(), vec![("ed".to_string(), 5)]);
}

#[test]
fn deleted_then_rolled_back_is_persistent_again() {
    // AutoExpireTest.test_update_deleted_on_rollback / test_trans_deleted_cleared_on_rollback
    let f = setup("fp_deleted_rb");
    f.db.exec("INSERT INTO users (id, name, age) VALUES (1, 'ann', 30)");
    let s = f.factory.session();
    let ann = s.get::<User>(1).unwrap().unwrap();
    s.delete(&ann).unwrap();
    s.flush().unwrap();
    assert_eq!(f.users().len(), 1, "not committed yet");
    s.rollback().unwrap();
    assert_eq!(ann.state(), ObjState::Persistent);
    assert!(s.contains(&ann));
    assert!(!s.is_deleted(&ann));
    ann.write().unwrap().age = 31;
    s.commit().unwrap();
    assert_eq!(f.users(), vec![("ann".to_string(), 31)]);
}

#[test]
fn stale_version_fails_the_flush_and_leaves_rows_alone() {
    // test_versioning.py: a concurrent UPDATE makes ours StaleData; nothing half-done.
    let f = setup("fp_stale");
    f.db.exec("INSERT INTO accounts (id, balance, version) VALUES (1, 100, 1), (2, 200, 1)");
    let s = f.factory.session();
    let a = s.get::<Account>(1).unwrap().unwrap();
    let b = s.get::<Account>(2).unwrap().unwrap();
    f.db.exec("UPDATE accounts SET balance = 250, version = 2 WHERE id = 2");
    a.write().unwrap().balance = 110;
    b.write().unwrap().balance = 210;
    let err = s.commit().unwrap_err();
    assert!(matches!(err, Error::StaleData { .. }), "{err}");
    assert!(
        err.to_string().contains("(key 2)"),
        "names the stale row: {err}"
    );
    s.rollback().unwrap();
    assert_eq!(
        f.db.rows("SELECT id, balance, version FROM accounts ORDER BY id"),
        vec![
            vec!["1".to_string(), "100".to_string(), "1".to_string()],
            vec!["2".to_string(), "250".to_string(), "2".to_string()]
        ]
    );
    assert_eq!(b.read().unwrap().version, 2, "reloaded after rollback");
    b.write().unwrap().balance = 260;
    s.commit().unwrap();
    assert_eq!(
        f.db.rows("SELECT balance, version FROM accounts WHERE id = 2"),
        vec![vec!["260".to_string(), "3".to_string()]]
    );
}

// ----- 12. inspection from inside a session operation ---------------------------

thread_local! {
    static PROBE_SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
    static PROBE_SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// A field type whose decoding looks at the session it is loaded into.
#[derive(Debug, Clone, PartialEq)]
struct Probe(i32);

impl ToValue for Probe {
    fn to_value(&self) -> Value {
        self.0.to_value()
    }
}

impl FromValue for Probe {
    fn from_value(value: Value) -> Result<Self, ConversionError> {
        PROBE_SESSION.with(|s| {
            if let Some(s) = s.borrow().as_ref() {
                let seen = format!(
                    "in_tx={} nested={} count_err={} new_err={} debug={:?}",
                    s.in_transaction(),
                    s.in_nested_transaction(),
                    s.identity_count().is_err(),
                    s.new_objects::<Probed>().is_err(),
                    s
                );
                PROBE_SEEN.with(|p| p.borrow_mut().push(seen));
            }
        });
        Ok(Probe(i32::from_value(value)?))
    }
}

impl SqlType for Probe {
    const COLUMN_TYPE: ColumnType = <i32 as SqlType>::COLUMN_TYPE;
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "probed")]
struct Probed {
    #[orm(primary_key)]
    id: i64,
    probe: Probe,
}

#[test]
fn inspecting_the_session_from_inside_its_operation_does_not_panic() {
    let f = setup("fp_probe");
    orm::schema::create_all(&f.engine, &[Probed::table()]).unwrap();
    f.db.exec("INSERT INTO probed (id, probe) VALUES (1, 7)");
    let s = f.factory.session();
    PROBE_SESSION.with(|p| *p.borrow_mut() = Some(s.clone()));
    let loaded = s.get::<Probed>(1).unwrap().unwrap();
    PROBE_SESSION.with(|p| *p.borrow_mut() = None);
    assert_eq!(loaded.read().unwrap().probe, Probe(7));
    let seen = PROBE_SEEN.with(|p| p.borrow().clone());
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("in_tx=true nested=false count_err=true new_err=true debug="),
        "{seen:?}"
    );
    assert!(seen[0].contains("busy"), "{seen:?}");
}

// ----- issue 9: the key accessor never touches the database -----------------

#[test]
fn key_of_committed_objects_needs_no_select() {
    let f = setup("fp_key");
    let s = f.factory.session();
    let objs = s
        .add_all((0..5).map(|i| user(&format!("u{i}"), i)))
        .unwrap();
    let pending = objs[0].key::<i64>().unwrap_err();
    assert!(pending.to_string().contains("flush()"), "{pending}");
    s.commit().unwrap();
    assert!(objs.iter().all(|o| o.is_expired()));
    let capture = f.engine.capture_statements();
    let ids: Vec<i64> = objs.iter().map(|o| o.key::<i64>().unwrap()).collect();
    assert!(capture.take().is_empty(), "no SELECT to read a key");
    assert!(objs.iter().all(|o| o.is_expired()), "still expired");
    let in_db: Vec<i64> =
        f.db.rows("SELECT id FROM users ORDER BY name")
            .into_iter()
            .map(|r| r[0].parse().unwrap())
            .collect();
    assert_eq!(ids, in_db);
    // A wrong shape is a clear error, not a panic.
    let err = objs[0].key::<(i64, i64)>().unwrap_err();
    assert!(err.to_string().contains("tuple"), "{err}");
    let err = objs[0].key::<String>().unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    // Detached by close(): still answers.
    s.close();
    assert_eq!(objs[1].key::<i64>().unwrap(), ids[1]);
}

#[test]
fn stale_merge_says_what_happened() {
    let f = setup("fp_merge_stale");
    f.db.exec("INSERT INTO accounts (id, balance, version) VALUES (1, 100, 1)");
    let s = f.factory.session();
    let stale = Account {
        id: 1,
        balance: 5,
        version: 0,
    };
    let err = s.merge(&stale).unwrap_err();
    assert!(matches!(err, Error::StaleData { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("merge() of a `accounts` value with key 1"),
        "{text}"
    );
    assert!(!text.contains("merge statement"), "{text}");
    s.commit().unwrap();
    assert_eq!(
        f.db.rows("SELECT balance, version FROM accounts"),
        vec![vec!["100".to_string(), "1".to_string()]]
    );
}

/// A model whose primary key is its name, as in SQLAlchemy's key-switch tests.
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "named")]
struct Named {
    #[orm(primary_key, sql_type = "VARCHAR(16)")]
    name: String,
    n: i32,
}

fn named(name: &str) -> Named {
    Named {
        name: name.into(),
        n: 0,
    }
}

fn named_setup(tag: &str, names: &[&str]) -> (Fixture, Session, Vec<Obj<Named>>) {
    let f = setup(tag);
    orm::schema::create_all(&f.engine, &[Named::table()]).unwrap();
    let s = f.factory.session();
    let objs = s.add_all(names.iter().map(|n| named(n))).unwrap();
    s.commit().unwrap();
    (f, s, objs)
}

fn named_rows(f: &Fixture) -> Vec<String> {
    f.db.rows("SELECT name FROM named ORDER BY name")
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

#[test]
fn key_replaced_by_update_is_restored_on_rollback() {
    // test_transaction.py AutoExpireTest.test_key_replaced_by_update
    let (f, s, objs) = named_setup("fp_key_repl", &["u1", "u2"]);
    let (u1, u2) = (&objs[0], &objs[1]);
    s.delete(u1).unwrap();
    s.flush().unwrap();
    u2.write().unwrap().name = "u1".into();
    s.flush().unwrap();
    assert!(!s.contains(u1) || u1.state() == ObjState::Deleted);
    assert!(s.get::<Named>("u1").unwrap().unwrap().ptr_eq(u2));
    s.rollback().unwrap();
    assert!(s.contains(u1) && u1.state() == ObjState::Persistent);
    assert!(s.contains(u2));
    assert!(s.get::<Named>("u1").unwrap().unwrap().ptr_eq(u1));
    assert!(s.get::<Named>("u2").unwrap().unwrap().ptr_eq(u2));
    assert_eq!(u2.read().unwrap().name, "u2");
    assert_eq!(named_rows(&f), ["u1", "u2"]);
}

#[test]
fn multiple_key_replacements_are_restored_on_rollback() {
    // AutoExpireTest.test_multiple_key_replaced_by_update
    let (f, s, objs) = named_setup("fp_key_multi", &["u1", "u2", "u3"]);
    let (u1, u2, u3) = (&objs[0], &objs[1], &objs[2]);
    s.delete(u1).unwrap();
    s.delete(u2).unwrap();
    s.flush().unwrap();
    u3.write().unwrap().name = "u1".into();
    s.flush().unwrap();
    u3.write().unwrap().name = "u2".into();
    s.flush().unwrap();
    s.rollback().unwrap();
    for (key, obj) in [("u1", u1), ("u2", u2), ("u3", u3)] {
        assert!(s.contains(obj), "{key}");
        assert!(
            s.get::<Named>(key).unwrap().unwrap().ptr_eq(obj),
            "{key} maps to its own object"
        );
        assert_eq!(obj.read().unwrap().name, key);
    }
    assert_eq!(named_rows(&f), ["u1", "u2", "u3"]);
}

#[test]
fn key_replaced_inside_a_released_savepoint_is_undone_by_rollback() {
    // AutoExpireTest.test_key_replaced_by_update_nested
    let (f, s, objs) = named_setup("fp_key_nested", &["u1"]);
    let u1 = &objs[0];
    let u2 = s
        .nested(|s| {
            let u2 = s.add(named("u2"))?;
            s.flush()?;
            u2.write()?.name = "u3".into();
            Ok(u2)
        })
        .unwrap();
    assert!(s.get::<Named>("u3").unwrap().unwrap().ptr_eq(&u2));
    s.rollback().unwrap();
    assert!(s.contains(u1));
    assert!(!s.contains(&u2));
    assert_eq!(u2.state(), ObjState::Transient);
    assert!(s.get::<Named>("u1").unwrap().unwrap().ptr_eq(u1));
    assert_eq!(named_rows(&f), ["u1"]);
}

// ----- issue 13: retrying a unit of work ---------------------------------------

fn db_error(code: u16, kind: orm::DbErrorKind) -> Error {
    Error::Database(orm::DbError {
        kind,
        code: Some(code),
        sqlstate: None,
        message: format!("error {code}"),
    })
}

#[test]
fn retrying_reruns_a_deadlock_victim_from_a_fresh_session() {
    let f = setup("fp_retry");
    f.seed_items(5);
    let attempts = std::cell::Cell::new(0);
    let policy = orm::RetryPolicy {
        base_delay: Duration::from_millis(1),
        ..Default::default()
    };
    let inserted = f
        .factory
        .retrying(&policy, |s| {
            attempts.set(attempts.get() + 1);
            s.add(Item {
                id: 300,
                qty: attempts.get(),
                note: "retried".into(),
            })?;
            s.flush()?;
            if attempts.get() == 1 {
                let (err, other) = deadlock_session(&f, s);
                other.join().unwrap();
                return Err(err);
            }
            Ok(attempts.get())
        })
        .unwrap();
    assert_eq!(inserted, 2);
    assert_eq!(f.engine.stats().unit_of_work_retries, 1);
    // The first attempt's INSERT died with its transaction; the second's is there, once.
    assert_eq!(
        f.db.rows("SELECT qty FROM items WHERE id = 300"),
        vec![vec!["2".to_string()]]
    );
}

#[test]
fn retrying_stops_at_max_attempts_and_never_retries_what_is_unsafe() {
    let f = setup("fp_retry_policy");
    let policy = orm::RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        ..Default::default()
    };
    let attempts = std::cell::Cell::new(0);
    let err = f
        .factory
        .retrying(&policy, |_| -> orm::Result<()> {
            attempts.set(attempts.get() + 1);
            Err(db_error(1213, orm::DbErrorKind::Retryable))
        })
        .unwrap_err();
    assert_eq!(err.code(), Some(1213));
    assert_eq!(attempts.get(), 3);
    // A duplicate key is not retried.
    attempts.set(0);
    let err = f
        .factory
        .retrying(&policy, |_| -> orm::Result<()> {
            attempts.set(attempts.get() + 1);
            Err(db_error(1062, orm::DbErrorKind::Integrity))
        })
        .unwrap_err();
    assert!(err.is_integrity());
    assert_eq!(attempts.get(), 1);
    // A COMMIT with an unknown outcome only when the work is idempotent.
    let unknown = Error::CommitOutcomeUnknown(orm::DbError {
        kind: orm::DbErrorKind::ConnectionLost,
        code: None,
        sqlstate: None,
        message: "lost".into(),
    });
    assert!(!policy.should_retry(&unknown));
    let idempotent = orm::RetryPolicy {
        idempotent: true,
        ..policy
    };
    assert!(idempotent.should_retry(&unknown));
    // Galera's "node not ready" and a lost connection before COMMIT are retried.
    assert!(policy.should_retry(&db_error(1047, orm::DbErrorKind::Other)));
    assert!(policy.should_retry(&db_error(2013, orm::DbErrorKind::ConnectionLost)));
    assert!(
        policy.should_retry(&Error::PendingRollback(std::sync::Arc::new(db_error(
            1213,
            orm::DbErrorKind::Retryable
        ))))
    );
    assert_eq!(f.engine.stats().unit_of_work_retries, 2);
}
