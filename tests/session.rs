//! The Session against a real MariaDB and an SQLite file (one body, two
//! backends: `mysql::name` and `sqlite::name`): identity map, states,
//! autoflush, the unit of work's SQL, transactions, savepoints, optimistic
//! locking. Tests about MySQL itself (a killed connection,
//! `max_allowed_packet`) run on MariaDB only.
//! SQLAlchemy's test_session.py / test_transaction.py / test_unitofworkv2.py /
//! test_versioning.py / test_expire.py behaviours, re-expressed.

mod common;

use common::{Backend, TestDb};
use orm::prelude::*;
use orm::session::{ObjState, Session, SessionFactory};

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "users")]
struct User {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(unique, sql_type = "VARCHAR(64)")]
    name: String,
    email: Option<String>,
    age: i32,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "authors")]
struct Author {
    #[orm(primary_key)]
    id: i64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "books")]
struct Book {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Author)]
    author_id: i64,
    title: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "reviews")]
struct Review {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Book)]
    book_id: i64,
    stars: u8,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "nodes")]
struct Node {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Node)]
    parent_id: Option<i64>,
    label: String,
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

fn user(name: &str, age: i32) -> User {
    User {
        id: None,
        name: name.to_string(),
        email: None,
        age,
    }
}

struct Fixture {
    db: TestDb,
    engine: Engine,
    factory: SessionFactory,
}

fn setup(backend: Backend, tag: &str) -> Fixture {
    setup_with(backend, tag, "")
}

