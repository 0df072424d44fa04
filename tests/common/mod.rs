//! Shared support for the integration tests: the database URL, and private
//! databases that are created per test and dropped afterwards, on MariaDB
//! or on an SQLite file ([`Backend`], [`backend_tests!`]).
//!
//! A test that needs MariaDB and cannot reach it FAILS with a message that
//! says how to start the server; nothing is skipped silently.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use mysql::prelude::Queryable;

/// The statements of `sent` (a `StatementCapture::take()`) that start with
/// `prefix` ("INSERT", "UPDATE", ...), in the order they were sent.
pub fn starting_with(sent: Vec<String>, prefix: &str) -> Vec<String> {
    sent.into_iter().filter(|q| q.starts_with(prefix)).collect()
}

/// `DATABASE_URL`, or the project's default.
pub fn base_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string())
}

const HOW_TO_START: &str =
    "MariaDB must be running at DATABASE_URL (default mysql://root@127.0.0.1:3306/test). \
Start it with: mkdir -p /run/mysqld && chown mysql /run/mysqld && \
start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql";

/// A raw `mysql` crate connection to the server (admin work: create/drop
/// databases, KILL, reading status). Over TCP, never the Unix socket.
pub fn admin_conn() -> mysql::Conn {
    let opts =
        mysql::Opts::from_url(&base_url()).expect("DATABASE_URL is not a valid mysql:// URL");
    let opts = mysql::OptsBuilder::from_opts(opts).prefer_socket(false);
    match mysql::Conn::new(opts) {
        Ok(c) => c,
        Err(e) => panic!("cannot connect to the test database: {e}\n{HOW_TO_START}"),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The database a test body runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MariaDB at `DATABASE_URL`.
    MySql,
    /// An SQLite file in the temp directory.
    Sqlite,
}

/// Runs each named test body (`fn name(backend: Backend)`) once per
/// backend: `mysql::name` and `sqlite::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod mysql {
            $(#[test]
            fn $name() {
                super::$name($crate::common::Backend::MySql)
            })*
        }
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name($crate::common::Backend::Sqlite)
            })*
        }
    };
}

/// A database of its own for one test, dropped when this value is dropped.
pub struct TestDb {
    /// The database name.
    pub name: String,
    /// A URL pointing at it (same server and credentials as `base_url()`).
    pub url: String,
    /// Which backend it is on.
    pub backend: Backend,
    /// The SQLite file, for `Backend::Sqlite`.
    path: Option<PathBuf>,
}

impl TestDb {
    /// A private database on `backend`: see [`TestDb::new`] and [`TestDb::sqlite`].
    pub fn on(backend: Backend, tag: &str) -> TestDb {
        match backend {
            Backend::MySql => TestDb::new(tag),
            Backend::Sqlite => TestDb::sqlite(tag),
        }
    }

