//! Property tests (`proptest`) against the real server: arbitrary values of
//! every supported field type, written through a model and read back, compare
//! equal, or (for values outside what the column holds) fail with a named
//! error, never a panic or a silently different value. And the URL parser and
//! the row decoder take arbitrary input without panicking.
//!
//! Budget: 64 cases per test, each case a batch of 1 to 3 rows in one table
//! per test (one flush, then one read per row), so that all of them together
//! run in a few seconds on the 2-core CI machine.

mod common;

use std::cell::Cell;
use std::fmt::Debug;

use common::TestDb;
use orm::prelude::*;
use orm::session::SessionFactory;
use orm::value::{Date, DateTime, Time};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const CASES: u32 = 64;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Whether an error is one the library names (the server's refusal, or a
/// decode error naming table and column), rather than something unexplained.
fn is_named(e: &Error) -> bool {
    match e {
        Error::Database(db) => db.code.is_some(),
        Error::PendingRollback(cause) => is_named(cause),
        Error::Decode { table, column, .. } => !table.is_empty() && !column.is_empty(),
        _ => false,
    }
}

/// Reads rows `first..` back in a fresh session and compares them with
/// `rows`. `Ok(false)`: a value outside the domain was refused by name on
/// reading (allowed when not `in_domain`), so the case ends there.
fn read_back<M>(
    sessions: &SessionFactory,
    first: i64,
    rows: &[M],
    in_domain: bool,
) -> Result<bool, TestCaseError>
where
    M: Model + Clone + PartialEq + Debug,
{
    let s = sessions.session();
    for (n, row) in rows.iter().enumerate() {
        match s.get::<M>(first + n as i64) {
            Ok(Some(back)) => {
                let back = back
                    .value()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&back, row);
            }
            Ok(None) => return Err(TestCaseError::fail(format!("row {row:?} is missing"))),
            Err(e) if !in_domain && is_named(&e) => return Ok(false),
            Err(e) => return Err(TestCaseError::fail(format!("read {row:?}: {e:?}"))),
        }
    }
    Ok(true)
}

/// Writes batches of `make(id, value)` rows and reads each back, then
/// gives each row the next row's value in one flush (a batched UPDATE of
/// rows whose values differ in length, precision and NULLness) and reads
/// them back again. With `in_domain`, every value must come back equal;
/// otherwise a value may instead fail with a named error (and then must
/// not be half-written).
fn round_trip<M, S>(tag: &str, strategy: S, in_domain: bool, make: fn(i64, S::Value) -> M)
where
    M: Model + Clone + PartialEq + Debug,
    S: Strategy,
    S::Value: Clone + Debug,
{
    let db = TestDb::new(tag);
    let engine = orm::create_engine(&db.url_with("pool_size=1")).unwrap();
    orm::schema::create_all(&engine, &[M::table()]).unwrap();
    let sessions = SessionFactory::new(engine);
    let next_id = Cell::new(0i64);
    let result = runner().run(&vec(strategy, 1..4), |values| {
        let rows: Vec<M> = values
            .iter()
            .map(|v| {
                next_id.set(next_id.get() + 1);
                make(next_id.get(), v.clone())
            })
            .collect();
        let first = next_id.get() - rows.len() as i64 + 1;
        let s = sessions.session();
        for row in &rows {
            s.add(row.clone())
                .map_err(|e| TestCaseError::fail(format!("add: {e}")))?;
        }
        if let Err(e) = s.commit() {
            if in_domain || !is_named(&e) {
                return Err(TestCaseError::fail(format!("commit {rows:?}: {e:?}")));
            }
            return Ok(());
        }
        if !read_back(&sessions, first, &rows, in_domain)? {
            return Ok(());
        }
        // Each row takes the next row's value, in one flush (all loaded
        // first: a get() after a change would autoflush it alone).
        let rotated: Vec<M> = (0..rows.len())
            .map(|n| make(first + n as i64, values[(n + 1) % rows.len()].clone()))
            .collect();
        let s = sessions.session();
        let mut objs = Vec::with_capacity(rows.len());
        for n in 0..rows.len() {
            objs.push(
                s.get::<M>(first + n as i64)
                    .map_err(|e| TestCaseError::fail(format!("get: {e}")))?
                    .ok_or_else(|| TestCaseError::fail("row is missing"))?,
            );
        }
        for (obj, row) in objs.iter().zip(&rotated) {
            *obj.write()
                .map_err(|e| TestCaseError::fail(e.to_string()))? = row.clone();
        }
        if let Err(e) = s.commit() {
            if in_domain || !is_named(&e) {
                return Err(TestCaseError::fail(format!("update {rotated:?}: {e:?}")));
            }
            return Ok(());
        }
        read_back(&sessions, first, &rotated, in_domain)?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{tag}: {e}");
    }
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "ints")]
struct Ints {
    #[orm(primary_key)]
    id: i64,
    a: i8,
    b: i16,
    c: i32,
    d: i64,
    e: u8,
    f: u16,
    g: u32,
    h: u64,
    flag: bool,
    maybe: Option<i32>,
}

