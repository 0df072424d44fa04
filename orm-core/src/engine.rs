//! [`Engine`]: a backend's [`Connector`] plus a connection pool, counters
//! and options. Cheap to clone (one `Arc`), `Send + Sync`: share it between
//! threads and check connections out of it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use orm_core::engine::Engine;
//! use orm_core::pool::PoolOptions;
//! # fn demo(connector: Arc<dyn orm_core::backend::Connector>) -> orm_core::Result<()> {
//! let engine = Engine::new(connector, PoolOptions { pool_size: 2, ..PoolOptions::default() });
//! let capture = engine.capture_statements();
//! let mut conn = engine.connect()?;
//! conn.begin()?;
//! conn.commit()?;
//! drop(conn);
//! assert_eq!(capture.take(), ["BEGIN", "COMMIT"]);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use crate::backend::{Connector, Dialect};
use crate::error::Result;
use crate::pool::queue::Pool;
use crate::pool::{PoolOptions, PoolStatus};
use crate::sql_texts::SqlKey;

pub use crate::pool::{EngineStats, PooledConnection, StatementCapture};

/// A connector and its pool. Cheap to clone; all clones share the pool.
///
/// `Debug` and `Display` show the connector's description, with any
/// password masked.
#[derive(Clone)]
pub struct Engine {
    pool: Arc<Pool>,
}

impl Engine {
    /// An engine over `connector` with a pool configured by `options`.
    /// Nothing is connected until the first checkout.
    pub fn new(connector: Arc<dyn Connector>, options: PoolOptions) -> Engine {
        Engine {
            pool: Arc::new(Pool::new(connector, options)),
        }
    }

    /// Whether `other` is a clone of this engine (the same pool).
    pub fn ptr_eq(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.pool, &other.pool)
    }

    /// Checks a connection out of the pool (opening one if needed, waiting
    /// up to the pool timeout when the pool is at its limit).
    pub fn connect(&self) -> Result<PooledConnection> {
        let slot = self.pool.checkout()?;
        PooledConnection::new(slot)
    }

    /// The SQL dialect of the backend.
    pub fn dialect(&self) -> &dyn Dialect {
        self.pool.connector.dialect()
    }

    /// The text of the statement `key`, built with this engine's dialect
    /// by `build` the first time and kept (see [`crate::sql_texts::SqlTexts`]).
    pub(crate) fn sql_text(
        &self,
        key: SqlKey,
        build: impl FnOnce(&dyn Dialect) -> String,
    ) -> Arc<str> {
        self.pool
            .sql_texts
            .get_or_build(key, self.pool.connector.dialect(), build)
    }

    /// The backend's connector.
    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.pool.connector
    }

    /// The pool options this engine was built with.
    pub fn options(&self) -> &PoolOptions {
        &self.pool.options
    }

    /// Counts one unit of work run again (`SessionFactory::retrying`).
    pub(crate) fn count_retry(&self) {
        crate::pool::instrument::bump(&self.pool.instruments.unit_of_work_retries);
    }

    /// Counters since the engine was created.
    pub fn stats(&self) -> EngineStats {
        self.pool.instruments.snapshot()
    }

    /// The pool's occupancy now.
    pub fn status(&self) -> PoolStatus {
        self.pool.status()
    }

    /// Starts recording the SQL text of every statement sent through this
    /// engine (including BEGIN, COMMIT, ROLLBACK, SAVEPOINT and pool resets),
    /// in order, until the returned capture is dropped. Costs one atomic
    /// load per statement while no capture exists.
    pub fn capture_statements(&self) -> StatementCapture {
        self.pool.instruments.capture()
    }

    /// Closes the pool's idle connections. Checked-out connections are
    /// unaffected and are pooled again when returned.
    pub fn dispose(&self) {
        self.pool.dispose()
    }

    /// Marks every connection opened so far as invalid: idle ones are
    /// replaced at their next checkout, checked-out ones closed when returned.
    pub fn invalidate_pool(&self) {
        self.pool.invalidate_all()
    }

    /// A description of the database, password masked.
    pub fn describe(&self) -> String {
        self.pool.connector.describe()
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Engine({})", self.pool.connector.describe())
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Engine({})", self.pool.connector.describe())
    }
}