    /// A fresh SQLite file `orm_<tag>_<pid>_<n>.db` in the temp directory,
    /// deleted (with its WAL files) on drop.
    pub fn sqlite(tag: &str) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("orm_{}_{}_{}", tag, std::process::id(), n);
        let path = std::env::temp_dir().join(format!("{name}.db"));
        remove_sqlite_files(&path);
        let url = format!("sqlite://{}", path.display());
        TestDb {
            name,
            url,
            backend: Backend::Sqlite,
            path: Some(path),
        }
    }

    /// A raw rusqlite connection to this SQLite database.
    pub fn sqlite_conn(&self) -> rusqlite::Connection {
        let path = self.path.as_ref().expect("an SQLite test database");
        let conn = rusqlite::Connection::open(path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .expect("busy timeout");
        conn
    }

    /// `mysql_sql` as this backend spells it: MySQL's backtick-quoted
    /// identifiers become double-quoted on SQLite. For expected SQL text.
    pub fn sql(&self, mysql_sql: &str) -> String {
        match self.backend {
            Backend::MySql => mysql_sql.to_string(),
            Backend::Sqlite => mysql_sql.replace('`', "\""),
        }
    }

    /// A row source of the integers 1..=n in a column `seq`, for
    /// `INSERT ... SELECT ... FROM {seq}`.
    pub fn seq(&self, n: usize) -> String {
        match self.backend {
            Backend::MySql => format!("seq_1_to_{n}"),
            Backend::Sqlite => format!(
                "(WITH RECURSIVE s(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM s \
                 WHERE seq < {n}) SELECT seq FROM s)"
            ),
        }
    }

    /// A handle on the existing MariaDB database `name`, for admin queries
    /// from another thread. Dropping it drops the database: `forget` it.
    pub fn existing(name: String) -> TestDb {
        TestDb {
            name,
            url: String::new(),
            backend: Backend::MySql,
            path: None,
        }
    }

    /// Creates `orm_<tag>_<pid>_<n>` on MariaDB.
    pub fn new(tag: &str) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("orm_{}_{}_{}", tag, std::process::id(), n);
        let mut conn = admin_conn();
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .expect("drop test database");
        conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .expect("create test database");
        let base = base_url();
        // Replace the path (database) of the base URL, keeping any query string.
        let (head, query) = match base.split_once('?') {
            Some((h, q)) => (h.to_string(), Some(q.to_string())),
            None => (base.clone(), None),
        };
        let after_scheme = head.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = head[after_scheme..]
            .find('/')
            .map(|i| i + after_scheme)
            .unwrap_or(head.len());
        let mut url = format!("{}/{}", &head[..host_end], name);
        if let Some(q) = query {
            url.push('?');
            url.push_str(&q);
        }
        TestDb {
            name,
            url,
            backend: Backend::MySql,
            path: None,
        }
    }

    /// This database's URL with extra query options appended (`"pool_size=2&max_overflow=0"`).
    pub fn url_with(&self, options: &str) -> String {
        if options.is_empty() {
            self.url.clone()
        } else if self.url.contains('?') {
            format!("{}&{}", self.url, options)
        } else {
            format!("{}?{}", self.url, options)
        }
    }

    /// How many server connections currently have this database selected
    /// (the server's own view, immune to other tests running in parallel).
    pub fn server_connections(&self) -> usize {
        let mut conn = admin_conn();
        let n: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?",
                (self.name.as_str(),),
            )
            .expect("read processlist");
        n.unwrap_or(0) as usize
    }

    /// Runs one admin statement in this database.
    pub fn exec(&self, sql: &str) {
        if self.backend == Backend::Sqlite {
            self.sqlite_conn()
                .execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            return;
        }
        let mut conn = admin_conn();
        conn.query_drop(format!("USE `{}`", self.name))
            .expect("use test database");
        conn.query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs one admin query in this database and returns its rows as strings (NULL as "NULL").
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        if self.backend == Backend::Sqlite {
            return sqlite_rows(&self.sqlite_conn(), sql);
        }
        let mut conn = admin_conn();
        conn.query_drop(format!("USE `{}`", self.name))
            .expect("use test database");
        let rows: Vec<mysql::Row> = conn.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql::Value::NULL => "NULL".to_string(),
                        mysql::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => other.as_sql(true).trim_matches('\'').to_string(),
                    })
                    .collect()
            })
            .collect()
    }

    /// Kills a server connection by id, from a separate admin connection.
    pub fn kill(&self, connection_id: u64) {
        let mut conn = admin_conn();
        conn.query_drop(format!("KILL {connection_id}"))
            .expect("KILL");
    }
}

fn sqlite_rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    let mut rows = stmt.query([]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{sql}: {e}")) {
        out.push(
            (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    ValueRef::Null => "NULL".to_string(),
                    ValueRef::Integer(i) => i.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
                })
                .collect(),
        );
    }
    out
}

fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            remove_sqlite_files(path);
            return;
        }
        if let Ok(opts) = mysql::Opts::from_url(&base_url()) {
            if let Ok(mut conn) =
                mysql::Conn::new(mysql::OptsBuilder::from_opts(opts).prefer_socket(false))
            {
                let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
            }
        }
    }
}

/// A server account with a password, for tests of password masking;
/// dropped (from the server) when this value is dropped.
pub struct TempUser {
    /// The account's user name (`orm_pw_<tag>_<pid>`).
    pub name: String,
}

impl TempUser {
    /// Creates `orm_pw_<tag>_<pid>`@`%` identified by `password`, with all privileges.
    pub fn new(tag: &str, password: &str) -> TempUser {
        let name = format!("orm_pw_{tag}_{}", std::process::id());
        let mut admin = admin_conn();
        admin
            .query_drop(format!("DROP USER IF EXISTS '{name}'@'%'"))
            .unwrap();
        admin
            .query_drop(format!(
                "CREATE USER IF NOT EXISTS '{name}'@'%' IDENTIFIED BY '{password}'"
            ))
            .unwrap();
        admin
            .query_drop(format!("GRANT ALL ON *.* TO '{name}'@'%'"))
            .unwrap();
        TempUser { name }
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = admin_conn().query_drop(format!("DROP USER IF EXISTS '{}'@'%'", self.name));
    }
}

pub mod galera;
pub mod private_server;
pub mod proxy;
pub mod replication;
