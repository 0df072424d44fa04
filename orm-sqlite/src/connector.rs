//! [`SqliteConnector`]: opens connections to a file or to memory, with
//! foreign keys on and (for a file) the WAL journal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orm_core::backend::{Connection, Connector, Dialect, ServerInfo, ServerKind};
use orm_core::Result;

use crate::config::{SqliteConfig, SqliteTarget};
use crate::connection::SqliteConnection;
use crate::dialect::SqliteDialect;
use crate::error::{from_connect, from_driver};
use crate::gate::WriteGate;

/// SQLite's default `SQLITE_MAX_VARIABLE_NUMBER` since 3.32.
const MAX_PLACEHOLDERS: usize = 32_766;
/// SQLite's default `SQLITE_MAX_SQL_LENGTH` (and `SQLITE_MAX_LENGTH`).
const MAX_STATEMENT_BYTES: usize = 1_000_000_000;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// Connection ids, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Opens SQLite connections.
pub struct SqliteConnector {
    config: SqliteConfig,
    dialect: SqliteDialect,
    description: String,
    gate: Arc<WriteGate>,
}

impl SqliteConnector {
    /// A connector for these settings. Nothing is opened yet.
    pub fn new(config: SqliteConfig) -> SqliteConnector {
        let description = config.describe();
        SqliteConnector {
            dialect: SqliteDialect {
                update_batch: config.update_batch,
            },
            config,
            description,
            gate: Arc::new(WriteGate::default()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// What the embedded library is and can do.
    fn info(&self) -> ServerInfo {
        let n = rusqlite::version_number();
        let version = (
            u16::try_from(n / 1_000_000).unwrap_or(0),
            u16::try_from(n / 1_000 % 1_000).unwrap_or(0),
            u16::try_from(n % 1_000).unwrap_or(0),
        );
        ServerInfo {
            kind: ServerKind::Sqlite,
            version,
            supports_returning: self.config.insert_returning && version >= (3, 35, 0),
            // Rowids of a multi-row INSERT are not promised to be consecutive:
            // an unknown step means one row per INSERT without RETURNING.
            auto_increment: orm_core::backend::AutoIncrement::default(),
            max_allowed_packet: MAX_STATEMENT_BYTES,
            max_placeholders: MAX_PLACEHOLDERS,
        }
    }
}

impl Connector for SqliteConnector {
    fn connect(&self) -> Result<Box<dyn Connection>> {
        let opened = match &self.config.target {
            SqliteTarget::File(path) => rusqlite::Connection::open(path),
            SqliteTarget::Memory => rusqlite::Connection::open_in_memory(),
        };
        let conn = opened.map_err(|e| from_connect(e, &self.description))?;
        conn.busy_timeout(self.config.busy_timeout)
            .map_err(from_driver)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Off by default in SQLite, per connection.
        conn.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(from_driver)?;
        if let SqliteTarget::File(_) = self.config.target {
            // Readers do not block the writer nor the writer the readers.
            // The mode is stored in the file; the pragma answers with it.
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| from_connect(e, &self.description))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(orm_core::Error::Config(format!(
                    "{} could not switch to the WAL journal (it is `{mode}`); \
                     is the file on a network file system?",
                    self.description
                )));
            }
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(SqliteConnection::new(
            conn,
            self.info(),
            id,
            Arc::clone(&self.gate),
            self.config.busy_timeout,
        )))
    }

    fn dialect(&self) -> &dyn Dialect {
        &self.dialect
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
