//! Session and model events: SQLAlchemy's event API, typed. The user-facing
//! documentation is on [`ModelEvents`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::engine::PooledConnection;
use crate::error::{Error, Result};
use crate::model::Model;

use super::object::Obj;
use super::Session;

/// A per-object event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelEvent {
    /// Before the object's INSERT is planned.
    BeforeInsert,
    /// Before the object's UPDATE is planned.
    BeforeUpdate,
    /// Before the object's DELETE is planned.
    BeforeDelete,
    /// After the flush that INSERTed the object.
    AfterInsert,
    /// After the flush that UPDATEd the object.
    AfterUpdate,
    /// After the flush that DELETEd the object.
    AfterDelete,
    /// A row became this object, or refreshed it after it expired.
    OnLoad,
}

impl ModelEvent {
    /// The event's name, as in messages (`before_insert`).
    pub fn name(self) -> &'static str {
        match self {
            ModelEvent::BeforeInsert => "before_insert",
            ModelEvent::BeforeUpdate => "before_update",
            ModelEvent::BeforeDelete => "before_delete",
            ModelEvent::AfterInsert => "after_insert",
            ModelEvent::AfterUpdate => "after_update",
            ModelEvent::AfterDelete => "after_delete",
            ModelEvent::OnLoad => "on_load",
        }
    }
}

/// Per-object event methods a model may implement (each defaults to doing
/// nothing). The derive calls them only when the struct says
/// `#[orm(events)]`:
///
/// ```ignore
/// #[derive(Model, Clone)]
/// #[orm(events)]
/// struct Article { #[orm(auto_increment)] id: Option<i64>, title: String, slug: String }
///
/// impl ModelEvents for Article {
///     fn before_insert(_: &Session, obj: &Obj<Self>) -> orm::Result<()> {
///         let mut a = obj.write()?;
///         a.slug = a.title.to_lowercase().replace(' ', "-");
///         Ok(())
///     }
/// }
/// ```
///
///
/// # Events
///
/// Session and model events: SQLAlchemy's event API, typed.
///
/// Hooks are closures registered on the [`SessionFactory`](crate::session::SessionFactory)
/// (they apply to the sessions it makes from then on), and methods of
/// [`ModelEvents`] that a model implements and opts into with
/// `#[orm(events)]`. For one object and one event the model's method runs
/// first, then the closures in registration order.
///
/// | event | when | the hook may |
/// | --- | --- | --- |
/// | `before_flush` | a flush with something to do begins, before it looks at the objects | add, change, delete objects: the flush plans after it |
/// | `before_insert` / `before_update` / `before_delete` | per object, once the flush knows the object's fate, before any value is read | change the object (`obj.write()`), add or delete others (their own `before_*` hooks run too) |
/// | `after_insert` / `after_update` / `after_delete` | per object, once the database accepted the whole flush and the objects are marked done | read the objects (keys are there) |
/// | `after_flush` | after those | read the session |
/// | `after_begin` | the session's transaction began on a connection (its first statement opens it on the server: no `BEGIN` round trip on MySQL) | run SQL on that connection; the session itself is busy |
/// | `after_commit` | after `COMMIT` succeeded and the objects were expired | use the session (a new transaction) |
/// | `after_rollback` | after `rollback()` of a transaction that had sent SQL (including one a failed flush already rolled back) | use the session |
/// | `on_load` | a row became a new object, or refreshed an expired one | read or change non-column state |
///
/// `before_update` runs for objects whose columns (or relationship foreign
/// keys) really changed, not for every object merely written.
///
/// An error from a hook is returned wrapped in [`Error::Hook`] naming the
/// event and the model. From a `before_*` hook nothing was sent: the session
/// keeps its pending changes (those the hooks already made included), as
/// with other errors found before any SQL. From `after_insert`,
/// `after_update`, `after_delete` or `after_flush` the statements were sent:
/// the transaction (or the savepoint) is rolled back and the session
/// requires `rollback()`, as after a database error during the flush. An
/// error from `after_commit` is returned after the commit happened; from
/// `after_begin` it fails the operation that began the transaction (the
/// transaction is rolled back); from `on_load` it fails the load.
///
/// While `before_*` and `after_*` flush hooks run, the session is flushing:
/// a nested `flush()` is an error and autoflush is skipped.
///
/// With no hook registered and no model using `#[orm(events)]`, events cost
/// nothing but a check of an `Option` per flush, commit and rollback.
pub trait ModelEvents: Model {
    /// Before the INSERT of `obj` is planned; may change it.
    fn before_insert(_session: &Session, _obj: &Obj<Self>) -> Result<()> {
        Ok(())
    }
    /// Before the UPDATE of `obj` is planned; may change it.
    fn before_update(_session: &Session, _obj: &Obj<Self>) -> Result<()> {
        Ok(())
    }
    /// Before the DELETE of `obj` is planned.
    fn before_delete(_session: &Session, _obj: &Obj<Self>) -> Result<()> {
        Ok(())
    }
    /// After the flush that INSERTed `obj` (its generated key is set).
    fn after_insert(_session: &Session, _obj: &Obj<Self>) -> Result<()> {
        Ok(())
    }
    /// After the flush that UPDATEd `obj`.
    fn after_update(_session: &Session, _obj: &Obj<Self>) -> Result<()> {
        Ok(())
    }
    /// After the flush that DELETEd `obj`.
    fn after_delete(_session: &Session, _obj: &Obj<Self>) -> Result<()> {
        Ok(())
    }
    /// A row became `obj`, or refreshed it after it expired.
    fn on_load(_session: &Session, _obj: &Obj<Self>) -> Result<()> {
        Ok(())
    }
}

