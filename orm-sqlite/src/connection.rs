//! [`SqliteConnection`]: one `rusqlite::Connection` behind the core's
//! `Connection` trait.

use orm_core::backend::{Connection, ExecOutcome, ServerInfo};
use orm_core::row::Row;
use orm_core::value::Value;
use orm_core::{DbError, DbErrorKind, Error, Result};
use std::sync::Arc;
use std::time::Duration;

use crate::convert::{check_params, from_sqlite, Bind};
use crate::dialect::Declared;
use crate::error::from_driver;
use crate::gate::WriteGate;

/// An open SQLite connection. Statements with parameters go through
/// rusqlite's prepared-statement cache.
///
/// Transactions begin at their first write, as with Python's sqlite3
/// driver under SQLAlchemy: `BEGIN` is remembered, and `BEGIN IMMEDIATE`
/// (which takes the write lock, waiting up to `busy_timeout`) is sent just
/// before the first statement that writes. Reads before it see the newest
/// committed data, like MySQL's UPDATE does, so a lost race shows as a
/// version mismatch (`StaleData`) rather than as SQLite refusing to write
/// over an old snapshot; and two transactions never deadlock on upgrading
/// a read lock. A `COMMIT` or `ROLLBACK` of a transaction that never wrote
/// sends nothing.
pub struct SqliteConnection {
    conn: rusqlite::Connection,
    info: ServerInfo,
    id: u64,
    /// `BEGIN` was asked for and not sent yet.
    begin_pending: bool,
    /// The engine's writers' queue, and whether this connection holds it.
    gate: Arc<WriteGate>,
    holds_gate: bool,
    busy_timeout: Duration,
}

/// Sends the remembered `BEGIN`, as `BEGIN IMMEDIATE`, after waiting for
/// this engine's other writers (see `WriteGate`).
fn begin_now(conn: &rusqlite::Connection, tx: &mut TxState<'_>) -> Result<()> {
    if !*tx.pending {
        return Ok(());
    }
    if !*tx.holds_gate {
        if !tx.gate.acquire(tx.busy_timeout) {
            return Err(Error::Database(DbError {
                kind: DbErrorKind::Retryable,
                code: None,
                sqlstate: None,
                message: format!(
                    "another connection of this engine kept its write transaction open for \
                     longer than busy_timeout ({:?}); roll back and retry, commit sooner, \
                     or raise busy_timeout",
                    tx.busy_timeout
                ),
            }));
        }
        *tx.holds_gate = true;
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tx.gate.release();
        *tx.holds_gate = false;
        return Err(from_driver(e));
    }
    *tx.pending = false;
    Ok(())
}

/// The transaction fields of a connection, borrowed apart from its
/// `rusqlite::Connection` (which a prepared statement may be borrowing).
struct TxState<'a> {
    pending: &'a mut bool,
    holds_gate: &'a mut bool,
    gate: &'a WriteGate,
    busy_timeout: Duration,
}

/// The first keyword of `sql`, upper-cased (`"ROLLBACK"`).
fn first_word(sql: &str) -> String {
    sql.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

impl SqliteConnection {
    pub(crate) fn new(
        conn: rusqlite::Connection,
        info: ServerInfo,
        id: u64,
        gate: Arc<WriteGate>,
        busy_timeout: Duration,
    ) -> Self {
        SqliteConnection {
            conn,
            info,
            id,
            begin_pending: false,
            gate,
            holds_gate: false,
            busy_timeout,
        }
    }

    /// Lets the next writer in once no transaction is open any more.
    fn release_if_done(&mut self) {
        if self.holds_gate && self.conn.is_autocommit() {
            self.holds_gate = false;
            self.gate.release();
        }
    }

    /// The underlying rusqlite connection, for what the core does not cover.
    pub fn raw(&mut self) -> &mut rusqlite::Connection {
        &mut self.conn
    }

    /// Prepares (from the cache) and binds `sql`, sending a pending
    /// `BEGIN` first when the statement writes.
    fn prepare(&mut self, sql: &str, params: &[Value]) -> Result<rusqlite::CachedStatement<'_>> {
        check_params(params)?;
        let mut stmt = self.conn.prepare_cached(sql).map_err(from_driver)?;
        if !stmt.readonly() {
            let mut tx = TxState {
                pending: &mut self.begin_pending,
                holds_gate: &mut self.holds_gate,
                gate: &self.gate,
                busy_timeout: self.busy_timeout,
            };
            begin_now(&self.conn, &mut tx)?;
        }
        for (n, p) in params.iter().enumerate() {
            stmt.raw_bind_parameter(n + 1, Bind(p))
                .map_err(from_driver)?;
        }
        Ok(stmt)
    }
}

