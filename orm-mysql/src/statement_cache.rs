//! [`StatementCache`]: a connection's prepared statements, by SQL text.
//!
//! The `mysql` crate has a statement cache of its own, but it reaches it
//! through `Queryable::prep`, which first scans the whole SQL text for
//! `:named` parameters (about 13 instructions a byte: 1,400 for a short
//! SELECT by key, over 300,000 for a 1,000-row INSERT) and then hashes it
//! with xxHash into an LRU list. The ORM never sends named parameters, so
//! this cache keeps each `mysql::Statement` by its text and executes it
//! directly; a hit costs one hash of the text.
//!
//! The driver's own cache is switched off (`stmt_cache_size(0)`, in the
//! connector): with both, the driver would close a statement it evicted
//! while this cache still held it. This cache therefore closes what it
//! evicts itself, so a connection never holds more than [`CAPACITY`]
//! statements open on the server (`max_prepared_stmt_count` is global).

use std::collections::HashMap;

use foldhash::fast::RandomState;

/// Statements kept open per connection (what the driver's cache kept).
pub(crate) const CAPACITY: usize = 128;

/// Prepared statements (`S`: `mysql::Statement`) by SQL text, least
/// recently used evicted first.
pub(crate) struct StatementCache<S = mysql::Statement> {
    by_sql: HashMap<Box<str>, Entry<S>, RandomState>,
    /// Counts uses, to find the least recently used entry.
    clock: u64,
    capacity: usize,
}

struct Entry<S> {
    statement: S,
    last_used: u64,
}

impl<S> StatementCache<S> {
    /// An empty cache that keeps at most `capacity` statements (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        StatementCache {
            by_sql: HashMap::default(),
            clock: 0,
            capacity: capacity.max(1),
        }
    }

    /// The statement prepared for `sql`, marked as just used.
    pub(crate) fn get(&mut self, sql: &str) -> Option<&S> {
        self.clock += 1;
        let entry = self.by_sql.get_mut(sql)?;
        entry.last_used = self.clock;
        Some(&entry.statement)
    }

    /// Keeps `statement`, prepared for `sql`. Returns the statement it
    /// evicted to make room, which the caller must close on the server.
    pub(crate) fn insert(&mut self, sql: &str, statement: S) -> Option<S> {
        let evicted = if self.by_sql.len() >= self.capacity && !self.by_sql.contains_key(sql) {
            self.evict_least_recent()
        } else {
            None
        };
        self.clock += 1;
        let entry = Entry {
            statement,
            last_used: self.clock,
        };
        // A statement replaced under the same text (not done by the
        // connection, which inserts only after a miss) is evicted too.
        match self.by_sql.insert(sql.into(), entry) {
            Some(old) => Some(old.statement),
            None => evicted,
        }
    }

    /// Forgets `sql`'s statement (after the server said it no longer knows it).
    pub(crate) fn remove(&mut self, sql: &str) -> Option<S> {
        self.by_sql.remove(sql).map(|e| e.statement)
    }

    /// How many statements are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_sql.len()
    }

    /// Removes the least recently used entry (a scan: only when a miss
    /// finds the cache full).
    fn evict_least_recent(&mut self) -> Option<S> {
        let oldest = self
            .by_sql
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(sql, _)| sql.clone())?;
        self.remove(&oldest)
    }
}

#[cfg(test)]
mod tests {
    use super::StatementCache;

    #[test]
    fn evicts_the_least_recently_used_statement() {
        let mut cache = StatementCache::<u32>::new(2);
        assert!(cache.insert("a", 1).is_none());
        assert!(cache.insert("b", 2).is_none());
        assert_eq!(cache.get("a"), Some(&1));
        let evicted = cache.insert("c", 3);
        assert_eq!(evicted, Some(2), "b was used least recently");
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none());
        assert_eq!(cache.get("c"), Some(&3));
        assert_eq!(cache.remove("a"), Some(1));
        assert!(cache.get("a").is_none());
    }
}
