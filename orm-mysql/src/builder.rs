//! [`create_engine`] and [`MySqlEngineBuilder`].

use std::sync::Arc;
use std::time::Duration;

use orm_core::backend::Connection;
use orm_core::engine::Engine;
use orm_core::pool::{
    Echo, PoolClass, PoolOptions, ResetOnReturn, StatementEvent, StatementOutcome,
};
use orm_core::{Error, Result};

use crate::config::{apply_option, parse_url, MySqlConfig};
use crate::connector::MySqlConnector;

/// An engine for a `mysql://user:password@host:port/db?options` URL (see
/// the crate docs for the options). Nothing is connected until the first
/// checkout. A malformed URL or an unknown option is an [`Error::Config`].
pub fn create_engine(url: &str) -> Result<Engine> {
    builder(url)?.build()
}

/// A builder starting from a URL, for options and hooks in code.
pub fn builder(url: &str) -> Result<MySqlEngineBuilder> {
    let (config, pool) = parse_url(url)?;
    Ok(MySqlEngineBuilder { config, pool })
}

/// Configures a MySQL/MariaDB [`Engine`]. Start with [`builder`].
#[derive(Debug, Clone)]
pub struct MySqlEngineBuilder {
    config: MySqlConfig,
    pool: PoolOptions,
}

impl MySqlEngineBuilder {
    /// Sets an option by its URL name (`"pool_size"`, `"2"`).
    pub fn option(mut self, name: &str, value: &str) -> Result<Self> {
        apply_option(&mut self.config, &mut self.pool, name, value)?;
        Ok(self)
    }

    /// Idle connections kept (0: no limit).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool.pool_size = n;
        self
    }

    /// Extra connections under load (`None`: unlimited).
    pub fn max_overflow(mut self, n: Option<usize>) -> Self {
        self.pool.max_overflow = n.unwrap_or(usize::MAX);
        self
    }

    /// How long a checkout waits for a connection (default 30 s);
    /// `Duration::MAX` waits forever.
    pub fn pool_timeout(mut self, timeout: Duration) -> Self {
        self.pool.timeout = timeout;
        self
    }

    /// Reopen connections older than this at checkout (`None`: never).
    pub fn pool_recycle(mut self, age: Option<Duration>) -> Self {
        self.pool.recycle = age;
        self
    }

    /// Ping connections idle for at least `pool_pre_ping_idle` at checkout.
    pub fn pool_pre_ping(mut self, on: bool) -> Self {
        self.pool.pre_ping = on;
        self
    }

    /// The idle time after which a pre-ping is done.
    pub fn pool_pre_ping_idle(mut self, idle: Duration) -> Self {
        self.pool.pre_ping_idle = idle;
        self
    }

    /// What is done to a returned connection.
    pub fn pool_reset_on_return(mut self, reset: ResetOnReturn) -> Self {
        self.pool.reset_on_return = reset;
        self
    }

    /// LIFO instead of FIFO reuse.
    pub fn pool_use_lifo(mut self, on: bool) -> Self {
        self.pool.use_lifo = on;
        self
    }

    /// The pool implementation.
    pub fn poolclass(mut self, class: PoolClass) -> Self {
        self.pool.class = class;
        self
    }

    /// Print statements to stderr: `true` (or [`Echo::Statements`]) prints
    /// the SQL, [`Echo::Debug`] also the parameter values (`echo=debug`).
    pub fn echo(mut self, echo: impl Into<Echo>) -> Self {
        self.pool.echo = echo.into();
        self
    }

    /// Log statements slower than this at WARN level (`slow_statement_ms`;
    /// `None`: off).
    pub fn slow_statement(mut self, threshold: Option<Duration>) -> Self {
        self.pool.slow_statement = threshold;
        self
    }

    /// Record parameter values on the statement spans (`trace_params`; off by default).
    pub fn trace_params(mut self, on: bool) -> Self {
        self.pool.trace_params = on;
        self
    }

    /// How long opening a connection may take (TCP connect, then the
    /// handshake; default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Socket read timeout for statements (default `None`: wait forever; see
    /// [`MySqlConfig::read_timeout`] for why and what detects a dead peer).
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.read_timeout = timeout;
        self
    }

    /// Read timeout of a ping, the pool's pre-ping (default 5 s).
    pub fn ping_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.ping_timeout = timeout;
        self
    }

    /// Socket write timeout (`None`: wait forever).
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// Use `INSERT ... RETURNING` where available (`false` forces the fallback).
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

    /// Runs at every checkout.
    pub fn on_checkout(
        mut self,
        f: impl Fn(&mut dyn Connection) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.pool.hooks.on_checkout = Some(Arc::new(f));
        self
    }

    /// Runs when a connection is returned.
    pub fn on_checkin(
        mut self,
        f: impl Fn(&mut dyn Connection) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.pool.hooks.on_checkin = Some(Arc::new(f));
        self
    }

    /// Runs when a connection is invalidated, with its server id and the cause.
    pub fn on_invalidate(
        mut self,
        f: impl Fn(u64, Option<&Error>) + Send + Sync + 'static,
    ) -> Self {
        self.pool.hooks.on_invalidate = Some(Arc::new(f));
        self
    }

    /// Runs before every statement with its SQL and parameters (SQLAlchemy's
    /// `before_execute`). An error stops the statement and is returned to
    /// the caller.
    pub fn before_execute(
        mut self,
        f: impl Fn(&StatementEvent<'_>) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.pool.hooks.before_execute = Some(Arc::new(f));
        self
    }

    /// Runs after every statement with its rows, duration or error
    /// (SQLAlchemy's `after_execute`).
    pub fn after_execute(
        mut self,
        f: impl Fn(&StatementEvent<'_>, &StatementOutcome<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.pool.hooks.after_execute = Some(Arc::new(f));
        self
    }

    /// The connection settings so far.
    pub fn config(&self) -> &MySqlConfig {
        &self.config
    }

    /// The pool options so far.
    pub fn pool_options(&self) -> &PoolOptions {
        &self.pool
    }

    /// The connector alone (no pool).
    pub fn build_connector(&self) -> Result<MySqlConnector> {
        MySqlConnector::new(self.config.clone())
    }

    /// The engine. Nothing is connected until the first checkout.
    pub fn build(self) -> Result<Engine> {
        let connector = MySqlConnector::new(self.config)?;
        Ok(Engine::new(Arc::new(connector), self.pool))
    }
}
