//! The unit of work's SQL in the corners: naming the stale row of a batch
//! whose values read back as other variants, and batches of UPDATE and
//! DELETE sized by their keys under a small `max_allowed_packet`.

mod common;

use common::private_server::PrivateServer;
use common::TestDb;
use mysql::prelude::Queryable;
use orm::prelude::*;
use orm::session::SessionFactory;
use orm::Error;

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "flags")]
struct Flag {
    #[orm(primary_key)]
    id: i64,
    on: bool,
    #[orm(sql_type = "DECIMAL(10, 4)")]
    amount: String,
    #[orm(sql_type = "FLOAT")]
    ratio: f64,
    #[orm(version)]
    version: i64,
}

#[test]
fn the_stale_row_is_named_even_when_values_read_back_as_other_variants() {
    let db = TestDb::new("p_stale_kinds");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[Flag::table()]).unwrap();
    db.exec("INSERT INTO flags VALUES (1, 0, '1.0000', 0, 1), (2, 0, '1.0000', 0, 1), (3, 0, '1.0000', 0, 1)");
    let s = SessionFactory::new(engine.clone()).session();
    let all = s.query::<Flag>().all().unwrap();
    db.exec("UPDATE flags SET version = 9 WHERE id = 3");
    for f in &all {
        let mut f = f.write().unwrap();
        f.on = true; // reads back as TINYINT 1
        f.amount = "1.5".into(); // reads back as "1.5000"
        f.ratio = 0.1; // reads back as a single-precision float
    }
    let err = s.flush().unwrap_err();
    match &err {
        Error::StaleData {
            table,
            key,
            expected,
            matched,
            ..
        } => {
            assert_eq!((*table, key.as_str()), ("flags", "3"), "{err}");
            assert_eq!((*expected, *matched), (3, 2));
        }
        other => panic!("expected StaleData, got {other}"),
    }
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "docs")]
struct Doc {
    #[orm(primary_key, sql_type = "VARCHAR(750)")]
    path: String,
    hits: i64,
}

#[test]
fn update_and_delete_batches_count_their_keys_against_max_allowed_packet() {
    // A small max_allowed_packet is a GLOBAL setting: a server of our own.
    let server = PrivateServer::start("p_packet");
    let mut admin = server.admin();
    admin
        .query_drop("SET GLOBAL max_allowed_packet = 1048576")
        .unwrap();
    let engine = server.engine("pool_size=1");
    orm::schema::create_all(&engine, &[Doc::table()]).unwrap();
    // 2,000 keys of 750 bytes: 1.5 MB of keys, no statement may carry them all.
    let paths: Vec<String> = (0..2000)
        .map(|i| format!("{i:04}{}", "p".repeat(746)))
        .collect();
    let sessions = SessionFactory::new(engine.clone());
    let s = sessions.session();
    for p in &paths {
        s.add(Doc {
            path: p.clone(),
            hits: 0,
        })
        .unwrap();
    }
    s.commit().unwrap();

    let all = s.query::<Doc>().all().unwrap();
    assert_eq!(all.len(), 2000);
    for d in &all {
        d.write().unwrap().hits += 1;
    }
    let capture = engine.capture_statements();
    s.commit().expect("UPDATE batches fit the packet");
    let updates = capture
        .take()
        .iter()
        .filter(|q| q.starts_with("UPDATE"))
        .count();
    assert!(updates > 1, "split into several statements: {updates}");
    let total: Option<i64> = admin
        .query_first("SELECT SUM(hits) FROM test.docs")
        .unwrap();
    assert_eq!(total, Some(2000));

    for d in s.query::<Doc>().all().unwrap() {
        s.delete(&d).unwrap();
    }
    s.commit().expect("DELETE batches fit the packet");
    let deletes = capture
        .take()
        .iter()
        .filter(|q| q.starts_with("DELETE"))
        .count();
    assert!(deletes > 1, "split into several statements: {deletes}");
    let left: Option<i64> = admin.query_first("SELECT COUNT(*) FROM test.docs").unwrap();
    assert_eq!(left, Some(0));
}
