//! Hash maps and sets with foldhash instead of the standard SipHash.
//!
//! The flush, the relationship loaders and the identity map hash object
//! pointers and key values once per object: SipHash showed in the workloads
//! bench's profiles (W4, W7). foldhash is several times faster and still
//! seeded per process, so values read from the database cannot be chosen to
//! collide (the reason not to use an unseeded hash such as FxHash).

/// The hasher builder: seeded per process.
pub(crate) type FastState = foldhash::fast::RandomState;

/// A `HashMap` with [`FastState`]; build it with `default()`.
pub(crate) type FastHashMap<K, V> = std::collections::HashMap<K, V, FastState>;

/// A `HashSet` with [`FastState`]; build it with `default()`.
pub(crate) type FastHashSet<K> = std::collections::HashSet<K, FastState>;
