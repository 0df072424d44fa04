//! The identity map: one live object per (model, primary key, shard) per session.
//!
//! It holds its objects strongly: an object stays in the map, and in memory,
//! until it is expunged, deleted, or the session is closed. (SQLAlchemy holds
//! unmodified objects weakly; a Rust session is usually short-lived and
//! explicit `expunge_all()` is available for long ones.)

use std::any::TypeId;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;

use hashbrown::HashTable;

use crate::model::Key;
use crate::value::Value;

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

/// One slot of a model's map: the object and its key's hash. The key itself
/// is the object's own (`Meta::key`), not a second copy: 24 bytes a slot
/// instead of 48 with the key beside the object (0.4 MB of the workloads
/// bench's 10,000 loaded objects). The hash is kept so that growing the
/// table never needs to read an object.
struct Slot {
    hash: u64,
    obj: Rc<dyn AnyObj>,
}

/// What [`ModelMap::entry`] found: the key's object, or its place.
pub(crate) enum Entry<'a> {
    Found(&'a Rc<dyn AnyObj>),
    Vacant(Vacant<'a>),
}

/// The place of a key the map does not hold.
pub(crate) struct Vacant<'a> {
    hash: u64,
    place: hashbrown::hash_table::VacantEntry<'a, Slot>,
}

impl Vacant<'_> {
    /// Puts `obj` there; its `Meta::key` must be the key looked up.
    pub fn insert(self, obj: Rc<dyn AnyObj>) {
        self.place.insert(Slot {
            hash: self.hash,
            obj,
        });
    }
}

/// Whether `obj` is the object of `key` (its hash `hash` already matched).
/// An object is in a map only under the key its `Meta` holds (the flush,
/// rollback and `add` change `Meta::key` only while the object is out of
/// the map). Its `Meta` is never mutably borrowed across a map operation;
/// were it, the equal 64-bit seeded hash is taken as the answer.
fn holds(slot: &Slot, hash: u64, key: &Key) -> bool {
    if slot.hash != hash {
        return false;
    }
    match slot.obj.meta().try_borrow() {
        Ok(meta) => meta.key.as_ref() == Some(key),
        Err(_) => {
            debug_assert!(
                false,
                "an object's Meta is borrowed during an identity-map lookup"
            );
            true
        }
    }
}

/// One model's objects (on one shard), found by key.
#[derive(Default)]
pub(crate) struct ModelMap {
    slots: HashTable<Slot>,
    hasher: Hasher,
}

impl ModelMap {
    /// `key`'s hash, for [`ModelMap::find`] and [`ModelMap::insert_new`]
    /// (a loader hashes each row's key once).
    pub fn hash(&self, key: &Key) -> u64 {
        match key.values() {
            [Value::Int(i)] => self.integer_hash(*i as u64),
            [Value::UInt(u)] => self.integer_hash(*u),
            _ => self.hasher.hash_one(key),
        }
    }

