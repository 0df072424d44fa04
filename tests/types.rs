//! Every supported field type round-trips through a model, the session and
//! the server: NULL, integer extremes, unicode, empty strings, a 1 MiB blob,
//! hostile strings stored verbatim, and the feature types. A value that does
//! not fit its field is an error naming table and column. On MariaDB and on
//! an SQLite file (`mysql::name`, `sqlite::name`).

mod common;

use common::{Backend, TestDb};
use orm::prelude::*;
use orm::session::SessionFactory;

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "all_types")]
struct AllTypes {
    #[orm(primary_key)]
    id: i64,
    i8_: i8,
    i16_: i16,
    i32_: i32,
    i64_: i64,
    u8_: u8,
    u16_: u16,
    u32_: u32,
    u64_: u64,
    f32_: f32,
    f64_: f64,
    flag: bool,
    #[orm(sql_type = "LONGTEXT")]
    text: String,
    bytes: Vec<u8>,
    maybe_int: Option<i32>,
    maybe_text: Option<String>,
    when: chrono::NaiveDateTime,
    day: chrono::NaiveDate,
    at: chrono::DateTime<chrono::Utc>,
    money: rust_decimal::Decimal,
    doc: serde_json::Value,
    uid: uuid::Uuid,
}

fn min_row(id: i64) -> AllTypes {
    AllTypes {
        id,
        i8_: i8::MIN,
        i16_: i16::MIN,
        i32_: i32::MIN,
        i64_: i64::MIN,
        u8_: 0,
        u16_: 0,
        u32_: 0,
        u64_: 0,
        f32_: -1.5,
        f64_: f64::MIN_POSITIVE,
        flag: false,
        text: String::new(),
        bytes: Vec::new(),
        maybe_int: None,
        maybe_text: None,
        when: chrono::NaiveDate::from_ymd_opt(1000, 1, 1)
            .unwrap()
            .and_hms_micro_opt(0, 0, 0, 1)
            .unwrap(),
        day: chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap(),
        at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
        money: "-12345678.0000000001".parse().unwrap(),
        doc: serde_json::json!(null),
        uid: uuid::Uuid::nil(),
    }
}

fn max_row(id: i64) -> AllTypes {
    AllTypes {
        id,
        i8_: i8::MAX,
        i16_: i16::MAX,
        i32_: i32::MAX,
        i64_: i64::MAX,
        u8_: u8::MAX,
        u16_: u16::MAX,
        u32_: u32::MAX,
        u64_: u64::MAX,
        f32_: f32::MAX,
        f64_: f64::MAX,
        flag: true,
        text: "'; DROP TABLE users; -- \u{1F980} Grüße 漢字 \\ \" \0 end".to_string(),
        bytes: (0..1024 * 1024).map(|i| (i % 251) as u8).collect(),
        maybe_int: Some(-7),
        maybe_text: Some(String::new()),
        when: chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 999_999)
            .unwrap(),
        day: chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
        at: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
        money: "98765432.1234567891".parse().unwrap(),
        doc: serde_json::json!({"a": [1, 2.5, "x"], "b": {"nested": true}}),
        uid: uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
    }
}

fn every_type_round_trips_through_a_session(b: Backend) {
    let db = TestDb::on(b, "types_rt");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[AllTypes::table()]).unwrap();
    let factory = SessionFactory::new(engine.clone());
    let mut max = max_row(2);
    if b == Backend::Sqlite {
        // SQLite's integers are signed 64-bit: the largest u64 it stores.
        max.u64_ = i64::MAX as u64;
    }
    let written = [min_row(1), max];
    factory
        .begin(|s| {
            for row in &written {
                s.add(row.clone())?;
            }
            Ok(())
        })
        .unwrap();
    // A fresh session reads from the server, not from an identity map.
    let s = factory.session();
    let read = s
        .query::<AllTypes>()
        .order_by(AllTypes::ID.asc())
        .all()
        .unwrap();
    let read: Vec<AllTypes> = read.iter().map(|o| o.value().unwrap()).collect();
    assert_eq!(read.len(), 2);
    for (w, r) in written.iter().zip(&read) {
        assert_eq!(w, r, "row {} did not round-trip", w.id);
    }
    // The hostile string is stored verbatim, and the table is still there.
    // (SQLite's LENGTH of text counts characters up to a NUL: count bytes.)
    let length = match b {
        Backend::MySql => "SELECT LENGTH(text) FROM all_types WHERE id = 2",
        Backend::Sqlite => "SELECT LENGTH(CAST(text AS BLOB)) FROM all_types WHERE id = 2",
    };
    assert_eq!(
        db.rows(length)[0][0].parse::<usize>().unwrap(),
        written[1].text.len()
    );
    // Filters bind the same values.
    let hit = s
        .query::<AllTypes>()
        .filter(AllTypes::U64_.eq(written[1].u64_))
        .filter(AllTypes::UID.eq(written[1].uid))
        .one()
        .unwrap();
    assert_eq!(hit.read().unwrap().id, 2);
    if b == Backend::Sqlite {
        // How SQLite stores them (the documented forms), read raw.
        assert_eq!(
            db.rows(
                "SELECT typeof(money), money, day, \"when\", typeof(flag), flag, uid, doc \
                 FROM all_types WHERE id = 1"
            ),
            vec![vec![
                "text",
                "-12345678.0000000001",
                "1970-01-01",
                "1000-01-01 00:00:00.000001",
                "integer",
                "0",
                "00000000-0000-0000-0000-000000000000",
                "null",
            ]]
        );
        // A u64 above i64::MAX is refused with a message, not wrapped.
        let err = factory
            .begin(|s| {
                s.add(max_row(3))?;
                Ok(())
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("above SQLite's largest integer"),
            "{err}"
        );
        assert_eq!(db.rows("SELECT COUNT(*) FROM all_types"), vec![vec!["2"]]);
    }
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "narrow")]
struct Narrow {
    #[orm(primary_key)]
    id: i64,
    small: i8,
    name: String,
}