fn setup_with(backend: Backend, tag: &str, options: &str) -> Fixture {
    let db = TestDb::on(backend, tag);
    let engine = orm::create_engine(&db.url_with(options)).expect("engine");
    orm::schema::create_all(
        &engine,
        &[
            User::table(),
            Author::table(),
            Book::table(),
            Review::table(),
            Node::table(),
            Account::table(),
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
    fn checked_out(&self) -> usize {
        self.engine.status().checked_out
    }
    fn count(&self, table: &str) -> usize {
        self.db.rows(&format!("SELECT COUNT(*) FROM `{table}`"))[0][0]
            .parse()
            .unwrap()
    }
}

fn dml(statements: &[String]) -> Vec<&String> {
    statements
        .iter()
        .filter(|s| {
            !s.starts_with("BEGIN") && !s.starts_with("COMMIT") && !s.starts_with("ROLLBACK")
        })
        .collect()
}

fn identity_map_returns_the_same_handle_and_the_second_get_sends_nothing(b: Backend) {
    let fx = setup(b, "s_ident");
    fx.db
        .exec("INSERT INTO users (name, age) VALUES ('ann', 30)");
    let s = fx.factory.session();
    let capture = fx.engine.capture_statements();
    let a = s.get::<User>(1).unwrap().expect("row 1");
    let after_first = capture.take();
    assert!(
        after_first.iter().any(|q| q.starts_with("SELECT")),
        "{after_first:?}"
    );
    let b = s.get::<User>(1).unwrap().expect("row 1");
    assert!(a.ptr_eq(&b), "two gets must return the same object");
    assert!(capture.take().is_empty(), "the second get must send no SQL");
    // A query returning the same row also returns the same handle, with unflushed changes kept.
    a.write().unwrap().age = 99;
    let c = s
        .no_autoflush(|s| s.query::<User>().filter(User::NAME.eq("ann")).one())
        .unwrap();
    assert!(c.ptr_eq(&a));
    assert_eq!(c.read().unwrap().age, 99);
    assert!(s.get::<User>(42).unwrap().is_none());
    drop(s);
    assert_eq!(fx.checked_out(), 0);
}

/// The identity map at scale: thousands of loaded objects, consecutive
/// keys and keys that agree in their low bits (the map hashes one-integer
/// keys with locality), each found again by `get` without SQL; a key
/// changed by a flush moves the object, and a rollback moves it back.
fn many_loaded_objects_are_found_by_key_and_follow_key_changes(b: Backend) {
    let fx = setup(b, "s_ident_many");
    let s = fx.factory.session();
    for i in 0..3000i64 {
        s.add(Author {
            id: i + 1,
            name: format!("consecutive {i}"),
        })
        .unwrap();
        s.add(Author {
            id: (i + 1) << 20,
            name: format!("spread {i}"),
        })
        .unwrap();
    }
    s.commit().unwrap();
    s.close();

    let s = fx.factory.session();
    let loaded = s.query::<Author>().all().unwrap();
    assert_eq!(loaded.len(), 6000);
    let capture = fx.engine.capture_statements();
    for obj in &loaded {
        let id = obj.read().unwrap().id;
        let again = s.get::<Author>(id).unwrap().expect("loaded");
        assert!(again.ptr_eq(obj), "get({id}) returned another object");
    }
    assert!(
        capture.take().is_empty(),
        "every get came from the identity map"
    );

    // A primary key changed by a flush: the object moves to its new key.
    let moved = s.get::<Author>(5i64).unwrap().expect("author 5");
    moved.write().unwrap().id = 999_999_999;
    s.flush().unwrap();
    let flushed = capture.take();
    assert!(
        flushed.iter().any(|q| q.starts_with("UPDATE")),
        "the key change is an UPDATE: {flushed:?}"
    );
    let found = s.get::<Author>(999_999_999i64).unwrap().expect("new key");
    assert!(found.ptr_eq(&moved));
    assert!(
        capture.take().is_empty(),
        "the new key is in the identity map"
    );
    assert!(
        s.get::<Author>(5i64).unwrap().is_none(),
        "the old key is gone"
    );
    // Rolled back: the object is under its old key again, and the row too.
    s.rollback().unwrap();
    let back = s
        .get::<Author>(5i64)
        .unwrap()
        .expect("old key after rollback");
    assert!(back.ptr_eq(&moved));
    assert_eq!(back.read().unwrap().id, 5);
    assert!(s.get::<Author>(999_999_999i64).unwrap().is_none());
    drop(s);
    assert_eq!(
        fx.db.rows("SELECT COUNT(*) FROM authors WHERE id = 5"),
        vec![vec!["1"]]
    );
    assert_eq!(
        fx.db
            .rows("SELECT COUNT(*) FROM authors WHERE id = 999999999"),
        vec![vec!["0"]]
    );
    assert_eq!(fx.count("authors"), 6000);
}

fn states_follow_sqlalchemy(b: Backend) {
    let fx = setup(b, "s_states");
    let s = fx.factory.session();
    let obj = orm::session::Obj::new(user("bob", 20));
    assert_eq!(obj.state(), ObjState::Transient);
    // Deleting a transient object is an error that says so.
    let err = s.delete(&obj).unwrap_err();
    assert!(err.to_string().contains("not persisted"), "{err}");

    let obj = s.add(&obj).unwrap();
    assert_eq!(obj.state(), ObjState::Pending);
    assert!(s.is_new(&obj));
    assert!(s.in_transaction(), "add autobegins a (logical) transaction");
    assert_eq!(fx.checked_out(), 0, "no connection before the first SQL");

    s.flush().unwrap();
    assert_eq!(obj.state(), ObjState::Persistent);
    let id = obj.read().unwrap().id.expect("generated key written back");

    // Another live session cannot take it.
    let other = fx.factory.session();
    let err = other.add(&obj).unwrap_err();
    assert!(err.to_string().contains("another session"), "{err}");

    // A second object with the same key cannot join.
    let twin = User {
        id: Some(id),
        ..user("bob2", 1)
    };
    let err = s.add(twin).unwrap_err();
    assert!(err.to_string().contains("already present"), "{err}");

    s.delete(&obj).unwrap();
    assert!(s.is_deleted(&obj));
    s.flush().unwrap();
    assert_eq!(obj.state(), ObjState::Deleted);
    let err = s.add(&obj).unwrap_err();
    assert!(err.to_string().contains("deleted"), "{err}");
    s.rollback().unwrap();
    assert_eq!(
        obj.state(),
        ObjState::Transient,
        "inserted in the rolled-back transaction"
    );

    // Persistent -> deleted -> detached at commit.
    let carl = s.add(user("carl", 40)).unwrap();
    s.commit().unwrap();
    assert_eq!(carl.state(), ObjState::Persistent);
    s.delete(&carl).unwrap();
    s.commit().unwrap();
    assert_eq!(carl.state(), ObjState::Detached);
    assert_eq!(fx.count("users"), 0);

    // Deleted then rolled back: persistent again, row still there.
    let dan = s.add(user("dan", 50)).unwrap();
    s.commit().unwrap();
    s.delete(&dan).unwrap();
    s.flush().unwrap();
    assert_eq!(dan.state(), ObjState::Deleted);
    s.rollback().unwrap();
    assert_eq!(dan.state(), ObjState::Persistent);
    assert_eq!(dan.read().unwrap().name, "dan");
    assert_eq!(fx.count("users"), 1);

    // expunge and close detach.
    s.expunge(&dan).unwrap();
    assert_eq!(dan.state(), ObjState::Detached);
    let dan = s.add(&dan).unwrap();
    assert_eq!(dan.state(), ObjState::Persistent);
    s.close();
    assert_eq!(dan.state(), ObjState::Detached);
    drop(other);
    drop(s);
    assert_eq!(fx.checked_out(), 0);
}

fn autoflush_runs_before_a_query_and_not_inside_no_autoflush(b: Backend) {
    let fx = setup(b, "s_autoflush");
    let s = fx.factory.session();
    s.add(user("eve", 22)).unwrap();
    let hidden = s.no_autoflush(|s| s.query::<User>().count()).unwrap();
    assert_eq!(hidden, 0, "no_autoflush: the pending row is not sent");
    let capture = fx.engine.capture_statements();
    let n = s
        .query::<User>()
        .filter(User::NAME.eq("eve"))
        .count()
        .unwrap();
    assert_eq!(n, 1);
    let sent = capture.take();
    let insert = sent
        .iter()
        .position(|q| q.starts_with("INSERT"))
        .expect("INSERT sent");
    let select = sent
        .iter()
        .position(|q| q.starts_with("SELECT"))
        .expect("SELECT sent");
    assert!(
        insert < select,
        "autoflush must INSERT before the query: {sent:?}"
    );
    s.rollback().unwrap();
    assert_eq!(fx.count("users"), 0);
}

fn update_sets_only_changed_columns_and_unchanged_objects_send_nothing(b: Backend) {
    let fx = setup(b, "s_update");
    fx.db
        .exec("INSERT INTO users (name, email, age) VALUES ('fay', 'f@x', 30), ('gus', NULL, 31)");
    let s = fx.factory.session();
    let fay = s.get::<User>(1).unwrap().unwrap();
    let gus = s.get::<User>(2).unwrap().unwrap();
    let capture = fx.engine.capture_statements();
    // Written but not changed: nothing to send.
    gus.write().unwrap().age = 31;
    s.flush().unwrap();
    assert!(
        capture.take().is_empty(),
        "an unchanged object must send nothing"
    );
    // Changed: only `age`.
    fay.write().unwrap().age = 33;
    s.flush().unwrap();
    let sent = capture.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].starts_with(&fx.db.sql("UPDATE `users` SET `age` = ? WHERE `id` = ?")),
        "{sent:?}"
    );
    // An empty flush sends nothing and begins nothing.
    s.commit().unwrap();
    let s2 = fx.factory.session();
    s2.flush().unwrap();
    s2.commit().unwrap();
    assert!(
        capture.take().iter().all(|q| !q.starts_with("BEGIN")),
        "empty commit must not BEGIN"
    );
    assert_eq!(
        fx.db.rows("SELECT age FROM users ORDER BY id"),
        vec![vec!["33"], vec!["31"]]
    );
}

