//! Generated keys without `RETURNING` (`insert_returning=off`, as on MySQL
//! or MariaDB before 10.5): every object must get the key of its own row,
//! whatever the connection's `auto_increment_increment` is and however it got
//! it (an on-connect hook, or a GLOBAL change after the engine's first
//! connection). Each object's key is checked against its row, found by a
//! unique column, read back with a raw connection.

mod common;

use common::private_server::PrivateServer;
use common::TestDb;
use mysql::prelude::Queryable;
use orm::prelude::*;
use orm::session::SessionFactory;

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "items")]
struct Item {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(unique, sql_type = "VARCHAR(32)")]
    name: String,
}

fn item(name: String) -> Item {
    Item { id: None, name }
}

/// Adds `n` items named `<prefix>0..`, flushes, commits, and returns each
/// object's (name, key) as the objects hold them.
fn add_and_flush(engine: &Engine, prefix: &str, n: usize) -> Vec<(String, i64)> {
    let session = SessionFactory::new(engine.clone()).session();
    let objs: Vec<Obj<Item>> = (0..n)
        .map(|i| session.add(item(format!("{prefix}{i}"))).unwrap())
        .collect();
    session.flush().unwrap();
    let keys: Vec<(String, i64)> = objs
        .iter()
        .map(|o| {
            let v = o.read().unwrap();
            (v.name.clone(), v.id.expect("a key after flush"))
        })
        .collect();
    session.commit().unwrap();
    keys
}

/// Every object's key is the id of the row with its name.
fn assert_keys_match_rows(objects: &[(String, i64)], rows: &[(String, i64)]) {
    for (name, key) in objects {
        let row = rows
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no row named {name}: {rows:?}"));
        assert_eq!(
            *key, row.1,
            "object {name} got key {key}, its row has id {}; objects {objects:?}, rows {rows:?}",
            row.1
        );
    }
}

#[test]
fn an_on_connect_increment_of_3_gives_every_object_its_own_rows_key() {
    let db = TestDb::new("keys_hook");
    db.exec("CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(32) NOT NULL UNIQUE) ENGINE=InnoDB");
    let engine = orm::builder(&db.url_with("insert_returning=off"))
        .unwrap()
        .on_connect(|c| {
            c.execute_text("SET SESSION auto_increment_increment = 3")
                .map(|_| ())
        })
        .build()
        .unwrap();
    let capture = engine.capture_statements();
    let objects = add_and_flush(&engine, "hook", 5);
    let inserts: Vec<String> = capture
        .take()
        .into_iter()
        .filter(|q| q.starts_with("INSERT"))
        .collect();

    let rows: Vec<(String, i64)> = db
        .rows("SELECT name, id FROM items ORDER BY id")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    let ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(ids, [1, 4, 7, 10, 13], "the server stepped by 3");
    assert_keys_match_rows(&objects, &rows);

    // The server guarantees the block here (lock mode below 2): one
    // statement, keys computed with the connection's step. Under lock mode 2
    // it must be one statement per row.
    let lock_mode = db.rows("SELECT @@innodb_autoinc_lock_mode")[0][0].clone();
    let expected = if lock_mode == "2" { 5 } else { 1 };
    assert_eq!(inserts.len(), expected, "{inserts:?}");
}

#[test]
fn an_increment_set_later_on_the_connection_is_seen() {
    let db = TestDb::new("keys_later");
    db.exec("CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(32) NOT NULL UNIQUE) ENGINE=InnoDB");
    let engine = orm::create_engine(&db.url_with("insert_returning=off&pool_size=1")).unwrap();
    let first = add_and_flush(&engine, "a", 2);
    // Through the session, on its pooled connection: the next flush uses it.
    let session = SessionFactory::new(engine.clone()).session();
    session
        .execute("SET SESSION auto_increment_increment = 5", &[])
        .unwrap();
    let objs: Vec<Obj<Item>> = (0..3)
        .map(|i| session.add(item(format!("b{i}"))).unwrap())
        .collect();
    session.commit().unwrap();
    let mut objects = first;
    for o in &objs {
        let v = o.read().unwrap();
        objects.push((v.name.clone(), v.id.unwrap()));
    }
    let rows: Vec<(String, i64)> = db
        .rows("SELECT name, id FROM items ORDER BY id")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    assert_eq!(rows.len(), 5);
    assert_keys_match_rows(&objects, &rows);
}

#[test]
fn a_global_increment_set_after_the_first_connection_is_seen_by_later_ones() {
    // SET GLOBAL: only on a server of this test's own.
    let server = PrivateServer::start("keys_global");
    let mut admin = server.admin();
    admin
        .query_drop("CREATE TABLE test.items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(32) NOT NULL UNIQUE) ENGINE=InnoDB")
        .unwrap();
    // A connection per checkout: every flush below runs on a new connection.
    let engine = server.engine("insert_returning=off&poolclass=null");
    let before = add_and_flush(&engine, "before", 2);

    admin
        .query_drop("SET GLOBAL auto_increment_increment = 2")
        .unwrap();
    let after = add_and_flush(&engine, "after", 4);

    let rows: Vec<(String, i64)> = admin
        .query("SELECT name, id FROM test.items ORDER BY id")
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(ids, [1, 2, 3, 5, 7, 9], "the later connection stepped by 2");
    assert_keys_match_rows(&before, &rows);
    assert_keys_match_rows(&after, &rows);
}

#[test]
fn without_a_guaranteed_block_each_row_is_its_own_insert() {
    // innodb_autoinc_lock_mode = 2 (MySQL 8's default, Galera's requirement)
    // gives no contiguous block: a server of our own, since it is read-only.
    let server = PrivateServer::start_with("keys_mode2", &["--innodb-autoinc-lock-mode=2"]);
    server
        .admin()
        .query_drop("CREATE TABLE test.items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(32) NOT NULL UNIQUE) ENGINE=InnoDB")
        .unwrap();
    let engine = orm::builder(&server.url("insert_returning=off"))
        .unwrap()
        .on_connect(|c| {
            c.execute_text("SET SESSION auto_increment_increment = 3")
                .map(|_| ())
        })
        .build()
        .unwrap();
    let info = engine.connect().unwrap().server_info().clone();
    assert_eq!(info.auto_increment.lock_mode, Some(2), "{info:?}");
    assert_eq!(info.auto_increment.increment, Some(3), "{info:?}");
    assert_eq!(info.multi_row_key_step(), None);

    let capture = engine.capture_statements();
    let objects = add_and_flush(&engine, "m", 4);
    let inserts = capture
        .take()
        .iter()
        .filter(|q| q.starts_with("INSERT"))
        .count();
    assert_eq!(inserts, 4, "one row per statement");
    let rows: Vec<(String, i64)> = server
        .admin()
        .query("SELECT name, id FROM test.items ORDER BY id")
        .unwrap();
    assert_eq!(rows.len(), 4);
    assert_keys_match_rows(&objects, &rows);
}
