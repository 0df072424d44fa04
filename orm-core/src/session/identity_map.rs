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

/// One model's objects by key.
pub(crate) type ModelMap = HashMap<Key, Rc<dyn AnyObj>, Hasher>;

/// One map per model (per model and shard in a sharded session), keyed by
/// the key alone: a bucket holds the key and the object (48 bytes), not the
/// model's `TypeId` and shard beside them in every bucket (64 bytes; 0.26 MB
/// of the workloads bench's 10,000 loaded objects).
#[derive(Default)]
pub(crate) struct IdentityMap {
    models: HashMap<(TypeId, Option<u16>), ModelMap, Hasher>,
}

impl IdentityMap {
    /// The slot for `identity`'s key among its model's objects: one hash of
    /// the key for a lookup followed by an insert.
    pub fn entry(&mut self, identity: Identity) -> Entry<'_, Key, Rc<dyn AnyObj>> {
        self.models
            .entry((identity.model, identity.shard))
            .or_default()
            .entry(identity.key)
    }

    /// One model's objects (on one shard, in a sharded session), for a
    /// loader that looks up many keys of the model (one hash of the model
    /// per query instead of per row).
    pub fn model_mut(&mut self, model: TypeId, shard: Option<u16>) -> &mut ModelMap {
        self.models.entry((model, shard)).or_default()
    }

    pub fn get(&self, identity: &Identity) -> Option<&Rc<dyn AnyObj>> {
        self.models
            .get(&(identity.model, identity.shard))?
            .get(&identity.key)
    }

    pub fn insert(&mut self, identity: Identity, obj: Rc<dyn AnyObj>) {
        self.models
            .entry((identity.model, identity.shard))
            .or_default()
            .insert(identity.key, obj);
    }

    /// Removes `obj`'s entry, if the map holds `obj` itself under its
    /// identity (not another object of the same key).
    pub fn remove_obj(&mut self, obj: &Rc<dyn AnyObj>) {
        if let Some(identity) = super::transaction::identity_of(obj) {
            if self.get(&identity).is_some_and(|o| Rc::ptr_eq(o, obj)) {
                self.remove(&identity);
            }
        }
    }

    pub fn remove(&mut self, identity: &Identity) -> Option<Rc<dyn AnyObj>> {
        self.models
            .get_mut(&(identity.model, identity.shard))?
            .remove(&identity.key)
    }

    pub fn len(&self) -> usize {
        self.models.values().map(HashMap::len).sum()
    }

    pub fn values(&self) -> impl Iterator<Item = &Rc<dyn AnyObj>> {
        self.models.values().flat_map(HashMap::values)
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Rc<dyn AnyObj>> + '_ {
        self.models
            .drain()
            .flat_map(|(_, objects)| objects.into_values())
    }
}