#[test]
fn integers_and_bools_round_trip() {
    let s = (
        any::<(i8, i16, i32, i64)>(),
        any::<(u8, u16, u32, u64)>(),
        any::<bool>(),
        any::<Option<i32>>(),
    );
    round_trip(
        "prop_ints",
        s,
        true,
        |id, ((a, b, c, d), (e, f, g, h), flag, maybe)| Ints {
            id,
            a,
            b,
            c,
            d,
            e,
            f,
            g,
            h,
            flag,
            maybe,
        },
    );
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "floats")]
struct Floats {
    #[orm(primary_key)]
    id: i64,
    single: f32,
    double: f64,
}

fn finite_f32() -> impl Strategy<Value = f32> {
    use proptest::num::f32::*;
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64::*;
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

#[test]
fn finite_floats_round_trip() {
    round_trip(
        "prop_floats",
        (finite_f32(), finite_f64()),
        true,
        |id, (single, double)| Floats { id, single, double },
    );
}

#[test]
fn any_float_round_trips_or_is_refused_by_name() {
    use proptest::num::f64::ANY;
    round_trip(
        "prop_any_floats",
        (finite_f32(), ANY),
        false,
        |id, (single, double)| Floats { id, single, double },
    );
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "texts")]
struct Texts {
    #[orm(primary_key)]
    id: i64,
    text: String,
    maybe: Option<String>,
    bytes: Vec<u8>,
}

fn text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

#[test]
fn text_and_bytes_round_trip() {
    let s = (
        text(255),
        proptest::option::of(text(40)),
        vec(any::<u8>(), 0..300),
    );
    round_trip("prop_texts", s, true, |id, (text, maybe, bytes)| Texts {
        id,
        text,
        maybe,
        bytes,
    });
}

#[test]
fn text_too_long_for_its_column_is_refused_by_name() {
    let s = (text(400), Just(None), Just(Vec::new()));
    round_trip("prop_long_texts", s, false, |id, (text, maybe, bytes)| {
        Texts {
            id,
            text,
            maybe,
            bytes,
        }
    });
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "times")]
struct Times {
    #[orm(primary_key)]
    id: i64,
    day: Date,
    at: DateTime,
    span: Time,
}

fn days_in(year: u16, month: u8) -> u8 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Dates in MySQL's supported range, 1000-01-01 to 9999-12-31.
fn date() -> impl Strategy<Value = Date> {
    (1000u16..=9999, 1u8..=12)
        .prop_flat_map(|(year, month)| (Just(year), Just(month), 1..=days_in(year, month)))
        .prop_map(|(year, month, day)| Date { year, month, day })
}

