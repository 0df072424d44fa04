//! Counters and statement capture shared by an engine's pool and its
//! checked-out connections.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::error::Result;
use crate::pool::observe::{Observer, Statement};
use crate::value::Value;

/// Counters of an engine since it was created. All are monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Statements sent (every execute, execute_text and query, including
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT and the pool's resets; not pings).
    pub statements: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Connections closed (returned overflow, recycled, invalidated, disposed).
    pub connections_closed: u64,
    /// Connections invalidated (explicitly, lost, failed ping, pool-wide).
    pub connections_invalidated: u64,
    /// Checkouts from the pool.
    pub checkouts: u64,
    /// Checkouts that had to wait for a connection to be returned.
    pub checkout_waits: u64,
    /// Pings sent (pre-ping).
    pub pings: u64,
    /// Statements sent again, once, on a fresh connection because the first
    /// attempt met a dead connection where the server cannot have kept
    /// anything of the work (a `BEGIN`, a read outside a transaction).
    pub statement_retries: u64,
    /// Units of work run again by `SessionFactory::retrying` after an
    /// error safe to retry.
    pub unit_of_work_retries: u64,
}

type CaptureBuf = Mutex<Vec<String>>;

pub(crate) struct Instruments {
    pub statements: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub connections_invalidated: AtomicU64,
    pub checkouts: AtomicU64,
    pub checkout_waits: AtomicU64,
    pub pings: AtomicU64,
    pub statement_retries: AtomicU64,
    pub unit_of_work_retries: AtomicU64,
    /// Live captures: the fast path only reads this counter.
    live_captures: AtomicUsize,
    captures: Mutex<Vec<Weak<CaptureBuf>>>,
    /// Echo, spans, slow statements, execute hooks.
    observer: Observer,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Instruments {
    pub fn new(observer: Observer) -> Self {
        Instruments {
            statements: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            connections_invalidated: AtomicU64::new(0),
            checkouts: AtomicU64::new(0),
            checkout_waits: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            statement_retries: AtomicU64::new(0),
            unit_of_work_retries: AtomicU64::new(0),
            live_captures: AtomicUsize::new(0),
            captures: Mutex::new(Vec::new()),
            observer,
        }
    }

    /// Whether the `after_execute` hook sees statements' parameters once
    /// they were sent ([`Observer::shows_params_after`]).
    pub fn shows_params_after(&self) -> bool {
        self.observer.shows_params_after()
    }

    /// Records one statement about to be sent and starts observing it
    /// (`before_execute` may refuse it: then nothing is counted or sent).
    /// Finish the returned statement with the result.
    pub fn statement<'a, 'p>(
        &'a self,
        sql: &'a str,
        params: &'p [Value],
        connection_id: u64,
    ) -> Result<Statement<'a, 'p>> {
        let statement = self.observer.start(sql, params, connection_id)?;
        bump(&self.statements);
        if self.live_captures.load(Ordering::Relaxed) > 0 {
            let mut captures = self.captures.lock().unwrap_or_else(PoisonError::into_inner);
            captures.retain(|weak| match weak.upgrade() {
                Some(buf) => {
                    buf.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(sql.to_string());
                    true
                }
                None => false,
            });
        }
        Ok(statement)
    }

    pub fn snapshot(&self) -> EngineStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineStats {
            statements: get(&self.statements),
            connections_opened: get(&self.connections_opened),
            connections_closed: get(&self.connections_closed),
            connections_invalidated: get(&self.connections_invalidated),
            checkouts: get(&self.checkouts),
            checkout_waits: get(&self.checkout_waits),
            pings: get(&self.pings),
            statement_retries: get(&self.statement_retries),
            unit_of_work_retries: get(&self.unit_of_work_retries),
        }
    }

    pub fn capture(self: &Arc<Self>) -> StatementCapture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        self.captures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&buf));
        self.live_captures.fetch_add(1, Ordering::Relaxed);
        StatementCapture {
            buf,
            owner: Arc::clone(self),
        }
    }
}

/// Records the SQL text of every statement sent through an engine from its
/// creation until it is dropped (see `Engine::capture_statements`). Several
/// may exist at once; each sees every statement.
pub struct StatementCapture {
    buf: Arc<CaptureBuf>,
    owner: Arc<Instruments>,
}

impl StatementCapture {
    /// Takes the statements captured since the capture was created or last taken, in order.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for StatementCapture {
    fn drop(&mut self) {
        self.owner.live_captures.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for StatementCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementCapture").finish_non_exhaustive()
    }
}
