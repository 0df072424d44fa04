//! The identity map: one live object per (model, primary key) per session.
//!
//! It holds its objects strongly: an object stays in the map, and in memory,
//! until it is expunged, deleted, or the session is closed. (SQLAlchemy holds
//! unmodified objects weakly; a Rust session is usually short-lived and
//! explicit `expunge_all()` is available for long ones.)

use std::any::TypeId;
use std::collections::HashMap;
use std::rc::Rc;

use crate::model::Key;

use super::object::AnyObj;

/// The map's key: which model, which row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    pub model: TypeId,
    pub key: Key,
}

#[derive(Default)]
pub(crate) struct IdentityMap {
    objects: HashMap<Identity, Rc<dyn AnyObj>>,
}

impl IdentityMap {
    pub fn get(&self, identity: &Identity) -> Option<&Rc<dyn AnyObj>> {
        self.objects.get(identity)
    }

    pub fn insert(&mut self, identity: Identity, obj: Rc<dyn AnyObj>) {
        self.objects.insert(identity, obj);
    }

    pub fn remove(&mut self, identity: &Identity) -> Option<Rc<dyn AnyObj>> {
        self.objects.remove(identity)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn values(&self) -> impl Iterator<Item = &Rc<dyn AnyObj>> {
        self.objects.values()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Rc<dyn AnyObj>> + '_ {
        self.objects.drain().map(|(_, v)| v)
    }
}