fn datetime() -> impl Strategy<Value = DateTime> {
    (date(), 0u8..24, 0u8..60, 0u8..60, 0u32..1_000_000).prop_map(
        |(date, hour, minute, second, micros)| DateTime {
            date,
            hour,
            minute,
            second,
            micros,
        },
    )
}

/// `TIME(6)`: -838:59:59.999999 to 838:59:59.999999.
fn time() -> impl Strategy<Value = Time> {
    const MAX: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000 + 999_999;
    (-MAX..=MAX).prop_map(|micros| Time { micros })
}

#[test]
fn built_in_dates_and_times_round_trip() {
    round_trip(
        "prop_times",
        (date(), datetime(), time()),
        true,
        |id, (day, at, span)| Times { id, day, at, span },
    );
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "chrono_times")]
struct ChronoTimes {
    #[orm(primary_key)]
    id: i64,
    day: chrono::NaiveDate,
    at: chrono::NaiveDateTime,
    clock: chrono::NaiveTime,
    utc: chrono::DateTime<chrono::Utc>,
}

fn naive(d: DateTime) -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(d.date.year.into(), d.date.month.into(), d.date.day.into())
        .unwrap()
        .and_hms_micro_opt(d.hour.into(), d.minute.into(), d.second.into(), d.micros)
        .unwrap()
}

#[test]
fn chrono_types_round_trip() {
    let s = (datetime(), datetime(), datetime());
    round_trip("prop_chrono", s, true, |id, (a, b, c)| ChronoTimes {
        id,
        day: naive(a).date(),
        at: naive(b),
        clock: naive(c).time(),
        utc: naive(a).and_utc(),
    });
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "chrono_days")]
struct ChronoDay {
    #[orm(primary_key)]
    id: i64,
    day: chrono::NaiveDate,
}

#[test]
fn any_chrono_date_round_trips_or_is_refused_by_name() {
    let s = (-300_000i32..300_000).prop_filter_map("a day", |n| {
        chrono::NaiveDate::from_num_days_from_ce_opt(n * 3)
    });
    round_trip("prop_chrono_any", s, false, |id, day| ChronoDay { id, day });
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "decimals")]
struct Decimals {
    #[orm(primary_key)]
    id: i64,
    /// Every `Decimal` fits `DECIMAL(65, 30)` exactly.
    #[orm(sql_type = "DECIMAL(65, 30)")]
    wide: rust_decimal::Decimal,
    /// The default column.
    default: rust_decimal::Decimal,
}

fn decimal() -> impl Strategy<Value = rust_decimal::Decimal> {
    (any::<(u32, u32, u32, bool)>(), 0u32..=28).prop_map(|((lo, mid, hi, negative), scale)| {
        rust_decimal::Decimal::from_parts(lo, mid, hi, negative, scale)
    })
}

#[test]
fn decimals_round_trip() {
    round_trip(
        "prop_decimals",
        (decimal(), decimal()),
        true,
        |id, (wide, default)| Decimals { id, wide, default },
    );
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "docs")]
struct Docs {
    #[orm(primary_key)]
    id: i64,
    doc: serde_json::Value,
    uid: uuid::Uuid,
}

/// JSON without floats (serde_json's default float parsing is not exactly
/// round-trip for every double; that is serde_json's business).
fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(|n| J::Number(n.into())),
        text(20).prop_map(J::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(J::Array),
            vec((text(8), inner), 0..4).prop_map(|kv| J::Object(kv.into_iter().collect())),
        ]
    })
}

#[test]
fn json_and_uuids_round_trip() {
    round_trip(
        "prop_docs",
        (json(), any::<u128>()),
        true,
        |id, (doc, uid)| Docs {
            id,
            doc,
            uid: uuid::Uuid::from_u128(uid),
        },
    );
}

