//! `merge`: copy a plain value's state into this session's own object.
//!
//! This is how objects move between threads: a `Session` and its `Obj`
//! handles stay on their thread, plain model values (`Clone + Send` data)
//! travel, and the receiving thread merges them into its own session.

use std::any::TypeId;

use crate::error::{Error, Result};
use crate::model::Model;

use super::identity_map::Identity;
use super::object::{downcast, Obj, ObjState};
use super::Session;

impl Session {
    /// Copies `value`'s state into this session and returns the session's
    /// object for it (SQLAlchemy's `Session.merge`, `load=True`):
    ///
    /// 1. autoflush;
    /// 2. the target is the object with the same key in the identity map (no
    ///    SQL), else the row loaded by key (one SELECT), else a new pending
    ///    object (no SQL at all when `value` has no key);
    /// 3. every column of `value` is copied onto the target like a normal
    ///    change, so the next flush UPDATEs only the columns that really
    ///    differ from the database.
    ///
    /// `value` itself is untouched and not attached. With a version column,
    /// a `value` whose version differs from the target's is
    /// [`Error::StaleData`]: it was read before someone else's update.
    pub fn merge<M: Model>(&self, value: &M) -> Result<Obj<M>> {
        self.autoflush()?;
        let table = M::table();
        let key = match value.primary_key() {
            Some(key) => key,
            None => return self.add(value.clone()),
        };
        let target = match self.get::<M>(key.clone())? {
            Some(t) => t,
            None => return self.add(value.clone()),
        };
        if target.state() == ObjState::Pending {
            copy_columns(&target, value, None)?;
            return Ok(target);
        }
        if let Some(v) = table.version {
            let current = target.read()?.column_value(v);
            let given = value.column_value(v);
            if current != given {
                return Err(Error::StaleData {
                    statement: "merge",
                    table: table.name,
                    key: key.to_string(),
                    expected: 1,
                    matched: 0,
                });
            }
        }
        copy_columns(&target, value, table.version)?;
        Ok(target)
    }

    /// Merges without loading (SQLAlchemy's `merge(load=False)`): no SQL and
    /// no autoflush. The object is stamped persistent and clean, as if just
    /// loaded with these values: for values from a cache or another thread
    /// that are known to match the database. A value with no key is an error.
    pub fn merge_no_load<M: Model>(&self, value: &M) -> Result<Obj<M>> {
        let table = M::table();
        if self.is_sharded() {
            return Err(Error::invalid(format!(
                "merge_no_load() cannot tell which shard a `{}` row lives on in a sharded \
                 session; use merge(), which asks the key chooser's shards",
                table.model
            )));
        }
        let key = value.primary_key().ok_or_else(|| {
            Error::invalid(format!(
                "merge_no_load() needs a `{}` value with its primary key set; use merge() or add() for new objects",
                table.model
            ))
        })?;
        let identity = Identity {
            model: TypeId::of::<M>(),
            key: key.clone(),
            shard: None,
        };
        let existing = {
            let st = self.state()?;
            self.check_usable(&st)?;
            st.map.get(&identity).cloned()
        };
        if let Some(obj) = existing.and_then(downcast::<M>) {
            if obj.is_modified() {
                return Err(Error::invalid(format!(
                    "merge_no_load(): the `{}` object with key {key} in this session has unflushed changes; flush or expire it first",
                    table.model
                )));
            }
            {
                let mut target =
                    obj.cell
                        .value
                        .try_borrow_mut()
                        .map_err(|_| Error::AlreadyBorrowed {
                            table: table.name,
                            action: "merging into it",
                        })?;
                for i in 0..table.columns.len() {
                    target.set_column_value(i, value.column_value(i))?;
                }
            }
            {
                let mut meta = obj.cell.meta.borrow_mut();
                meta.snapshot = None;
                meta.expired = false;
            }
            return Ok(obj);
        }
        let obj = Obj::new(value.clone());
        {
            let mut meta = obj.cell.meta.borrow_mut();
            meta.state = ObjState::Detached;
            meta.key = Some(key);
        }
        // Adding a detached object makes it persistent without SQL.
        self.add(&obj)
    }
}

/// Copies every column except `keep` from `value` onto `target` through
/// `write()`, so the change is tracked like any other.
fn copy_columns<M: Model>(target: &Obj<M>, value: &M, keep: Option<usize>) -> Result<()> {
    let mut t = target.write()?;
    for i in 0..M::table().columns.len() {
        if Some(i) != keep {
            t.set_column_value(i, value.column_value(i))?;
        }
    }
    Ok(())
}
