//! [`SqliteConnection`]: one `rusqlite::Connection` behind the core's
//! `Connection` trait.

use orm_core::backend::{Connection, ExecOutcome, ServerInfo};
use orm_core::row::Row;
use orm_core::value::Value;
use orm_core::Result;

use crate::convert::{check_params, from_sqlite, Bind};
use crate::dialect::Declared;
use crate::error::from_driver;

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
}

/// Sends the remembered `BEGIN`, as `BEGIN IMMEDIATE`.
fn begin_now(conn: &rusqlite::Connection, pending: &mut bool) -> Result<()> {
    if *pending {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(from_driver)?;
        *pending = false;
    }
    Ok(())
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
    pub(crate) fn new(conn: rusqlite::Connection, info: ServerInfo, id: u64) -> Self {
        SqliteConnection {
            conn,
            info,
            id,
            begin_pending: false,
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
            begin_now(&self.conn, &mut self.begin_pending)?;
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

impl Connection for SqliteConnection {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecOutcome> {
        let changed = {
            let mut stmt = self.prepare(sql, params)?;
            stmt.raw_execute().map_err(from_driver)?
        };
        // SQLite reports the last rowid of a statement, MySQL the first:
        // they agree only for one row, so only a one-row INSERT reports it.
        let last_insert_id = (is_insert(sql) && changed == 1)
            .then(|| u64::try_from(self.conn.last_insert_rowid()).ok())
            .flatten();
        Ok(ExecOutcome {
            affected_rows: changed as u64,
            last_insert_id,
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
                return Ok(ExecOutcome::default());
            }
            _ => begin_now(&self.conn, &mut self.begin_pending)?,
        }
        let before = self.conn.total_changes();
        self.conn.execute_batch(sql).map_err(from_driver)?;
        Ok(ExecOutcome {
            affected_rows: self.conn.total_changes().saturating_sub(before),
            last_insert_id: None,
        })
    }

    fn query(
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

    /// An embedded database has no connection to lose: always fine.
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
