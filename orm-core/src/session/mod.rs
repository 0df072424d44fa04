//! The [`Session`]: identity map, object states, unit-of-work flush,
//! transactions and savepoints — SQLAlchemy's Session, the Rust way.
//!
//! ```ignore
//! let factory = SessionFactory::new(engine.clone());
//! let session = factory.session();
//! let alice = session.add(User { id: None, name: "alice".into(), age: 30 })?;
//! session.flush()?;                       // INSERT, inside the open transaction
//! alice.write()?.age = 31;                // tracked: UPDATE of `age` only, at the next flush
//! let same = session.get::<User>(alice.read()?.id.unwrap())?.unwrap();
//! assert!(same.ptr_eq(&alice));           // one object per row, no SQL
//! session.commit()?;                      // flush, COMMIT, connection back to the pool
//! ```
//!
//! A session belongs to one thread (it is neither `Send` nor `Sync`), and so
//! does every [`Obj`] it hands out. Move plain values between threads and
//! `merge` them into the other thread's session.
//!
//! The split follows SQLAlchemy's: this module coordinates;
//! [`identity_map`], [`object`] (handles and states), [`unit_of_work`] (what
//! to send and in which order), [`persistence`] (the SQL), [`transaction`]
//! (the transaction state machine) each hold one concept.

mod identity_map;
mod loading;
mod merge;
mod object;
mod persistence;
mod scoped;
mod transaction;
mod unit_of_work;

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::backend::ExecOutcome;
use crate::engine::{Engine, PooledConnection};
use crate::error::{Error, Result};
use crate::model::{IntoKey, Model};
use crate::query::Query;
use crate::value::Value;

use identity_map::{Identity, IdentityMap};
use object::{downcast, AnyObj};
pub use object::{Obj, ObjState};
pub(crate) use persistence::select_sql;
pub use scoped::ScopedSession;
use transaction::{Phase, Savepoint, Transaction};

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// Session defaults, as SQLAlchemy's `sessionmaker` holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Flush before queries and before a `get` that must go to the database. Default on.
    pub autoflush: bool,
    /// Expire every object at commit, so the next use reloads it. Default on.
    pub expire_on_commit: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            autoflush: true,
            expire_on_commit: true,
        }
    }
}

/// Makes sessions with shared configuration (SQLAlchemy's `sessionmaker`).
/// Cheap to clone, `Send + Sync`: keep one per application.
#[derive(Debug, Clone)]
pub struct SessionFactory {
    engine: Engine,
    config: SessionConfig,
}

impl SessionFactory {
    /// A factory with the default configuration (autoflush, expire_on_commit).
    pub fn new(engine: Engine) -> Self {
        SessionFactory {
            engine,
            config: SessionConfig::default(),
        }
    }

    /// Sets autoflush for sessions made from now on.
    pub fn autoflush(mut self, on: bool) -> Self {
        self.config.autoflush = on;
        self
    }

    /// Sets expire_on_commit for sessions made from now on.
    pub fn expire_on_commit(mut self, on: bool) -> Self {
        self.config.expire_on_commit = on;
        self
    }

    /// The configuration.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A new session. It holds no connection until its first SQL.
    pub fn session(&self) -> Session {
        Session::with_config(self.engine.clone(), self.config)
    }

    /// Runs `work` in a new session's transaction: commits on `Ok`, rolls
    /// back on `Err` or panic, and always closes the session (the
    /// `session_scope` recipe, SQLAlchemy's `sessionmaker.begin()`).
    pub fn begin<T>(&self, work: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let session = self.session();
        let result = session.transaction(work);
        session.close();
        result
    }
}

/// The unit of work. See the [module documentation](self).
///
/// Cloning a `Session` gives another handle on the same session (as
/// [`ScopedSession::current`] does); the session is closed when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Session {
    inner: Rc<SessionInner>,
}

pub(crate) struct SessionInner {
    id: u64,
    engine: Engine,
    config: SessionConfig,
    autoflush: Cell<bool>,
    state: RefCell<State>,
    /// Objects written since their last load or flush (kept apart from
    /// `state` so that `Obj::write` never contends with the session).
    modified: RefCell<Vec<Rc<dyn AnyObj>>>,
}

