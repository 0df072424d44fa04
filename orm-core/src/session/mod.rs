//! The [`Session`]: identity map, object states, unit-of-work flush,
//! transactions and savepoints — SQLAlchemy's Session, the Rust way.
//!
//! ```ignore
//! let factory = SessionFactory::new(engine.clone());
//! let session = factory.session();
//! let alice = session.add(User { id: None, name: "alice".into(), age: 30 })?;
//! session.flush()?;                       // INSERT, inside the open transaction
//! alice.write()?.age = 31;                // tracked: UPDATE of `age` only, at the next flush
//! let same = session.get::<User>(alice.key::<i64>()?)?.unwrap(); // no SQL for the key either
//! assert!(same.ptr_eq(&alice));           // one object per row, no SQL
//! session.commit()?;                      // flush, COMMIT, connection back to the pool
//! ```
//!
//! A session belongs to one thread (it is neither `Send` nor `Sync`), and so
//! does every [`Obj`] it hands out. Move plain values between threads and
//! `merge` them into the other thread's session.
//!
//! The split follows SQLAlchemy's (private modules, see ARCHITECTURE.md):
//! this module coordinates; `identity_map`, `object` (handles and states),
//! `flush`, `unit_of_work` (what to send and in which order), `persistence`
//! (the SQL), `transaction` (the state machine), `savepoint` and `binds`
//! (several engines: binds per model, shards) each hold one concept.
//!
//! One session can span several servers: [`SessionFactory::bind`] routes a
//! model to its own engine, [`SessionFactory::sharded`] spreads rows over
//! shards ([`ShardRules`]); [`Session::commit`] documents how several
//! transactions end (and [`SessionFactory::two_phase`] how XA makes that atomic).

mod binds;
mod column_set;
mod defaults;
mod dependency;
mod events;
mod flush;
mod identity_map;
mod in_list;
mod links;
mod loading;
mod m2m_changes;
mod members;
mod merge;
mod object;
mod persistence;
mod retry;
mod routing;
mod savepoint;
mod scoped;
mod short_list;
mod transaction;
mod unit_of_work;
mod upsert;

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::backend::ExecOutcome;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fast_hash::FastHashSet;
use crate::model::{IntoKey, Model};
use crate::query::Query;
use crate::replicas::ReplicaSet;
use crate::value::Value;

use binds::{BindIdx, Binds};
pub use binds::{ShardForNew, ShardId, ShardRules, ShardsForKey, ShardsForQuery};
pub use events::{model_event, ModelEvent, ModelEvents};
use events::{Events, SessionEvent, SessionHook};
use identity_map::{Identity, IdentityMap};
pub(crate) use links::load_erased;
pub(crate) use links::populate;
pub(crate) use loading::{
    load_rows_joined, load_rows_joined_each, load_rows_on, map_joined, stream_rows, JoinedMapper,
};
pub(crate) use object::downcast as downcast_obj;
use object::downcast;
pub(crate) use object::{addr, AnyObj};
pub use object::{Obj, ObjState};
pub(crate) use persistence::select_sql;
pub use retry::RetryPolicy;
pub use savepoint::NestedTransaction;
pub use scoped::ScopedSession;
use transaction::Transaction;

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
    /// The engines by model or shard (the default engine first).
    binds: Arc<Binds>,
    config: SessionConfig,
    /// The event hooks, shared by the sessions made from the factory.
    events: Arc<Events>,
    /// Read replicas, shared by the sessions made from the factory.
    replicas: Option<Arc<ReplicaSet>>,
}

