//! STUB: the engine helper replaces this file.
use std::sync::Arc;
use crate::backend::{Connector, Dialect, ExecOutcome, ServerInfo};
use crate::error::Result;
use crate::pool::{PoolOptions, PoolStatus};
use crate::row::Row;
use crate::value::Value;

/// Engine.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Engine { connector: Arc<dyn Connector> }
/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Statements sent.
    pub statements: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Connections closed.
    pub connections_closed: u64,
    /// Connections invalidated.
    pub connections_invalidated: u64,
    /// Checkouts.
    pub checkouts: u64,
    /// Checkouts that had to wait.
    pub checkout_waits: u64,
    /// Pings sent.
    pub pings: u64,
}
impl Engine {
    /// New.
    pub fn new(connector: Arc<dyn Connector>, _options: PoolOptions) -> Engine { Engine { connector } }
    /// Checkout.
    pub fn connect(&self) -> Result<PooledConnection> { unimplemented!() }
    /// Dialect.
    pub fn dialect(&self) -> &dyn Dialect { self.connector.dialect() }
    /// Stats.
    pub fn stats(&self) -> EngineStats { unimplemented!() }
    /// Status.
    pub fn status(&self) -> PoolStatus { unimplemented!() }
    /// Capture.
    pub fn capture_statements(&self) -> StatementCapture { unimplemented!() }
}
/// Capture.
pub struct StatementCapture {}
impl StatementCapture {
    /// Take.
    pub fn take(&self) -> Vec<String> { unimplemented!() }
}
/// Guard.
pub struct PooledConnection {}
impl PooledConnection {
    /// Execute.
    pub fn execute(&mut self, _sql: &str, _params: &[Value]) -> Result<ExecOutcome> { unimplemented!() }
    /// Text.
    pub fn execute_text(&mut self, _sql: &str) -> Result<ExecOutcome> { unimplemented!() }
    /// Query.
    pub fn query(&mut self, _sql: &str, _params: &[Value], _each: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> { unimplemented!() }
    /// Query rows.
    pub fn query_rows(&mut self, _sql: &str, _params: &[Value]) -> Result<Vec<Row>> { unimplemented!() }
    /// Begin.
    pub fn begin(&mut self) -> Result<()> { unimplemented!() }
    /// Commit.
    pub fn commit(&mut self) -> Result<()> { unimplemented!() }
    /// Rollback.
    pub fn rollback(&mut self) -> Result<()> { unimplemented!() }
    /// Savepoint.
    pub fn savepoint(&mut self, _name: &str) -> Result<()> { unimplemented!() }
    /// Release.
    pub fn release_savepoint(&mut self, _name: &str) -> Result<()> { unimplemented!() }
    /// Rollback to.
    pub fn rollback_to_savepoint(&mut self, _name: &str) -> Result<()> { unimplemented!() }
    /// In txn.
    pub fn in_transaction(&self) -> bool { unimplemented!() }
    /// Server.
    pub fn server_info(&self) -> &ServerInfo { unimplemented!() }
    /// Invalidate.
    pub fn invalidate(&mut self) { unimplemented!() }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.connector.describe()) }
}
