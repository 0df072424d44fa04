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

/// A table wider than 64 columns: the flush's set of changed columns spills
/// past one machine word.
macro_rules! wide_model {
    ($($c:ident),*) => {
        #[derive(Debug, Clone, PartialEq, Model)]
        #[orm(table = "wide")]
        struct Wide {
            #[orm(primary_key)]
            id: i64,
            $($c: i64,)*
        }
    };
}
wide_model!(
    c00, c01, c02, c03, c04, c05, c06, c07, c08, c09, c10, c11, c12, c13, c14, c15, c16, c17, c18,
    c19, c20, c21, c22, c23, c24, c25, c26, c27, c28, c29, c30, c31, c32, c33, c34, c35, c36, c37,
    c38, c39, c40, c41, c42, c43, c44, c45, c46, c47, c48, c49, c50, c51, c52, c53, c54, c55, c56,
    c57, c58, c59, c60, c61, c62, c63, c64, c65, c66, c67, c68, c69
);

#[test]
fn a_table_of_more_than_64_columns_updates_the_changed_ones() {
    let db = TestDb::new("p_wide");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[Wide::table()]).unwrap();
    let zeros = vec!["0"; 70].join(", ");
    db.exec(&format!(
        "INSERT INTO wide VALUES (1, {zeros}), (2, {zeros}), (3, {zeros})"
    ));
    let s = SessionFactory::new(engine.clone()).session();
    let all = s.query::<Wide>().order_by(Wide::ID.asc()).all().unwrap();
    // Rows 1 and 3 change c02 and c66 (one statement), row 2 only c66.
    for w in [&all[0], &all[2]] {
        let mut w = w.write().unwrap();
        w.c02 = 2;
        w.c66 = 66;
    }
    all[1].write().unwrap().c66 = 7;
    let capture = engine.capture_statements();
    s.commit().unwrap();
    let updates = common::starting_with(capture.take(), "UPDATE");
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(
        updates
            .iter()
            .all(|q| q.contains("`c66`") && !q.contains("`c65`")),
        "{updates:?}"
    );
    assert_eq!(
        db.rows("SELECT id, c02, c66, c65, c69 FROM wide ORDER BY id"),
        vec![
            vec!["1", "2", "66", "0", "0"],
            vec!["2", "0", "7", "0", "0"],
            vec!["3", "2", "66", "0", "0"],
        ]
    );
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "shelves")]
struct Shelf {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    name: String,
    #[orm(
        one_to_many,
        key = "shelf_id",
        back_populates = "shelf",
        cascade = "all"
    )]
    items: ToMany<Item>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "items")]
struct Item {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Shelf)]
    shelf_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    title: String,
    #[orm(default = "new", sql_type = "VARCHAR(16)")]
    status: Option<String>,
    #[orm(server_default = "'boxed'", sql_type = "VARCHAR(16)")]
    packing: Option<String>,
    #[orm(many_to_one, back_populates = "items")]
    shelf: ToOne<Shelf>,
}

fn item(title: &str, packing: Option<&str>) -> Obj<Item> {
    Obj::new(Item {
        title: title.into(),
        packing: packing.map(Into::into),
        ..Item::default()
    })
}

