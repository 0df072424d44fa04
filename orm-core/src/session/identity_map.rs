//! The identity map: one live object per (model, primary key, shard) per session.
//!
//! It holds its objects strongly: an object stays in the map, and in memory,
//! until it is expunged, deleted, or the session is closed. (SQLAlchemy holds
//! unmodified objects weakly; a Rust session is usually short-lived and
//! explicit `expunge_all()` is available for long ones.)

use std::any::TypeId;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::rc::Rc;

use crate::model::Key;

use super::object::AnyObj;

/// The map's key: which model, which row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    pub model: TypeId,
    pub key: Key,
    /// The shard, in a sharded session (the same key on two shards is two rows).
    pub shard: Option<u16>,
}

/// Loading a row hashes its key once; the default SipHash was a fifth of the
/// time of loading 10,000 rows. foldhash is several times faster and still
/// seeded per process, so keys read from the database cannot be chosen to
/// collide (the reason not to use an unseeded hash such as FxHash).
type Hasher = foldhash::fast::RandomState;

#[derive(Default)]
pub(crate) struct IdentityMap {
    objects: HashMap<Identity, Rc<dyn AnyObj>, Hasher>,
}

impl IdentityMap {
    /// The slot for `identity`: one hash for a lookup followed by an insert.
    pub fn entry(&mut self, identity: Identity) -> Entry<'_, Identity, Rc<dyn AnyObj>> {
        self.objects.entry(identity)
    }

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
