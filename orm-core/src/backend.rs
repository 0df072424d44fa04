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
///
/// The product, version and `RETURNING` support are learned once per
/// connector. The auto-increment facts ([`AutoIncrement`]) and
/// `max_allowed_packet` are read on each connection itself, after the
/// pool's `on_connect` hook ran, and read again after any statement on that
/// connection that mentions one of the variables (`SET SESSION
/// auto_increment_increment = 3`), because they are per session and decide
/// which keys a multi-row INSERT produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The product.
    pub kind: ServerKind,
    /// (major, minor, patch).
    pub version: (u16, u16, u16),
    /// `INSERT ... RETURNING` is available (MariaDB 10.5+).
    pub supports_returning: bool,
    /// The auto-increment settings of this very connection.
    pub auto_increment: AutoIncrement,
    /// The server's `max_allowed_packet`, in bytes.
    pub max_allowed_packet: usize,
    /// The most placeholders one prepared statement may have.
    pub max_placeholders: usize,
}

/// The settings of one connection that decide which auto-increment values a
/// multi-row INSERT gets. `None` means unknown (the variable does not exist
/// on this server, or it could not be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AutoIncrement {
    /// `@@auto_increment_increment`: the step between generated values
    /// (1 by default; Galera sets the cluster size, MySQL group replication 7).
    pub increment: Option<u64>,
    /// `@@auto_increment_offset`: the first value of the sequence.
    pub offset: Option<u64>,
    /// `@@innodb_autoinc_lock_mode`: 0 (traditional) and 1 (consecutive)
    /// give a multi-row INSERT with a known row count one contiguous block
    /// of values; 2 (interleaved, MySQL 8's default and Galera's required
    /// setting) does not.
    pub lock_mode: Option<u8>,
    /// Galera replication is on (`@@wsrep_on`), with
    /// `@@wsrep_auto_increment_control`: the cluster may change the
    /// increment and offset as nodes join and leave.
    pub galera_control: bool,
}

impl ServerInfo {
    /// The step between the keys a multi-row INSERT generated, when the
    /// server guarantees them to be `first, first + step, first + 2 * step,
    /// ...` with `first` the reported last insert id; `None` when it does not.
    ///
    /// The rule: the lock mode is known and below 2 (one contiguous block per
    /// simple multi-row INSERT), the connection's increment is known, and
    /// Galera is not managing the increment. Otherwise an INSERT that needs
    /// generated keys is sent one row per statement (or uses `RETURNING`),
    /// which cannot assign a wrong key.
    pub fn multi_row_key_step(&self) -> Option<u64> {
        let ai = &self.auto_increment;
        if ai.galera_control || !ai.lock_mode.is_some_and(|m| m < 2) {
            return None;
        }
        ai.increment.filter(|&step| step >= 1)
    }
}

/// The outcome of a statement that returns no rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecOutcome {
    /// Rows matched (MySQL with CLIENT_FOUND_ROWS: matched, not only changed).
    pub affected_rows: u64,
    /// The first generated auto-increment value of the statement, if any.
    pub last_insert_id: Option<u64>,
    /// Whether a transaction is open on the server after the statement, when
    /// the server said so (MySQL/MariaDB session state tracking); `None`
    /// when unknown. A `Some(false)` inside a transaction means the
    /// statement ended it (an implicit commit).
    pub in_transaction: Option<bool>,
}

/// How a connection starts a transaction (see [`Connection::begin_mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BeginMode {
    /// Send [`Dialect::begin_sql`] (the backend may defer it by itself, as
    /// SQLite's does until the first write).
    Statement,
    /// The connection runs with autocommit off: its first statement opens
    /// the transaction, so beginning sends nothing, and any statement run
    /// outside a begun transaction leaves one open (rolled back when the
    /// connection is returned).
    Implicit,
    /// The connection runs with autocommit on and reads run on their own:
    /// [`Dialect::begin_sql`] is sent right before the transaction's first
    /// statement that is not a query.
    AtFirstWrite,
}

/// An open connection. Dropping it closes it.
///
/// Every method that sends SQL binds parameters; values are never spliced
/// into SQL text. `execute_text` is for fixed statements with no
/// parameters (BEGIN, COMMIT, SAVEPOINT, DDL).
pub trait Connection: Send {
    /// Runs a statement with bound parameters and no result rows.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecOutcome>;

    /// [`execute`](Self::execute), handed the parameters: a backend whose
    /// driver takes owned values moves the strings and bytes into them
    /// instead of copying them (the flush's INSERTs). The default lends
    /// them to `execute`.
    fn execute_owned(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecOutcome> {
        self.execute(sql, &params)
    }

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

    /// Like [`query`](Self::query), handing `each` one `Row` that the
    /// backend may clear and refill for every row of the result set (one
    /// allocation per query instead of one per row): `each` takes what it
    /// keeps with [`Row::take`]. The default calls `query`.
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(&mut Row) -> Result<()>,
    ) -> Result<()> {
        self.query(sql, params, &mut |mut row| each(&mut row))
    }

    /// Checks that the connection is alive with the cheapest round trip.
    fn ping(&mut self) -> Result<()>;

    /// Whether `error`, just returned by a statement inside a transaction,
    /// means that the server rolled the whole transaction back (a deadlock;
    /// a lock wait timeout where the server is configured to roll back the
    /// transaction on it). The pool then refuses further statements of that
    /// transaction until it is rolled back, so that nothing runs outside the
    /// transaction the caller believes is open. The default, for backends
    /// that cannot tell, is `false`.
    fn ended_transaction(&mut self, error: &crate::error::DbError) -> bool {
        let _ = error;
        false
    }