pub(crate) struct State {
    map: IdentityMap,
    /// Pending objects, in `add` order.
    new: Vec<Rc<dyn AnyObj>>,
    /// Objects marked for deletion, not yet flushed.
    deleted: Vec<Rc<dyn AnyObj>>,
    tx: Transaction,
    flushing: bool,
    next_seq: u64,
}

impl SessionInner {
    pub(crate) fn note_modified(&self, obj: Rc<dyn AnyObj>) {
        self.modified.borrow_mut().push(obj);
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        // Equivalent of close(): roll back (by returning the connection,
        // whose guard resets it) and detach everything.
        let state = self.state.get_mut();
        detach_all(state);
        state.tx.reset();
    }
}

fn detach_all(st: &mut State) {
    for obj in st.map.drain() {
        obj.meta().borrow_mut().release(ObjState::Detached);
    }
    for obj in st.new.drain(..) {
        obj.meta().borrow_mut().release(ObjState::Transient);
    }
    for obj in st.deleted.drain(..) {
        obj.meta().borrow_mut().release(ObjState::Detached);
    }
    for obj in st.tx.deleted.drain(..) {
        obj.meta().borrow_mut().release(ObjState::Detached);
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.state.borrow();
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("engine", &self.inner.engine)
            .field("objects", &st.map.len())
            .field("new", &st.new.len())
            .field("deleted", &st.deleted.len())
            .field("phase", &st.tx.phase)
            .finish()
    }
}

impl Session {
    /// A session on `engine` with the default configuration. Prefer a
    /// [`SessionFactory`] in applications.
    pub fn new(engine: Engine) -> Session {
        Session::with_config(engine, SessionConfig::default())
    }

    /// A session with this configuration.
    pub fn with_config(engine: Engine, config: SessionConfig) -> Session {
        Session {
            inner: Rc::new(SessionInner {
                id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
                engine,
                config,
                autoflush: Cell::new(config.autoflush),
                state: RefCell::new(State {
                    map: IdentityMap::default(),
                    new: Vec::new(),
                    deleted: Vec::new(),
                    tx: Transaction::new(),
                    flushing: false,
                    next_seq: 0,
                }),
                modified: RefCell::new(Vec::new()),
            }),
        }
    }

    pub(crate) fn from_inner(inner: Rc<SessionInner>) -> Session {
        Session { inner }
    }