fn values_that_do_not_fit_are_errors_naming_table_and_column(b: Backend) {
    let db = TestDb::on(b, "types_fit");
    // The table is wider than the model thinks: NULLs and big numbers are possible.
    db.exec("CREATE TABLE narrow (id BIGINT PRIMARY KEY, small INT NULL, name VARCHAR(10) NULL)");
    db.exec("INSERT INTO narrow VALUES (1, 1000, 'ok'), (2, 1, NULL)");
    let engine = orm::create_engine(&db.url).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    let err = s.get::<Narrow>(1).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Decode {
                table: "narrow",
                column: "small",
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("1000") && msg.contains("i8"), "{msg}");
    let err = s.get::<Narrow>(2).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Decode {
                table: "narrow",
                column: "name",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("Option<String>"),
        "the message says how to fix it: {msg}"
    );
    drop(s);
    assert_eq!(engine.status().checked_out, 0);
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "wide_money")]
struct WideMoney {
    #[orm(primary_key)]
    id: i64,
    #[orm(sql_type = "DECIMAL(65, 30)")]
    amount: rust_decimal::Decimal,
}

#[test]
fn a_decimal_65_30_column_reads_back_and_what_does_not_fit_names_the_limit() {
    let db = TestDb::new("types_wide_decimal");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[WideMoney::table()]).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    let amount = rust_decimal::Decimal::new(15, 1);
    s.add(WideMoney { id: 1, amount }).unwrap();
    s.commit().unwrap();
    s.expunge_all().unwrap();
    let back = s.get::<WideMoney>(1).unwrap().expect("row 1");
    assert_eq!(back.read().unwrap().amount, amount);

    // 30 significant digits after the point: more than Decimal holds.
    db.exec("INSERT INTO wide_money VALUES (2, 0.000000000000000000000000000001)");
    let s = SessionFactory::new(engine.clone()).session();
    let err = s.get::<WideMoney>(2).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Decode {
                table: "wide_money",
                column: "amount",
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("28 digits after the point"), "{msg}");
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "days")]
struct Day {
    #[orm(primary_key)]
    id: i64,
    day: orm::value::Date,
    at: orm::value::DateTime,
}

#[test]
fn zero_dates_are_decode_errors_for_the_built_in_types() {
    let db = TestDb::new("types_zero_date");
    db.exec(
        "CREATE TABLE days (id BIGINT PRIMARY KEY, day DATE NOT NULL, at DATETIME(6) NOT NULL)",
    );
    // A zero date is storable when sql_mode allows it.
    {
        use ::mysql::prelude::Queryable;
        let mut admin = common::admin_conn();
        admin.query_drop(format!("USE `{}`", db.name)).unwrap();
        admin.query_drop("SET SESSION sql_mode = ''").unwrap();
        admin
            .query_drop("INSERT INTO days VALUES (1, '0000-00-00', '2024-01-01 00:00:00'), (2, '2024-01-01', '0000-00-00 00:00:00')")
            .unwrap();
    }
    let engine = orm::create_engine(&db.url).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    for (id, column) in [(1, "day"), (2, "at")] {
        let err = s.get::<Day>(id).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, Error::Decode { table: "days", column: c, .. } if *c == column),
            "{msg}"
        );
        assert!(msg.contains("is not a calendar date"), "{msg}");
    }
}

