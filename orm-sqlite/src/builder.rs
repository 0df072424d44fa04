//! [`create_engine`] and [`SqliteEngineBuilder`].

use std::sync::Arc;
use std::time::Duration;

use orm_core::backend::Connection;
use orm_core::engine::Engine;
use orm_core::pool::PoolOptions;
use orm_core::Result;

use crate::config::{apply_option, check_pool, parse_url, SqliteConfig};
use crate::connector::SqliteConnector;

/// An engine for `sqlite://path/to/file.db?options` or `sqlite::memory:`
/// (see the crate docs). Nothing is opened until the first checkout. A
/// malformed URL or an unknown option is an [`orm_core::Error::Config`].
pub fn create_engine(url: &str) -> Result<Engine> {
    builder(url)?.build()
}

/// A builder starting from a URL, for options and hooks in code.
pub fn builder(url: &str) -> Result<SqliteEngineBuilder> {
    let (config, pool) = parse_url(url)?;
    Ok(SqliteEngineBuilder { config, pool })
}

/// Configures an SQLite [`Engine`]. Start with [`builder`].
#[derive(Debug, Clone)]
pub struct SqliteEngineBuilder {
    config: SqliteConfig,
    pool: PoolOptions,
}

impl SqliteEngineBuilder {
    /// Sets an option by its URL name (`"pool_size"`, `"2"`).
    pub fn option(mut self, name: &str, value: &str) -> Result<Self> {
        apply_option(&mut self.config, &mut self.pool, name, value)?;
        Ok(self)
    }

    /// How long a statement waits for another connection's lock.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.config.busy_timeout = timeout;
        self
    }

    /// Use `INSERT ... RETURNING` (`false` inserts generated keys one row at a time).
    pub fn insert_returning(mut self, on: bool) -> Self {
        self.config.insert_returning = on;
        self
    }

    /// Runs on every new connection before its first use.
    pub fn on_connect(
        mut self,
        f: impl Fn(&mut dyn Connection) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.pool.hooks.on_connect = Some(Arc::new(f));
        self
    }

    /// The connection settings so far.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// The pool options so far.
    pub fn pool_options(&self) -> &PoolOptions {
        &self.pool
    }

    /// The engine. Nothing is opened until the first checkout.
    pub fn build(self) -> Result<Engine> {
        check_pool(&self.config, &self.pool)?;
        let connector = SqliteConnector::new(self.config);
        Ok(Engine::new(Arc::new(connector), self.pool))
    }
}