fn parents_are_inserted_before_children_and_deleted_after_them(b: Backend) {
    let fx = setup(b, "s_order");
    let s = fx.factory.session();
    let capture = fx.engine.capture_statements();
    // Added child-first on purpose.
    s.add(Review {
        id: 1,
        book_id: 10,
        stars: 5,
    })
    .unwrap();
    s.add(Book {
        id: 10,
        author_id: 100,
        title: "Dune".into(),
    })
    .unwrap();
    s.add(Author {
        id: 100,
        name: "Herbert".into(),
    })
    .unwrap();
    s.commit().unwrap();
    let tables: Vec<String> = dml(&capture.take())
        .iter()
        .map(|q| q.split(['`', '"']).nth(1).unwrap_or("").to_string())
        .collect();
    assert_eq!(tables, ["authors", "books", "reviews"]);

    let author = s.get::<Author>(100).unwrap().unwrap();
    let book = s.get::<Book>(10).unwrap().unwrap();
    let review = s.get::<Review>(1).unwrap().unwrap();
    capture.take();
    s.delete(&author).unwrap();
    s.delete(&book).unwrap();
    s.delete(&review).unwrap();
    s.commit().unwrap();
    let sent = capture.take();
    let tables: Vec<String> = dml(&sent)
        .iter()
        .filter(|q| q.starts_with("DELETE"))
        .map(|q| q.split(['`', '"']).nth(1).unwrap_or("").to_string())
        .collect();
    assert_eq!(tables, ["reviews", "books", "authors"], "{sent:?}");
    assert_eq!(
        fx.count("authors") + fx.count("books") + fx.count("reviews"),
        0
    );
}

fn self_referencing_rows_are_ordered_row_by_row_and_cycles_are_errors(b: Backend) {
    let fx = setup(b, "s_selfref");
    let s = fx.factory.session();
    s.add(Node {
        id: 3,
        parent_id: Some(2),
        label: "leaf".into(),
    })
    .unwrap();
    s.add(Node {
        id: 2,
        parent_id: Some(1),
        label: "mid".into(),
    })
    .unwrap();
    s.add(Node {
        id: 1,
        parent_id: None,
        label: "root".into(),
    })
    .unwrap();
    s.commit().unwrap();
    assert_eq!(fx.count("nodes"), 3);
    // Load first: reloading an expired object autoflushes, which would send
    // a lone DELETE of the root before its children are marked.
    let nodes: Vec<_> = [1, 2, 3]
        .iter()
        .map(|&id| s.get::<Node>(id).unwrap().unwrap())
        .collect();
    for n in &nodes {
        s.delete(n).unwrap();
    }
    s.commit().unwrap();
    assert_eq!(fx.count("nodes"), 0);

    s.add(Node {
        id: 7,
        parent_id: Some(8),
        label: "a".into(),
    })
    .unwrap();
    s.add(Node {
        id: 8,
        parent_id: Some(7),
        label: "b".into(),
    })
    .unwrap();
    let err = s.flush().unwrap_err();
    assert!(matches!(err, Error::FlushCycle { .. }), "{err}");
    assert!(err.to_string().contains("Node"), "{err}");
    s.rollback().unwrap();
    drop(s);
    assert_eq!(fx.checked_out(), 0);
}

fn ten_thousand_new_objects_flush_in_few_statements_with_every_key_right(b: Backend) {
    let fx = setup(b, "s_bulk");
    let s = fx.factory.session();
    let capture = fx.engine.capture_statements();
    let before = fx.engine.stats().statements;
    let objs: Vec<_> = (0..10_000)
        .map(|i| s.add(user(&format!("u{i}"), i % 90)).unwrap())
        .collect();
    s.commit().unwrap();
    let sent = fx.engine.stats().statements - before;
    assert!(
        sent <= 12,
        "10,000 inserts took {sent} statements: {:?}",
        capture
            .take()
            .iter()
            .map(|q| q.chars().take(60).collect::<String>())
            .collect::<Vec<_>>()
    );
    let rows = fx.db.rows("SELECT id, name FROM users");
    assert_eq!(rows.len(), 10_000);
    let by_name: std::collections::HashMap<String, i64> = rows
        .into_iter()
        .map(|r| (r[1].clone(), r[0].parse().unwrap()))
        .collect();
    for (i, obj) in objs.iter().enumerate() {
        let got = obj.read().unwrap();
        assert_eq!(
            Some(by_name[&format!("u{i}")]),
            got.id,
            "object {i} has the wrong key"
        );
    }
    assert_eq!(s.identity_count().unwrap(), 10_000);
}

fn without_returning_consecutive_keys_still_come_back_right(b: Backend) {
    let fx = setup_with(b, "s_noret", "insert_returning=off");
    let s = fx.factory.session();
    let capture = fx.engine.capture_statements();
    let objs: Vec<_> = (0..500)
        .map(|i| s.add(user(&format!("n{i}"), 1)).unwrap())
        .collect();
    s.commit().unwrap();
    let sent = capture.take();
    assert!(
        sent.iter().all(|q| !q.contains("RETURNING")),
        "RETURNING was switched off"
    );
    match b {
        Backend::MySql => assert!(
            dml(&sent).len() <= 2,
            "consecutive keys allow one multi-row INSERT: {}",
            sent.len()
        ),
        // SQLite does not promise consecutive rowids: one row per INSERT,
        // each reading its own last_insert_rowid.
        Backend::Sqlite => assert_eq!(dml(&sent).len(), 500, "one INSERT per row"),
    }
    let rows = fx.db.rows("SELECT id, name FROM users");
    let by_name: std::collections::HashMap<String, i64> = rows
        .into_iter()
        .map(|r| (r[1].clone(), r[0].parse().unwrap()))
        .collect();
    for (i, obj) in objs.iter().enumerate() {
        assert_eq!(obj.read().unwrap().id, Some(by_name[&format!("n{i}")]));
    }
}

