//! SQL texts an engine builds once and reuses: the statements the session
//! sends by key (`get`, refresh, lazy loads, the single-row UPDATE).
//!
//! Their text depends only on the table, the statement's shape and the
//! engine's dialect, yet building it (quoting every column name) cost about
//! 1,100 instructions per `get`, a tenth of the whole lookup besides the
//! driver's own work (workloads bench, W3 and W6). The engine keeps each
//! text behind an `Arc<str>` the first time it is built.
//!
//! The cache is bounded ([`MAX_TEXTS`]): the shapes are finite (tables ×
//! statement kinds × the column sets UPDATEs write), but an application
//! writing many different column sets of wide tables could otherwise grow
//! it without end; past the bound, texts are built per use as before.

use std::sync::{Arc, RwLock};

use crate::backend::Dialect;
use crate::fast_hash::FastHashMap;
use crate::model::TableDef;

/// At most this many texts per engine.
pub(crate) const MAX_TEXTS: usize = 4096;

/// What a text is: its table (by address: a model's `TableDef` is a
/// `static`, and two tables at one address have the same contents, so the
/// same text) and the statement's shape.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct SqlKey {
    table: usize,
    shape: Shape,
}

/// The statement shapes that are cached.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Shape {
    /// `SELECT <columns> FROM t WHERE <key> = ?`
    SelectByKey,
    /// `SELECT <columns> FROM t WHERE <column> = ?` (a collection's lazy load).
    SelectWhere(usize),
    /// `UPDATE t SET <columns> = ? [, version] WHERE <key> = ? [AND version = ?]`
    /// of the columns in the mask (indices below 64).
    UpdateByKey(u64),
}

impl SqlKey {
    /// `SELECT` of every column by the primary key.
    pub fn select_by_key(table: &'static TableDef) -> SqlKey {
        SqlKey::new(table, Shape::SelectByKey)
    }

    /// `SELECT` of every column by one column's value.
    pub fn select_where(table: &'static TableDef, column: usize) -> SqlKey {
        SqlKey::new(table, Shape::SelectWhere(column))
    }

    /// The single-row UPDATE of `columns`; `None` (not cached) unless they
    /// are in ascending order (the text sets them in the order given, the
    /// mask does not keep it) and each index is below 64.
    pub fn update_by_key(table: &'static TableDef, columns: &[usize]) -> Option<SqlKey> {
        let mut mask = 0u64;
        for &c in columns {
            if c >= 64 || mask >> c != 0 {
                return None;
            }
            mask |= 1 << c;
        }
        Some(SqlKey::new(table, Shape::UpdateByKey(mask)))
    }

    fn new(table: &'static TableDef, shape: Shape) -> SqlKey {
        SqlKey {
            table: table as *const TableDef as usize,
            shape,
        }
    }
}

/// An engine's texts.
#[derive(Default)]
pub(crate) struct SqlTexts {
    texts: RwLock<FastHashMap<SqlKey, Arc<str>>>,
}

impl SqlTexts {
    /// The text for `key`, built by `build` with `dialect` the first time.
    pub fn get_or_build(
        &self,
        key: SqlKey,
        dialect: &dyn Dialect,
        build: impl FnOnce(&dyn Dialect) -> String,
    ) -> Arc<str> {
        // A poisoned lock only means a panic elsewhere while it was held;
        // the map is never left half-written, so it is used as it is.
        if let Some(text) = self
            .texts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
        {
            return text.clone();
        }
        let text: Arc<str> = build(dialect).into();
        let mut texts = self
            .texts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if texts.len() < MAX_TEXTS {
            texts.entry(key).or_insert_with(|| text.clone());
        }
        text
    }

    /// How many texts are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.texts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ColumnDef;
    use std::cell::Cell;

    use crate::schema::tests::TestDialect;

    static USERS: TableDef = TableDef {
        name: "users",
        model: "User",
        columns: &[],
        primary_key: &[],
        auto_increment: None,
        version: None,
        foreign_keys: &[],
        relationships: &[],
    };
    static POSTS: TableDef = TableDef {
        name: "posts",
        model: "Post",
        columns: &[] as &[ColumnDef],
        primary_key: &[],
        auto_increment: None,
        version: None,
        foreign_keys: &[],
        relationships: &[],
    };

    #[test]
    fn a_text_is_built_once_per_table_and_shape() {
        let texts = SqlTexts::default();
        let builds = Cell::new(0);
        let text = |key: SqlKey, what: &str| {
            texts.get_or_build(key, &TestDialect, |_| {
                builds.set(builds.get() + 1);
                what.to_owned()
            })
        };
        assert_eq!(&*text(SqlKey::select_by_key(&USERS), "u"), "u");
        assert_eq!(&*text(SqlKey::select_by_key(&USERS), "again"), "u");
        assert_eq!(&*text(SqlKey::select_by_key(&POSTS), "p"), "p");
        assert_eq!(&*text(SqlKey::select_where(&POSTS, 1), "p1"), "p1");
        assert_eq!(&*text(SqlKey::select_where(&POSTS, 2), "p2"), "p2");
        let update = |cols: &[usize]| SqlKey::update_by_key(&USERS, cols);
        assert_eq!(&*text(update(&[1, 3]).unwrap(), "u13"), "u13");
        assert_eq!(&*text(update(&[1, 3]).unwrap(), "again"), "u13");
        assert_eq!(&*text(update(&[1]).unwrap(), "u1"), "u1");
        assert_eq!(builds.get(), 6);
        assert_eq!(texts.len(), 6);
    }

    #[test]
    fn updates_out_of_order_or_past_64_columns_are_not_cached() {
        assert!(SqlKey::update_by_key(&USERS, &[3, 1]).is_none());
        assert!(SqlKey::update_by_key(&USERS, &[1, 1]).is_none());
        assert!(SqlKey::update_by_key(&USERS, &[2, 64]).is_none());
        assert!(SqlKey::update_by_key(&USERS, &[0, 63]).is_some());
    }

    #[test]
    fn past_the_bound_texts_are_built_per_use() {
        let texts = SqlTexts::default();
        for c in 0..MAX_TEXTS + 10 {
            texts.get_or_build(SqlKey::select_where(&USERS, c), &TestDialect, |_| {
                c.to_string()
            });
        }
        assert_eq!(texts.len(), MAX_TEXTS);
        let late = SqlKey::select_where(&USERS, MAX_TEXTS + 5);
        let text = texts.get_or_build(late, &TestDialect, |_| "built".to_owned());
        assert_eq!(&*text, "built");
        let text = texts.get_or_build(late, &TestDialect, |_| "built again".to_owned());
        assert_eq!(&*text, "built again");
    }
}
