//! The pool proper: the idle queue, the slot accounting, checkout and
//! checkin. One implementation serves the three pool classes:
//!
//! - `Queue`: at most `pool_size + max_overflow` connections open, at most
//!   `pool_size` kept idle;
//! - `Null`: no limit, nothing kept idle;
//! - `Static`: at most one connection, always kept.
//!
//! Every open (or opening) connection holds one *slot*. A [`Slot`] is an
//! RAII guard: whatever path a checkout takes (error, early return, panic),
//! dropping the slot either puts its connection back into the idle queue or
//! closes it and frees the slot, so the accounting cannot leak. No lock is
//! held while connecting, pinging, resetting or closing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::backend::{Connection, Connector};
use crate::error::{Error, Result};
use crate::pool::instrument::{bump, Instruments};
use crate::pool::observe::Observer;
use crate::pool::options::{PoolClass, PoolOptions};
use crate::pool::PoolStatus;
use crate::sql_texts::SqlTexts;
use crate::trace;

/// An open connection and what the pool knows about it.
pub(crate) struct ConnRecord {
    pub conn: Box<dyn Connection>,
    /// Increasing number given at open; pool-wide invalidation compares it.
    pub serial: u64,
    pub opened_at: Instant,
    /// When it was last returned (or opened).
    pub returned_at: Instant,
    /// Whether it has been checked out before (a fresh connection is never pinged).
    pub used: bool,
}

struct State {
    idle: VecDeque<ConnRecord>,
    /// Slots in use: idle connections + checked-out guards (with or without a connection).
    open: usize,
    checked_out: usize,
}

/// The shared pool of an engine.
pub(crate) struct Pool {
    pub connector: Arc<dyn Connector>,
    pub options: PoolOptions,
    pub instruments: Arc<Instruments>,
    /// The engine's reused statement texts ([`SqlTexts`]).
    pub sql_texts: SqlTexts,
    state: Mutex<State>,
    available: Condvar,
    next_serial: AtomicU64,
    /// Connections with a serial below this were opened before a detected
    /// disconnect and are replaced at their next checkout (or closed on return).
    invalid_before: AtomicU64,
}

