//! Connection pools, after SQLAlchemy's: a queue pool (`pool_size`,
//! `max_overflow`, `timeout`, `recycle`, `pre_ping`, `reset_on_return`,
//! LIFO/FIFO), a null pool and a static pool, all behind one
//! [`PooledConnection`] guard.
//!
//! - [`options`]: [`PoolOptions`] and the generic URL option parsing;
//! - [`hooks`]: callbacks at connect, checkout, checkin, invalidation, and
//!   before and after every statement;
//! - `observe`: what happens around every statement: the tracing span, echo,
//!   slow-statement warnings, the execute hooks;
//! - `queue`: the idle queue and the slot accounting;
//! - [`connection`]: the checked-out connection guard.
//!
//! Users reach the pool through `Engine`:
//!
//! ```no_run
//! # fn demo(engine: &orm_core::engine::Engine) -> orm_core::Result<()> {
//! let mut conn = engine.connect()?;     // checkout
//! conn.begin()?;
//! conn.execute("UPDATE t SET x = ? WHERE id = ?", &[orm_core::value::Value::Int(1), orm_core::value::Value::Int(2)])?;
//! conn.commit()?;
//! drop(conn);                            // returned with no reset round trip
//! println!("{:?}", engine.status());
//! # Ok(()) }
//! ```

pub mod connection;
pub mod hooks;
pub(crate) mod instrument;
pub(crate) mod observe;
pub mod options;
pub(crate) mod queue;

pub use connection::PooledConnection;
pub use hooks::{
    AfterExecuteHook, BeforeExecuteHook, ConnectionHook, Hooks, InvalidateHook, StatementEvent,
    StatementOutcome,
};
pub use instrument::{EngineStats, StatementCapture};
pub use options::{Echo, PoolClass, PoolOptions, ResetOnReturn};

/// A snapshot of a pool's occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// The configured `pool_size` (1 for a static pool, 0 for a null pool).
    pub size: usize,
    /// Idle connections in the pool.
    pub idle: usize,
    /// Connections open beyond `size` (0 when `size` is 0).
    pub overflow: usize,
    /// Connections checked out (including ones being opened for a checkout).
    pub checked_out: usize,
}
