//! Callbacks the pool runs at points of a connection's life (SQLAlchemy's
//! pool events): `on_connect`, `on_checkout`, `on_checkin`, `on_invalidate`;
//! and around every statement (SQLAlchemy's engine events):
//! `before_execute`, `after_execute`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Connection;
use crate::error::{Error, Result};
use crate::value::Value;

/// A callback given the raw connection, which may fail.
pub type ConnectionHook = Arc<dyn Fn(&mut dyn Connection) -> Result<()> + Send + Sync>;
/// A callback told that a connection (by server connection id) was
/// invalidated, with the error that caused it when there is one.
pub type InvalidateHook = Arc<dyn Fn(u64, Option<&Error>) + Send + Sync>;
/// A callback run before a statement is sent. An error stops the statement
/// (nothing is sent) and is returned to the caller.
pub type BeforeExecuteHook = Arc<dyn Fn(&StatementEvent<'_>) -> Result<()> + Send + Sync>;
/// A callback run after a statement finished, successfully or not.
pub type AfterExecuteHook = Arc<dyn Fn(&StatementEvent<'_>, &StatementOutcome<'_>) + Send + Sync>;

/// The statement an engine event is about.
#[derive(Debug, Clone, Copy)]
pub struct StatementEvent<'a> {
    /// The SQL text, with `?` placeholders.
    pub sql: &'a str,
    /// The bound parameters (empty for text-protocol statements such as `BEGIN`).
    pub params: &'a [Value],
    /// The server's id of the connection it is sent on.
    pub connection_id: u64,
}

/// How a statement ended, for `after_execute`.
#[derive(Debug, Clone, Copy)]
pub struct StatementOutcome<'a> {
    /// Rows returned by a query, or affected by any other statement; `None` on error.
    pub rows: Option<u64>,
    /// Time from sending the statement to its last row or its error.
    pub duration: Duration,
    /// The error, if the statement failed.
    pub error: Option<&'a Error>,
}

/// The pool's callbacks. All are optional.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Runs once on every new connection, before its first use
    /// (`SET time_zone = '+00:00'`, `SET SESSION wait_timeout = ...`). An error
    /// closes the connection and is returned to the caller of the checkout.
    pub on_connect: Option<ConnectionHook>,
    /// Runs at every checkout. An error closes the connection and is
    /// returned to the caller of the checkout.
    pub on_checkout: Option<ConnectionHook>,
    /// Runs when a connection is returned (after its reset). An error closes it.
    pub on_checkin: Option<ConnectionHook>,
    /// Runs when a connection is invalidated (explicitly or on a lost connection).
    pub on_invalidate: Option<InvalidateHook>,
    /// Runs before every statement (SQLAlchemy's `before_execute`); an error stops it.
    pub before_execute: Option<BeforeExecuteHook>,
    /// Runs after every statement, with its rows, duration or error
    /// (SQLAlchemy's `after_execute`).
    pub after_execute: Option<AfterExecuteHook>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_connect", &self.on_connect.is_some())
            .field("on_checkout", &self.on_checkout.is_some())
            .field("on_checkin", &self.on_checkin.is_some())
            .field("on_invalidate", &self.on_invalidate.is_some())
            .field("before_execute", &self.before_execute.is_some())
            .field("after_execute", &self.after_execute.is_some())
            .finish()
    }
}