/// Whether `sql` is an INSERT (whose single generated rowid is reported).
fn is_insert(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("INSERT"))
}

impl SqliteConnection {
    /// Whether a transaction is open: begun, or remembered to begin at the
    /// first write.
    fn in_transaction_now(&self) -> bool {
        self.begin_pending || !self.conn.is_autocommit()
    }
}

impl Connection for SqliteConnection {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecOutcome> {
        let changed = match self.prepare(sql, params) {
            Ok(mut stmt) => stmt.raw_execute().map_err(from_driver),
            Err(e) => Err(e),
        };
        // A write outside a transaction (no BEGIN) holds nothing after it;
        // nor does a transaction SQLite rolled back by itself.
        self.release_if_done();
        let changed = changed?;
        // SQLite reports the last rowid of a statement, MySQL the first:
        // they agree only for one row, so only a one-row INSERT reports it.
        let last_insert_id = (is_insert(sql) && changed == 1)
            .then(|| u64::try_from(self.conn.last_insert_rowid()).ok())
            .flatten();
        Ok(ExecOutcome {
            affected_rows: changed as u64,
            last_insert_id,
            in_transaction: Some(self.in_transaction_now()),
        })
    }

    fn execute_text(&mut self, sql: &str) -> Result<ExecOutcome> {
        let word = first_word(sql);
        let to_savepoint = sql.to_ascii_uppercase().contains(" TO ");
        match word.as_str() {
            "BEGIN" if self.conn.is_autocommit() && !self.begin_pending => {
                self.begin_pending = true;
                return Ok(ExecOutcome::default());
            }
            "COMMIT" | "END" | "ROLLBACK" if !to_savepoint && self.begin_pending => {
                self.begin_pending = false;
                return Ok(ExecOutcome::default());
            }
            // SQLite may already have rolled the transaction back (after
            // SQLITE_FULL, SQLITE_IOERR, ...): nothing is left to undo.
            "ROLLBACK" if !to_savepoint && self.conn.is_autocommit() => {
                self.release_if_done();
                return Ok(ExecOutcome::default());
            }
            _ => {
                let mut tx = TxState {
                    pending: &mut self.begin_pending,
                    holds_gate: &mut self.holds_gate,
                    gate: &self.gate,
                    busy_timeout: self.busy_timeout,
                };
                begin_now(&self.conn, &mut tx)?;
            }
        }
        let before = self.conn.total_changes();
        let result = self.conn.execute_batch(sql).map_err(from_driver);
        self.release_if_done();
        result?;
        Ok(ExecOutcome {
            affected_rows: self.conn.total_changes().saturating_sub(before),
            last_insert_id: None,
            in_transaction: Some(self.in_transaction_now()),
        })
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        let result = self.query_rows(sql, params, each);
        // A failed write may have ended the transaction (SQLite rolls back
        // by itself after some errors): let the next writer in.
        self.release_if_done();
        result
    }

    /// An embedded database has no connection to lose: always fine.
    /// SQLite rolls a transaction back by itself after some errors
    /// (`SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_NOMEM`, an interrupt): a
    /// transaction that was really begun (not only remembered) and is no
    /// longer open after the error was ended by it.
    fn ended_transaction(&mut self, _error: &orm_core::DbError) -> bool {
        !self.begin_pending && self.conn.is_autocommit()
    }

    fn ping(&mut self) -> Result<()> {
        Ok(())
    }

    /// A number unique among this process's SQLite connections.
    fn connection_id(&self) -> u64 {
        self.id
    }

    fn server_info(&self) -> &ServerInfo {
        &self.info
    }
}

impl SqliteConnection {
    /// Streams the rows of `sql`, converted by declared column type.
    fn query_rows(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.prepare(sql, params)?;
        let declared: Vec<Declared> = stmt
            .columns()
            .iter()
            .map(|c| Declared::of(c.decl_type()))
            .collect();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(from_driver)? {
            let mut values = Vec::with_capacity(declared.len());
            for (i, d) in declared.iter().enumerate() {
                values.push(from_sqlite(row.get_ref(i).map_err(from_driver)?, *d)?);
            }
            each(Row::new(values))?;
        }
        Ok(())
    }
}

impl Drop for SqliteConnection {
    fn drop(&mut self) {
        if self.holds_gate {
            // Closing the connection rolls back whatever it had open.
            self.holds_gate = false;
            self.gate.release();
        }
    }
}
