//! The session's transaction as an explicit state machine, and what commit,
//! rollback and savepoint rollback do to the objects.
//!
//! ```text
//!  Idle --(first real work: autobegin)--> Active --commit/rollback--> Idle
//!                                          |
//!                      failed flush / lost connection
//!                                          v
//!                                    NeedsRollback --rollback()--> Idle
//! ```
//!
//! The connection is checked out (and `BEGIN` sent) only at the first SQL of
//! an Active transaction, and returned to the pool at commit, rollback or close.

use std::rc::Rc;
use std::sync::Arc;

use crate::engine::PooledConnection;
use crate::error::Error;

use super::identity_map::{Identity, IdentityMap};
use super::object::{AnyObj, ObjState};
use super::{detach_all, Session, State};
use crate::error::Result;

/// Where the session's transaction stands.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// No transaction.
    Idle,
    /// A logical transaction is open (the connection may not be checked out yet).
    Active,
    /// A flush failed or the connection was lost; only rollback() is accepted.
    NeedsRollback(Arc<Error>),
}

/// One `begin_nested()` level.
pub(crate) struct Savepoint {
    pub name: String,
    /// Positions in the transaction's lists when the savepoint began.
    pub inserted_mark: usize,
    pub deleted_mark: usize,
    pub updated_mark: usize,
    /// Whether `SAVEPOINT` was sent.
    pub sent: bool,
}

pub(crate) struct Transaction {
    pub phase: Phase,
    pub conn: Option<PooledConnection>,
    /// Objects INSERTed by flushes of this transaction.
    pub inserted: Vec<Rc<dyn AnyObj>>,
    /// Objects DELETEd by flushes of this transaction.
    pub deleted: Vec<Rc<dyn AnyObj>>,
    /// Objects UPDATEd by flushes of this transaction (for savepoint rollback).
    pub updated: Vec<Rc<dyn AnyObj>>,
    pub savepoints: Vec<Savepoint>,
    pub next_savepoint: u64,
}

impl Transaction {
    pub fn new() -> Self {
        Transaction {
            phase: Phase::Idle,
            conn: None,
            inserted: Vec::new(),
            deleted: Vec::new(),
            updated: Vec::new(),
            savepoints: Vec::new(),
            next_savepoint: 0,
        }
    }

    pub fn is_active(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    /// Forget everything about the transaction (after commit or rollback).
    pub fn reset(&mut self) {
        self.phase = Phase::Idle;
        self.conn = None;
        self.inserted.clear();
        self.deleted.clear();
        self.updated.clear();
        self.savepoints.clear();
    }
}

pub(crate) fn identity_of(obj: &Rc<dyn AnyObj>) -> Option<Identity> {
    obj.meta().borrow().key.clone().map(|key| Identity {
        model: obj.model_type(),
        key,
    })
}

/// Expires an object: its values are reloaded at next use; unflushed changes are dropped.
pub(crate) fn expire(obj: &Rc<dyn AnyObj>) {
    let mut meta = obj.meta().borrow_mut();
    meta.expired = true;
    meta.snapshot = None;
}

/// Makes an object that was INSERTed (or only added) in a rolled-back
/// transaction transient again, clearing a key the database generated.
pub(crate) fn make_transient(obj: &Rc<dyn AnyObj>, map: &mut IdentityMap) {
    if let Some(identity) = identity_of(obj) {
        if map.get(&identity).is_some_and(|o| Rc::ptr_eq(o, obj)) {
            map.remove(&identity);
        }
    }
    let generated = obj.meta().borrow().generated_key;
    if generated {
        if let Some(ai) = obj.table().auto_increment {
            // Setting NULL on an Option field cannot fail; if the object is
            // borrowed the key simply stays, which is harmless.
            let _ = obj.set_column(ai, crate::value::Value::Null);
        }
    }
    let mut meta = obj.meta().borrow_mut();
    meta.release(ObjState::Transient);
    meta.generated_key = false;
    meta.snapshot = None;
    meta.expired = false;
}

/// Puts an object whose DELETE was rolled back back into the map, expired.
pub(crate) fn restore_deleted(obj: &Rc<dyn AnyObj>, map: &mut IdentityMap) {
    {
        let mut meta = obj.meta().borrow_mut();
        meta.state = ObjState::Persistent;
        meta.marked_deleted = false;
    }
    expire(obj);
    if let Some(identity) = identity_of(obj) {
        map.insert(identity, obj.clone());
    }
}

impl Session {
    /// Whether a transaction is open (autobegun by real work, or begun explicitly).
    pub fn in_transaction(&self) -> bool {
        self.inner.state.borrow().tx.is_active()
    }

    /// Begins a transaction explicitly. An error if one is already open
    /// (use [`Session::begin_nested`] for a savepoint).
    pub fn begin(&self) -> Result<()> {
        let mut st = self.state()?;
        self.check_usable(&st)?;
        if st.tx.is_active() {
            return Err(Error::invalid(
                "a transaction is already begun on this session; commit() or rollback() it first, \
                 or use begin_nested() for a savepoint",
            ));
        }
        st.tx.phase = Phase::Active;
        Ok(())
    }

    pub(super) fn check_usable(&self, st: &State) -> Result<()> {
        match &st.tx.phase {
            Phase::NeedsRollback(cause) => Err(Error::PendingRollback(cause.clone())),
            _ => Ok(()),
        }
    }