    /// The server's connection id (`CONNECTION_ID()` on MySQL).
    fn connection_id(&self) -> u64;

    /// What the server is and can do, as of this connection's last
    /// statement.
    fn server_info(&self) -> &ServerInfo;

    /// Asked after `sql` succeeded inside a transaction when its outcome did
    /// not say whether a transaction is still open: `Some(open)` when the
    /// backend can find out and `sql` may have ended the transaction (an
    /// implicit commit), `None` otherwise. MySQL/MariaDB report the state
    /// only when it differs from the last one they reported, and not after
    /// queries, so with autocommit off a transaction whose statements so far
    /// were all queries (`INSERT ... RETURNING`) and that a DDL statement
    /// commits reports nothing. The default is `None`.
    fn transaction_still_open(&mut self, sql: &str) -> Option<bool> {
        let _ = sql;
        None
    }

    /// How this connection starts a transaction. The default sends
    /// [`Dialect::begin_sql`].
    fn begin_mode(&self) -> BeginMode {
        BeginMode::Statement
    }

    /// Reads this connection's per-session facts of [`ServerInfo`] again
    /// (the pool calls it after its `on_connect` hook, which may have changed
    /// them). The default does nothing.
    fn refresh_server_info(&mut self) -> Result<()> {
        Ok(())
    }

    /// The replication position (MariaDB: the GTID) of the transaction the
    /// last statement committed, when the server reported it with that
    /// statement's outcome (MariaDB's session state tracking of `last_gtid`,
    /// when `session_track_system_variables` includes it). Used by read
    /// replicas for read-your-writes. The default is `None` (not reported;
    /// the caller asks the server).
    fn tracked_commit_position(&self) -> Option<String> {
        None
    }
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

    /// What follows `LIKE ?` so that a backslash escapes `%`, `_` and
    /// itself in the pattern: nothing on MySQL/MariaDB (their default),
    /// ` ESCAPE '\'` on SQLite (no default escape character).
    fn like_escape_sql(&self) -> &'static str {
        ""
    }

    /// The clause that locks the rows a SELECT reads, appended after its
    /// `LIMIT` (MySQL/MariaDB spelling by default: `FOR UPDATE`,
    /// `LOCK IN SHARE MODE`, with ` NOWAIT` / ` SKIP LOCKED`). A backend
    /// without row locks returns an empty string.
    fn row_lock_sql(&self, lock: crate::query::RowLock) -> String {
        use crate::query::{LockMode, LockWait};
        let mut sql = String::from(match lock.mode {
            LockMode::Update => " FOR UPDATE",
            LockMode::Share => " LOCK IN SHARE MODE",
        });
        match lock.wait {
            LockWait::Wait => {}
            LockWait::NoWait => sql.push_str(" NOWAIT"),
            LockWait::SkipLocked => sql.push_str(" SKIP LOCKED"),
        }
        sql
    }

    /// What follows `INSERT ... VALUES (...)` to make it an upsert that
    /// updates `update` (quoted column names) from the proposed row when a
    /// unique key conflicts (`conflict`: the key's quoted columns). MySQL's
    /// `ON DUPLICATE KEY UPDATE c = VALUES(c)` by default; `auto_increment`
    /// (quoted) makes the statement report the existing row's key as its
    /// last insert id.
    fn upsert_sql(
        &self,
        conflict: &[String],
        update: &[String],
        auto_increment: Option<&str>,
    ) -> String {
        let _ = conflict;
        let mut parts: Vec<String> = Vec::new();
        if let Some(ai) = auto_increment {
            parts.push(format!("{ai} = LAST_INSERT_ID({ai})"));
        }
        parts.extend(update.iter().map(|c| format!("{c} = VALUES({c})")));
        format!(" ON DUPLICATE KEY UPDATE {}", parts.join(", "))
    }

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

    /// Whether a column can say `ON UPDATE expr` (MySQL and MariaDB: yes;
    /// SQLite: no, so `server_on_update` is left out of its DDL).
    fn on_update_clause(&self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn info(auto_increment: AutoIncrement) -> ServerInfo {
        ServerInfo {
            kind: ServerKind::MySql,
            version: (8, 0, 36),
            supports_returning: false,
            auto_increment,
            max_allowed_packet: 1 << 20,
            max_placeholders: 65_535,
        }
    }

    #[test]
    fn keys_are_computed_only_where_the_server_guarantees_the_block() {
        let base = AutoIncrement {
            increment: Some(3),
            offset: Some(1),
            lock_mode: Some(1),
            galera_control: false,
        };
        assert_eq!(info(base).multi_row_key_step(), Some(3));
        assert_eq!(
            info(AutoIncrement {
                lock_mode: Some(0),
                ..base
            })
            .multi_row_key_step(),
            Some(3)
        );
        for unsafe_case in [
            AutoIncrement {
                lock_mode: Some(2),
                ..base
            },
            AutoIncrement {
                lock_mode: None,
                ..base
            },
            AutoIncrement {
                increment: None,
                ..base
            },
            AutoIncrement {
                increment: Some(0),
                ..base
            },
            AutoIncrement {
                galera_control: true,
                ..base
            },
            AutoIncrement::default(),
        ] {
            assert_eq!(
                info(unsafe_case).multi_row_key_step(),
                None,
                "{unsafe_case:?}"
            );
        }
    }
}
