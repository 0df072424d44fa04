//! Engine construction and the MySQL backend against a real MariaDB: URLs
//! and options, connect errors, password masking, server detection, value
//! conversion, affected rows.

mod common;

use std::time::{Duration, Instant};

use common::{TempUser, TestDb};
use orm_core::backend::ServerKind;
use orm_core::value::{Date, DateTime, Time, Value};
use orm_core::{DbErrorKind, Error};

#[test]
fn bad_urls_and_unknown_options_are_config_errors() {
    for (url, needle) in [
        ("http://root@127.0.0.1/test", "mysql://"),
        ("mysql://root@127.0.0.1:notaport/test", "notaport"),
        ("mysql://root@127.0.0.1/test?pool_size=lots", "pool_size"),
        ("mysql://root@127.0.0.1/test?pool_sizee=2", "pool_sizee"),
        ("mysql://root@127.0.0.1/test?poolclass=magic", "poolclass"),
    ] {
        match orm_mysql::create_engine(url) {
            Err(Error::Config(message)) => assert!(message.contains(needle), "{url}: {message}"),
            other => panic!("{url}: expected a Config error, got {other:?}"),
        }
    }
    let err = orm_mysql::create_engine("mysql://root@127.0.0.1/test?bogus=1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("known options") && err.contains("max_overflow"),
        "{err}"
    );
    let err = orm_mysql::builder("mysql://root@127.0.0.1/test")
        .unwrap()
        .option("nope", "1")
        .unwrap_err();
    assert!(err.to_string().contains("nope"));
}

#[test]
fn unreachable_host_fails_fast_with_a_connect_error() {
    let engine =
        orm_mysql::create_engine("mysql://root:hunter2@127.0.0.1:1/test?connect_timeout=2")
            .unwrap();
    let started = Instant::now();
    let err = engine.connect().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(err.db_kind(), Some(DbErrorKind::Connect), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("127.0.0.1:1") && !message.contains("hunter2"),
        "{message}"
    );
    assert_eq!(engine.status().checked_out, 0);
}

#[test]
fn passwords_are_masked_and_wrong_ones_are_clear_errors() {
    let db = TestDb::new("url_password");
    let password = "s3cret/p@ss";
    let user = TempUser::new("url", password);
    let encoded = "s3cret%2Fp%40ss";
    let url = format!("mysql://{}:{encoded}@127.0.0.1:3306/{}", user.name, db.name);
    let engine = orm_mysql::create_engine(&url).unwrap();
    for shown in [
        format!("{engine:?}"),
        format!("{engine}"),
        engine.describe(),
    ] {
        assert!(
            !shown.contains("s3cret") && shown.contains(":***@"),
            "{shown}"
        );
    }
    let mut conn = engine.connect().expect("percent-decoded password works");
    conn.query_rows("SELECT 1", &[]).unwrap();
    assert!(!format!("{conn:?}").contains("s3cret"));
    drop(conn);

    let wrong = orm_mysql::create_engine(&format!(
        "mysql://{}:wrongpw@127.0.0.1:3306/{}",
        user.name, db.name
    ))
    .unwrap();
    let err = wrong.connect().unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Connect));
    assert_eq!(err.code(), Some(1045));
    let message = err.to_string();
    assert!(
        message.contains("password") && !message.contains("wrongpw"),
        "{message}"
    );
    assert!(!format!("{err:?}").contains("wrongpw"));
}