/// The flush hands an INSERT's values to the driver (moved, not copied)
/// where nothing needs them after the statement: not in the transaction's
/// first statement (sent again on a fresh connection if the first was
/// dead), nor with an `after_execute` hook. Either way the rows hold every
/// value, and what the flush writes back into the objects (keys, foreign
/// keys from relationships, defaults; reloading for server defaults) is
/// right.
#[test]
fn inserts_hand_their_values_over_and_still_write_back_keys_defaults_and_foreign_keys() {
    let db = TestDb::new("p_handover");
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let hooked = std::sync::Arc::clone(&seen);
    let plain = orm::create_engine(&db.url).unwrap();
    let with_hook = orm::builder(&db.url)
        .unwrap()
        .after_execute(move |s, _| {
            if s.sql.starts_with("INSERT INTO `items`") {
                hooked.lock().unwrap().push(format!("{:?}", s.params));
            }
        })
        .build()
        .unwrap();
    orm::schema::create_all(&plain, &[Shelf::table(), Item::table()]).unwrap();
    for (n, engine) in [&plain, &with_hook].into_iter().enumerate() {
        let s = SessionFactory::new(engine.clone()).session();
        let capture = engine.capture_statements();
        // A read first: the INSERTs are not the transaction's first statement.
        assert!(s
            .query::<Shelf>()
            .filter(Shelf::ID.eq(-1))
            .all()
            .unwrap()
            .is_empty());
        let shelf = s
            .add(Shelf {
                name: format!("shelf {n}"),
                ..Shelf::default()
            })
            .unwrap();
        let items = [
            item(&format!("first {n}"), Some("loose")),
            item(&format!("second {n}"), None),
        ];
        for i in &items {
            shelf.push(Shelf::ITEMS, i).unwrap();
        }
        s.flush().unwrap();
        let sent = capture.take();
        assert!(sent[0].starts_with("SELECT"), "{sent:?}");
        assert_eq!(common::starting_with(sent, "INSERT").len(), 3);

        // Written back by the flush: reading sends nothing (no reload).
        let shelf_id = shelf
            .read()
            .unwrap()
            .id
            .expect("the shelf's key was written back");
        for (i, title) in items.iter().zip(["first", "second"]) {
            let i = i.read().unwrap();
            assert_eq!(
                i.title,
                format!("{title} {n}"),
                "the object keeps its values"
            );
            assert_eq!(
                i.shelf_id,
                Some(shelf_id),
                "the foreign key was written back"
            );
            assert_eq!(
                i.status.as_deref(),
                Some("new"),
                "the default was written back"
            );
            assert!(i.id.is_some());
        }
        assert_eq!(items[0].read().unwrap().packing.as_deref(), Some("loose"));
        // Left to the server: RETURNING brought it back.
        assert_eq!(items[1].read().unwrap().packing.as_deref(), Some("boxed"));
        assert_eq!(capture.take(), Vec::<String>::new(), "nothing was reloaded");
        s.commit().unwrap();
        s.close();
        assert_eq!(
            db.rows(&format!(
                "SELECT s.name, i.title, i.status, i.packing FROM items i \
                 JOIN shelves s ON s.id = i.shelf_id WHERE s.id = {shelf_id} ORDER BY i.id"
            )),
            [
                [
                    format!("shelf {n}"),
                    format!("first {n}"),
                    "new".into(),
                    "loose".into()
                ],
                [
                    format!("shelf {n}"),
                    format!("second {n}"),
                    "new".into(),
                    "boxed".into()
                ],
            ]
        );
    }
    // The hook saw the parameters of the INSERTs into `items` in full.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter()
            .any(|p| p.contains("Text(\"first 1\")") && p.contains("Text(\"loose\")")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|p| p.contains("Text(\"second 1\")")),
        "{seen:?}"
    );
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "memos")]
struct Memo {
    #[orm(primary_key)]
    id: i64,
    #[orm(sql_type = "VARCHAR(200)")]
    body: String,
    note: Option<String>,
    big: i64,
    ratio: f64,
}

/// A batched UPDATE sends the new values of many rows in one statement
/// (a derived table of them): every row's value arrives whole, whatever
/// the first row's length or kind (a shorter string, a NULL, a small
/// number first), as one UPDATE per row would write them.
#[test]
fn a_batched_update_writes_every_rows_values_whatever_the_first_rows_are() {
    let db = TestDb::new("p_batch_types");
    let engine = orm::create_engine(&db.url_with("")).unwrap();
    orm::schema::create_all(&engine, &[Memo::table()]).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    for id in 1..=30 {
        s.add(Memo {
            id,
            body: "x".into(),
            note: None,
            big: 0,
            ratio: 0.0,
        })
        .unwrap();
    }
    s.commit().unwrap();
    let expected = |id: i64, grow: bool| -> (String, Option<String>, i64, f64) {
        let len = if grow { id } else { 31 - id } as usize;
        (
            "b".repeat(len),
            (id % 3 != 1).then(|| "n".repeat(len * 2)),
            if grow { id * 1_000_000_000_000 } else { id },
            if grow {
                id as f64 + 0.125
            } else {
                1.0 / id as f64
            },
        )
    };
    for grow in [true, false] {
        let memos = s.query::<Memo>().order_by(Memo::ID.asc()).all().unwrap();
        for m in &memos {
            let mut w = m.write().unwrap();
            let (body, note, big, ratio) = expected(w.id, grow);
            w.body = body;
            w.note = note;
            w.big = big;
            w.ratio = ratio;
        }
        let capture = engine.capture_statements();
        s.commit().expect("the batched UPDATE");
        let updates = common::starting_with(capture.take(), "UPDATE").len();
        assert!(updates < 30, "batched: {updates} UPDATEs");
        let rows = db.rows("SELECT id, body, note, big, ratio FROM memos ORDER BY id");
        assert_eq!(rows.len(), 30);
        for row in rows {
            let id: i64 = row[0].parse().unwrap();
            let (body, note, big, ratio) = expected(id, grow);
            assert_eq!(row[1], body, "body of {id}");
            assert_eq!(
                row[2],
                note.unwrap_or_else(|| "NULL".into()),
                "note of {id}"
            );
            assert_eq!(row[3], big.to_string(), "big of {id}");
            assert_eq!(row[4].parse::<f64>().unwrap(), ratio, "ratio of {id}");
        }
    }
}