    /// The hash of a one-integer key: consecutive keys get neighbouring
    /// slots, and keys chosen to collide still do not.
    ///
    /// The table finds a slot from the hash's low bits. A scattering hash
    /// sends consecutive keys (auto-increment ids, loaded in key order) to
    /// random slots: at 100,000 loaded objects the table (3 MB) no longer
    /// fits in cache and nearly every insert misses it (W2 took 12.5x its
    /// 10,000-row time on linear instruction counts). Here the low 3 bits
    /// are the key's own, permuted within each run of 8 consecutive keys
    /// (8 adjacent slots, 192 bytes), and the bits above are the
    /// per-process seeded hash of the run's number: keys cannot be chosen
    /// to collide without the seed (within a run the mapping is
    /// one-to-one). The top 7 bits, which the table keeps per slot to tell
    /// keys apart before comparing them, mix every bit of the key.
    /// Measured at N = 100,000, three alternating rounds of 5 runs: W2's
    /// ORM median 118-124 ms with foldhash alone, 96-108 ms with runs of
    /// 16 (the raw side's 57-62 ms). Runs of 8 leave room in the table's
    /// 16-slot probe window for a second run placed there: with runs of 16
    /// that run had to probe further, and how often depended on the seed
    /// (W2's map work, 10,000 rows: 4.2-6.2 M instructions with 16, a
    /// steady 4.0 M with 8; at N = 100,000 no slower).
    fn integer_hash(&self, x: u64) -> u64 {
        const RUN_BITS: u32 = 3;
        const TAG: u64 = 0x7F << 57;
        let run = self.hasher.hash_one(x >> RUN_BITS);
        // The table indexes by the low bits. foldhash's last step leaves
        // them weak for run numbers that share their low bits under about
        // 2% of process seeds (1,000 such keys took ~500 distinct places):
        // fold the high half in.
        let run = run ^ (run >> 32);
        let within = (x ^ run) & ((1 << RUN_BITS) - 1);
        let h = (run << RUN_BITS) | within;
        let tag = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) & TAG;
        (h & !TAG) | tag
    }

    /// The object of `key`, whose hash is `hash`.
    pub fn find(&self, hash: u64, key: &Key) -> Option<&Rc<dyn AnyObj>> {
        self.slots
            .find(hash, |slot| holds(slot, hash, key))
            .map(|slot| &slot.obj)
    }

    pub fn get(&self, key: &Key) -> Option<&Rc<dyn AnyObj>> {
        self.find(self.hash(key), key)
    }

    /// The object of `key` (whose hash is `hash`), or the place for one:
    /// a loader looks a row's key up and adds its new object in one probe
    /// of the table, not a failed `find` and then an insert (~100
    /// instructions a loaded row).
    pub fn entry(&mut self, hash: u64, key: &Key) -> Entry<'_> {
        match self
            .slots
            .entry(hash, |slot| holds(slot, hash, key), |slot| slot.hash)
        {
            hashbrown::hash_table::Entry::Occupied(slot) => Entry::Found(&slot.into_mut().obj),
            hashbrown::hash_table::Entry::Vacant(place) => Entry::Vacant(Vacant { hash, place }),
        }
    }

    /// Puts `obj` under `key` (its `Meta::key`), replacing the object the
    /// key had.
    pub fn insert(&mut self, key: &Key, obj: Rc<dyn AnyObj>) {
        let hash = self.hash(key);
        match self
            .slots
            .entry(hash, |slot| holds(slot, hash, key), |slot| slot.hash)
        {
            hashbrown::hash_table::Entry::Occupied(mut slot) => slot.get_mut().obj = obj,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(Slot { hash, obj });
            }
        }
    }

    pub fn remove(&mut self, key: &Key) -> Option<Rc<dyn AnyObj>> {
        let hash = self.hash(key);
        match self.slots.find_entry(hash, |slot| holds(slot, hash, key)) {
            Ok(slot) => Some(slot.remove().0.obj),
            Err(_) => None,
        }
    }

    /// Makes room for `additional` more objects at once (a flush's
    /// INSERTs), instead of growing the table step by step.
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional, |slot| slot.hash);
    }

    /// Removes `obj` if it is the object of `key`.
    fn remove_obj(&mut self, key: &Key, obj: &Rc<dyn AnyObj>) {
        let hash = self.hash(key);
        if let Ok(slot) = self
            .slots
            .find_entry(hash, |slot| slot.hash == hash && Rc::ptr_eq(&slot.obj, obj))
        {
            slot.remove();
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// One map per model (per model and shard in a sharded session), keyed by
/// the key alone.
#[derive(Default)]
pub(crate) struct IdentityMap {
    models: HashMap<(TypeId, Option<u16>), ModelMap, Hasher>,
    /// How many times a model's map was handed out for change
    /// ([`model_mut`](Self::model_mut), the only way in for an object): a
    /// reader that found a model's map empty knows it still is while this
    /// count has not moved.
    opened: u64,
}

impl IdentityMap {
    /// One model's objects (on one shard, in a sharded session), for a
    /// loader that looks up many keys of the model (one hash of the model
    /// per query instead of per row).
    pub fn model_mut(&mut self, model: TypeId, shard: Option<u16>) -> &mut ModelMap {
        self.opened += 1;
        self.models.entry((model, shard)).or_default()
    }

    /// See [`IdentityMap::opened`](Self).
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// One model's objects (on one shard), to read.
    pub fn model(&self, model: TypeId, shard: Option<u16>) -> Option<&ModelMap> {
        self.models.get(&(model, shard))
    }

    pub fn get(&self, identity: &Identity) -> Option<&Rc<dyn AnyObj>> {
        self.models
            .get(&(identity.model, identity.shard))?
            .get(&identity.key)
    }

    /// Puts `obj` under `identity`, whose key must be `obj`'s `Meta::key`.
    pub fn insert(&mut self, identity: Identity, obj: Rc<dyn AnyObj>) {
        debug_assert!(
            obj.meta()
                .try_borrow()
                .map_or(true, |m| m.key.as_ref() == Some(&identity.key)),
            "an object enters the identity map under its own key"
        );
        self.model_mut(identity.model, identity.shard)
            .insert(&identity.key, obj);
    }

    /// Removes `obj`'s entry, if the map holds `obj` itself under its
    /// identity (not another object of the same key).
    pub fn remove_obj(&mut self, obj: &Rc<dyn AnyObj>) {
        if let Some(identity) = super::transaction::identity_of(obj) {
            if let Some(objects) = self.models.get_mut(&(identity.model, identity.shard)) {
                objects.remove_obj(&identity.key, obj);
            }
        }
    }

    pub fn remove(&mut self, identity: &Identity) -> Option<Rc<dyn AnyObj>> {
        self.models
            .get_mut(&(identity.model, identity.shard))?
            .remove(&identity.key)
    }

    pub fn len(&self) -> usize {
        self.models.values().map(ModelMap::len).sum()
    }

    pub fn values(&self) -> impl Iterator<Item = &Rc<dyn AnyObj>> {
        self.models
            .values()
            .flat_map(|objects| objects.slots.iter().map(|slot| &slot.obj))
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Rc<dyn AnyObj>> + '_ {
        self.models
            .drain()
            .flat_map(|(_, objects)| objects.slots.into_iter().map(|slot| slot.obj))
    }
}

#[cfg(test)]
mod tests {
    use super::ModelMap;
    use crate::model::Key;

    const TAG: u64 = 0x7F << 57;

    /// 8 consecutive keys take 8 adjacent slots, one each.
    #[test]
    fn a_run_of_consecutive_keys_takes_adjacent_slots() {
        let map = ModelMap::default();
        let hashes: Vec<u64> = (32..40).map(|k: i64| map.hash(&Key::single(k))).collect();
        let run = hashes[0] & !TAG & !7;
        assert!(hashes.iter().all(|h| h & !TAG & !7 == run));
        let mut slots: Vec<u64> = hashes.iter().map(|h| h & 7).collect();
        slots.sort_unstable();
        assert_eq!(slots, (0..8).collect::<Vec<u64>>());
    }

    /// Keys that agree in their low bits (the keys an attacker would pick
    /// against a hash that keeps them) still spread over the table.
    #[test]
    fn keys_with_equal_low_bits_spread() {
        // Each such key starts a run of its own, so what must spread is the
        // run's 8 slots: in a table of 2^19 slots (2^16 runs), 1,000 random
        // runs are about 992 distinct ones.
        let map = ModelMap::default();
        let group = |h: u64| (h & ((1u64 << 19) - 1)) >> 3;
        let mut groups: Vec<u64> = (0..1000i64)
            .map(|i| group(map.hash(&Key::single(i << 20))))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        assert!(
            groups.len() > 950,
            "{} distinct groups of 1000",
            groups.len()
        );
        // The tags (top 7 bits) vary too.
        let mut tags: Vec<u64> = (0..1000i64)
            .map(|i| map.hash(&Key::single(i)) >> 57)
            .collect();
        tags.sort_unstable();
        tags.dedup();
        assert!(tags.len() > 100, "{} distinct tags", tags.len());
    }

    /// Text and composite keys keep the seeded hash.
    #[test]
    fn other_keys_hash_as_before() {
        let map = ModelMap::default();
        let a = Key::single("a".to_string());
        assert_eq!(map.hash(&a), map.hash(&a.clone()));
        assert_ne!(map.hash(&a), map.hash(&Key::single("b".to_string())));
    }
}
