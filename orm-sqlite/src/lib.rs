//! The embedded SQLite backend of the `orm` crate, on `rusqlite` with
//! SQLite compiled in (no system library, no server).
//!
//! ```
//! let engine = orm_sqlite::create_engine("sqlite::memory:")?;
//! let mut conn = engine.connect()?;
//! conn.execute_text("CREATE TABLE t (id INTEGER PRIMARY KEY)")?;
//! # Ok::<(), orm_core::Error>(())
//! ```
//!
//! # URLs and pools
//!
//! - `sqlite://path/to/file.db`: a file, relative to the working directory
//!   (`sqlite:///tmp/app.db` is the absolute `/tmp/app.db`), created if
//!   missing. A queue pool (SQLAlchemy's choice for files), every connection
//!   in WAL mode so that readers and the writer do not block each other.
//! - `sqlite::memory:` (or `sqlite://:memory:`): a private in-memory
//!   database. It exists inside one connection, so the engine keeps exactly
//!   one ([`PoolClass::Static`](orm_core::pool::PoolClass::Static)) and
//!   lends it to one checkout at a time, whatever the thread: every thread
//!   sees the same database. (SQLAlchemy's `SingletonThreadPool` gives each
//!   thread its own connection, hence its own empty database; sharing one
//!   is what a test or a small program expects.) A second session that
//!   wants the connection while another holds a transaction waits up to
//!   `pool_timeout`; use a file for concurrent sessions.
//!
//! Every connection has foreign keys switched on and a busy timeout.
//! Options (`?name=value&...`): the pool's (as for MySQL), `busy_timeout`
//! (seconds, default 5) and `insert_returning` (auto|off).
//!
//! # Transactions
//!
//! As Python's sqlite3 driver does under SQLAlchemy, a transaction begins
//! at its first write: `BEGIN` is remembered, and `BEGIN IMMEDIATE` (which
//! takes SQLite's write lock) is sent just before the first statement that
//! writes. Reads before it see the newest committed data, as MySQL's
//! UPDATE does, so optimistic locking reports a lost race as `StaleData`
//! (where a snapshot taken at `BEGIN` would make SQLite refuse the write
//! with `SQLITE_BUSY_SNAPSHOT`), and two transactions never deadlock
//! upgrading read locks. From its first write to its end a transaction
//! holds the write lock: the engine's other writers queue in arrival
//! order (a FIFO gate, fairer than SQLite's busy handler, which polls) for
//! up to `busy_timeout`, then fail with a retryable error. Two sessions of
//! one thread that both write therefore wait on each other; commit one
//! first. `COMMIT`/`ROLLBACK` of a transaction that never wrote sends
//! nothing. Savepoints are SQLite's `SAVEPOINT` / `RELEASE` /
//! `ROLLBACK TO` (a savepoint begins the transaction).
//!
//! Errors: constraint violations are integrity errors (code = SQLite's
//! extended result code, e.g. 2067 for UNIQUE, 787 for a foreign key),
//! `SQLITE_BUSY`/`SQLITE_LOCKED` are retryable.
//!
//! # Types
//!
//! Every integer column is `INTEGER`, floats `REAL`, `bool` `BOOLEAN`
//! (0/1). SQLite has no date, decimal, JSON or UUID storage class, so:
//!
//! - dates are text `YYYY-MM-DD` (`DATE`), date-times
//!   `YYYY-MM-DD HH:MM:SS.ffffff` (`DATETIME`), times `[-]HH:MM:SS.ffffff`
//!   (`TIME`): SQLAlchemy's forms, which sort correctly and work with
//!   SQLite's date functions. They are read back by declared type.
//! - decimals are their canonical text in a `DECIMAL_TEXT(p,s)` column
//!   (TEXT affinity: no digit is lost, where a `DECIMAL` column would turn
//!   `12.50` into the float 12.5). Comparisons in SQL are then textual.
//! - JSON is its text in a `JSON_TEXT` column; SQLite's `json_*` functions
//!   read it.
//! - UUIDs are their 36-character hyphenated text in a `CHAR(36)` column.
//! - `u64` values above `i64::MAX` cannot be stored (an error says so).
//!
//! `VARCHAR(n)` lengths are not enforced by SQLite.
//!
//! # Batches
//!
//! INSERTs are multi-row with `RETURNING` like on MariaDB (1,000 rows per
//! statement, within SQLite's 32,766 placeholders). UPDATEs go one row per
//! statement, prepared once and reused from the statement cache: there is
//! no round trip to save (see the workloads bench, W4).

#![warn(missing_docs)]

mod builder;
mod config;
mod connection;
mod connector;
mod convert;
mod dialect;
mod error;
mod gate;

pub use builder::{builder, create_engine, SqliteEngineBuilder};
pub use config::{default_pool, SqliteConfig, SqliteTarget};
pub use connection::SqliteConnection;
pub use connector::SqliteConnector;
pub use dialect::SqliteDialect;
pub use error::classify_code;