fn updates_and_deletes_are_batched(b: Backend) {
    let fx = setup(b, "s_batch");
    fx.db.exec(&format!(
        "INSERT INTO users (name, age) SELECT CONCAT('b', seq), 1 FROM {}",
        fx.db.seq(3000)
    ));
    let s = fx.factory.session();
    let all = s.query::<User>().all().unwrap();
    for u in &all {
        u.write().unwrap().age = 2;
    }
    let capture = fx.engine.capture_statements();
    s.flush().unwrap();
    let sent = capture.take();
    assert_eq!(
        sent.len(),
        3,
        "3,000 same-column updates in three 1,000-row statements: {}",
        sent.len()
    );
    let batched = match b {
        Backend::MySql => {
            "UPDATE `users` JOIN (SELECT ? AS `k0`, ? AS `c0` UNION ALL VALUES (?, ?), "
        }
        Backend::Sqlite => {
            "UPDATE \"users\" SET \"age\" = \"__b\".\"column2\" FROM (VALUES (?, ?), (?, ?), "
        }
    };
    assert!(sent[0].starts_with(batched), "{}", &sent[0][..120]);
    assert_eq!(
        fx.db.rows("SELECT COUNT(*) FROM users WHERE age = 2")[0][0],
        "0",
        "not committed yet"
    );
    for u in &all {
        s.delete(u).unwrap();
    }
    s.commit().unwrap();
    let sent = capture.take();
    assert_eq!(dml(&sent).len(), 1, "3,000 deletes in one statement");
    assert_eq!(fx.count("users"), 0);
}

fn a_failed_flush_requires_rollback_then_recovers(b: Backend) {
    let fx = setup(b, "s_failed");
    let s = fx.factory.session();
    s.add(user("dup", 1)).unwrap();
    s.commit().unwrap();
    let ok = s.add(user("fine", 1)).unwrap();
    let bad = s.add(user("dup", 2)).unwrap();
    let err = s.flush().unwrap_err();
    assert!(
        err.is_integrity(),
        "duplicate key is an integrity error: {err}"
    );
    let (code, says) = match b {
        Backend::MySql => (1062, "Duplicate"),
        Backend::Sqlite => (2067, "UNIQUE constraint failed"), // SQLITE_CONSTRAINT_UNIQUE
    };
    assert_eq!(err.code(), Some(code), "{err}");
    // State restored at once: the pending objects are transient again.
    assert_eq!(ok.state(), ObjState::Transient);
    assert_eq!(bad.state(), ObjState::Transient);
    assert_eq!(
        ok.read().unwrap().id,
        None,
        "a generated key of a rolled-back insert is cleared"
    );
    // Every operation now says rollback is required, naming the cause.
    let err = s.query::<User>().count().unwrap_err();
    assert!(matches!(err, Error::PendingRollback(_)), "{err}");
    assert!(
        err.to_string().contains("rollback()") && err.to_string().contains(says),
        "{err}"
    );
    assert!(matches!(s.commit().unwrap_err(), Error::PendingRollback(_)));
    assert_eq!(
        fx.checked_out(),
        0,
        "the failed transaction's connection went back to the pool"
    );
    s.rollback().unwrap();
    s.add(&ok).unwrap();
    s.commit().unwrap();
    assert_eq!(fx.count("users"), 2);
    assert_eq!(fx.checked_out(), 0);
}