    /// The engine this session uses.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn state(&self) -> Result<std::cell::RefMut<'_, State>> {
        self.inner.state.try_borrow_mut().map_err(|_| {
            Error::invalid("the session is busy (called from inside one of its own operations); do not reenter it")
        })
    }

    // ----- objects and states -------------------------------------------------

    /// Adds an object: a new value (or transient handle) becomes pending and
    /// is INSERTed at the next flush; a detached handle becomes persistent
    /// again. Returns the session's handle.
    ///
    /// Errors: the object belongs to another session; another object with
    /// the same key is already in this session; the object was deleted.
    pub fn add<M: Model>(&self, obj: impl Into<Obj<M>>) -> Result<Obj<M>> {
        let obj: Obj<M> = obj.into();
        let mut st = self.state()?;
        self.check_usable(&st)?;
        let erased = obj.erased();
        let state = obj.state();
        {
            let meta = erased.meta().borrow();
            if meta.session_id != 0 && meta.session_id != self.inner.id {
                return Err(Error::invalid(format!(
                    "this `{}` object is already attached to another session; \
                     close or expunge it there first, or merge() a copy of its value into this session",
                    M::table().model
                )));
            }
        }
        match state {
            ObjState::Pending | ObjState::Persistent if self.owns(&erased) => {
                if erased.meta().borrow().marked_deleted {
                    return Err(Error::invalid(format!(
                        "this `{}` object is marked for deletion in this session; it cannot be added again",
                        M::table().model
                    )));
                }
                return Ok(obj);
            }
            ObjState::Deleted => {
                return Err(Error::invalid(format!(
                    "this `{}` object was deleted; a deleted object cannot be added again. \
                     Create a new object (or roll back to undo the delete)",
                    M::table().model
                )));
            }
            _ => {}
        }
        st.tx.phase = match &st.tx.phase {
            Phase::Idle => Phase::Active,
            other => other.clone(),
        };
        let key = erased.current_key()?;
        if let Some(key) = &key {
            let identity = Identity {
                model: TypeId::of::<M>(),
                key: key.clone(),
            };
            if st
                .map
                .get(&identity)
                .is_some_and(|o| !Rc::ptr_eq(o, &erased))
                || st.new.iter().any(|o| {
                    !Rc::ptr_eq(o, &erased)
                        && o.model_type() == TypeId::of::<M>()
                        && o.current_key().ok().flatten().as_ref() == Some(key)
                })
            {
                return Err(Error::invalid(format!(
                    "another `{}` object with key {key} is already present in this session; \
                     get() that object and change it, or merge() this value",
                    M::table().model
                )));
            }
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let weak = Rc::downgrade(&self.inner);
        let mut meta = erased.meta().borrow_mut();
        meta.session = Some(weak);
        meta.session_id = self.inner.id;
        meta.seq = seq;
        if state == ObjState::Detached {
            let key = meta.key.clone().or(key).ok_or_else(|| {
                Error::invalid(format!(
                    "this detached `{}` object has no key",
                    M::table().model
                ))
            })?;
            meta.state = ObjState::Persistent;
            meta.key = Some(key.clone());
            let modified = meta.snapshot.is_some();
            drop(meta);
            st.map.insert(
                Identity {
                    model: TypeId::of::<M>(),
                    key,
                },
                erased.clone(),
            );
            if modified {
                self.inner.note_modified(erased);
            }
        } else {
            meta.state = ObjState::Pending;
            meta.snapshot = None;
            meta.expired = false;
            drop(meta);
            st.new.push(erased);
        }
        Ok(obj)
    }

    /// Adds every value; returns the handles in order.
    pub fn add_all<M: Model>(&self, values: impl IntoIterator<Item = M>) -> Result<Vec<Obj<M>>> {
        values.into_iter().map(|v| self.add(v)).collect()
    }

    /// Marks a persistent object for deletion: DELETEd at the next flush,
    /// detached at commit, persistent again on rollback.
    pub fn delete<M: Model>(&self, obj: &Obj<M>) -> Result<()> {
        let mut st = self.state()?;
        self.check_usable(&st)?;
        let erased = obj.erased();
        if !self.owns(&erased) || obj.state() != ObjState::Persistent {
            return Err(Error::invalid(format!(
                "this `{}` object is not persisted in this session ({:?}); only objects loaded or \
                 flushed in this session can be deleted (expunge a pending object instead)",
                M::table().model,
                obj.state()
            )));
        }
        let mut meta = erased.meta().borrow_mut();
        if !meta.marked_deleted {
            meta.marked_deleted = true;
            drop(meta);
            if matches!(st.tx.phase, Phase::Idle) {
                st.tx.phase = Phase::Active;
            }
            st.deleted.push(erased);
        }
        Ok(())
    }

    /// Removes one object from the session: pending becomes transient,
    /// persistent becomes detached. No SQL.
    pub fn expunge<M: Model>(&self, obj: &Obj<M>) -> Result<()> {
        let mut st = self.state()?;
        let erased = obj.erased();
        if !self.owns(&erased) {
            return Err(Error::invalid(format!(
                "this `{}` object is not in this session, so it cannot be expunged",
                M::table().model
            )));
        }
        expunge_one(&mut st, &erased);
        Ok(())
    }

    /// Removes every object from the session (all become detached or transient). No SQL.
    pub fn expunge_all(&self) -> Result<()> {
        let mut st = self.state()?;
        detach_all(&mut st);
        self.inner.modified.borrow_mut().clear();
        Ok(())
    }

    /// Whether the object is in this session (pending, persistent or deleted).
    pub fn contains<M: Model>(&self, obj: &Obj<M>) -> bool {
        self.owns(&obj.erased())
    }

    fn owns(&self, obj: &Rc<dyn AnyObj>) -> bool {
        obj.meta().borrow().session_id == self.inner.id
    }

    /// Whether `obj` is pending in this session (SQLAlchemy's `obj in session.new`).
    pub fn is_new<M: Model>(&self, obj: &Obj<M>) -> bool {
        self.contains(obj) && obj.state() == ObjState::Pending
    }

    /// Whether `obj` is marked for deletion and not yet flushed (`obj in session.deleted`).
    pub fn is_deleted<M: Model>(&self, obj: &Obj<M>) -> bool {
        self.contains(obj) && obj.cell.meta.borrow().marked_deleted
    }

    /// Whether `obj` is persistent and has changed columns (`obj in session.dirty`
    /// restricted to real changes, like `session.is_modified`).
    pub fn is_dirty<M: Model>(&self, obj: &Obj<M>) -> bool {
        self.contains(obj) && obj.state() == ObjState::Persistent && obj.is_modified()
    }

    /// The pending objects of model `M`, in `add` order (`session.new`).
    pub fn new_objects<M: Model>(&self) -> Vec<Obj<M>> {
        let st = self.inner.state.borrow();
        st.new
            .iter()
            .filter(|o| o.model_type() == TypeId::of::<M>())
            .filter_map(|o| downcast(o.clone()))
            .collect()
    }

    /// The objects of model `M` marked for deletion (`session.deleted`).
    pub fn deleted_objects<M: Model>(&self) -> Vec<Obj<M>> {
        let st = self.inner.state.borrow();
        st.deleted
            .iter()
            .filter(|o| o.model_type() == TypeId::of::<M>())
            .filter_map(|o| downcast(o.clone()))
            .collect()
    }

    /// The persistent objects of model `M` with changed columns (`session.dirty`).
    pub fn dirty_objects<M: Model>(&self) -> Vec<Obj<M>> {
        let modified = self.inner.modified.borrow().clone();
        let mut out: Vec<Obj<M>> = Vec::new();
        for o in modified {
            if let Some(obj) = downcast::<M>(o) {
                if self.is_dirty(&obj) && !out.iter().any(|x| x.ptr_eq(&obj)) {
                    out.push(obj);
                }
            }
        }
        out
    }

    /// How many objects the identity map holds.
    pub fn identity_count(&self) -> usize {
        self.inner.state.borrow().map.len()
    }

    // ----- transactions --------------------------------------------------------

    /// Whether a transaction is open (autobegun by real work, or begun explicitly).
    pub fn in_transaction(&self) -> bool {
        self.inner.state.borrow().tx.is_active()
    }

    /// Whether a nested transaction (savepoint) is open.
    pub fn in_nested_transaction(&self) -> bool {
        !self.inner.state.borrow().tx.savepoints.is_empty()
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

    fn check_usable(&self, st: &State) -> Result<()> {
        match &st.tx.phase {
            Phase::NeedsRollback(cause) => Err(Error::PendingRollback(cause.clone())),
            _ => Ok(()),
        }
    }

    /// The transaction's connection, checking it out and sending BEGIN (and
    /// any pending SAVEPOINT) on first use.
    fn connection<'a>(&self, st: &'a mut State) -> Result<&'a mut PooledConnection> {
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
    fn note_error(&self, st: &mut State, e: Error) -> Error {
        if e.is_connection_lost() && st.tx.conn.is_some() {
            st.tx.phase = Phase::NeedsRollback(Arc::new(e.clone()));
        }
        e
    }

    /// Flushes pending changes, COMMITs, and returns the connection to the
    /// pool. With expire_on_commit every object is expired; deleted objects
    /// become detached. With nothing open, does nothing and sends nothing.
    pub fn commit(&self) -> Result<()> {
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
                transaction::expire(obj);
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
    fn rollback_state(&self, st: &mut State) {
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
            transaction::restore_deleted(&obj, map);
        }
        for obj in tx.inserted.drain(..) {
            transaction::make_transient(&obj, map);
        }
        for obj in new.drain(..) {
            transaction::make_transient(&obj, map);
        }
        for obj in deleted.drain(..) {
            obj.meta().borrow_mut().marked_deleted = false;
        }
        for obj in map.values() {
            transaction::expire(obj);
        }
        self.inner.modified.borrow_mut().clear();
        tx.reset();
    }

    /// Rolls back, returns the connection and detaches every object. The
    /// session stays usable. Dropping a session does the same.
    pub fn close(&self) {
        if let Ok(mut st) = self.inner.state.try_borrow_mut() {
            if let Some(conn) = st.tx.conn.as_mut() {
                if conn.rollback().is_err() {
                    conn.invalidate();
                }
            }
            self.rollback_state(&mut st);
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

    /// Begins a nested transaction (a SAVEPOINT), flushing first. Finish it
    /// with [`NestedTransaction::commit`] (RELEASE) or
    /// [`NestedTransaction::rollback`] (ROLLBACK TO: objects added inside
    /// become transient, objects changed or deleted inside are expired or
    /// restored; the outer transaction stays usable). Dropping it unfinished
    /// rolls it back.
    pub fn begin_nested(&self) -> Result<NestedTransaction<'_>> {
        self.flush()?;
        let mut st = self.state()?;
        self.check_usable(&st)?;
        st.tx.next_savepoint += 1;
        let name = format!("sa_savepoint_{}", st.tx.next_savepoint);
        let sp = Savepoint {
            name: name.clone(),
            inserted_mark: st.tx.inserted.len(),
            deleted_mark: st.tx.deleted.len(),
            updated_mark: st.tx.updated.len(),
            sent: false,
        };
        st.tx.savepoints.push(sp);
        // SAVEPOINT needs the transaction's connection: send it now.
        self.connection(&mut st)?;
        Ok(NestedTransaction {
            session: self,
            depth: st.tx.savepoints.len(),
            done: false,
        })
    }

    /// Runs `work` inside a savepoint: released on `Ok`, rolled back on `Err`
    /// (the outer transaction stays usable) or panic.
    pub fn nested<T>(&self, work: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let nested = self.begin_nested()?;
        match work(self) {
            Ok(v) => {
                nested.commit()?;
                Ok(v)
            }
            Err(e) => {
                nested.rollback()?;
                Err(e)
            }
        }
    }

    fn end_savepoint(&self, depth: usize, commit: bool) -> Result<()> {
        if commit {
            self.flush()?;
        }
        let mut st = self.state()?;
        if st.tx.savepoints.len() != depth {
            return Err(Error::invalid(
                "this nested transaction is not the innermost one (or is already finished); finish inner savepoints first",
            ));
        }
        let sp = match st.tx.savepoints.pop() {
            Some(sp) => sp,
            None => return Ok(()),
        };
        if commit {
            self.check_usable(&st)?;
            if sp.sent {
                if let Some(conn) = st.tx.conn.as_mut() {
                    if let Err(e) = conn.release_savepoint(&sp.name) {
                        return Err(self.note_error(&mut st, e));
                    }
                }
            }
            return Ok(());
        }
        if sp.sent {
            if let Some(conn) = st.tx.conn.as_mut() {
                if let Err(e) = conn.rollback_to_savepoint(&sp.name) {
                    return Err(self.note_error(&mut st, e));
                }
            }
        }
        self.rollback_savepoint_state(&mut st, &sp);
        // A flush that failed inside the savepoint left the session needing
        // rollback; rolling the savepoint back is that rollback.
        if matches!(st.tx.phase, Phase::NeedsRollback(_)) && st.tx.conn.is_some() {
            st.tx.phase = Phase::Active;
        }
        Ok(())
    }

    /// SQLAlchemy's savepoint accounting: objects added inside become
    /// transient, objects deleted inside are restored, objects changed
    /// inside are expired.
    fn rollback_savepoint_state(&self, st: &mut State, sp: &Savepoint) {
        let State {
            map,
            new,
            deleted,
            tx,
            ..
        } = st;
        for obj in tx.deleted.drain(sp.deleted_mark..) {
            transaction::restore_deleted(&obj, map);
        }
        for obj in tx.inserted.drain(sp.inserted_mark..) {
            transaction::make_transient(&obj, map);
        }
        // begin_nested flushed, so everything still pending was added inside.
        for obj in new.drain(..) {
            transaction::make_transient(&obj, map);
        }
        for obj in deleted.drain(..) {
            obj.meta().borrow_mut().marked_deleted = false;
            transaction::expire(&obj);
        }
        for obj in tx.updated.drain(sp.updated_mark..) {
            transaction::expire(&obj);
        }
        for obj in self.inner.modified.borrow_mut().drain(..) {
            transaction::expire(&obj);
        }
    }

    // ----- flush ---------------------------------------------------------------

    /// Sends every pending change (INSERT, UPDATE of changed columns, DELETE)
    /// inside the transaction, beginning it if needed. With nothing to do it
    /// sends nothing and begins nothing. On failure the transaction is
    /// rolled back at once, the session's state restored, and the session
    /// refuses work ([`Error::PendingRollback`]) until `rollback()`.
    pub fn flush(&self) -> Result<()> {
        let mut st = self.state()?;
        if st.flushing {
            return Err(Error::invalid(
                "flush() is already in progress on this session",
            ));
        }
        self.check_usable(&st)?;
        let modified: Vec<Rc<dyn AnyObj>> = std::mem::take(&mut *self.inner.modified.borrow_mut());
        if st.new.is_empty() && st.deleted.is_empty() && modified.is_empty() {
            return Ok(());
        }
        let mut updates = Vec::new();
        for obj in &modified {
            if obj.meta().borrow().snapshot.is_none() {
                continue; // already flushed through another entry
            }
            if let Some(row) = unit_of_work::diff(obj)? {
                obj.meta().borrow_mut().snapshot = None;
                updates.push(row);
            }
        }
        let plan = unit_of_work::Plan::build(&st.new, updates, &st.deleted);
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                self.restore_snapshots(&modified);
                return Err(e);
            }
        };
        if plan.is_empty() {
            return Ok(());
        }
        st.flushing = true;
        let result = self.run_plan(&mut st, &plan);
        st.flushing = false;
        match result {
            Ok(()) => {
                self.apply(&mut st, plan);
                Ok(())
            }
            Err(e) => Err(self.fail_flush(&mut st, e)),
        }
    }

    fn restore_snapshots(&self, modified: &[Rc<dyn AnyObj>]) {
        self.inner
            .modified
            .borrow_mut()
            .extend(modified.iter().cloned());
    }

    fn run_plan(&self, st: &mut State, plan: &unit_of_work::Plan) -> Result<()> {
        let dialect = self.inner.engine.dialect();
        let conn = self.connection(st)?;
        let server = conn.server_info().clone();
        let mut ctx = persistence::Ctx {
            conn,
            dialect,
            server,
        };
        plan.execute(&mut ctx)
    }

    /// Marks everything the plan wrote as done.
    fn apply(&self, st: &mut State, plan: unit_of_work::Plan) {
        let State {
            map,
            new,
            deleted,
            tx,
            ..
        } = st;
        for (table, work) in plan.tables {
            for obj in work.inserts {
                let key = obj.current_key().ok().flatten();
                {
                    let mut meta = obj.meta().borrow_mut();
                    meta.state = ObjState::Persistent;
                    meta.key = key.clone();
                    meta.snapshot = None;
                }
                if let Some(key) = key {
                    map.insert(
                        Identity {
                            model: obj.model_type(),
                            key,
                        },
                        obj.clone(),
                    );
                }
                tx.inserted.push(obj);
            }
            for row in work.updates {
                let obj = row.obj;
                if let (Some(v), Some(old)) = (table.version, &row.old_version) {
                    let next = match old {
                        Value::Int(n) => Value::Int(n.saturating_add(1)),
                        Value::UInt(n) => Value::UInt(n.saturating_add(1)),
                        _ => Value::Int(1),
                    };
                    // The object was readable a moment ago; a failure here
                    // only leaves the in-memory version behind, which the
                    // next flush reports as stale data rather than losing writes.
                    let _ = obj.set_column(v, next);
                }
                let new_key = obj.current_key().ok().flatten();
                if new_key.is_some() && new_key.as_ref() != Some(&row.old_key) {
                    map.remove(&Identity {
                        model: obj.model_type(),
                        key: row.old_key.clone(),
                    });
                    if let Some(key) = new_key.clone() {
                        map.insert(
                            Identity {
                                model: obj.model_type(),
                                key,
                            },
                            obj.clone(),
                        );
                    }
                    obj.meta().borrow_mut().key = new_key;
                }
                tx.updated.push(obj);
            }
            for obj in work.deletes {
                {
                    let mut meta = obj.meta().borrow_mut();
                    meta.state = ObjState::Deleted;
                    meta.marked_deleted = false;
                }
                if let Some(identity) = transaction::identity_of(&obj) {
                    map.remove(&identity);
                }
                tx.deleted.push(obj);
            }
        }
        new.clear();
        deleted.clear();
    }

    /// A flush failed: roll back (the savepoint, or the whole transaction),
    /// restore the objects, and require rollback().
    fn fail_flush(&self, st: &mut State, e: Error) -> Error {
        let cause = Arc::new(e.clone());
        if let Some(sp_index) = st.tx.savepoints.len().checked_sub(1) {
            let name = st.tx.savepoints[sp_index].name.clone();
            let sent = st.tx.savepoints[sp_index].sent;
            let ok = sent
                && st
                    .tx
                    .conn
                    .as_mut()
                    .is_some_and(|c| c.rollback_to_savepoint(&name).is_ok());
            if ok {
                // Only the savepoint is lost: restore its objects now, and
                // keep the savepoint open so that its rollback() clears the state.
                let sp = Savepoint {
                    name,
                    inserted_mark: st.tx.savepoints[sp_index].inserted_mark,
                    deleted_mark: st.tx.savepoints[sp_index].deleted_mark,
                    updated_mark: st.tx.savepoints[sp_index].updated_mark,
                    sent: true,
                };
                self.rollback_savepoint_state(st, &sp);
                st.tx.phase = Phase::NeedsRollback(cause);
                return e;
            }
        }
        if let Some(conn) = st.tx.conn.as_mut() {
            if conn.rollback().is_err() {
                conn.invalidate();
            }
        }
        self.rollback_state(st);
        // rollback_state reset the transaction; keep the session locked
        // until the user acknowledges with rollback().
        st.tx.phase = Phase::NeedsRollback(cause);
        e
    }

    /// Runs `work` with autoflush off, restoring the previous setting even on error.
    pub fn no_autoflush<T>(&self, work: impl FnOnce(&Session) -> T) -> T {
        struct Restore<'a>(&'a Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.inner.autoflush, self.inner.autoflush.replace(false));
        work(self)
    }

    pub(crate) fn autoflush(&self) -> Result<()> {
        if self.inner.autoflush.get() {
            self.flush()
        } else {
            let st = self.state()?;
            self.check_usable(&st)
        }
    }

    // ----- loading -------------------------------------------------------------

    /// The object of model `M` with this primary key: from the identity map
    /// with no SQL when it is there (and not expired), else loaded with one
    /// SELECT (after autoflush). `None` when no row has that key.
    pub fn get<M: Model>(&self, key: impl IntoKey) -> Result<Option<Obj<M>>> {
        loading::get(self, key.into_key())
    }

    /// A query on model `M`'s table.
    pub fn query<M: Model>(&self) -> Query<'_, M> {
        Query::new(self)
    }

    /// Runs raw SQL whose rows are model `M`'s columns in field order (for
    /// example `SELECT * FROM` a table made by `create_all`), with bound
    /// parameters; rows go through the identity map.
    pub fn query_sql<M: Model>(&self, sql: &str, params: &[Value]) -> Result<Vec<Obj<M>>> {
        self.autoflush()?;
        loading::load_rows(self, sql, params)
    }

    /// Runs a raw statement inside the session's transaction (after autoflush).
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<ExecOutcome> {
        self.autoflush()?;
        let mut st = self.state()?;
        let conn = self.connection(&mut st)?;
        match conn.execute(sql, params) {
            Ok(o) => Ok(o),
            Err(e) => Err(self.note_error(&mut st, e)),
        }
    }

    /// Runs a raw query inside the session's transaction (after autoflush)
    /// and returns its rows.
    pub fn query_rows(&self, sql: &str, params: &[Value]) -> Result<Vec<crate::row::Row>> {
        self.autoflush()?;
        let mut st = self.state()?;
        let conn = self.connection(&mut st)?;
        match conn.query_rows(sql, params) {
            Ok(o) => Ok(o),
            Err(e) => Err(self.note_error(&mut st, e)),
        }
    }

    /// Marks the object expired: no SQL now; its next use reloads it, and
    /// unflushed changes on it are discarded.
    pub fn expire<M: Model>(&self, obj: &Obj<M>) -> Result<()> {
        let erased = obj.erased();
        if !self.owns(&erased) || obj.state() != ObjState::Persistent {
            return Err(Error::invalid(format!(
                "this `{}` object is not persistent in this session, so it cannot be expired",
                M::table().model
            )));
        }
        transaction::expire(&erased);
        Ok(())
    }

    /// Expires every object of model `M` (after a bulk statement on its table).
    pub(crate) fn expire_model<M: Model>(&self) -> Result<()> {
        let st = self.state()?;
        for obj in st
            .map
            .values()
            .filter(|o| o.model_type() == TypeId::of::<M>())
        {
            transaction::expire(obj);
        }
        Ok(())
    }

    /// Expires every object in the session.
    pub fn expire_all(&self) -> Result<()> {
        let st = self.state()?;
        for obj in st.map.values() {
            transaction::expire(obj);
        }
        self.inner.modified.borrow_mut().clear();
        Ok(())
    }

    /// Autoflushes, then reloads the object from the database now. A row
    /// that is gone is [`Error::ObjectDeleted`].
    pub fn refresh<M: Model>(&self, obj: &Obj<M>) -> Result<()> {
        let erased = obj.erased();
        if !self.owns(&erased) || obj.state() != ObjState::Persistent {
            return Err(Error::invalid(format!(
                "this `{}` object is not persistent in this session, so it cannot be refreshed; add() or merge() it first",
                M::table().model
            )));
        }
        transaction::expire(&erased);
        self.load_expired(&erased)
    }

    pub(crate) fn load_expired(&self, obj: &Rc<dyn AnyObj>) -> Result<()> {
        loading::load_expired(self, obj)
    }
}