/// Registers a session event hook (the events are described on `ModelEvents`).
macro_rules! session_hook {
    ($(#[$doc:meta])* $name:ident => $event:expr) => {
        $(#[$doc])*
        pub fn $name(mut self, hook: impl Fn(&Session) -> Result<()> + Send + Sync + 'static) -> Self {
            let hook: SessionHook = Arc::new(hook);
            Arc::make_mut(&mut self.events).push($event, hook);
            self
        }
    };
}

/// Registers a model event hook.
macro_rules! model_hook {
    ($(#[$doc:meta])* $name:ident => $event:expr) => {
        $(#[$doc])*
        pub fn $name<M: Model>(
            mut self,
            hook: impl Fn(&Session, &Obj<M>) -> Result<()> + Send + Sync + 'static,
        ) -> Self {
            Arc::make_mut(&mut self.events).push_model::<M>($event, hook);
            self
        }
    };
}

impl SessionFactory {
    /// A factory with the default configuration (autoflush, expire_on_commit).
    pub fn new(engine: Engine) -> Self {
        SessionFactory {
            binds: Arc::new(Binds::new(engine.clone())),
            engine,
            config: SessionConfig::default(),
            events: Arc::new(Events::default()),
            replicas: None,
        }
    }

    /// Routes model `M` to `engine` (SQLAlchemy's `binds={User: engine}`):
    /// its loads, queries and flushed rows go there; other models stay on
    /// the factory's engine. One session then works on several servers:
    /// its transaction holds one connection per engine it used, each with
    /// its own transaction, checked out at that engine's first statement.
    ///
    /// A flush sends each table's rows to the table's engine, in the one
    /// save order of the whole unit of work; a relationship between models
    /// on different engines is kept in memory and its key written into the
    /// child row as usual, but no server can enforce that foreign key.
    /// How [`Session::commit`] ends several transactions is described there.
    /// For sessions made from now on. Not with [`sharded`](Self::sharded).
    pub fn bind<M: Model>(mut self, engine: Engine) -> Self {
        Arc::make_mut(&mut self.binds).bind(M::table().name, engine);
        self
    }

    /// A factory for a horizontally sharded session (SQLAlchemy's
    /// `ShardedSession`): `shards` names each shard's engine (the first is
    /// the default engine, for raw SQL); `rules` choose the shard of a new
    /// object, the shards `get` tries and the shards a query runs on. An
    /// object's identity includes its shard, so the same primary key on two
    /// shards is two objects. Updates and deletes go to the shard an object
    /// was loaded from or added to. See [`ShardRules`], [`Session::add_to_shard`],
    /// [`Query::on_shard`](crate::query::Query::on_shard).
    ///
    /// Errors when `shards` is empty or names a shard twice.
    pub fn sharded(
        shards: impl IntoIterator<Item = (ShardId, Engine)>,
        rules: ShardRules,
    ) -> Result<Self> {
        let binds = Binds::sharded(shards.into_iter().collect(), rules)?;
        Ok(SessionFactory {
            engine: binds.engine(0).clone(),
            binds: Arc::new(binds),
            config: SessionConfig::default(),
            events: Arc::new(Events::default()),
            replicas: None,
        })
    }

    /// Two-phase commit across engines (SQLAlchemy's `twophase=True`),
    /// MySQL/MariaDB only: each engine's transaction is an XA branch
    /// (`XA START 'gtrid','bqual'`, one global id per session transaction,
    /// the branch qualifier naming the engine), and `commit()` sends
    /// `XA END` + `XA PREPARE` to every engine, then `XA COMMIT` to every
    /// engine. A PREPARE that fails rolls every branch back (nothing is
    /// committed anywhere); a COMMIT that fails once all are prepared is
    /// [`Error::XaCommitIncomplete`], the branch staying prepared on its
    /// server (`XA RECOVER`). `begin_nested()` is refused: MariaDB allows
    /// no savepoint inside an XA transaction. For sessions made from now on.
    pub fn two_phase(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.binds).two_phase = on;
        self
    }

    /// Routes the reads of sessions made from now on to `replicas`, with
    /// read-your-writes: see [`crate::replicas`] for the rules. The set
    /// (its health and the position its sessions last committed) is shared
    /// by clones of the factory.
    ///
    /// With [`bind`](Self::bind) or [`sharded`](Self::sharded), the replicas
    /// serve the default engine only (the factory's engine, or the first
    /// shard), whose primary they replicate: the reads of models bound to
    /// other engines, and their writes, always go to those engines, and a
    /// write to another engine does not move the default engine's reads to
    /// its primary.
    pub fn replicas(mut self, replicas: ReplicaSet) -> Self {
        self.replicas = Some(Arc::new(replicas));
        self
    }

    /// The read replicas, when configured (their [`stats`](ReplicaSet::stats)
    /// and [`status`](ReplicaSet::status)).
    pub fn replica_set(&self) -> Option<&Arc<ReplicaSet>> {
        self.replicas.as_ref()
    }

    session_hook!(
        /// Runs `hook` at the start of every flush that has something to do,
        /// before the flush looks at the objects: it may add, change or
        /// delete objects, and the flush plans after it. An error stops the
        /// flush before any SQL ([`Error::Hook`]). For sessions made from now on.
        before_flush => SessionEvent::BeforeFlush
    );
    session_hook!(
        /// Runs `hook` after every flush the database accepted (after the
        /// per-object `after_*` hooks). An error rolls the transaction back
        /// and the session requires `rollback()`.
        after_flush => SessionEvent::AfterFlush
    );
    session_hook!(
        /// Runs `hook` after every successful `commit()` of an open
        /// transaction (the objects are already expired). An error is
        /// returned by `commit()`, which did commit.
        after_commit => SessionEvent::AfterCommit
    );
    session_hook!(
        /// Runs `hook` after `rollback()` of a transaction that had sent SQL
        /// (including one a failed flush already rolled back, when you
        /// acknowledge it). Not run by `close()` or drop.
        after_rollback => SessionEvent::AfterRollback
    );

    /// Runs `hook` when a session's transaction begins on a connection
    /// (right after `BEGIN`), with that connection: the place for
    /// per-transaction `SET` statements. The session itself is busy while it
    /// runs (its methods return an error); use the connection. An error
    /// fails the operation that began the transaction, and the connection
    /// is rolled back and returned.
    pub fn after_begin(
        mut self,
        hook: impl Fn(&Session, &mut crate::engine::PooledConnection) -> Result<()>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.events)
            .after_begin
            .push(Arc::new(hook));
        self
    }

    model_hook!(
        /// Runs `hook` for each `M` object about to be INSERTed, before the
        /// flush reads its values: it may change the object
        /// (`obj.write()?`). An error stops the flush before any SQL.
        before_insert => ModelEvent::BeforeInsert
    );
    model_hook!(
        /// Runs `hook` for each `M` object whose columns changed, before the
        /// flush reads its changes: it may change the object further. An
        /// error stops the flush before any SQL.
        before_update => ModelEvent::BeforeUpdate
    );
    model_hook!(
        /// Runs `hook` for each `M` object about to be DELETEd. An error
        /// stops the flush before any SQL.
        before_delete => ModelEvent::BeforeDelete
    );
    model_hook!(
        /// Runs `hook` for each `M` object the flush INSERTed, once the
        /// database accepted the whole flush (its generated key is set). An
        /// error rolls the transaction back; the session requires `rollback()`.
        after_insert => ModelEvent::AfterInsert
    );
    model_hook!(
        /// Runs `hook` for each `M` object the flush UPDATEd, once the
        /// database accepted the whole flush. An error rolls back as for
        /// `after_insert`.
        after_update => ModelEvent::AfterUpdate
    );
    model_hook!(
        /// Runs `hook` for each `M` object the flush DELETEd, once the
        /// database accepted the whole flush. An error rolls back as for
        /// `after_insert`.
        after_delete => ModelEvent::AfterDelete
    );
    model_hook!(
        /// Runs `hook` when a row becomes a new `M` object, or refreshes an
        /// expired one. An error fails the load (the objects stay loaded).
        on_load => ModelEvent::OnLoad
    );

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

    /// The default engine (the first shard's for a sharded factory).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A new session. It holds no connection until its first SQL.
    pub fn session(&self) -> Session {
        let events = (!self.events.is_empty()).then(|| self.events.clone());
        Session::build(
            self.binds.clone(),
            self.config,
            events,
            self.replicas.clone(),
        )
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
    /// The default engine (`binds.engines[0]`).
    engine: Engine,
    /// Every engine the session may use, by model or shard.
    binds: Arc<Binds>,
    config: SessionConfig,
    autoflush: Cell<bool>,
    /// `in_transaction()` / `in_nested_transaction()` as of the last change,
    /// for answers while `state` is borrowed by an operation in progress.
    flags: Cell<Flags>,
    state: RefCell<State>,
    /// Objects written since their last load or flush (kept apart from
    /// `state` so that `Obj::write` never contends with the session).
    modified: RefCell<Vec<Rc<dyn AnyObj>>>,
    /// The factory's event hooks; `None` when there are none.
    events: Option<Arc<Events>>,
    /// The shard the loads in progress read from (a relationship of an
    /// object of that shard), in a sharded session.
    load_shard: Cell<Option<u16>>,
    /// The factory's read replicas (of the default engine); `None` when
    /// there are none.
    replicas: Option<Arc<ReplicaSet>>,
}

/// A copy of what the inspection methods report, kept outside `state`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub in_transaction: bool,
    pub nested_depth: usize,
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
        let mut list = self.modified.borrow_mut();
        if list.len() == list.capacity() {
            // Grown to at most the objects the session holds (only they are
            // written into the list), not by doubling past them: writing
            // 10,000 loaded objects reserved 16,384 slots.
            if let Ok(st) = self.state.try_borrow() {
                let (len, held) = (list.len(), st.map.len());
                let target = if held > len {
                    (len * 2).max(4).min(held)
                } else {
                    len + 1 + len / 2 // written again after a reset
                };
                list.reserve_exact(target - len);
            }
        }
        list.push(obj);
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        // The same as close(): the objects are rolled back and detached;
        // dropping the connection guard rolls the connection back and returns it.
        let state = self.state.get_mut();
        transaction::rollback_objects(state, false);
        detach_all(state);
        self.modified.get_mut().clear();
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
    for record in st.tx.records_mut() {
        for obj in record.deleted.drain(..) {
            obj.meta().borrow_mut().release(ObjState::Detached);
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Session");
        d.field("id", &self.inner.id)
            .field("engine", &self.inner.engine);
        match self.inner.state.try_borrow() {
            Ok(st) => d
                .field("objects", &st.map.len())
                .field("new", &st.new.len())
                .field("deleted", &st.deleted.len())
                .field("phase", &st.tx.phase),
            Err(_) => d.field("state", &"<busy: inside one of its own operations>"),
        };
        d.finish()
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
        Session::build(Arc::new(Binds::new(engine)), config, None, None)
    }

    fn build(
        binds: Arc<Binds>,
        config: SessionConfig,
        events: Option<Arc<Events>>,
        replicas: Option<Arc<ReplicaSet>>,
    ) -> Session {
        Session {
            inner: Rc::new(SessionInner {
                id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
                engine: binds.engine(0).clone(),
                binds,
                config,
                autoflush: Cell::new(config.autoflush),
                flags: Cell::new(Flags::default()),
                state: RefCell::new(State {
                    map: IdentityMap::default(),
                    new: Vec::new(),
                    deleted: Vec::new(),
                    tx: Transaction::new(),
                    flushing: false,
                    next_seq: 0,
                }),
                modified: RefCell::new(Vec::new()),
                events,
                load_shard: Cell::new(None),
                replicas,
            }),
        }
    }

    /// Runs the session hooks of `event` (none: nothing to do).
    fn run_hooks(&self, event: SessionEvent) -> Result<()> {
        match self.inner.events.clone() {
            Some(events) if events.has(event) => events.run(event, self),
            _ => Ok(()),
        }
    }

    pub(crate) fn from_inner(inner: Rc<SessionInner>) -> Session {
        Session { inner }
    }

    /// The session's default engine (the factory's; the first shard's in a
    /// sharded session). See [`engine_for`](Self::engine_for) for a bound model's.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Copies what the inspection methods report out of `st`.
    pub(crate) fn sync_flags(&self, st: &State) {
        self.inner.flags.set(Flags {
            in_transaction: st.tx.is_active(),
            nested_depth: st.tx.savepoints.len(),
        });
    }

    fn state(&self) -> Result<std::cell::RefMut<'_, State>> {
        self.inner.state.try_borrow_mut().map_err(|_| busy())
    }

    fn state_ref(&self) -> Result<std::cell::Ref<'_, State>> {
        self.inner.state.try_borrow().map_err(|_| busy())
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
            if meta.in_other_session(&self.inner) {
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
        let key = erased.current_key()?;
        let identity_key = if state == ObjState::Detached {
            erased.meta().borrow().key.clone().or_else(|| key.clone())
        } else {
            key.clone()
        };
        let shard = self.shard_for_add(&erased)?;
        if let Some(key) = &identity_key {
            let identity = Identity {
                model: TypeId::of::<M>(),
                key: key.clone(),
                shard,
            };
            // A different object with this key blocks the add. A new object
            // may take the key of an object marked for deletion (the flush
            // turns DELETE + INSERT into one UPDATE: SQLAlchemy's "row
            // switch"); a detached object may not, since it would stay
            // persistent for a row the flush deletes. Two pending objects
            // with one key are left to the database's primary key.
            let detached = state == ObjState::Detached;
            if st.map.get(&identity).is_some_and(|o| {
                !Rc::ptr_eq(o, &erased) && (detached || !o.meta().borrow().marked_deleted)
            }) {
                return Err(Error::invalid(format!(
                    "another `{}` object with key {key} is already present in this session; \
                     get() that object and change it, or merge() this value",
                    M::table().model
                )));
            }
        }
        st.tx.autobegin();
        self.sync_flags(&st);
        let seq = st.next_seq;
        st.next_seq += 1;
        let weak = Rc::downgrade(&self.inner);
        let mut meta = erased.meta().borrow_mut();
        meta.session = Some(weak);
        meta.seq = seq;
        meta.set_shard(shard);
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
                    shard,
                },
                erased.clone(),
            );
            if modified {
                self.inner.note_modified(erased.clone());
            }
        } else {
            meta.state = ObjState::Pending;
            meta.snapshot = None;
            meta.expired = false;
            drop(meta);
            st.new.push(erased.clone());
        }
        drop(st);
        // Save-update cascade: transient objects linked to this one join too.
        if erased.meta().borrow().links.is_some() {
            for related in links::reachable(&erased, crate::relationship::Cascade::SAVE_UPDATE) {
                if related.meta().borrow().state == ObjState::Transient {
                    // In a sharded session, related objects go to this
                    // object's shard unless placed already.
                    if shard.is_some() {
                        let mut meta = related.meta().borrow_mut();
                        if meta.shard().is_none() {
                            meta.set_shard(shard);
                        }
                    }
                    self.add_erased(related)?;
                }
            }
            // Its pending foreign keys are flushed with it.
            if !links::pending_fks(&erased).is_empty() {
                self.inner.note_modified(erased);
            }
        }
        Ok(obj)
    }

    /// The shard an object being added goes to, in a sharded session: the
    /// one it has (loaded from, or set by `add_to_shard`), else the rules'
    /// choice from its values. `None` when not sharded.
    fn shard_for_add(&self, obj: &Rc<dyn AnyObj>) -> Result<Option<u16>> {
        let binds = &self.inner.binds;
        let Some(rules) = binds.rules.as_ref() else {
            return Ok(None);
        };
        if let Some(shard) = obj.meta().borrow().shard() {
            return Ok(Some(shard));
        }
        let values = obj.values()?;
        let id = (rules.for_new)(obj.table(), &values);
        binds.shard_index(&id).map(Some)
    }

    /// Adds a new object to shard `shard` of a sharded session, whatever
    /// the rules would choose (SQLAlchemy's `set_shard_id` option on add).
    /// Related objects the add cascades to follow the rules (or their own
    /// shard). Errors: not a sharded session, an unknown shard, or an object
    /// already on another shard.
    pub fn add_to_shard<M: Model>(
        &self,
        shard: &ShardId,
        obj: impl Into<Obj<M>>,
    ) -> Result<Obj<M>> {
        let obj: Obj<M> = obj.into();
        let index = self.inner.binds.shard_index(shard)?;
        {
            let erased = obj.erased();
            let mut meta = erased.meta().borrow_mut();
            match meta.shard() {
                Some(s) if s != index && meta.session.is_some() => {
                    return Err(Error::invalid(format!(
                        "this `{}` object is on shard '{}', it cannot be added to shard '{shard}'; \
                         make a new object for that shard",
                        M::table().model,
                        self.inner.binds.shard_id(s).map_or("?", |id| id.as_str())
                    )))
                }
                _ => meta.set_shard(Some(index)),
            }
        }
        self.add(obj)
    }

    /// The shard `obj` lives on, in a sharded session (`None` otherwise, or
    /// for an object not yet added).
    pub fn shard_of<M: Model>(&self, obj: &Obj<M>) -> Option<ShardId> {
        let shard = obj.erased().meta().borrow().shard()?;
        self.inner.binds.shard_id(shard).cloned()
    }

    /// Whether the session was made by [`SessionFactory::sharded`].
    pub(crate) fn is_sharded(&self) -> bool {
        self.inner.binds.is_sharded()
    }

    /// The shard ids of a sharded session, in declaration order (empty otherwise).
    pub fn shards(&self) -> Vec<ShardId> {
        self.inner.binds.shard_ids.clone()
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
        if erased.meta().borrow().marked_deleted {
            return Ok(());
        }
        if !M::table().relationships.is_empty() {
            // Cascades along relationships may load (and autoflush): not
            // while the state is borrowed.
            drop(st);
            self.cascade_delete(&erased)?;
            st = self.state()?;
        }
        let mut meta = erased.meta().borrow_mut();
        if !meta.marked_deleted {
            meta.marked_deleted = true;
            drop(meta);
            st.tx.autobegin();
            self.sync_flags(&st);
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
        let cascade = links::reachable(&erased, crate::relationship::Cascade::EXPUNGE);
        expunge_one(&mut st, &erased);
        self.inner
            .modified
            .borrow_mut()
            .retain(|o| !Rc::ptr_eq(o, &erased));
        drop(st);
        // The expunge cascade: related objects this session holds go too.
        for related in cascade {
            if self.owns(&related) {
                self.expunge_erased(&related)?;
            }
        }
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
        obj.meta().borrow().session_is(&self.inner)
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
    /// An error (not a panic) when called from inside one of the session's
    /// own operations.
    pub fn new_objects<M: Model>(&self) -> Result<Vec<Obj<M>>> {
        Ok(of_model(&self.state_ref()?.new))
    }

    /// The objects of model `M` marked for deletion (`session.deleted`).
    pub fn deleted_objects<M: Model>(&self) -> Result<Vec<Obj<M>>> {
        Ok(of_model(&self.state_ref()?.deleted))
    }

    /// The persistent objects of model `M` with changed columns (`session.dirty`).
    pub fn dirty_objects<M: Model>(&self) -> Result<Vec<Obj<M>>> {
        let modified = self
            .inner
            .modified
            .try_borrow()
            .map_err(|_| busy())?
            .clone();
        let mut out: Vec<Obj<M>> = Vec::new();
        // The modified list may name an object more than once.
        let mut seen: FastHashSet<*const ()> = FastHashSet::default();
        for o in modified {
            if !seen.insert(addr(&o)) {
                continue;
            }
            if let Some(obj) = downcast::<M>(o) {
                if self.is_dirty(&obj) {
                    out.push(obj);
                }
            }
        }
        Ok(out)
    }

    /// How many objects the identity map holds.
    pub fn identity_count(&self) -> Result<usize> {
        Ok(self.state_ref()?.map.len())
    }

    // ----- flush ---------------------------------------------------------------

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

    /// Runs a raw statement inside the session's transaction (after
    /// autoflush), on the default engine (see [`execute_for`](Self::execute_for)
    /// for a model's engine, [`execute_on_shard`](Self::execute_on_shard) for a shard).
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<ExecOutcome> {
        self.execute_on(0, sql, params)
    }

    /// Runs a raw query inside the session's transaction (after autoflush)
    /// on the default engine, and returns its rows. A read: with read
    /// replicas it goes to a replica while the session has not written
    /// (send writes with [`execute`](Self::execute)).
    pub fn query_rows(&self, sql: &str, params: &[Value]) -> Result<Vec<crate::row::Row>> {
        self.query_rows_on(0, sql, params)
    }

    /// [`execute`](Self::execute) on the engine model `M` is bound to
    /// ([`SessionFactory::bind`]).
    pub fn execute_for<M: Model>(&self, sql: &str, params: &[Value]) -> Result<ExecOutcome> {
        self.execute_on(self.bind_of(M::table()), sql, params)
    }

    /// [`query_rows`](Self::query_rows) on the engine model `M` is bound to.
    pub fn query_rows_for<M: Model>(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<crate::row::Row>> {
        self.query_rows_on(self.bind_of(M::table()), sql, params)
    }

    /// [`execute`](Self::execute) on one shard of a sharded session.
    pub fn execute_on_shard(
        &self,
        shard: &ShardId,
        sql: &str,
        params: &[Value],
    ) -> Result<ExecOutcome> {
        let index = self.inner.binds.shard_index(shard)?;
        self.execute_on(usize::from(index), sql, params)
    }

    /// [`query_rows`](Self::query_rows) on one shard of a sharded session.
    pub fn query_rows_on_shard(
        &self,
        shard: &ShardId,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<crate::row::Row>> {
        let index = self.inner.binds.shard_index(shard)?;
        self.query_rows_on(usize::from(index), sql, params)
    }

    /// The engine `table`'s rows use outside any shard (the default in a
    /// sharded session).
    pub(crate) fn bind_of(&self, table: &crate::model::TableDef) -> BindIdx {
        self.inner.binds.for_table(table.name, None)
    }

    /// The engine model `M` uses (its bound one; the default engine when
    /// unbound, and in a sharded session).
    pub fn engine_for<M: Model>(&self) -> &Engine {
        self.inner.binds.engine(self.bind_of(M::table()))
    }

    /// Runs `load` with the loads it makes reading from `shard` (the shard
    /// of the object whose relationship loads); no effect outside a sharded session.
    pub(crate) fn loading_on<T>(&self, shard: Option<u16>, load: impl FnOnce() -> T) -> T {
        struct Restore<'a>(&'a Cell<Option<u16>>, Option<u16>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.inner.load_shard, self.inner.load_shard.replace(shard));
        load()
    }

    /// The engines (with their shard) a query on `table` runs on: its bound
    /// engine outside a sharded session; in one, `explicit` (`on_shard`),
    /// else the query chooser's answer for `filters`, else every shard.
    pub(crate) fn query_targets(
        &self,
        table: &'static crate::model::TableDef,
        filters: &[crate::expr::Expr],
        explicit: Option<&ShardId>,
    ) -> Result<Vec<(BindIdx, Option<u16>)>> {
        let binds = &self.inner.binds;
        let Some(rules) = binds.rules.as_ref() else {
            if let Some(id) = explicit {
                binds.shard_index(id)?;
            }
            return Ok(vec![(binds.for_table(table.name, None), None)]);
        };
        let shards = match explicit {
            Some(id) => vec![binds.shard_index(id)?],
            None => {
                let ids = rules
                    .for_query
                    .as_ref()
                    .map(|choose| choose(table, filters))
                    .unwrap_or_default();
                binds.shard_indexes(ids)?
            }
        };
        Ok(shards
            .into_iter()
            .map(|s| (binds.for_table(table.name, Some(s)), Some(s)))
            .collect())
    }

    pub(crate) fn execute_on(
        &self,
        bind: BindIdx,
        sql: &str,
        params: &[Value],
    ) -> Result<ExecOutcome> {
        self.autoflush()?;
        let mut st = self.state()?;
        if bind == 0 {
            st.tx.wrote = true;
        }
        let conn = self.connection(&mut st, bind)?;
        match conn.execute(sql, params) {
            Ok(o) => {
                self.check_still_open(&mut st)?;
                Ok(o)
            }
            Err(e) => Err(self.note_error(&mut st, e)),
        }
    }

    /// A raw query on engine `bind`: a read, on a replica of the default
    /// engine while the session has not written to it (see `routing`).
    pub(crate) fn query_rows_on(
        &self,
        bind: BindIdx,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<crate::row::Row>> {
        self.autoflush()?;
        let mut st = self.state()?;
        self.with_reader(&mut st, bind, |_, conn| conn.query_rows(sql, params))
    }

    /// A read on engine `bind` (as [`query_rows_on`](Self::query_rows_on)),
    /// each row decoded into `R` as it arrives.
    pub(crate) fn query_decoded_on<R: crate::select::FromRow>(
        &self,
        bind: BindIdx,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<R>> {
        self.autoflush()?;
        let mut st = self.state()?;
        // A read re-run on another replica starts its list again.
        self.with_reader(&mut st, bind, |_, conn| {
            let mut out = Vec::new();
            conn.query_each(sql, params, &mut |row| {
                out.push(R::take_from_row(row)?);
                Ok(())
            })?;
            Ok(out)
        })
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

impl Session {
    /// The objects of model `M` in the identity map.
    pub(crate) fn objects_of<M: Model>(&self) -> Result<Vec<Obj<M>>> {
        let st = self.state_ref()?;
        Ok(st
            .map
            .values()
            .filter(|o| o.model_type() == TypeId::of::<M>())
            .filter_map(|o| downcast(o.clone()))
            .collect())
    }

    /// The object of model `M` with `key` in the identity map (no SQL).
    pub(crate) fn identity_lookup<M: Model>(
        &self,
        key: crate::model::Key,
    ) -> Result<Option<Obj<M>>> {
        self.identity_lookup_on(key, None)
    }

    /// The object of model `M` with `key` on `shard` in the identity map (no SQL).
    pub(crate) fn identity_lookup_on<M: Model>(
        &self,
        key: crate::model::Key,
        shard: Option<u16>,
    ) -> Result<Option<Obj<M>>> {
        let identity = Identity {
            model: TypeId::of::<M>(),
            key,
            shard,
        };
        Ok(self
            .state_ref()?
            .map
            .get(&identity)
            .cloned()
            .and_then(downcast))
    }

    /// Marks the objects of rows a bulk DELETE removed as deleted, as a
    /// flush's DELETE does: out of the identity map and recorded in the
    /// current transaction level, so a rollback restores them and a commit
    /// detaches them.
    pub(crate) fn bulk_deleted<M: Model>(&self, objs: Vec<Obj<M>>) -> Result<()> {
        let mut st = self.state()?;
        let State { map, tx, .. } = &mut *st;
        for obj in objs {
            let erased = obj.erased();
            {
                let mut meta = erased.meta().borrow_mut();
                if meta.state != ObjState::Persistent {
                    continue;
                }
                meta.snapshot = None;
            }
            transaction::record_deleted(erased, map, tx.current());
        }
        drop(st);
        self.inner
            .modified
            .borrow_mut()
            .retain(|o| !matches!(o.meta().borrow().state, ObjState::Deleted));
        Ok(())
    }

    /// Lets go of the objects in `objs` that nobody else holds and that have
    /// nothing to flush: they leave the identity map (detached, unseen).
    /// What `Query::iter` does with a finished batch.
    pub(crate) fn release_unused<M: Model>(&self, objs: Vec<Obj<M>>) -> Result<()> {
        for obj in objs {
            let erased = obj.erased();
            drop(obj);
            self.release_if_unused(erased)?;
        }
        Ok(())
    }

    /// Expunges `erased` if nothing but the identity map holds it (the
    /// caller's handle included, which this consumes) and it has nothing to
    /// flush: a streamed object the caller did not keep.
    pub(crate) fn release_if_unused(&self, erased: Rc<dyn AnyObj>) -> Result<()> {
        // The map and `erased`: nobody else.
        if Rc::strong_count(&erased) > 2 {
            return Ok(());
        }
        let idle = erased.meta().borrow().is_idle();
        if idle {
            let mut st = self.state()?;
            expunge_one(&mut st, &erased);
        }
        Ok(())
    }
}

/// Sets `changes` on `obj` as the database now holds them (a bulk UPDATE
/// synchronized): the values change, and a snapshot taken by an earlier
/// `write()` records them too, so that the flush does not send them again.
pub(crate) fn set_committed<M: Model>(obj: &Obj<M>, changes: &[(usize, Value)]) -> Result<()> {
    let erased = obj.erased();
    for (index, value) in changes {
        erased.set_column(*index, value.clone())?;
    }
    if let Some(snapshot) = erased.meta().borrow_mut().snapshot.as_mut() {
        for (index, value) in changes {
            snapshot.set_value(*index, value.clone())?;
        }
    }
    Ok(())
}

fn busy() -> Error {
    Error::invalid(
        "the session is busy: this was called from inside one of its own operations \
         (a hook, or a FromValue impl while rows load); call it after that operation returns",
    )
}

/// The typed handles of the objects of model `M` in `objs`.
fn of_model<M: Model>(objs: &[Rc<dyn AnyObj>]) -> Vec<Obj<M>> {
    objs.iter()
        .filter(|o| o.model_type() == TypeId::of::<M>())
        .filter_map(|o| downcast(o.clone()))
        .collect()
}

fn expunge_one(st: &mut State, obj: &Rc<dyn AnyObj>) {
    st.map.remove_obj(obj);
    st.new.retain(|o| !Rc::ptr_eq(o, obj));
    st.deleted.retain(|o| !Rc::ptr_eq(o, obj));
    // A rollback must not bring an expunged object back.
    transaction::forget(&mut st.tx, obj);
    let mut meta = obj.meta().borrow_mut();
    let next = if meta.state == ObjState::Pending {
        ObjState::Transient
    } else {
        ObjState::Detached
    };
    meta.release(next);
}