// ---- never panic ----

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "everything")]
struct Everything {
    #[orm(primary_key)]
    id: i64,
    a: i8,
    b: u64,
    c: f32,
    d: bool,
    e: String,
    f: Vec<u8>,
    g: Option<i16>,
    h: Date,
    i: DateTime,
    j: Time,
    k: chrono::NaiveDate,
    l: chrono::NaiveDateTime,
    m: chrono::NaiveTime,
    n: chrono::DateTime<chrono::Utc>,
    o: rust_decimal::Decimal,
    p: serde_json::Value,
    q: uuid::Uuid,
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        any::<f32>().prop_map(Value::Float),
        any::<f64>().prop_map(Value::Double),
        text(30).prop_map(Value::Text),
        vec(any::<u8>(), 0..30).prop_map(Value::Bytes),
        text(40).prop_map(Value::Decimal),
        "[-+0-9.eE]{0,40}".prop_map(Value::Decimal),
        any::<(u16, u8, u8)>().prop_map(|(year, month, day)| Value::Date(Date {
            year,
            month,
            day
        })),
        any::<(u16, u8, u8, u8, u8, u8, u32)>().prop_map(
            |(year, month, day, hour, minute, second, micros)| {
                Value::DateTime(DateTime {
                    date: Date { year, month, day },
                    hour,
                    minute,
                    second,
                    micros,
                })
            }
        ),
        any::<i64>().prop_map(|micros| Value::Time(Time { micros })),
    ]
}

#[test]
fn the_row_decoder_never_panics() {
    let n = Everything::table().columns.len();
    runner()
        .run(&vec(any_value(), 0..n + 2), |values| {
            // Ok or Err; a panic fails the test.
            let _ = Everything::from_row(orm::Row::new(values));
            Ok(())
        })
        .unwrap();
    // Every column in turn gets every kind of value, the others valid.
    runner()
        .run(&(0..n, any_value()), |(column, value)| {
            let mut model = sample();
            let _ = model.set_column_value(column, value);
            let _ = model.to_values();
            Ok(())
        })
        .unwrap();
}

fn sample() -> Everything {
    let at = chrono::DateTime::from_timestamp(0, 0).unwrap();
    Everything {
        id: 1,
        a: 0,
        b: 0,
        c: 0.0,
        d: false,
        e: String::new(),
        f: Vec::new(),
        g: None,
        h: Date {
            year: 2000,
            month: 1,
            day: 1,
        },
        i: DateTime {
            date: Date {
                year: 2000,
                month: 1,
                day: 1,
            },
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        },
        j: Time { micros: 0 },
        k: at.date_naive(),
        l: at.naive_utc(),
        m: at.time(),
        n: at,
        o: rust_decimal::Decimal::ZERO,
        p: serde_json::Value::Null,
        q: uuid::Uuid::nil(),
    }
}

#[test]
fn the_url_parser_never_panics() {
    // Arbitrary text.
    runner()
        .run(&text(80), |url| {
            let _ = orm::builder(&url);
            let _ = orm::builder(&format!("mysql://{url}"));
            Ok(())
        })
        .unwrap();
    // URL-shaped text: every part arbitrary, percent signs and brackets included.
    let part = "[a-z0-9%@:/?&=\\[\\]._-]{0,12}";
    let option = (
        prop::sample::select(vec![
            "pool_size",
            "max_overflow",
            "pool_timeout",
            "pool_recycle",
            "pool_pre_ping",
            "pool_pre_ping_idle",
            "poolclass",
            "connect_timeout",
            "read_timeout",
            "ping_timeout",
            "ssl_mode",
            "insert_returning",
            "echo",
        ]),
        "[-+0-9.eEa-z%]{0,12}",
    );
    runner()
        .run(
            &(part, part, part, part, vec(option, 0..4)),
            |(user, pass, host, port, options)| {
                let query: Vec<String> = options.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let url = format!("mysql://{user}:{pass}@{host}:{port}/db?{}", query.join("&"));
                let _ = orm::builder(&url);
                Ok(())
            },
        )
        .unwrap();
}