    /// The transaction's connection, checking it out and sending BEGIN (and
    /// any pending SAVEPOINT) on first use.
    pub(super) fn connection<'a>(&self, st: &'a mut State) -> Result<&'a mut PooledConnection> {
        self.check_usable(st)?;
        st.tx.phase = Phase::Active;
        if st.tx.conn.is_none() {
            let mut conn = self.inner.engine.connect()?;
            conn.begin()?;
            st.tx.conn = Some(conn);
        }
        let tx = &mut st.tx;
        let conn = tx
            .conn
            .as_mut()
            .ok_or_else(|| Error::invalid("no connection"))?;
        for sp in tx.savepoints.iter_mut().filter(|sp| !sp.sent) {
            conn.savepoint(&sp.name)?;
            sp.sent = true;
        }
        Ok(conn)
    }

    /// Records an error from SQL run inside the transaction: a lost
    /// connection leaves the session needing rollback.
    pub(super) fn note_error(&self, st: &mut State, e: Error) -> Error {
        if e.is_connection_lost() && st.tx.conn.is_some() {
            st.tx.phase = Phase::NeedsRollback(Arc::new(e.clone()));
        }
        e
    }

    /// Flushes pending changes, COMMITs, and returns the connection to the
    /// pool. With expire_on_commit every object is expired; deleted objects
    /// become detached. With nothing open, does nothing and sends nothing.
    pub fn commit(&self) -> Result<()> {
        let _span = crate::trace::commit_span();
        self.flush()?;
        let mut st = self.state()?;
        self.check_usable(&st)?;
        if !st.tx.savepoints.is_empty() {
            return Err(Error::invalid(
                "a nested transaction (savepoint) is still open; commit() or rollback() it before committing the session",
            ));
        }
        if let Some(conn) = st.tx.conn.as_mut() {
            if let Err(e) = conn.commit() {
                let e = self.note_error(&mut st, e);
                self.rollback_state(&mut st);
                return Err(e);
            }
        }
        for obj in st.tx.deleted.drain(..) {
            obj.meta().borrow_mut().release(ObjState::Detached);
        }
        for obj in &st.tx.inserted {
            obj.meta().borrow_mut().generated_key = false;
        }
        if self.inner.config.expire_on_commit {
            for obj in st.map.values() {
                expire(obj);
            }
            self.inner.modified.borrow_mut().clear();
        }
        st.tx.reset();
        Ok(())
    }

    /// Rolls back the transaction and returns the connection: pending
    /// objects become transient, deleted objects are restored, everything
    /// else is expired. Also the way out of the rollback-required state.
    /// Without a transaction, does nothing.
    pub fn rollback(&self) -> Result<()> {
        let _span = crate::trace::rollback_span();
        let mut st = self.state()?;
        if let Some(conn) = st.tx.conn.as_mut() {
            // A failure to roll back (the connection is gone) is not the
            // caller's problem: the server discards the transaction anyway,
            // and the pool closes the connection.
            if conn.rollback().is_err() {
                conn.invalidate();
            }
        }
        self.rollback_state(&mut st);
        Ok(())
    }

    /// The object side of a rollback.
    pub(super) fn rollback_state(&self, st: &mut State) {
        rollback_objects(st, true);
        self.inner.modified.borrow_mut().clear();
    }

    /// Rolls back, returns the connection and detaches every object. Objects
    /// keep the values they had (read them detached; pending and newly
    /// inserted ones become transient). The session stays usable. Dropping a
    /// session does the same.
    pub fn close(&self) {
        if let Ok(mut st) = self.inner.state.try_borrow_mut() {
            if let Some(conn) = st.tx.conn.as_mut() {
                if conn.rollback().is_err() {
                    conn.invalidate();
                }
            }
            rollback_objects(&mut st, false);
            self.inner.modified.borrow_mut().clear();
            detach_all(&mut st);
        }
    }

    /// Runs `work` inside a transaction: commits on `Ok`, rolls back on
    /// `Err` or panic, and always releases the connection. Begins the
    /// transaction itself: calling it while one is open is an error.
    pub fn transaction<T>(&self, work: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        self.begin()?;
        struct RollbackOnUnwind<'a>(&'a Session, bool);
        impl Drop for RollbackOnUnwind<'_> {
            fn drop(&mut self) {
                if self.1 {
                    let _ = self.0.rollback();
                }
            }
        }
        let mut guard = RollbackOnUnwind(self, true);
        let result = work(self);
        guard.1 = false;
        match result {
            Ok(value) => match self.commit() {
                Ok(()) => Ok(value),
                Err(e) => {
                    let _ = self.rollback();
                    Err(e)
                }
            },
            Err(e) => {
                let _ = self.rollback();
                Err(e)
            }
        }
    }
}

/// What a rollback does to the objects: pending and newly inserted objects
/// become transient, deleted ones are restored, and (with `expire_rest`)
/// everything else is expired. `close()` passes `false`: the objects are
/// about to be detached and keep their loaded values, as in SQLAlchemy.
/// Resets the transaction (dropping its connection guard, which rolls the
/// connection back if needed).
pub(super) fn rollback_objects(st: &mut State, expire_rest: bool) {
    let State {
        map,
        new,
        deleted,
        tx,
        ..
    } = st;
    // Restore deletions first: an object inserted and deleted in this
    // transaction must end transient, not persistent.
    for obj in tx.deleted.drain(..) {
        restore_deleted(&obj, map);
    }
    for obj in tx.inserted.drain(..) {
        make_transient(&obj, map);
    }
    for obj in new.drain(..) {
        make_transient(&obj, map);
    }
    for obj in deleted.drain(..) {
        obj.meta().borrow_mut().marked_deleted = false;
    }
    if expire_rest {
        for obj in map.values() {
            expire(obj);
        }
    }
    tx.reset();
}