/// Routes `event` to `M`'s [`ModelEvents`] method. Called by the code the
/// derive generates under `#[orm(events)]`.
#[doc(hidden)]
pub fn model_event<M: ModelEvents>(
    event: ModelEvent,
    session: &Session,
    obj: &Obj<M>,
) -> Result<()> {
    match event {
        ModelEvent::BeforeInsert => M::before_insert(session, obj),
        ModelEvent::BeforeUpdate => M::before_update(session, obj),
        ModelEvent::BeforeDelete => M::before_delete(session, obj),
        ModelEvent::AfterInsert => M::after_insert(session, obj),
        ModelEvent::AfterUpdate => M::after_update(session, obj),
        ModelEvent::AfterDelete => M::after_delete(session, obj),
        ModelEvent::OnLoad => M::on_load(session, obj),
    }
}

pub(crate) type SessionHook = Arc<dyn Fn(&Session) -> Result<()> + Send + Sync>;
pub(crate) type BeginHook =
    Arc<dyn Fn(&Session, &mut PooledConnection) -> Result<()> + Send + Sync>;
/// A model hook, taking the `&Obj<M>` as `&dyn Any`.
type ModelHook = Arc<dyn Fn(&Session, &dyn Any) -> Result<()> + Send + Sync>;

/// The session events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionEvent {
    BeforeFlush,
    AfterFlush,
    AfterCommit,
    AfterRollback,
}

impl SessionEvent {
    fn name(self) -> &'static str {
        match self {
            SessionEvent::BeforeFlush => "before_flush",
            SessionEvent::AfterFlush => "after_flush",
            SessionEvent::AfterCommit => "after_commit",
            SessionEvent::AfterRollback => "after_rollback",
        }
    }
}

/// The hooks registered on a session factory.
#[derive(Clone, Default)]
pub(crate) struct Events {
    before_flush: Vec<SessionHook>,
    after_flush: Vec<SessionHook>,
    after_commit: Vec<SessionHook>,
    after_rollback: Vec<SessionHook>,
    pub after_begin: Vec<BeginHook>,
    model: HashMap<(TypeId, ModelEvent), Vec<ModelHook>>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("before_flush", &self.before_flush.len())
            .field("after_flush", &self.after_flush.len())
            .field("after_commit", &self.after_commit.len())
            .field("after_rollback", &self.after_rollback.len())
            .field("after_begin", &self.after_begin.len())
            .field("model", &self.model.len())
            .finish()
    }
}

