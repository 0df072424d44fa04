//! Retrying a unit of work on errors that are safe to retry: the closure
//! runs again, from a fresh session, after a deadlock, a lock wait timeout,
//! a Galera certification failure or "node not ready", or a connection lost
//! before COMMIT was sent. Never after a COMMIT whose outcome is unknown,
//! unless the caller says the work is idempotent.

use std::time::Duration;

use crate::error::{DbErrorKind, Error, Result};

use super::{Session, SessionFactory};

/// How [`SessionFactory::retrying`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first included). Default 5.
    pub max_attempts: u32,
    /// The delay before the first retry, doubled before each next one.
    /// Default 10 ms.
    pub base_delay: Duration,
    /// The longest delay. Default 1 s.
    pub max_delay: Duration,
    /// Randomize each delay between half and all of it, so that clients
    /// that collided do not collide again. Default on.
    pub jitter: bool,
    /// The work may run twice without harm: also retry after a COMMIT
    /// whose outcome is unknown. Default off.
    pub idempotent: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
            jitter: true,
            idempotent: false,
        }
    }
}

/// MySQL/MariaDB codes that mean "try again": 1213 deadlock (also Galera's
/// certification failure), 1205 lock wait timeout, 1047 Galera node not
/// ready (`WSREP has not yet prepared node for application use`).
const RETRY_CODES: [u16; 3] = [1213, 1205, 1047];

impl RetryPolicy {
    /// Whether `error` is safe to retry under this policy.
    pub fn should_retry(&self, error: &Error) -> bool {
        match error {
            Error::CommitOutcomeUnknown(_) => self.idempotent,
            Error::PendingRollback(cause) | Error::TransactionEnded(cause) => {
                self.should_retry(cause)
            }
            Error::ConnectionLostInTransaction(_) | Error::InvalidTransaction => true,
            _ => {
                error.is_retryable()
                    || error.code().is_some_and(|c| RETRY_CODES.contains(&c))
                    || error.db_kind() == Some(DbErrorKind::ConnectionLost)
            }
        }
    }

    /// The delay before retry number `retry` (1 for the first).
    fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        if !self.jitter {
            return exp;
        }
        // Half of the delay plus a random share of the other half.
        let nanos = u64::try_from(exp.as_nanos() / 2).unwrap_or(u64::MAX);
        exp / 2 + Duration::from_nanos(random_below(nanos.max(1)))
    }
}

/// A random number below `n`, from the standard library's randomly seeded
/// hasher (no dependency for one number per retry).
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n
}

impl SessionFactory {
    /// Runs `work` in a new session's transaction and commits (as
    /// [`begin`](Self::begin)); when that fails with an error safe to retry
    /// ([`RetryPolicy::should_retry`]), runs it again from a fresh session,
    /// up to `policy.max_attempts` times, with exponential backoff and
    /// jitter. Every retry is counted (`EngineStats::unit_of_work_retries`)
    /// and logged at warn level. The last error is returned when attempts
    /// run out or the error is not safe to retry.
    pub fn retrying<T>(
        &self,
        policy: &RetryPolicy,
        mut work: impl FnMut(&Session) -> Result<T>,
    ) -> Result<T> {
        let mut attempt = 1;
        loop {
            match self.begin(&mut work) {
                Ok(value) => return Ok(value),
                Err(e) if attempt < policy.max_attempts && policy.should_retry(&e) => {
                    let delay = policy.delay(attempt);
                    crate::trace::retrying(attempt, delay, &e);
                    self.engine().count_retry();
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
