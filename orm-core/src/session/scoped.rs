//! A registry of sessions, one per thread (SQLAlchemy's `scoped_session`).
//!
//! ```ignore
//! static SESSIONS: OnceLock<ScopedSession> = OnceLock::new();
//! // in any thread:
//! let s = SESSIONS.get().unwrap().current();   // this thread's session
//! s.add(user)?;
//! SESSIONS.get().unwrap().remove();            // at the end of the request
//! ```
//!
//! The registry itself is `Send + Sync` and meant to be shared (a static or
//! an `Arc`); the sessions it hands out stay on their thread, as sessions
//! must. A thread that ends drops its sessions, which returns their
//! connections to the pool.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Result;
use crate::model::{IntoKey, Model};

use super::object::Obj;
use super::{Session, SessionFactory};

static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// (registry id, scope) -> that thread's session.
    static SESSIONS: RefCell<HashMap<(u64, String), Session>> = RefCell::new(HashMap::new());
}

/// Gives each thread (or each caller-defined scope within a thread) its own
/// session from one factory.
#[derive(Clone)]
pub struct ScopedSession {
    id: u64,
    factory: SessionFactory,
    scope: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

impl fmt::Debug for ScopedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedSession")
            .field("id", &self.id)
            .field("factory", &self.factory)
            .finish()
    }
}

impl ScopedSession {
    /// One session per thread.
    pub fn new(factory: SessionFactory) -> Self {
        ScopedSession {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            factory,
            scope: None,
        }
    }

    /// One session per value of `scope()` (a request id, say) within each
    /// thread (SQLAlchemy's `scopefunc`). Sessions never cross threads.
    pub fn with_scope(
        factory: SessionFactory,
        scope: impl Fn() -> String + Send + Sync + 'static,
    ) -> Self {
        ScopedSession {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            factory,
            scope: Some(Arc::new(scope)),
        }
    }

    fn key(&self) -> (u64, String) {
        (
            self.id,
            self.scope.as_ref().map(|f| f()).unwrap_or_default(),
        )
    }

    /// The current scope's session, made on first use.
    pub fn current(&self) -> Session {
        let key = self.key();
        SESSIONS.with(|m| {
            m.borrow_mut()
                .entry(key)
                .or_insert_with(|| self.factory.session())
                .clone()
        })
    }

    /// Whether the current scope has a session.
    pub fn has_current(&self) -> bool {
        let key = self.key();
        SESSIONS.with(|m| m.borrow().contains_key(&key))
    }

    /// Closes the current scope's session (rolling back anything
    /// uncommitted, returning its connection) and forgets it; the next
    /// `current()` makes a fresh one.
    pub fn remove(&self) {
        let key = self.key();
        let session = SESSIONS.with(|m| m.borrow_mut().remove(&key));
        if let Some(s) = session {
            s.close();
        }
    }

    /// Runs `work` with the current session.
    pub fn with<T>(&self, work: impl FnOnce(&Session) -> T) -> T {
        work(&self.current())
    }

    /// `current().add(value)`.
    pub fn add<M: Model>(&self, value: impl Into<Obj<M>>) -> Result<Obj<M>> {
        self.current().add(value)
    }

    /// `current().get(key)`.
    pub fn get<M: Model>(&self, key: impl IntoKey) -> Result<Option<Obj<M>>> {
        self.current().get(key)
    }

    /// `current().merge(value)`.
    pub fn merge<M: Model>(&self, value: &M) -> Result<Obj<M>> {
        self.current().merge(value)
    }

    /// `current().delete(obj)`.
    pub fn delete<M: Model>(&self, obj: &Obj<M>) -> Result<()> {
        self.current().delete(obj)
    }

    /// `current().flush()`.
    pub fn flush(&self) -> Result<()> {
        self.current().flush()
    }

    /// `current().commit()`.
    pub fn commit(&self) -> Result<()> {
        self.current().commit()
    }

    /// `current().rollback()`.
    pub fn rollback(&self) -> Result<()> {
        self.current().rollback()
    }
}