impl Events {
    pub fn is_empty(&self) -> bool {
        self.before_flush.is_empty()
            && self.after_flush.is_empty()
            && self.after_commit.is_empty()
            && self.after_rollback.is_empty()
            && self.after_begin.is_empty()
            && self.model.is_empty()
    }

    fn list(&self, event: SessionEvent) -> &[SessionHook] {
        match event {
            SessionEvent::BeforeFlush => &self.before_flush,
            SessionEvent::AfterFlush => &self.after_flush,
            SessionEvent::AfterCommit => &self.after_commit,
            SessionEvent::AfterRollback => &self.after_rollback,
        }
    }

    pub fn push(&mut self, event: SessionEvent, hook: SessionHook) {
        match event {
            SessionEvent::BeforeFlush => self.before_flush.push(hook),
            SessionEvent::AfterFlush => self.after_flush.push(hook),
            SessionEvent::AfterCommit => self.after_commit.push(hook),
            SessionEvent::AfterRollback => self.after_rollback.push(hook),
        }
    }

    pub fn push_model<M: Model>(
        &mut self,
        event: ModelEvent,
        hook: impl Fn(&Session, &Obj<M>) -> Result<()> + Send + Sync + 'static,
    ) {
        let erased: ModelHook = Arc::new(move |session, any| match any.downcast_ref::<Obj<M>>() {
            Some(obj) => hook(session, obj),
            None => Ok(()),
        });
        self.model
            .entry((TypeId::of::<M>(), event))
            .or_default()
            .push(erased);
    }

    pub fn has(&self, event: SessionEvent) -> bool {
        !self.list(event).is_empty()
    }

    pub fn has_model(&self, model: TypeId, event: ModelEvent) -> bool {
        self.model.contains_key(&(model, event))
    }

    /// Runs the session hooks of `event`, stopping at the first error.
    pub fn run(&self, event: SessionEvent, session: &Session) -> Result<()> {
        for hook in self.list(event) {
            hook(session).map_err(|e| hook_error(event.name(), None, e))?;
        }
        Ok(())
    }

    /// Runs the closures registered for `M` and `event`.
    pub fn run_model<M: Model>(
        &self,
        event: ModelEvent,
        session: &Session,
        obj: &Obj<M>,
    ) -> Result<()> {
        if let Some(hooks) = self.model.get(&(TypeId::of::<M>(), event)) {
            for hook in hooks {
                hook(session, obj)
                    .map_err(|e| hook_error(event.name(), Some(M::table().model), e))?;
            }
        }
        Ok(())
    }
}

/// The error a failing hook becomes.
pub(crate) fn hook_error(event: &'static str, model: Option<&'static str>, e: Error) -> Error {
    Error::Hook {
        event,
        model,
        source: Arc::new(e),
    }
}

/// Runs every hook of `event` for `obj`: the model's [`ModelEvents`]
/// method, then the closures.
pub(crate) fn fire<M: Model>(event: ModelEvent, session: &Session, obj: &Obj<M>) -> Result<()> {
    if M::EVENTS {
        M::model_event(event, session, obj)
            .map_err(|e| hook_error(event.name(), Some(M::table().model), e))?;
    }
    if let Some(events) = session.inner.events.as_deref() {
        events.run_model(event, session, obj)?;
    }
    Ok(())
}

/// Whether anything listens to `event` for model `M` in this session.
pub(crate) fn listens<M: Model>(session: &Session, event: ModelEvent) -> bool {
    M::EVENTS
        || session
            .inner
            .events
            .as_deref()
            .is_some_and(|e| e.has_model(TypeId::of::<M>(), event))
}
