//! What a database backend implements: a [`Connector`] that opens
//! [`Connection`]s, and a [`Dialect`] that says how to spell SQL.
//!
//! The core talks to backends only through these object-safe traits
//! (`Box<dyn Connection>`), so the session, the pool and the engine are not
//! generic: one `Engine` type whatever the database. A dynamic call costs a
//! few nanoseconds against a network round trip of tens of microseconds.

use std::fmt;

use crate::error::Result;
use crate::row::Row;
use crate::value::{ColumnType, Value};

/// Which server product is on the other end. More may be added: match
/// with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerKind {
    /// MariaDB.
    MariaDb,
    /// Oracle MySQL (or a compatible server that is not MariaDB).
    MySql,
    /// SQLite, embedded in the process.
    Sqlite,
    /// Another product.
    Other,
}

/// What the server is and can do, learned when connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The product.
    pub kind: ServerKind,
    /// (major, minor, patch).
    pub version: (u16, u16, u16),
    /// `INSERT ... RETURNING` is available (MariaDB 10.5+).
    pub supports_returning: bool,
    /// A multi-row INSERT into an auto-increment table gets consecutive
    /// keys starting at the reported last insert id (MySQL's
    /// `innodb_autoinc_lock_mode` below 2 and `auto_increment_increment` 1).
    pub consecutive_auto_increment: bool,
    /// The server's `max_allowed_packet`, in bytes.
    pub max_allowed_packet: usize,
    /// The most placeholders one prepared statement may have.
    pub max_placeholders: usize,
}

/// The outcome of a statement that returns no rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecOutcome {
    /// Rows matched (MySQL with CLIENT_FOUND_ROWS: matched, not only changed).
    pub affected_rows: u64,
    /// The first generated auto-increment value of the statement, if any.
    pub last_insert_id: Option<u64>,
}

/// An open connection. Dropping it closes it.
///
/// Every method that sends SQL binds parameters; values are never spliced
/// into SQL text. `execute_text` is for fixed statements with no
/// parameters (BEGIN, COMMIT, SAVEPOINT, DDL).
pub trait Connection: Send {
    /// Runs a statement with bound parameters and no result rows.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecOutcome>;

    /// Runs a parameterless statement over the plain text protocol.
    fn execute_text(&mut self, sql: &str) -> Result<ExecOutcome>;

    /// Runs a query with bound parameters, calling `each` for every row
    /// (rows are streamed, not buffered). An error from `each` stops the
    /// query and is returned.
    fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()>;

    /// Checks that the connection is alive with the cheapest round trip.
    fn ping(&mut self) -> Result<()>;

    /// The server's connection id (`CONNECTION_ID()` on MySQL).
    fn connection_id(&self) -> u64;

    /// What the server is and can do.
    fn server_info(&self) -> &ServerInfo;
}

/// Opens connections. One per engine; shared by all its pool's threads.
pub trait Connector: Send + Sync + 'static {
    /// Opens a new connection.
    fn connect(&self) -> Result<Box<dyn Connection>>;

    /// The SQL dialect of this backend.
    fn dialect(&self) -> &dyn Dialect;

    /// A description for `Debug`/`Display` and messages, with any password masked
    /// (`mysql://root:***@127.0.0.1:3306/test`).
    fn describe(&self) -> String;
}

impl fmt::Debug for dyn Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How a backend spells SQL. The core builds every statement through it.
pub trait Dialect: Send + Sync {
    /// Appends `name` quoted as an identifier (`` `name` `` on MySQL).
    fn quote_ident(&self, name: &str, out: &mut String);

    /// The DDL type for a column type (`BIGINT`, `VARCHAR(255)`, ...).
    fn column_type_sql(&self, column_type: ColumnType) -> String;

    /// The clause that makes a column auto-increment (`AUTO_INCREMENT`).
    fn auto_increment_sql(&self) -> &'static str;

    /// Text appended after a CREATE TABLE's closing parenthesis (`ENGINE=InnoDB`).
    fn create_table_suffix(&self) -> &'static str;

    /// The statement that begins a transaction.
    fn begin_sql(&self) -> &'static str {
        "BEGIN"
    }

    /// The statement that drops the foreign-key constraint `name` of
    /// `table` (both already quoted), used by `schema::drop_all` for
    /// references that form a cycle. The default is MySQL's spelling.
    fn drop_foreign_key_sql(&self, table: &str, name: &str) -> String {
        format!("ALTER TABLE {table} DROP FOREIGN KEY {name}")
    }

    /// Whether foreign keys can be added and dropped with `ALTER TABLE`
    /// (MySQL: yes). When not (SQLite), `schema::create_all` declares every
    /// foreign key inside its `CREATE TABLE`, even one pointing at a table
    /// created later, which such a database accepts.
    fn alter_foreign_keys(&self) -> bool {
        true
    }

    /// How the session sends UPDATEs of many rows that change the same
    /// columns (default: MySQL's `UPDATE ... JOIN`).
    fn update_batch(&self) -> UpdateBatch {
        UpdateBatch::Join
    }
}

/// How one statement updates many rows with different new values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateBatch {
    /// `UPDATE t JOIN (SELECT ? AS k0, ? AS c0 UNION ALL ...) AS b ON ...
    /// SET t.c = b.c0` (MySQL, MariaDB).
    Join,
    /// `UPDATE t SET c = b.column2 FROM (VALUES (?, ?), ...) AS b WHERE
    /// t.k = b.column1` (SQLite 3.33+, PostgreSQL).
    FromValues,
    /// One prepared `UPDATE ... WHERE key = ?` per row.
    PerRow,
}
