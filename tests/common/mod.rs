//! Shared support for the integration tests: the database URL, and private
//! databases that are created per test and dropped afterwards.
//!
//! A test that needs MariaDB and cannot reach it FAILS with a message that
//! says how to start the server; nothing is skipped silently.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use mysql::prelude::Queryable;

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

/// A database of its own for one test, dropped when this value is dropped.
pub struct TestDb {
    /// The database name.
    pub name: String,
    /// A URL pointing at it (same server and credentials as `base_url()`).
    pub url: String,
}

impl TestDb {
    /// Creates `orm_<tag>_<pid>_<n>`.
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
        TestDb { name, url }
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
        let mut conn = admin_conn();
        conn.query_drop(format!("USE `{}`", self.name))
            .expect("use test database");
        conn.query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs one admin query in this database and returns its rows as strings (NULL as "NULL").
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
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

impl Drop for TestDb {
    fn drop(&mut self) {
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

pub mod private_server;
pub mod proxy;
