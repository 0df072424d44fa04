//! Several engines in one session: binds per model (SQLAlchemy's
//! `Session(binds={User: engine1, Order: engine2})`) and horizontal shards
//! (SQLAlchemy's `ext.horizontal_shard`).
//!
//! A session knows a list of engines: index 0 is the default (the factory's
//! engine, or the first shard). Each model's table is routed to one of them
//! ([`SessionFactory::bind`](super::SessionFactory::bind)); in a sharded
//! session ([`SessionFactory::sharded`](super::SessionFactory::sharded)) each
//! object is routed to the engine of its shard instead. The transaction holds
//! one connection per engine it used, checked out at that engine's first
//! statement (see `transaction.rs`).

use std::fmt;
use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::expr::Expr;
use crate::model::{Key, TableDef};
use crate::value::Value;

/// The name of one shard (a cheap-to-clone string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(Arc<str>);

impl ShardId {
    /// A shard id.
    pub fn new(name: impl AsRef<str>) -> ShardId {
        ShardId(Arc::from(name.as_ref()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardId({:?})", &*self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ShardId {
    fn from(s: &str) -> ShardId {
        ShardId::new(s)
    }
}

impl From<String> for ShardId {
    fn from(s: String) -> ShardId {
        ShardId(Arc::from(s))
    }
}

/// Chooses the shard of a new object from its table and column values (in field order).
pub type ShardForNew = Arc<dyn Fn(&'static TableDef, &[Value]) -> ShardId + Send + Sync>;
/// Chooses the shards `get` tries, in order, for a primary key.
pub type ShardsForKey = Arc<dyn Fn(&'static TableDef, &Key) -> Vec<ShardId> + Send + Sync>;
/// Chooses the shards a query runs on, from its filters.
pub type ShardsForQuery = Arc<dyn Fn(&'static TableDef, &[Expr]) -> Vec<ShardId> + Send + Sync>;

/// How a sharded session routes objects, keys and queries (SQLAlchemy's
/// `shard_chooser`, `identity_chooser` and `execute_chooser`).
///
/// ```ignore
/// let rules = ShardRules::new(|_table, values| {
///     // the first column is the key: even keys on "a", odd ones on "b"
///     if matches!(values[0], Value::Int(k) if k % 2 == 0) { "a".into() } else { "b".into() }
/// })
/// .key_chooser(|_table, key| vec![ShardId::new("a"), ShardId::new("b")]);
/// ```
#[derive(Clone)]
pub struct ShardRules {
    pub(crate) for_new: ShardForNew,
    pub(crate) for_key: Option<ShardsForKey>,
    pub(crate) for_query: Option<ShardsForQuery>,
}

impl ShardRules {
    /// Rules whose new objects go where `for_new` says; `get` and queries
    /// try every shard until [`key_chooser`](Self::key_chooser) and
    /// [`query_chooser`](Self::query_chooser) say otherwise.
    pub fn new(
        for_new: impl Fn(&'static TableDef, &[Value]) -> ShardId + Send + Sync + 'static,
    ) -> ShardRules {
        ShardRules {
            for_new: Arc::new(for_new),
            for_key: None,
            for_query: None,
        }
    }

    /// The shards `get` tries for a key, in order (the first that has the
    /// row wins). An empty list means every shard.
    pub fn key_chooser(
        mut self,
        f: impl Fn(&'static TableDef, &Key) -> Vec<ShardId> + Send + Sync + 'static,
    ) -> ShardRules {
        self.for_key = Some(Arc::new(f));
        self
    }

    /// The shards a query runs on, from its filters (`Query::on_shard`
    /// overrides it). An empty list means every shard.
    pub fn query_chooser(
        mut self,
        f: impl Fn(&'static TableDef, &[Expr]) -> Vec<ShardId> + Send + Sync + 'static,
    ) -> ShardRules {
        self.for_query = Some(Arc::new(f));
        self
    }
}

impl fmt::Debug for ShardRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardRules")
            .field("key_chooser", &self.for_key.is_some())
            .field("query_chooser", &self.for_query.is_some())
            .finish()
    }
}

/// One engine the session may use.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub engine: Engine,
}

/// Which engine each table (or shard) uses.
#[derive(Debug, Clone)]
pub(crate) struct Binds {
    /// Index 0 is the default engine; for a sharded session, shard `i` is engine `i`.
    pub engines: Vec<Bound>,
    /// Table name → engine index (a few entries: a linear scan).
    by_table: Vec<(&'static str, usize)>,
    /// Shard `i`'s id is `shards[i]`; empty when not sharded.
    pub shard_ids: Vec<ShardId>,
    pub rules: Option<ShardRules>,
    /// Open every engine's transaction with `XA START` and commit in two phases.
    pub two_phase: bool,
}

/// The index of an engine in the session's list (0: the default).
pub(crate) type BindIdx = usize;

impl Binds {
    pub fn new(engine: Engine) -> Binds {
        Binds {
            engines: vec![Bound { engine }],
            by_table: Vec::new(),
            shard_ids: Vec::new(),
            rules: None,
            two_phase: false,
        }
    }

    /// Sharded: shard `i` on engine `i`.
    pub fn sharded(shards: Vec<(ShardId, Engine)>, rules: ShardRules) -> Result<Binds> {
        if shards.is_empty() {
            return Err(Error::invalid(
                "SessionFactory::sharded needs at least one (shard id, engine) pair",
            ));
        }
        let mut engines = Vec::with_capacity(shards.len());
        let mut ids: Vec<ShardId> = Vec::with_capacity(shards.len());
        for (id, engine) in shards {
            if ids.contains(&id) {
                return Err(Error::invalid(format!(
                    "shard '{id}' is listed twice in SessionFactory::sharded; give each shard one engine"
                )));
            }
            engines.push(Bound { engine });
            ids.push(id);
        }
        if ids.len() >= usize::from(u16::MAX) {
            return Err(Error::invalid("too many shards (at most 65534)"));
        }
        Ok(Binds {
            engines,
            by_table: Vec::new(),
            shard_ids: ids,
            rules: Some(rules),
            two_phase: false,
        })
    }

    /// Routes `table` to `engine` (reusing the engine's index if it is already known).
    pub fn bind(&mut self, table: &'static str, engine: Engine) {
        let idx = match self.engines.iter().position(|b| b.engine.ptr_eq(&engine)) {
            Some(i) => i,
            None => {
                self.engines.push(Bound { engine });
                self.engines.len() - 1
            }
        };
        self.by_table.retain(|(t, _)| *t != table);
        self.by_table.push((table, idx));
    }

    pub fn is_sharded(&self) -> bool {
        self.rules.is_some()
    }

    /// The engine of `table`'s rows (on `shard` in a sharded session).
    pub fn for_table(&self, table: &str, shard: Option<u16>) -> BindIdx {
        if let Some(s) = shard {
            return usize::from(s);
        }
        self.by_table
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, i)| *i)
    }

    pub fn engine(&self, idx: BindIdx) -> &Engine {
        &self.engines[idx.min(self.engines.len() - 1)].engine
    }

    /// How errors name engine `idx`: its description (password masked),
    /// with the shard id in a sharded session.
    pub fn name(&self, idx: BindIdx) -> String {
        let Some(bound) = self.engines.get(idx) else {
            return format!("engine #{idx}");
        };
        match self.shard_ids.get(idx) {
            Some(id) => format!("shard '{id}' ({})", bound.engine.describe()),
            None => bound.engine.describe(),
        }
    }

    /// The index of shard `id`, or an error naming the known shards.
    pub fn shard_index(&self, id: &ShardId) -> Result<u16> {
        match self.shard_ids.iter().position(|s| s == id) {
            // Fewer than u16::MAX shards (checked in `sharded`).
            Some(i) => Ok(i as u16),
            None if self.shard_ids.is_empty() => Err(Error::invalid(format!(
                "shard '{id}' was named, but this session is not sharded; make its factory with \
                 SessionFactory::sharded"
            ))),
            None => Err(Error::invalid(format!(
                "unknown shard '{id}'; this session's shards are: {}",
                self.shard_ids
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    pub fn shard_id(&self, idx: u16) -> Option<&ShardId> {
        self.shard_ids.get(usize::from(idx))
    }

    /// Shard indexes for a chooser's answer (empty: every shard).
    pub fn shard_indexes(&self, ids: Vec<ShardId>) -> Result<Vec<u16>> {
        if ids.is_empty() {
            return Ok((0..self.shard_ids.len()).map(|i| i as u16).collect());
        }
        let mut out: Vec<u16> = Vec::with_capacity(ids.len());
        for id in &ids {
            let i = self.shard_index(id)?;
            if !out.contains(&i) {
                out.push(i);
            }
        }
        Ok(out)
    }
}