#[test]
fn server_detection() {
    let db = TestDb::new("url_server");
    let engine = orm_mysql::create_engine(&db.url).unwrap();
    let conn = engine.connect().unwrap();
    let info = conn.server_info().clone();
    assert_eq!(info.kind, ServerKind::MariaDb);
    assert!(info.version >= (10, 5, 0), "{info:?}");
    assert!(info.supports_returning);
    assert!(info.max_allowed_packet >= 1024);
    assert_eq!(info.max_placeholders, 65535);
    let lock_mode = db.rows("SELECT @@innodb_autoinc_lock_mode")[0][0].clone();
    assert_eq!(info.multi_row_key_step().is_some(), lock_mode != "2");
    assert_eq!(
        info.auto_increment.lock_mode.map(|m| m.to_string()),
        Some(lock_mode)
    );
    let increment = db.rows("SELECT @@auto_increment_increment")[0][0].clone();
    assert_eq!(
        info.auto_increment.increment.map(|i| i.to_string()),
        Some(increment)
    );
    // Later connections reuse what the first one learned.
    let second = engine.connect().unwrap();
    assert_eq!(second.server_info(), &info);

    let off = orm_mysql::create_engine(&db.url_with("insert_returning=off")).unwrap();
    assert!(!off.connect().unwrap().server_info().supports_returning);
}

