//! Callbacks the pool runs at points of a connection's life (SQLAlchemy's
//! pool events): `on_connect`, `on_checkout`, `on_checkin`, `on_invalidate`.

use std::fmt;
use std::sync::Arc;

use crate::backend::Connection;
use crate::error::{Error, Result};

/// A callback given the raw connection, which may fail.
pub type ConnectionHook = Arc<dyn Fn(&mut dyn Connection) -> Result<()> + Send + Sync>;
/// A callback told that a connection (by server connection id) was
/// invalidated, with the error that caused it when there is one.
pub type InvalidateHook = Arc<dyn Fn(u64, Option<&Error>) + Send + Sync>;

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
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_connect", &self.on_connect.is_some())
            .field("on_checkout", &self.on_checkout.is_some())
            .field("on_checkin", &self.on_checkin.is_some())
            .field("on_invalidate", &self.on_invalidate.is_some())
            .finish()
    }
}
