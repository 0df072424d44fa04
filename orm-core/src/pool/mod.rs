//! STUB: the engine helper replaces this module.
use std::time::Duration;
/// Options.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// size
    pub pool_size: usize,
    /// overflow
    pub max_overflow: usize,
    /// timeout
    pub timeout: Duration,
}
/// Status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// Size.
    pub size: usize,
    /// Idle.
    pub idle: usize,
    /// Overflow.
    pub overflow: usize,
    /// Checked out.
    pub checked_out: usize,
}