#[test]
fn values_round_trip_with_column_metadata() {
    let db = TestDb::new("url_values");
    db.exec(
        "CREATE TABLE v (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, i INT, t VARCHAR(20), \
         b VARBINARY(20), blob_ LONGBLOB, txt LONGTEXT, d DECIMAL(10,2), f FLOAT, g DOUBLE, \
         dt DATE, ts DATETIME(6), tm TIME(6), flag TINYINT(1), n INT NULL)",
    );
    let engine = orm_mysql::create_engine(&db.url).unwrap();
    let mut conn = engine.connect().unwrap();
    let datetime = DateTime {
        date: Date {
            year: 2024,
            month: 2,
            day: 29,
        },
        hour: 13,
        minute: 5,
        second: 7,
        micros: 123456,
    };
    let time = Time {
        micros: -((26 * 3600 + 2 * 60 + 3) * 1_000_000 + 5),
    };
    let params = [
        Value::Int(-7),
        Value::Text("héllo ✓".into()),
        Value::Bytes(vec![0, 159, 255]),
        Value::Bytes(vec![1, 2, 3]),
        Value::Text("long text".into()),
        Value::Decimal("-12.50".into()),
        Value::Float(1.5),
        Value::Double(2.25),
        Value::Date(Date {
            year: 1999,
            month: 12,
            day: 31,
        }),
        Value::DateTime(datetime),
        Value::Time(time),
        Value::Bool(true),
        Value::Null,
    ];
    let out = conn
        .execute(
            "INSERT INTO v (i, t, b, blob_, txt, d, f, g, dt, ts, tm, flag, n) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            &params,
        )
        .unwrap();
    assert_eq!((out.affected_rows, out.last_insert_id), (1, Some(1)));
    let rows = conn
        .query_rows(
            "SELECT id, i, t, b, blob_, txt, d, f, g, dt, ts, tm, flag, n FROM v",
            &[],
        )
        .unwrap();
    let values = rows[0].values();
    assert!(matches!(values[0], Value::UInt(1)), "{:?}", values[0]);
    assert!(matches!(values[1], Value::Int(-7)));
    assert_eq!(values[2], Value::Text("héllo ✓".into()));
    assert_eq!(values[3], Value::Bytes(vec![0, 159, 255]));
    assert_eq!(values[4], Value::Bytes(vec![1, 2, 3]));
    assert_eq!(values[5], Value::Text("long text".into()));
    assert_eq!(values[6], Value::Decimal("-12.50".into()));
    assert_eq!(values[7], Value::Float(1.5));
    assert_eq!(values[8], Value::Double(2.25));
    assert_eq!(
        values[9],
        Value::Date(Date {
            year: 1999,
            month: 12,
            day: 31
        })
    );
    assert_eq!(values[10], Value::DateTime(datetime));
    assert_eq!(values[11], Value::Time(time));
    assert!(
        matches!(values[12], Value::Int(1)),
        "TINYINT(1) stays an integer: {:?}",
        values[12]
    );
    assert_eq!(values[13], Value::Null);

    // Streaming stops at the callback's error, and the connection stays usable.
    let mut seen = 0;
    let err = conn
        .query("SELECT seq FROM seq_1_to_100", &[], &mut |_| {
            seen += 1;
            if seen == 3 {
                Err(Error::invalid("stop"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)) && seen == 3);
    assert_eq!(conn.query_rows("SELECT 2", &[]).unwrap().len(), 1);
}

#[test]
fn update_reports_matched_rows_and_errors_are_classified() {
    let db = TestDb::new("url_rows");
    db.exec("CREATE TABLE p (id INT PRIMARY KEY, x INT)");
    db.exec("CREATE TABLE c (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES p(id))");
    let engine = orm_mysql::create_engine(&db.url).unwrap();
    let mut conn = engine.connect().unwrap();
    conn.execute(
        "INSERT INTO p VALUES (?, ?)",
        &[Value::Int(1), Value::Int(5)],
    )
    .unwrap();
    let out = conn
        .execute(
            "UPDATE p SET x = ? WHERE id = ?",
            &[Value::Int(5), Value::Int(1)],
        )
        .unwrap();
    assert_eq!(
        out.affected_rows, 1,
        "CLIENT_FOUND_ROWS: matched, not changed"
    );

    let dup = conn
        .execute(
            "INSERT INTO p VALUES (?, ?)",
            &[Value::Int(1), Value::Int(0)],
        )
        .unwrap_err();
    assert!(dup.is_integrity() && dup.code() == Some(1062), "{dup:?}");
    assert_eq!(dup.db_error().unwrap().sqlstate.as_deref(), Some("23000"));
    let fk = conn
        .execute(
            "INSERT INTO c VALUES (?, ?)",
            &[Value::Int(1), Value::Int(99)],
        )
        .unwrap_err();
    assert!(fk.is_integrity() && fk.code() == Some(1452), "{fk:?}");
    let syntax = conn.execute_text("SELEC 1").unwrap_err();
    assert_eq!(syntax.db_kind(), Some(DbErrorKind::Other));
    // Errors do not invalidate the connection.
    assert_eq!(engine.stats().connections_invalidated, 0);
    conn.query_rows("SELECT 1", &[]).unwrap();
}

/// A loopback port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_host_list_connects_to_the_first_that_answers() {
    let db = TestDb::new("url_failover");
    // mysql://user@host:port/db?...: put a dead host before the real one.
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h.to_string()),
        None => (String::new(), authority.to_string()),
    };
    let dead = dead_port();
    let url = format!("{scheme}://{userinfo}127.0.0.1:{dead},{hostport}/{path}");
    let engine = orm_mysql::create_engine(&format!("{url}?pool_size=1&connect_timeout=2")).unwrap();
    let described = engine.describe();
    assert!(
        described.contains(&format!("127.0.0.1:{dead},")),
        "{described}"
    );
    let mut conn = engine.connect().expect("the second host answers");
    let rows = conn.query_rows("SELECT DATABASE()", &[]).unwrap();
    assert_eq!(rows[0].values()[0], Value::Text(db.name.clone()));
    drop(conn);
    // Random order reaches the live host too.
    let random =
        orm_mysql::create_engine(&format!("{url}?host_order=random&connect_timeout=2")).unwrap();
    for _ in 0..4 {
        random
            .connect()
            .expect("some host answers")
            .query_rows("SELECT 1", &[])
            .unwrap();
        random.dispose();
    }
    // No host answers: the last connect error, fast.
    let none = orm_mysql::create_engine(&format!(
        "{scheme}://{userinfo}127.0.0.1:{dead},127.0.0.1:{}/{path}?connect_timeout=2",
        dead_port()
    ))
    .unwrap();
    let err = none.connect().unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Connect), "{err:?}");
    assert!(orm_mysql::create_engine(&format!("{url}?host_order=sideways")).is_err());
}
