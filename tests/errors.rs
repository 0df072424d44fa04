//! Errors that say what happened: timeouts name the setting that expired,
//! constraint and packet errors are classified by what they mean, values the
//! driver cannot interpret are decode errors naming table and column, and
//! `ssl_mode=preferred` connects in plain text to a server without TLS.

mod common;

use common::private_server::PrivateServer;
use common::proxy::Proxy;
use common::TestDb;
use mysql::prelude::Queryable;
use orm::prelude::*;
use orm::session::SessionFactory;
use orm::{DbErrorKind, Error};
use orm_core::backend::Connector;

fn query_one(engine: &Engine, sql: &str) -> orm::Result<Vec<Value>> {
    let mut conn = engine.connect()?;
    let rows = conn.query_rows(sql, &[])?;
    Ok(rows
        .into_iter()
        .next()
        .map(|r| r.into_values())
        .unwrap_or_default())
}

#[test]
fn a_read_timeout_names_the_setting_and_what_to_do() {
    let db = TestDb::new("err_read_timeout");
    let (proxy, url) = Proxy::in_front_of(&db.url);
    let engine = orm::create_engine(&format!("{url}?pool_size=1&read_timeout=0.5")).unwrap();
    let mut conn = engine.connect().unwrap();
    conn.query_rows("SELECT 1", &[]).unwrap();

    proxy.stall(true);
    let err = conn.query_rows("SELECT 1", &[]).unwrap_err();
    proxy.stall(false);
    assert!(err.is_connection_lost(), "{err:?}");
    let message = err.to_string();
    for needle in [
        "timed out",
        "read_timeout = 0.5 s",
        "may still be running on the server",
        "raise read_timeout",
    ] {
        assert!(message.contains(needle), "{needle:?} in: {message}");
    }
}

#[test]
fn a_stalled_handshake_names_connect_timeout() {
    let db = TestDb::new("err_connect_timeout");
    let (proxy, url) = Proxy::in_front_of(&db.url);
    proxy.stall(true);
    let engine = orm::create_engine(&format!("{url}?connect_timeout=0.5")).unwrap();
    let err = engine.connect().unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Connect), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("timed out") && message.contains("connect_timeout = 0.5 s"),
        "{message}"
    );
}

#[test]
fn a_ping_has_its_own_short_timeout_named_in_the_error() {
    let db = TestDb::new("err_ping_timeout");
    let (proxy, url) = Proxy::in_front_of(&db.url);
    // No read timeout for statements: only the ping's bounds the wait.
    let connector = orm::builder(&format!("{url}?ping_timeout=0.5&read_timeout=0"))
        .unwrap()
        .build_connector()
        .unwrap();
    let mut conn = connector.connect().unwrap();
    conn.ping().unwrap();
    proxy.stall(true);
    let err = conn.ping().unwrap_err();
    proxy.stall(false);
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(err.to_string().contains("ping_timeout = 0.5 s"), "{err}");
}

#[test]
fn long_statements_have_no_read_timeout_by_default() {
    let (config, _) = orm_mysql::builder("mysql://root@127.0.0.1/test")
        .map(|b| (b.config().clone(), ()))
        .unwrap();
    assert_eq!(config.read_timeout, None);
    assert!(config.ping_timeout.is_some());
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "checked")]
struct Checked {
    #[orm(primary_key)]
    id: i64,
    qty: i64,
}

#[test]
fn a_check_constraint_violation_is_an_integrity_error() {
    let db = TestDb::new("err_check");
    db.exec("CREATE TABLE checked (id BIGINT PRIMARY KEY, qty BIGINT NOT NULL, CONSTRAINT qty_positive CHECK (qty > 0))");
    let engine = orm::create_engine(&db.url).unwrap();
    let session = SessionFactory::new(engine.clone()).session();
    session.add(Checked { id: 1, qty: -1 }).unwrap();
    let err = session.flush().unwrap_err();
    assert!(err.is_integrity(), "{err:?}");
    // MariaDB 4025, MySQL 3819.
    assert!(matches!(err.code(), Some(4025 | 3819)), "{err:?}");
    drop(session);
    assert_eq!(db.rows("SELECT COUNT(*) FROM checked"), [["0"]]);
}

