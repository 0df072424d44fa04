//! The session's transaction as an explicit state machine, the record each
//! transaction level keeps of what its flushes did, and the one routine that
//! undoes that record (rollback, savepoint rollback, failed flush).
//!
//! ```text
//!  Idle --(first real work: autobegin)--> Active --commit/rollback--> Idle
//!                                          |
//!          failed flush / lost connection / transaction ended by the server
//!                                          v
//!                                    NeedsRollback --rollback()--> Idle
//! ```
//!
//! The connection is checked out (and `BEGIN` sent) at the first SQL of an
//! Active transaction, and returned to the pool at commit, rollback or close.
//!
//! Like SQLAlchemy's `SessionTransaction` tree, every level (the transaction
//! itself, then one per open savepoint) records the objects its flushes
//! INSERTed, DELETEd and UPDATEd, and the objects whose primary key an
//! UPDATE changed (key switches). Releasing a savepoint hands its record to
//! the level below; rolling a level back undoes its record with
//! [`restore_level`], whatever the reason for the rollback.

use std::rc::Rc;
use std::sync::Arc;

use crate::engine::PooledConnection;
use crate::error::Error;
use crate::model::Key;

use super::binds::BindIdx;
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
    /// A flush failed, the connection was lost, or the server ended the
    /// transaction: the session refuses work until the level that failed is
    /// rolled back.
    NeedsRollback {
        /// What went wrong.
        cause: Arc<Error>,
        /// `Some(depth)`: rolling back the savepoint at this depth (1 = the
        /// outermost savepoint) clears the state, the transaction below it
        /// being intact. `None`: only a full `rollback()` does.
        savepoint: Option<usize>,
    },
}

/// An object whose primary key an UPDATE of this level changed.
pub(crate) struct KeySwitch {
    pub obj: Rc<dyn AnyObj>,
    /// The key before the UPDATE.
    pub old_key: Key,
}

/// What one transaction level's flushes did.
#[derive(Default)]
pub(crate) struct Record {
    /// Objects INSERTed (pending → persistent).
    pub inserted: Vec<Rc<dyn AnyObj>>,
    /// Objects DELETEd (persistent → deleted).
    pub deleted: Vec<Rc<dyn AnyObj>>,
    /// Objects UPDATEd.
    pub updated: Vec<Rc<dyn AnyObj>>,
    /// Primary-key changes, in the order they were flushed.
    pub key_switches: Vec<KeySwitch>,
}

impl Record {
    /// Appends `other` (a released savepoint's record) to this one.
    fn absorb(&mut self, other: Record) {
        self.inserted.extend(other.inserted);
        self.deleted.extend(other.deleted);
        self.updated.extend(other.updated);
        self.key_switches.extend(other.key_switches);
    }

    /// Moves everything of `other` into this record, leaving `other` empty.
    pub fn absorb_from(&mut self, other: &mut Record) {
        self.absorb(std::mem::take(other));
    }

    /// Forgets `obj` (it was expunged: a rollback must not bring it back).
    fn forget(&mut self, obj: &Rc<dyn AnyObj>) {
        self.inserted.retain(|o| !Rc::ptr_eq(o, obj));
        self.deleted.retain(|o| !Rc::ptr_eq(o, obj));
        self.updated.retain(|o| !Rc::ptr_eq(o, obj));
        self.key_switches.retain(|k| !Rc::ptr_eq(&k.obj, obj));
    }

    fn clear(&mut self) {
        self.inserted.clear();
        self.deleted.clear();
        self.updated.clear();
        self.key_switches.clear();
    }
}

/// One open `begin_nested()` level; its SAVEPOINT was sent.
pub(crate) struct Savepoint {
    pub name: String,
    pub record: Record,
}