fn expunge_one(st: &mut State, obj: &Rc<dyn AnyObj>) {
    if let Some(identity) = transaction::identity_of(obj) {
        if st.map.get(&identity).is_some_and(|o| Rc::ptr_eq(o, obj)) {
            st.map.remove(&identity);
        }
    }
    st.new.retain(|o| !Rc::ptr_eq(o, obj));
    st.deleted.retain(|o| !Rc::ptr_eq(o, obj));
    let mut meta = obj.meta().borrow_mut();
    let next = if meta.state == ObjState::Pending {
        ObjState::Transient
    } else {
        ObjState::Detached
    };
    meta.release(next);
}

/// A savepoint begun with [`Session::begin_nested`].
#[must_use = "a nested transaction is rolled back when dropped unfinished"]
pub struct NestedTransaction<'s> {
    session: &'s Session,
    depth: usize,
    done: bool,
}

impl NestedTransaction<'_> {
    /// Flushes and RELEASEs the savepoint; its changes join the outer transaction.
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.session.end_savepoint(self.depth, true)
    }

    /// ROLLs BACK TO the savepoint, with SQLAlchemy's object accounting.
    pub fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.session.end_savepoint(self.depth, false)
    }
}

impl Drop for NestedTransaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.session.end_savepoint(self.depth, false);
        }
    }
}