fn savepoint_rollback_accounting(b: Backend) {
    let fx = setup(b, "s_savepoint");
    let s = fx.factory.session();
    let kept = s.add(user("kept", 1)).unwrap();
    s.flush().unwrap();
    let changed = s.add(user("changed", 1)).unwrap();
    s.flush().unwrap();

    let nested = s.begin_nested().unwrap();
    let inner = s.add(user("inner", 1)).unwrap();
    changed.write().unwrap().age = 50;
    s.flush().unwrap();
    nested.rollback().unwrap();

    assert_eq!(
        inner.state(),
        ObjState::Transient,
        "added inside a rolled-back savepoint"
    );
    assert!(changed.is_expired(), "changed inside: expired");
    assert!(!kept.is_expired(), "untouched inside: not expired");
    assert_eq!(
        changed.read().unwrap().age,
        1,
        "reloaded from the outer transaction"
    );
    assert!(s.in_transaction(), "the outer transaction stays usable");
    s.nested(|s| {
        s.add(user("released", 1))?;
        Ok(())
    })
    .unwrap();
    s.commit().unwrap();
    let names: Vec<String> = fx
        .db
        .rows("SELECT name FROM users ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, ["kept", "changed", "released"]);
    assert_eq!(fx.checked_out(), 0);
}

fn a_flush_failing_inside_a_savepoint_only_loses_the_savepoint(b: Backend) {
    let fx = setup(b, "s_sp_fail");
    let s = fx.factory.session();
    s.add(user("a", 1)).unwrap();
    s.flush().unwrap();
    let nested = s.begin_nested().unwrap();
    s.add(user("a", 2)).unwrap();
    assert!(s.flush().unwrap_err().is_integrity());
    nested.rollback().unwrap();
    s.add(user("b", 1)).unwrap();
    s.commit().unwrap();
    let names: Vec<String> = fx
        .db
        .rows("SELECT name FROM users ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

fn optimistic_locking_detects_a_lost_race(b: Backend) {
    let fx = setup(b, "s_version");
    let s1 = fx.factory.session();
    s1.add(Account {
        id: 1,
        balance: 100,
        version: 0,
    })
    .unwrap();
    s1.commit().unwrap();
    assert_eq!(
        fx.db.rows("SELECT version FROM accounts"),
        vec![vec!["1"]],
        "INSERT sets version 1"
    );

    let s2 = fx.factory.session();
    let a1 = s1.get::<Account>(1).unwrap().unwrap();
    let a2 = s2.get::<Account>(1).unwrap().unwrap();
    a1.write().unwrap().balance += 10;
    a2.write().unwrap().balance += 20;
    s1.commit().unwrap();
    assert_eq!(
        fx.db.rows("SELECT balance, version FROM accounts"),
        vec![vec!["110", "2"]]
    );
    let err = s2.commit().unwrap_err();
    match &err {
        Error::StaleData { table, key, .. } => {
            assert_eq!(*table, "accounts");
            assert_eq!(key, "1");
        }
        other => panic!("expected StaleData, got {other}"),
    }
    assert!(matches!(s2.flush().unwrap_err(), Error::PendingRollback(_)));
    s2.rollback().unwrap();
    assert_eq!(a2.read().unwrap().balance, 110, "reloaded after rollback");
    a2.write().unwrap().balance += 20;
    s2.commit().unwrap();
    assert_eq!(
        fx.db.rows("SELECT balance, version FROM accounts"),
        vec![vec!["130", "3"]]
    );

    // A versioned DELETE checks the version too.
    let stale = s1.get::<Account>(1).unwrap().unwrap();
    let _ = stale.read().unwrap();
    fx.db.exec("UPDATE accounts SET version = version + 1");
    s1.delete(&stale).unwrap();
    let err = s1.commit().unwrap_err();
    assert!(
        matches!(
            err,
            Error::StaleData {
                statement: "DELETE",
                ..
            }
        ),
        "{err}"
    );
    s1.rollback().unwrap();
    assert_eq!(fx.count("accounts"), 1);
    drop((s1, s2));
    assert_eq!(fx.checked_out(), 0);
}

fn the_transaction_helper_commits_on_ok_and_rolls_back_on_err_and_panic(b: Backend) {
    let fx = setup(b, "s_txhelper");
    fx.factory
        .begin(|s| {
            s.add(user("ok", 1))?;
            Ok(())
        })
        .unwrap();
    assert_eq!(fx.count("users"), 1);

    let err = fx
        .factory
        .begin(|s| -> orm::Result<()> {
            s.add(user("err", 1))?;
            s.flush()?;
            Err(Error::invalid("the caller changed its mind"))
        })
        .unwrap_err();
    assert!(err.to_string().contains("changed its mind"));
    assert_eq!(fx.count("users"), 1);

    let factory = fx.factory.clone();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = factory.begin(|s| -> orm::Result<()> {
            s.add(user("panic", 1))?;
            s.flush()?;
            panic!("boom");
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(fx.count("users"), 1);
    assert_eq!(
        fx.checked_out(),
        0,
        "no connection left checked out after Ok, Err and panic"
    );
}

fn expire_on_commit_reloads_and_a_deleted_row_is_object_deleted(b: Backend) {
    let fx = setup(b, "s_expire");
    let s = fx.factory.session();
    let u = s.add(user("hal", 1)).unwrap();
    s.commit().unwrap();
    assert!(u.is_expired());
    fx.db.exec("UPDATE users SET age = 7");
    let capture = fx.engine.capture_statements();
    assert_eq!(
        u.read().unwrap().age,
        7,
        "an expired object reloads on access"
    );
    assert_eq!(dml(&capture.take()).len(), 1);
    s.commit().unwrap();
    fx.db.exec("DELETE FROM users");
    let err = u.read().unwrap_err();
    assert!(matches!(err, Error::ObjectDeleted { .. }), "{err}");
    s.close();

    // refresh() sends a SELECT now; expire() sends nothing.
    let v = s.add(user("ivy", 1)).unwrap();
    s.flush().unwrap();
    capture.take();
    s.expire(&v).unwrap();
    assert!(capture.take().is_empty());
    s.refresh(&v).unwrap();
    assert!(!v.is_expired());
    assert_eq!(capture.take().len(), 1);
    s.commit().unwrap();
    // A detached expired object cannot be loaded.
    s.close();
    assert!(matches!(
        v.read().unwrap_err(),
        Error::DetachedInstance { .. }
    ));
}

fn queries_filter_order_limit_and_report_cardinality_errors(b: Backend) {
    let fx = setup(b, "s_query");
    let s = fx.factory.session();
    for (n, a) in [("ann", 30), ("bob", 17), ("cat", 45), ("dee", 17)] {
        s.add(user(n, a)).unwrap();
    }
    s.add(User {
        email: Some("x@y".into()),
        ..user("eli", 60)
    })
    .unwrap();
    s.commit().unwrap();

    let names = |v: Vec<orm::session::Obj<User>>| {
        v.iter()
            .map(|u| u.read().unwrap().name.clone())
            .collect::<Vec<_>>()
    };
    let q = s
        .query::<User>()
        .filter(User::AGE.ge(18))
        .order_by(User::AGE.desc())
        .all()
        .unwrap();
    assert_eq!(names(q), ["eli", "cat", "ann"]);
    let q = s
        .query::<User>()
        .filter(User::AGE.eq(17).or(User::NAME.like("c%")))
        .order_by(User::NAME.asc())
        .all()
        .unwrap();
    assert_eq!(names(q), ["bob", "cat", "dee"]);
    let q = s
        .query::<User>()
        .filter(!User::NAME.in_(["ann", "bob"]))
        .filter(User::AGE.lt(50))
        .order_by(User::ID.asc())
        .all()
        .unwrap();
    assert_eq!(names(q), ["cat", "dee"]);
    let q = s
        .query::<User>()
        .order_by(User::ID.asc())
        .limit(2)
        .offset(1)
        .all()
        .unwrap();
    assert_eq!(names(q), ["bob", "cat"]);
    assert_eq!(
        s.query::<User>()
            .filter(User::EMAIL.is_not_null())
            .one()
            .unwrap()
            .read()
            .unwrap()
            .name,
        "eli"
    );
    assert_eq!(
        s.query::<User>()
            .filter(User::EMAIL.is_null())
            .count()
            .unwrap(),
        4
    );
    assert_eq!(
        s.query::<User>()
            .filter(User::EMAIL.eq(None::<String>))
            .count()
            .unwrap(),
        4
    );
    assert!(s
        .query::<User>()
        .filter(User::NAME.eq("ann"))
        .exists()
        .unwrap());
    assert!(!s
        .query::<User>()
        .filter(User::NAME.eq("zed"))
        .exists()
        .unwrap());
    assert!(s
        .query::<User>()
        .filter(User::NAME.in_(Vec::<&str>::new()))
        .first()
        .unwrap()
        .is_none());
    assert!(matches!(
        s.query::<User>()
            .filter(User::AGE.eq(17))
            .one()
            .unwrap_err(),
        Error::MultipleResultsFound { .. }
    ));
    assert!(matches!(
        s.query::<User>().filter(User::AGE.eq(1)).one().unwrap_err(),
        Error::NoResultFound { .. }
    ));
    assert!(s
        .query::<User>()
        .filter(User::AGE.eq(1))
        .one_or_none()
        .unwrap()
        .is_none());
    // Values are bound, never spliced: this is just a name that matches nothing.
    assert_eq!(
        s.query::<User>()
            .filter(User::NAME.eq("'; DROP TABLE users; --"))
            .count()
            .unwrap(),
        0
    );
    // Raw SQL mapped to the model, through the identity map.
    let raw = s
        .query_sql::<User>(
            "SELECT * FROM users WHERE age = ? ORDER BY id",
            &[Value::Int(17)],
        )
        .unwrap();
    assert_eq!(names(raw.clone()), ["bob", "dee"]);
    let bob = s
        .query::<User>()
        .filter(User::NAME.eq("bob"))
        .one()
        .unwrap();
    assert!(bob.ptr_eq(&raw[0]));
    // Bulk delete expires what it may have deleted.
    assert_eq!(
        s.query::<User>()
            .filter(User::AGE.eq(17))
            .delete(orm::query::Synchronize::Expire)
            .unwrap(),
        2
    );
    assert!(matches!(
        bob.read().unwrap_err(),
        Error::ObjectDeleted { .. }
    ));
    s.commit().unwrap();
    assert_eq!(fx.count("users"), 3);
}

fn a_session_holds_no_connection_outside_a_transaction(b: Backend) {
    let fx = setup(b, "s_conn");
    let s = Session::new(fx.engine.clone());
    assert_eq!(fx.checked_out(), 0);
    s.add(user("joe", 1)).unwrap();
    assert_eq!(fx.checked_out(), 0, "add sends no SQL");
    s.flush().unwrap();
    assert_eq!(fx.checked_out(), 1);
    s.commit().unwrap();
    assert_eq!(fx.checked_out(), 0);
    let _ = s.query::<User>().all().unwrap();
    assert_eq!(fx.checked_out(), 1);
    s.rollback().unwrap();
    assert_eq!(fx.checked_out(), 0);
    let _ = s.query::<User>().all().unwrap();
    drop(s);
    assert_eq!(
        fx.checked_out(),
        0,
        "dropping a session returns its connection"
    );
}

/// The failure this project exists to prevent: the server drops the
/// connection of a session inside its transaction. The session says the
/// transaction was lost and must be rolled back; after rollback() it works
/// again on a fresh connection, and nothing is stranded in the pool.
#[test]
fn a_connection_killed_inside_a_transaction_requires_rollback_then_recovers() {
    let fx = setup(Backend::MySql, "s_killed");
    let s = fx.factory.session();
    s.add(user("before", 1)).unwrap();
    s.flush().unwrap();
    let rows = s.query_rows("SELECT CONNECTION_ID()", &[]).unwrap();
    let id: u64 = match rows[0].values()[0] {
        Value::UInt(n) => n,
        Value::Int(n) => n as u64,
        ref other => panic!("unexpected connection id {other:?}"),
    };
    fx.db.kill(id);
    let err = s.query::<User>().count().unwrap_err();
    assert!(err.is_connection_lost(), "{err}");
    assert!(
        err.to_string().contains("rollback"),
        "the message says what to do: {err}"
    );
    let err = s.add(user("during", 1)).unwrap_err();
    assert!(matches!(err, Error::PendingRollback(_)), "{err}");
    s.rollback().unwrap();
    s.add(user("after", 1)).unwrap();
    s.commit().unwrap();
    let names: Vec<String> = fx
        .db
        .rows("SELECT name FROM users")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(
        names,
        ["after"],
        "the lost transaction's insert is gone, the new one committed"
    );
    drop(s);
    assert_eq!(fx.checked_out(), 0);
}

fn dropping_a_session_is_close_uncommitted_inserts_become_transient(b: Backend) {
    let fx = setup(b, "s_drop");
    let s = fx.factory.session();
    let kept = s.add(user("kept", 1)).unwrap();
    s.commit().unwrap();
    let _ = kept.read().unwrap();
    let uncommitted = s.add(user("gone", 1)).unwrap();
    s.flush().unwrap();
    assert_eq!(fx.checked_out(), 1);
    drop(s);
    assert_eq!(uncommitted.state(), ObjState::Transient, "never committed");
    assert_eq!(
        uncommitted.read().unwrap().id,
        None,
        "its generated key is cleared"
    );
    assert_eq!(kept.state(), ObjState::Detached);
    assert_eq!(fx.checked_out(), 0);
    assert_eq!(
        fx.count("users"),
        1,
        "the uncommitted insert was rolled back"
    );
}

fn closed_sessions_leave_loaded_objects_readable(b: Backend) {
    let fx = setup(b, "s_close_read");
    fx.db
        .exec("INSERT INTO users (name, age) VALUES ('kim', 33)");
    let s = fx.factory.session();
    let kim = s.get::<User>(1).unwrap().unwrap();
    s.close();
    assert_eq!(kim.state(), ObjState::Detached);
    assert_eq!(
        kim.read().unwrap().name,
        "kim",
        "close() detaches without expiring"
    );
    let s = fx.factory.session();
    let lee = s.query::<User>().one().unwrap();
    drop(s);
    assert_eq!(lee.read().unwrap().age, 33, "dropping a session is close()");
    // After a commit the objects are expired, so once detached they cannot reload.
    let s = fx.factory.session();
    let kim = s.get::<User>(1).unwrap().unwrap();
    s.commit().unwrap();
    s.close();
    assert!(matches!(
        kim.read().unwrap_err(),
        Error::DetachedInstance { .. }
    ));
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "memberships")]
struct Membership {
    #[orm(primary_key)]
    group_id: i64,
    #[orm(primary_key, sql_type = "VARCHAR(32)")]
    member: String,
    role: String,
}

fn composite_keys_get_update_and_delete_in_batches(b: Backend) {
    let fx = setup(b, "s_composite");
    orm::schema::create_all(&fx.engine, &[Membership::table()]).unwrap();
    let s = fx.factory.session();
    for (g, m) in [(1, "ann"), (1, "bob"), (2, "ann")] {
        s.add(Membership {
            group_id: g,
            member: m.into(),
            role: "user".into(),
        })
        .unwrap();
    }
    s.commit().unwrap();
    let ann1 = s.get::<Membership>((1, "ann")).unwrap().expect("(1, ann)");
    assert!(s.get::<Membership>((2, "bob")).unwrap().is_none());
    let all = s.query::<Membership>().all().unwrap();
    assert!(all.iter().any(|m| m.ptr_eq(&ann1)));
    let capture = fx.engine.capture_statements();
    for m in &all {
        m.write().unwrap().role = "admin".into();
    }
    s.flush().unwrap();
    assert_eq!(
        capture.take().len(),
        1,
        "three composite-key updates in one statement"
    );
    for m in all.iter().filter(|m| m.read().unwrap().group_id == 1) {
        s.delete(m).unwrap();
    }
    s.commit().unwrap();
    let sent = capture.take();
    assert!(
        sent.iter()
            .any(|q| q.contains(&fx.db.sql("(`group_id`, `member`) IN ((?, ?), (?, ?))"))),
        "{sent:?}"
    );
    assert_eq!(
        fx.db.rows("SELECT group_id, member, role FROM memberships"),
        vec![vec!["2", "ann", "admin"]]
    );
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "blobs")]
struct Blob {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    data: Vec<u8>,
}

#[test]
fn batches_are_cut_to_fit_max_allowed_packet() {
    let fx = setup(Backend::MySql, "s_packet");
    orm::schema::create_all(&fx.engine, &[Blob::table()]).unwrap();
    let packet: usize = fx.db.rows("SELECT @@max_allowed_packet")[0][0]
        .parse()
        .unwrap();
    let rows = packet / (1024 * 1024) * 5 / 2; // about 2.5 packets of 1 MiB rows
    let s = fx.factory.session();
    let capture = fx.engine.capture_statements();
    let objs: Vec<_> = (0..rows)
        .map(|i| {
            s.add(Blob {
                id: None,
                data: vec![i as u8; 1024 * 1024],
            })
            .unwrap()
        })
        .collect();
    s.commit().unwrap();
    let inserts = capture
        .take()
        .into_iter()
        .filter(|q| q.starts_with("INSERT"))
        .count();
    assert!(
        inserts >= 3,
        "{rows} MiB in packets of {packet} bytes needs at least 3 statements, sent {inserts}"
    );
    assert!(inserts < rows, "but not one per row ({inserts} for {rows})");
    let sums = fx
        .db
        .rows("SELECT id, LENGTH(data), ORD(data) FROM blobs ORDER BY id");
    assert_eq!(sums.len(), rows);
    for (obj, row) in objs.iter().zip(&sums) {
        let o = obj.read().unwrap();
        assert_eq!(o.id.unwrap().to_string(), row[0]);
        assert_eq!(row[1], (1024 * 1024).to_string());
        assert_eq!(row[2], o.data[0].to_string());
    }
}

/// SQLAlchemy's "row switch": deleting the object with key K and adding a
/// new object with key K in one flush sends one UPDATE, not DELETE + INSERT.
fn delete_then_add_with_the_same_key_is_one_update(b: Backend) {
    let fx = setup(b, "s_rowswitch");
    let s = fx.factory.session();
    s.add(Account {
        id: 1,
        balance: 10,
        version: 0,
    })
    .unwrap();
    s.add(Author {
        id: 5,
        name: "same".into(),
    })
    .unwrap();
    s.commit().unwrap();

    let old = s.get::<Account>(1).unwrap().unwrap();
    s.delete(&old).unwrap();
    let new = s
        .add(Account {
            id: 1,
            balance: 99,
            version: 0,
        })
        .unwrap();
    let capture = fx.engine.capture_statements();
    s.flush().unwrap();
    let sent = dml(&capture.take())
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].starts_with(&fx.db.sql("UPDATE `accounts` SET `balance` = ?")),
        "{sent:?}"
    );
    assert_eq!(old.state(), ObjState::Deleted);
    assert_eq!(new.state(), ObjState::Persistent);
    assert!(s.get::<Account>(1).unwrap().unwrap().ptr_eq(&new));
    assert_eq!(
        new.read().unwrap().version,
        2,
        "version checked and bumped on the switched row"
    );
    s.commit().unwrap();
    assert_eq!(
        fx.db.rows("SELECT balance, version FROM accounts"),
        vec![vec!["99", "2"]]
    );

    // With no column changed, nothing is sent at all.
    let old = s.get::<Author>(5).unwrap().unwrap();
    s.delete(&old).unwrap();
    let new = s
        .add(Author {
            id: 5,
            name: "same".into(),
        })
        .unwrap();
    capture.take(); // the reload of the expired object
    s.flush().unwrap();
    assert!(capture.take().is_empty());
    assert_eq!(new.state(), ObjState::Persistent);

    // Rolled back: the old object is back, the new one transient.
    s.rollback().unwrap();
    assert_eq!(old.state(), ObjState::Persistent);
    assert_eq!(new.state(), ObjState::Transient);
    assert!(s.get::<Author>(5).unwrap().unwrap().ptr_eq(&old));
    assert_eq!(fx.count("authors"), 1);
}

fn a_stale_row_in_a_batched_update_is_named(b: Backend) {
    let fx = setup(b, "s_stale_batch");
    fx.db
        .exec("INSERT INTO accounts (id, balance, version) VALUES (1, 0, 1), (2, 0, 1), (3, 0, 1)");
    let s = fx.factory.session();
    let all = s.query::<Account>().all().unwrap();
    fx.db.exec("UPDATE accounts SET version = 7 WHERE id = 2");
    for a in &all {
        a.write().unwrap().balance = 5;
    }
    let err = s.flush().unwrap_err();
    match &err {
        Error::StaleData {
            statement,
            table,
            key,
            expected,
            matched,
        } => {
            assert_eq!(
                (*statement, *table, key.as_str()),
                ("UPDATE", "accounts", "2"),
                "{err}"
            );
            assert_eq!((*expected, *matched), (3, 2));
        }
        other => panic!("expected StaleData, got {other}"),
    }
    s.rollback().unwrap();
    assert_eq!(
        fx.db.rows("SELECT balance FROM accounts ORDER BY id"),
        vec![vec!["0"], vec!["0"], vec!["0"]],
        "the whole batch was rolled back"
    );
}

/// `session.dirty`, `new` and `deleted` (SQLAlchemy's test_session.py
/// test_dirty/test_new/test_deleted): each object once, in the order it
/// first changed, written twice or not; an object changed back to its
/// loaded values is not dirty (`is_modified` compares with the snapshot).
fn new_dirty_and_deleted_list_each_object_once(b: Backend) {
    let fx = setup(b, "sess_dirty");
    let s = fx.factory.session();
    for (name, age) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        s.add(user(name, age)).unwrap();
    }
    s.commit().unwrap();
    let users = s.query::<User>().order_by(User::ID.asc()).all().unwrap();
    users[2].write().unwrap().age += 10;
    users[0].write().unwrap().name = "a2".into();
    users[2].write().unwrap().age += 10;
    users[1].write().unwrap().age = 20;
    users[1].write().unwrap().age = 2;
    s.delete(&users[3]).unwrap();
    let fresh = s.add(user("e", 5)).unwrap();
    let names = |objs: Vec<Obj<User>>| -> Vec<String> {
        objs.iter()
            .map(|u| u.read().unwrap().name.clone())
            .collect()
    };
    assert_eq!(names(s.dirty_objects::<User>().unwrap()), ["c", "a2"]);
    assert_eq!(names(s.new_objects::<User>().unwrap()), ["e"]);
    assert_eq!(names(s.deleted_objects::<User>().unwrap()), ["d"]);
    assert!(fresh.state() == ObjState::Pending);
    s.commit().unwrap();
    assert!(s.dirty_objects::<User>().unwrap().is_empty());
    assert_eq!(
        fx.db.rows("SELECT name, age FROM users ORDER BY id"),
        vec![
            vec!["a2", "1"],
            vec!["b", "2"],
            vec!["c", "23"],
            vec!["e", "5"]
        ]
    );
}