pub(crate) struct Transaction {
    pub phase: Phase,
    /// One connection per engine used, in the order of first use (the
    /// commit order).
    pub conns: Vec<(BindIdx, PooledConnection)>,
    /// The global transaction id of a two-phase transaction (the branch
    /// qualifier is the engine's index).
    pub gtrid: Option<String>,
    /// The outermost level's record.
    pub root: Record,
    /// Open savepoints, outermost first.
    pub savepoints: Vec<Savepoint>,
    pub next_savepoint: u64,
    /// The connection is lent to a streaming query (`Query::for_each`): it
    /// is out of `conn` and no other SQL may run until it comes back.
    pub lent: bool,
    /// The reads of a session that has not written, on a replica (see
    /// `routing`); ended when the primary connection is checked out.
    pub read: Option<super::routing::ReplicaRead>,
    /// Begun with `begin()`: everything goes to the primary.
    pub explicit: bool,
    /// Statements that write were sent (a flush, `execute`): the commit's
    /// position is remembered for read-your-writes on replicas.
    pub wrote: bool,
}

impl Transaction {
    pub fn new() -> Self {
        Transaction {
            phase: Phase::Idle,
            conns: Vec::new(),
            gtrid: None,
            root: Record::default(),
            savepoints: Vec::new(),
            next_savepoint: 0,
            lent: false,
            read: None,
            explicit: false,
            wrote: false,
        }
    }

    pub fn is_active(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    /// Whether any connection was checked out (some SQL may have been sent).
    pub fn has_conn(&self) -> bool {
        !self.conns.is_empty()
    }

    /// Whether engine `bind`'s connection is checked out.
    pub fn has_conn_to(&self, bind: BindIdx) -> bool {
        self.conns.iter().any(|(b, _)| *b == bind)
    }

    /// The connection of engine `bind`, if checked out.
    pub fn conn_mut(&mut self, bind: BindIdx) -> Option<&mut PooledConnection> {
        self.conns
            .iter_mut()
            .find(|(b, _)| *b == bind)
            .map(|(_, c)| c)
    }

    /// Rolls back every connection (invalidating one that fails: the
    /// server discards its transaction when it closes).
    pub fn rollback_all(&mut self) {
        for (_, conn) in &mut self.conns {
            if conn.rollback().is_err() {
                conn.invalidate();
            }
        }
    }

    /// Autobegin: real work opens a logical transaction.
    pub fn autobegin(&mut self) {
        if matches!(self.phase, Phase::Idle) {
            self.phase = Phase::Active;
        }
    }

    /// The innermost level's record: where a flush records what it did.
    pub fn current(&mut self) -> &mut Record {
        match self.savepoints.last_mut() {
            Some(sp) => &mut sp.record,
            None => &mut self.root,
        }
    }

    /// Every record, outermost first.
    pub fn records_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        std::iter::once(&mut self.root).chain(self.savepoints.iter_mut().map(|sp| &mut sp.record))
    }

    /// Removes the innermost savepoint, handing its record to the level below.
    pub fn release_innermost(&mut self) -> Option<String> {
        let sp = self.savepoints.pop()?;
        self.current().absorb(sp.record);
        Some(sp.name)
    }

    /// Requires a full rollback, naming `cause`.
    pub fn fail(&mut self, cause: Error) {
        self.phase = Phase::NeedsRollback {
            cause: Arc::new(cause),
            savepoint: None,
        };
    }

    /// Forget everything about the transaction (after commit or rollback).
    pub fn reset(&mut self) {
        self.phase = Phase::Idle;
        // Dropping a guard rolls its connection back (XA ROLLBACK in two-phase) and returns it.
        self.conns.clear();
        self.gtrid = None;
        self.lent = false;
        self.read = None;
        self.explicit = false;
        self.wrote = false;
        self.root.clear();
        self.savepoints.clear();
    }
}

pub(crate) fn identity_of(obj: &Rc<dyn AnyObj>) -> Option<Identity> {
    let meta = obj.meta().borrow();
    meta.key.clone().map(|key| Identity {
        model: obj.model_type(),
        key,
        shard: meta.shard(),
    })
}