/// One batched UPDATE of every column of three rows, the first row's
/// values the shortest (empty strings and blob, NULLs, one microsecond)
/// and the later rows' the longest and most precise: each row reads back
/// whole. MariaDB types a `UNION ALL VALUES` derived table from its first
/// row alone, which had failed the later strings ("Data too long") and
/// would have dropped the later rows' microseconds.
fn a_batched_update_writes_every_type_whole(b: Backend) {
    let db = TestDb::on(b, "types_batch");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[AllTypes::table()]).unwrap();
    let factory = SessionFactory::new(engine.clone());
    let max = |id| {
        let mut row = max_row(id);
        if b == Backend::Sqlite {
            row.u64_ = i64::MAX as u64;
        }
        row
    };
    factory
        .begin(|s| {
            s.add(max(1))?;
            s.add(min_row(2))?;
            s.add(min_row(3))?;
            Ok(())
        })
        .unwrap();
    let wanted = [min_row(1), max(2), max(3)];
    let s = factory.session();
    let rows = s
        .query::<AllTypes>()
        .order_by(AllTypes::ID.asc())
        .all()
        .unwrap();
    for (row, new) in rows.iter().zip(&wanted) {
        *row.write().unwrap() = new.clone();
    }
    let capture = engine.capture_statements();
    s.commit().expect("the batched UPDATE");
    let updates = common::starting_with(capture.take(), "UPDATE").len();
    assert_eq!(updates, 1, "one statement for the three rows");
    let s = factory.session();
    let read: Vec<AllTypes> = s
        .query::<AllTypes>()
        .order_by(AllTypes::ID.asc())
        .all()
        .unwrap()
        .iter()
        .map(|o| o.value().unwrap())
        .collect();
    for (w, r) in wanted.iter().zip(&read) {
        assert_eq!(w, r, "row {} did not come back whole", w.id);
    }
}

backend_tests!(
    every_type_round_trips_through_a_session,
    values_that_do_not_fit_are_errors_naming_table_and_column,
    a_batched_update_writes_every_type_whole,
);

/// A column type with neither `PartialEq` nor its own `same_as`: change
/// detection compares it through the values it binds as.
#[derive(Debug, Clone)]
struct Cents(i64);

impl orm::ToValue for Cents {
    fn to_value(&self) -> orm::Value {
        orm::Value::Int(self.0)
    }
}
impl orm::FromValue for Cents {
    fn from_value(v: orm::Value) -> Result<Self, orm::ConversionError> {
        i64::from_value(v).map(Cents)
    }
}
impl orm::SqlType for Cents {
    const COLUMN_TYPE: orm::ColumnType = orm::ColumnType::BigInt { unsigned: false };
}

#[derive(Debug, Clone, Model)]
#[orm(table = "priced")]
struct Priced {
    #[orm(primary_key)]
    id: i64,
    price: Cents,
    #[orm(sql_type = "VARCHAR(32)")]
    note: Option<String>,
    ratio: f64,
}

/// A written object is compared with its snapshot field by field: values
/// written back unchanged send nothing, each changed column (a user type
/// compared through its values, an `Option` going to or from `None`) is
/// UPDATEd alone, and the rows show it.
#[test]
fn change_detection_compares_each_field_with_its_snapshot() {
    let db = TestDb::new("ty_same");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[Priced::table()]).unwrap();
    let factory = SessionFactory::new(engine.clone());
    let s = factory.session();
    s.add(Priced {
        id: 1,
        price: Cents(100),
        note: Some("first".into()),
        ratio: 0.5,
    })
    .unwrap();
    s.commit().unwrap();
    s.close();

    let s = factory.session();
    let p = s.get::<Priced>(1).unwrap().expect("the row");
    let capture = engine.capture_statements();
    // The row as the session's transaction sees it (nothing is committed yet).
    let row = |s: &orm::session::Session| {
        s.query_tuples::<(i64, Option<String>, f64)>(
            "SELECT price, note, ratio FROM priced WHERE id = 1",
            &[],
        )
        .unwrap()
    };
    let flushed = |s: &orm::session::Session| {
        s.flush().unwrap();
        common::starting_with(capture.take(), "UPDATE")
    };
    {
        let mut w = p.write().unwrap();
        let same = w.clone();
        *w = same;
    }
    assert!(!p.is_modified(), "equal values written back");
    assert_eq!(flushed(&s), Vec::<String>::new());

    p.write().unwrap().price = Cents(250);
    assert!(p.is_modified());
    let sent = flushed(&s);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("`price`") && !sent[0].contains("`note`"),
        "{sent:?}"
    );
    assert_eq!(row(&s), [(250, Some("first".to_string()), 0.5)]);

    p.write().unwrap().note = None;
    let sent = flushed(&s);
    assert!(
        sent.len() == 1 && sent[0].contains("`note`") && !sent[0].contains("`price`"),
        "{sent:?}"
    );
    assert_eq!(row(&s), [(250, None, 0.5)]);

    p.write().unwrap().note = Some("again".into());
    p.write().unwrap().ratio = 0.75;
    let sent = flushed(&s);
    assert!(
        sent.len() == 1 && sent[0].contains("`note`") && sent[0].contains("`ratio`"),
        "{sent:?}"
    );
    assert_eq!(row(&s), [(250, Some("again".to_string()), 0.75)]);
    s.commit().unwrap();
    assert_eq!(
        db.rows("SELECT price, note, ratio FROM priced WHERE id = 1"),
        [["250", "again", "0.75"]]
    );
}