#[test]
fn a_packet_the_server_refuses_as_too_large_is_a_lost_connection() {
    // The server's limit is lowered after the engine learned the old one, so
    // the client sends what the server refuses with 1153 and then closes the
    // connection. SET GLOBAL: only on a server of this test's own.
    let server = PrivateServer::start("err_packet");
    let engine = server.engine("poolclass=null");
    query_one(&engine, "SELECT 1").unwrap();
    server
        .admin()
        .query_drop("SET GLOBAL max_allowed_packet = 1048576")
        .unwrap();
    let mut conn = engine.connect().unwrap();
    let big = format!("SELECT '{}'", "x".repeat(2 << 20));
    let err = conn.execute_text(&big).unwrap_err();
    // The server sends 1153 and closes the socket at once: whether the
    // client reads the error packet before the reset is a race. Either way
    // it is a lost connection.
    assert!(matches!(err.code(), Some(1153) | None), "{err:?}");
    assert!(err.is_connection_lost(), "{err:?}");
    // The guard reconnects instead of using the connection the server closed.
    let id = conn.connection_id();
    conn.query_rows("SELECT 1", &[]).unwrap();
    assert_ne!(conn.connection_id(), id);
}

#[test]
fn a_statement_over_the_known_packet_limit_says_what_to_do() {
    let db = TestDb::new("err_packet_client");
    let max: usize = db.rows("SELECT @@max_allowed_packet")[0][0]
        .parse()
        .unwrap();
    let engine = orm::create_engine(&db.url_with("pool_size=1")).unwrap();
    let mut conn = engine.connect().unwrap();
    let big = format!("SELECT '{}'", "x".repeat(max + 1024));
    let err = conn.execute_text(&big).unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("max_allowed_packet") && message.contains("Send less per statement"),
        "{message}"
    );
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "latin")]
struct Latin {
    #[orm(primary_key)]
    id: i64,
    name: String,
}

#[test]
fn text_the_driver_cannot_decode_is_a_decode_error_naming_table_and_column() {
    let db = TestDb::new("err_decode");
    db.exec("CREATE TABLE latin (id BIGINT PRIMARY KEY, name VARCHAR(10) CHARACTER SET latin1 NOT NULL)");
    db.exec("INSERT INTO latin VALUES (1, _utf8mb4'caf\u{e9}')");
    // No result conversion: the server sends the column's latin1 bytes.
    let engine = orm::builder(&db.url)
        .unwrap()
        .on_connect(|c| {
            c.execute_text("SET character_set_results = NULL")
                .map(|_| ())
        })
        .build()
        .unwrap();
    let session = SessionFactory::new(engine.clone()).session();
    let err = session.get::<Latin>(1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode {
                table: "latin",
                column: "name",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn ssl_mode_preferred_connects_in_plain_text_to_a_server_without_tls() {
    let db = TestDb::new("err_ssl");
    let have_ssl = db.rows("SELECT @@have_ssl")[0][0].clone();
    assert_ne!(
        have_ssl, "YES",
        "this test needs the local server without TLS, as the tests' server is set up"
    );
    let engine = orm::create_engine(&db.url_with("ssl_mode=preferred")).unwrap();
    for _ in 0..2 {
        let row = query_one(&engine, "SHOW STATUS LIKE 'Ssl_cipher'").unwrap();
        assert_eq!(row[1], Value::Text(String::new()), "{row:?}");
    }
    let err = orm::create_engine(&db.url_with("ssl_mode=bogus")).unwrap_err();
    assert!(err.to_string().contains("preferred"), "{err}");
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "short_texts")]
struct ShortText {
    #[orm(primary_key)]
    id: i64,
    #[orm(sql_type = "VARCHAR(4)")]
    text: String,
}

#[test]
fn a_value_the_server_would_change_is_refused_not_stored() {
    let db = TestDb::new("err_truncate");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[ShortText::table()]).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    // Trailing blanks past the column's length are cut with a note even in
    // strict mode: a silent change the ORM refuses.
    s.add(ShortText {
        id: 1,
        text: "abcd  ".into(),
    })
    .unwrap();
    let err = s.commit().unwrap_err();
    assert!(err.is_integrity(), "{err:?}");
    assert_eq!(err.code(), Some(1265), "{err:?}");
    assert!(err.to_string().contains("silently"), "{err}");
    s.rollback().unwrap();
    assert_eq!(db.rows("SELECT COUNT(*) FROM short_texts"), [["0"]]);
    s.add(ShortText {
        id: 2,
        text: "abcd".into(),
    })
    .unwrap();
    s.commit().unwrap();
    assert_eq!(db.rows("SELECT text FROM short_texts"), [["abcd"]]);
}

#[test]
fn a_value_the_server_would_change_is_refused_for_generated_keys_too() {
    let db = TestDb::new("err_truncate_ret");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[ShortTextAuto::table()]).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    // Whether the key comes from LAST_INSERT_ID or RETURNING, the warning is seen.
    s.add(ShortTextAuto {
        id: None,
        text: "wxyz   ".into(),
    })
    .unwrap();
    let err = s.commit().unwrap_err();
    assert_eq!(err.code(), Some(1265), "{err:?}");
    s.rollback().unwrap();
    assert_eq!(db.rows("SELECT COUNT(*) FROM short_auto"), [["0"]]);
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "short_auto")]
struct ShortTextAuto {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(4)")]
    text: String,
}