/// Expires an object: its values are reloaded at next use; unflushed changes are dropped.
pub(crate) fn expire(obj: &Rc<dyn AnyObj>) {
    let mut meta = obj.meta().borrow_mut();
    meta.expired = true;
    meta.snapshot = None;
    // Relationships reload with the object; unflushed link changes go with
    // its other unflushed changes.
    meta.links = None;
}

/// Makes an object that was INSERTed (or only added) in a rolled-back
/// transaction transient again, clearing a key the database generated.
pub(crate) fn make_transient(obj: &Rc<dyn AnyObj>, map: &mut IdentityMap) {
    map.remove_obj(obj);
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

/// Records that `obj`'s row was DELETEd at this level (by a flush or a
/// bulk DELETE): deleted, out of the identity map, in `record`, so that a
/// rollback restores it and a commit detaches it.
pub(crate) fn record_deleted(obj: Rc<dyn AnyObj>, map: &mut IdentityMap, record: &mut Record) {
    {
        let mut meta = obj.meta().borrow_mut();
        meta.state = ObjState::Deleted;
        meta.marked_deleted = false;
    }
    map.remove_obj(&obj);
    record.deleted.push(obj);
}

/// Puts an object whose DELETE was rolled back back into the map (expired
/// when `expire_it`).
pub(crate) fn restore_deleted(obj: &Rc<dyn AnyObj>, map: &mut IdentityMap, expire_it: bool) {
    {
        let mut meta = obj.meta().borrow_mut();
        meta.state = ObjState::Persistent;
        meta.marked_deleted = false;
    }
    if expire_it {
        expire(obj);
    }
    if let Some(identity) = identity_of(obj) {
        map.insert(identity, obj.clone());
    }
}

/// Undoes one level's record: key switches reverted first (newest first, so
/// that an object re-keyed twice ends under its first key; always expired:
/// the object's fields hold the key that was rolled back), then deletions
/// restored (before insertions, so that an object inserted and deleted in
/// the level ends transient), insertions made transient, and, with
/// `expire_rest`, restored and updated objects expired. `close()` passes
/// `false`: its objects are detached with the values they had.
pub(crate) fn restore_level(record: &mut Record, map: &mut IdentityMap, expire_rest: bool) {
    for switch in record.key_switches.drain(..).rev() {
        let obj = switch.obj;
        map.remove_obj(&obj);
        let (state, shard) = {
            let mut meta = obj.meta().borrow_mut();
            meta.key = Some(switch.old_key.clone());
            (meta.state, meta.shard())
        };
        if matches!(state, ObjState::Persistent | ObjState::Deleted) {
            map.insert(
                Identity {
                    model: obj.model_type(),
                    key: switch.old_key,
                    shard,
                },
                obj.clone(),
            );
        }
        expire(&obj);
    }
    for obj in record.deleted.drain(..) {
        restore_deleted(&obj, map, expire_rest);
    }
    for obj in record.inserted.drain(..) {
        make_transient(&obj, map);
    }
    for obj in record.updated.drain(..) {
        if expire_rest {
            expire(&obj);
        }
    }
}

impl Session {
    /// Whether a transaction is open (autobegun by real work, or begun
    /// explicitly), including one that failed and awaits `rollback()`.
    ///
    /// Never fails: called from inside one of the session's own operations
    /// (a hook, a `FromValue` impl), it answers from the state as of the
    /// start of that operation.
    pub fn in_transaction(&self) -> bool {
        match self.inner.state.try_borrow() {
            Ok(st) => st.tx.is_active(),
            Err(_) => self.inner.flags.get().in_transaction,
        }
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
        st.tx.explicit = true;
        self.sync_flags(&st);
        Ok(())
    }

    pub(super) fn check_usable(&self, st: &State) -> Result<()> {
        match &st.tx.phase {
            Phase::NeedsRollback { cause, .. } => Err(Error::PendingRollback(cause.clone())),
            _ => Ok(()),
        }
    }

    /// The transaction's connection to engine `bind` (0: the default
    /// engine; see `binds.rs`), checking it out and beginning its
    /// transaction on first use: `begin()` (or `XA START` with
    /// `two_phase`), the `after_begin` hooks, and a `SAVEPOINT` for each
    /// savepoint already open, so that rolling one back undoes the work of
    /// every engine. This is always the engine's primary: checking out the
    /// default engine's connection ends the session's reads on a replica
    /// (see `routing`; replicas serve the default engine only).
    pub(super) fn connection<'a>(
        &self,
        st: &'a mut State,
        bind: BindIdx,
    ) -> Result<&'a mut PooledConnection> {
        self.check_usable(st)?;
        check_not_lent(st)?;
        st.tx.phase = Phase::Active;
        if st.tx.conn_mut(bind).is_none() {
            if bind == 0 {
                st.tx.read = None;
            }
            let binds = &self.inner.binds;
            let mut conn = binds.engine(bind).connect()?;
            if binds.two_phase {
                if conn.server_info().kind == crate::backend::ServerKind::Sqlite {
                    return Err(Error::invalid(format!(
                        "two_phase(true) needs MySQL or MariaDB (XA transactions); {} is SQLite",
                        binds.name(bind)
                    )));
                }
                let gtrid = st.tx.gtrid.get_or_insert_with(new_gtrid).clone();
                conn.xa_start(&gtrid, &bind.to_string())?;
            } else {
                conn.begin()?;
            }
            if let Some(events) = self.inner.events.as_deref() {
                for hook in &events.after_begin {
                    // On error the connection is dropped: rolled back and returned.
                    hook(self, &mut conn)
                        .map_err(|e| super::events::hook_error("after_begin", None, e))?;
                }
            }
            for sp in &st.tx.savepoints {
                conn.savepoint(&sp.name)?;
            }
            st.tx.conns.push((bind, conn));
        }
        self.sync_flags(st);
        st.tx
            .conn_mut(bind)
            .ok_or_else(|| Error::invalid("internal error: the session has no connection"))
    }

    /// Records an error from SQL run inside the transaction. Every session
    /// statement's error passes through here: when a connection says its
    /// transaction is gone (the connection was lost, or the server rolled
    /// the transaction back — a deadlock — or committed it implicitly), the
    /// session needs a full rollback, naming the cause, whichever engine it was.
    pub(super) fn note_error(&self, st: &mut State, e: Error) -> Error {
        let gone = e.is_connection_lost() || st.tx.conns.iter().any(|(_, c)| c.needs_rollback());
        if gone && st.tx.has_conn() {
            st.tx.fail(e.clone());
            self.sync_flags(st);
        }
        e
    }

    /// Checks, after a statement that succeeded, that the server did not end
    /// the transaction (an implicit commit); if it did, the session needs a
    /// rollback and the error says so.
    pub(super) fn check_still_open(&self, st: &mut State) -> Result<()> {
        let ended = st
            .tx
            .conns
            .iter()
            .find_map(|(_, c)| c.ended_by_server().cloned());
        match ended {
            Some(e) => Err(self.note_error(st, e)),
            None => Ok(()),
        }
    }

    /// Flushes pending changes, COMMITs, and returns the connection to the
    /// pool. With expire_on_commit every object is expired; deleted objects
    /// become detached. With nothing open, does nothing and sends nothing.
    ///
    /// # Several engines
    ///
    /// With [`SessionFactory::bind`](super::SessionFactory::bind) or a sharded
    /// factory, the transaction may hold one connection per engine. The
    /// flush sends everything to every engine first; then each engine is
    /// committed **in the order the session first used it** (its first
    /// statement in this transaction):
    /// - the first COMMIT fails: every other engine is rolled back, nothing
    ///   was committed, and the error is the COMMIT's own (as with one engine);
    /// - a later COMMIT fails: the engines before it are committed and
    ///   cannot be undone; the rest are rolled back and the error is
    ///   [`Error::PartialCommit`] naming both lists. The session is then
    ///   idle, its objects as after a rollback (pending ones transient, the
    ///   rest expired, so the next read shows what each server holds);
    /// - with [`SessionFactory::two_phase`](super::SessionFactory::two_phase)
    ///   the commit is `XA END` + `XA PREPARE` on every engine, then
    ///   `XA COMMIT` on every engine: a failing PREPARE rolls back every
    ///   branch (nothing committed anywhere, the PREPARE's error returned);
    ///   a failing XA COMMIT (all branches being prepared) is
    ///   [`Error::XaCommitIncomplete`] with the global id: that branch stays
    ///   prepared on its server (`XA RECOVER`) until finished by hand. The
    ///   other branches are still committed (the decision was taken).
    pub fn commit(&self) -> Result<()> {
        let _span = crate::trace::commit_span();
        self.flush()?;
        let mut st = self.state()?;
        self.check_usable(&st)?;
        check_not_lent(&st)?;
        let was_active = st.tx.is_active();
        if !st.tx.savepoints.is_empty() {
            return Err(Error::invalid(
                "a nested transaction (savepoint) is still open; commit() or rollback() it before committing the session",
            ));
        }
        if st.tx.gtrid.is_some() {
            if let Err(e) = self.commit_two_phase(&mut st) {
                self.rollback_state(&mut st);
                return Err(e);
            }
        } else {
            let mut committed: Vec<String> = Vec::new();
            for i in 0..st.tx.conns.len() {
                let bind = st.tx.conns[i].0;
                if let Err(e) = st.tx.conns[i].1.commit() {
                    let e = self.note_error(&mut st, e);
                    st.tx.rollback_all();
                    let not_committed: Vec<String> = st.tx.conns[i..]
                        .iter()
                        .map(|(b, _)| self.inner.binds.name(*b))
                        .collect();
                    self.rollback_state(&mut st);
                    if committed.is_empty() {
                        return Err(e);
                    }
                    return Err(Error::PartialCommit {
                        committed,
                        failed: self.inner.binds.name(bind),
                        not_committed,
                        cause: Box::new(e),
                    });
                }
                self.note_commit_position(&mut st, bind);
                committed.push(self.inner.binds.name(bind));
            }
        }
        for obj in st.tx.root.deleted.drain(..) {
            obj.meta().borrow_mut().release(ObjState::Detached);
        }
        for obj in &st.tx.root.inserted {
            obj.meta().borrow_mut().generated_key = false;
        }
        if self.inner.config.expire_on_commit {
            for obj in st.map.values() {
                expire(obj);
            }
            self.inner.modified.borrow_mut().clear();
        }
        st.tx.reset();
        self.sync_flags(&st);
        drop(st);
        if was_active {
            self.run_hooks(super::SessionEvent::AfterCommit)?;
        }
        Ok(())
    }

    /// After engine `bind` committed: with read replicas, a commit of the
    /// default engine (the replicas' primary) that wrote records its
    /// position (GTID) for read-your-writes. Other engines have no replicas.
    fn note_commit_position(&self, st: &mut State, bind: BindIdx) {
        if bind != 0 || !st.tx.wrote {
            return;
        }
        if let (Some(set), Some(conn)) = (self.inner.replicas.as_deref(), st.tx.conn_mut(0)) {
            set.note_commit(conn);
        }
    }

    /// Both phases of a two-phase commit. On error the connections still
    /// held are rolled back (the caller then resets the objects).
    fn commit_two_phase(&self, st: &mut State) -> Result<()> {
        let gtrid = st.tx.gtrid.clone().unwrap_or_default();
        for i in 0..st.tx.conns.len() {
            if let Err(e) = st.tx.conns[i].1.xa_prepare() {
                let e = self.note_error(st, e);
                st.tx.rollback_all();
                return Err(e);
            }
        }
        let mut committed: Vec<String> = Vec::new();
        let mut in_doubt: Vec<String> = Vec::new();
        let mut first_error: Option<Error> = None;
        for i in 0..st.tx.conns.len() {
            let bind = st.tx.conns[i].0;
            // Every branch is prepared: the decision is to commit, so every
            // branch is tried even after one failed.
            match st.tx.conns[i].1.xa_commit() {
                Ok(()) => {
                    self.note_commit_position(st, bind);
                    committed.push(self.inner.binds.name(bind));
                }
                Err(e) => {
                    in_doubt.push(format!("{} (bqual '{bind}')", self.inner.binds.name(bind)));
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(cause) => Err(Error::XaCommitIncomplete {
                gtrid,
                committed,
                in_doubt,
                cause: Box::new(cause),
            }),
        }
    }

    /// Rolls back the transaction and returns the connection: pending
    /// objects become transient, deleted objects are restored, everything
    /// else is expired. Also the way out of the rollback-required state.
    /// Without a transaction, does nothing.
    pub fn rollback(&self) -> Result<()> {
        let _span = crate::trace::rollback_span();
        let mut st = self.state()?;
        let sent_sql = st.tx.has_conn()
            || st.tx.read.is_some()
            || matches!(st.tx.phase, Phase::NeedsRollback { .. });
        // A failure to roll back (the connection is gone) is not the
        // caller's problem: the server discards the transaction anyway,
        // and the pool closes the connection.
        st.tx.rollback_all();
        self.rollback_state(&mut st);
        drop(st);
        if sent_sql {
            self.run_hooks(super::SessionEvent::AfterRollback)?;
        }
        Ok(())
    }

    /// The object side of a rollback.
    pub(super) fn rollback_state(&self, st: &mut State) {
        rollback_objects(st, true);
        self.inner.modified.borrow_mut().clear();
        self.sync_flags(st);
    }

    /// Rolls back, returns the connection and detaches every object. Objects
    /// keep the values they had (read them detached; pending and newly
    /// inserted ones become transient). The session stays usable. Dropping a
    /// session does the same.
    pub fn close(&self) {
        if let Ok(mut st) = self.inner.state.try_borrow_mut() {
            st.tx.rollback_all();
            rollback_objects(&mut st, false);
            self.inner.modified.borrow_mut().clear();
            detach_all(&mut st);
            self.sync_flags(&st);
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

/// What a rollback does to the objects: every level's record is undone
/// (innermost first), pending objects become transient, marked deletions are
/// forgotten, and (with `expire_rest`) everything else is expired. `close()`
/// passes `false`: the objects are about to be detached and keep their
/// loaded values, as in SQLAlchemy. Resets the transaction (dropping its
/// connection guard, which rolls the connection back if needed).
pub(super) fn rollback_objects(st: &mut State, expire_rest: bool) {
    let State {
        map,
        new,
        deleted,
        tx,
        ..
    } = st;
    while let Some(mut sp) = tx.savepoints.pop() {
        restore_level(&mut sp.record, map, expire_rest);
    }
    restore_level(&mut tx.root, map, expire_rest);
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

/// Refuses SQL while a connection is lent to a `for_each()` stream: the
/// lent connection is out of the transaction's list, so nothing may run on
/// the others either (a COMMIT or a savepoint would miss it).
pub(super) fn check_not_lent(st: &State) -> Result<()> {
    if st.tx.lent {
        return Err(Error::invalid(
            "the session's connection is streaming the rows of a for_each() query: no other \
             SQL can run until it ends (nor commit() or a savepoint's end); inside the loop use \
             the objects and the identity map, or collect what you need and run the SQL after \
             the loop",
        ));
    }
    Ok(())
}

/// A global transaction id for a two-phase transaction: unique per process
/// run and session transaction.
fn new_gtrid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(
        "orm-{}-{started:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes `obj` from every level's record (it is being expunged).
pub(super) fn forget(tx: &mut Transaction, obj: &Rc<dyn AnyObj>) {
    for record in tx.records_mut() {
        record.forget(obj);
    }
}