impl Pool {
    pub fn new(connector: Arc<dyn Connector>, options: PoolOptions) -> Pool {
        let observer = Observer::new(&options, connector.describe());
        let instruments = Arc::new(Instruments::new(observer));
        Pool {
            connector,
            options,
            instruments,
            sql_texts: SqlTexts::default(),
            state: Mutex::new(State {
                idle: VecDeque::new(),
                open: 0,
                checked_out: 0,
            }),
            available: Condvar::new(),
            next_serial: AtomicU64::new(0),
            invalid_before: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is kept consistent at every unlock, so a panic elsewhere
        // while holding the lock (there is no such path) would not corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many idle connections are kept (`None`: no limit).
    fn idle_capacity(&self) -> Option<usize> {
        match self.options.class {
            PoolClass::Null => Some(0),
            PoolClass::Static => Some(1),
            PoolClass::Queue if self.options.pool_size == 0 => None,
            PoolClass::Queue => Some(self.options.pool_size),
        }
    }

    /// Checks a connection out: an idle one if there is one (validated:
    /// invalidation, recycle, pre-ping), else a new one within the limit,
    /// else waits up to the timeout.
    pub fn checkout(self: &Arc<Self>) -> Result<Slot> {
        bump(&self.instruments.checkouts);
        let (mut slot, popped, waited) = self.acquire()?;
        if let Some(rec) = popped {
            slot.rec = self.validate(rec)?;
        }
        if slot.rec.is_none() {
            slot.rec = Some(self.open_connection()?);
        }
        if let Some(hook) = &self.options.hooks.on_checkout {
            if let Some(rec) = slot.rec.as_mut() {
                if let Err(e) = hook(&mut *rec.conn) {
                    if let Some(rec) = slot.rec.take() {
                        self.close(rec);
                    }
                    return Err(e);
                }
            }
        }
        if let Some(rec) = &slot.rec {
            trace::checkout(rec.conn.connection_id(), waited);
        }
        Ok(slot)
    }

    /// Takes a slot: with an idle connection, or empty (the caller connects);
    /// and how long it waited for one, if it had to.
    fn acquire(self: &Arc<Self>) -> Result<(Slot, Option<ConnRecord>, Option<Duration>)> {
        let limit = self.options.limit();
        // `None` inside: no deadline (a timeout too long for `Instant`,
        // such as `Duration::MAX`, waits forever).
        let mut deadline: Option<Option<Instant>> = None;
        // When this checkout started waiting for a connection, if it had to.
        let mut waiting_since: Option<Instant> = None;
        let waited = |since: Option<Instant>| since.map(|s| s.elapsed());
        let mut state = self.lock();
        loop {
            let popped = if self.options.use_lifo {
                state.idle.pop_back()
            } else {
                state.idle.pop_front()
            };
            if let Some(rec) = popped {
                state.checked_out += 1;
                return Ok((Slot::new(self), Some(rec), waited(waiting_since)));
            }
            if limit.map_or(true, |limit| state.open < limit) {
                state.open += 1;
                state.checked_out += 1;
                return Ok((Slot::new(self), None, waited(waiting_since)));
            }
            let now = Instant::now();
            let deadline = *deadline.get_or_insert_with(|| {
                bump(&self.instruments.checkout_waits);
                waiting_since = Some(now);
                now.checked_add(self.options.timeout)
            });
            let Some(deadline) = deadline else {
                state = self
                    .available
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            if now >= deadline {
                let (size, overflow) = match self.options.class {
                    PoolClass::Static => (1, 0),
                    _ => (self.options.pool_size, self.options.max_overflow),
                };
                return Err(Error::PoolTimeout {
                    size,
                    overflow,
                    timeout: self.options.timeout,
                });
            }
            state = self
                .available
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Decides whether an idle connection can be handed out; closes it if not.
    fn validate(&self, rec: ConnRecord) -> Result<Option<ConnRecord>> {
        if rec.serial < self.invalid_before.load(Ordering::Acquire) {
            self.invalidate_stale(rec);
            return Ok(None);
        }
        if self
            .options
            .recycle
            .is_some_and(|age| rec.opened_at.elapsed() >= age)
        {
            trace::recycled(rec.conn.connection_id(), rec.opened_at.elapsed());
            self.close(rec);
            return Ok(None);
        }
        if self.options.pre_ping
            && rec.used
            && rec.returned_at.elapsed() >= self.options.pre_ping_idle
        {
            let mut rec = rec;
            bump(&self.instruments.pings);
            if let Err(e) = rec.conn.ping() {
                trace::ping_failed(rec.conn.connection_id(), &e);
                if e.is_connection_lost() {
                    // The server went away: everything opened before now is suspect.
                    self.invalidate_all();
                    self.invalidate_record(rec, Some(&e));
                    return Ok(None);
                }
                self.invalidate_record(rec, Some(&e));
                return Err(e);
            }
            return Ok(Some(rec));
        }
        Ok(Some(rec))
    }

    /// Opens a new connection and runs the on_connect hook (the caller holds a slot).
    pub fn open_connection(&self) -> Result<ConnRecord> {
        let conn = self
            .connector
            .connect()
            .inspect_err(trace::connect_failed)?;
        bump(&self.instruments.connections_opened);
        trace::connected(conn.connection_id());
        let now = Instant::now();
        let mut rec = ConnRecord {
            conn,
            serial: self.next_serial.fetch_add(1, Ordering::AcqRel),
            opened_at: now,
            returned_at: now,
            used: false,
        };
        if let Some(hook) = &self.options.hooks.on_connect {
            // The hook may change per-session settings (the auto-increment
            // step decides which keys a multi-row INSERT produced): read them
            // again on this connection after it ran.
            let result = hook(&mut *rec.conn).and_then(|()| rec.conn.refresh_server_info());
            if let Err(e) = result {
                self.close(rec);
                return Err(e);
            }
        }
        Ok(rec)
    }

    /// Closes a connection (outside any lock). The slot is the caller's business.
    pub fn close(&self, rec: ConnRecord) {
        drop(rec);
        bump(&self.instruments.connections_closed);
    }

    /// Counts, reports and closes an invalidated connection: `cause` is the
    /// error that made it unusable, `None` when invalidated explicitly.
    pub fn invalidate_record(&self, rec: ConnRecord, cause: Option<&Error>) {
        let reason = match cause {
            Some(e) if e.is_connection_lost() => "connection lost",
            Some(_) => "unusable after an error",
            None => "invalidated explicitly",
        };
        self.invalidate_because(rec, cause, reason);
    }

    /// Invalidates a connection opened before a detected disconnect.
    fn invalidate_stale(&self, rec: ConnRecord) {
        self.invalidate_because(rec, None, "opened before a lost connection was detected");
    }

    fn invalidate_because(&self, rec: ConnRecord, cause: Option<&Error>, reason: &'static str) {
        bump(&self.instruments.connections_invalidated);
        trace::invalidated(rec.conn.connection_id(), cause, reason);
        if let Some(hook) = &self.options.hooks.on_invalidate {
            hook(rec.conn.connection_id(), cause);
        }
        self.close(rec);
    }

    /// Pool-wide invalidation: every connection opened before now is
    /// replaced at its next checkout (or closed when returned).
    pub fn invalidate_all(&self) {
        let now = self.next_serial.load(Ordering::Acquire);
        self.invalid_before.fetch_max(now, Ordering::AcqRel);
        trace::pool_invalidated();
    }

    /// Closes the idle connections. Checked-out ones are unaffected.
    pub fn dispose(&self) {
        let drained: Vec<ConnRecord> = {
            let mut state = self.lock();
            let drained: Vec<ConnRecord> = state.idle.drain(..).collect();
            state.open -= drained.len();
            drained
        };
        self.available.notify_all();
        for rec in drained {
            self.close(rec);
        }
    }

    pub fn status(&self) -> PoolStatus {
        let state = self.lock();
        let size = match self.options.class {
            PoolClass::Queue => self.options.pool_size,
            PoolClass::Static => 1,
            PoolClass::Null => 0,
        };
        PoolStatus {
            size,
            idle: state.idle.len(),
            overflow: if size == 0 {
                0
            } else {
                state.open.saturating_sub(size)
            },
            checked_out: state.checked_out,
        }
    }

    /// Gives a slot back, with its connection to keep (if still good) or none.
    fn checkin(&self, rec: Option<ConnRecord>) {
        let id = rec.as_ref().map(|rec| rec.conn.connection_id());
        let to_close = {
            let mut state = self.lock();
            state.checked_out -= 1;
            let keep = match &rec {
                Some(rec) => {
                    rec.serial >= self.invalid_before.load(Ordering::Acquire)
                        && self
                            .idle_capacity()
                            .map_or(true, |cap| state.idle.len() < cap)
                }
                None => false,
            };
            match rec {
                Some(mut rec) if keep => {
                    rec.returned_at = Instant::now();
                    rec.used = true;
                    state.idle.push_back(rec);
                    None
                }
                other => {
                    state.open -= 1;
                    other
                }
            }
        };
        self.available.notify_one();
        if let Some(id) = id {
            trace::checkin(id, to_close.is_none());
        }
        if let Some(rec) = to_close {
            if rec.serial < self.invalid_before.load(Ordering::Acquire) {
                self.invalidate_stale(rec);
            } else {
                self.close(rec);
            }
        }
    }
}

/// One slot of the pool, held by a checked-out connection. Dropping it
/// returns its connection to the idle queue or closes it.
pub(crate) struct Slot {
    pub pool: Arc<Pool>,
    pub rec: Option<ConnRecord>,
}

impl Slot {
    fn new(pool: &Arc<Pool>) -> Slot {
        Slot {
            pool: Arc::clone(pool),
            rec: None,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let rec = self.rec.take();
        self.pool.checkin(rec);
    }
}
