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