backend_tests!(
    identity_map_returns_the_same_handle_and_the_second_get_sends_nothing,
    many_loaded_objects_are_found_by_key_and_follow_key_changes,
    states_follow_sqlalchemy,
    autoflush_runs_before_a_query_and_not_inside_no_autoflush,
    update_sets_only_changed_columns_and_unchanged_objects_send_nothing,
    parents_are_inserted_before_children_and_deleted_after_them,
    self_referencing_rows_are_ordered_row_by_row_and_cycles_are_errors,
    ten_thousand_new_objects_flush_in_few_statements_with_every_key_right,
    without_returning_consecutive_keys_still_come_back_right,
    updates_and_deletes_are_batched,
    a_failed_flush_requires_rollback_then_recovers,
    savepoint_rollback_accounting,
    a_flush_failing_inside_a_savepoint_only_loses_the_savepoint,
    optimistic_locking_detects_a_lost_race,
    the_transaction_helper_commits_on_ok_and_rolls_back_on_err_and_panic,
    expire_on_commit_reloads_and_a_deleted_row_is_object_deleted,
    queries_filter_order_limit_and_report_cardinality_errors,
    a_session_holds_no_connection_outside_a_transaction,
    dropping_a_session_is_close_uncommitted_inserts_become_transient,
    closed_sessions_leave_loaded_objects_readable,
    composite_keys_get_update_and_delete_in_batches,
    delete_then_add_with_the_same_key_is_one_update,
    a_stale_row_in_a_batched_update_is_named,
    new_dirty_and_deleted_list_each_object_once,
);
