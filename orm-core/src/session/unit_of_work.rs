//! The unit of work: what a flush must send, and in which order.
//!
//! 1. Gather: pending objects (in `add` order), objects written since their
//!    last load or flush whose column values really changed, and objects
//!    marked for deletion.
//! 2. Prepare, without changing anything: every value the statements need is
//!    read now (a borrowed object fails the flush here, before any SQL), and
//!    every object that will receive a generated key or a new version must
//!    be writable.
//! 3. Order: tables by their declared references, counting only the
//!    references that constrain this flush (a parent's INSERT before the
//!    child rows that may point at it; a child's DELETE before its parent's),
//!    so that two tables that reference each other can be UPDATEd freely;
//!    rows of a self-referencing table in levels, parent rows first.
//! 4. Send, through [`super::persistence`]: per table in save order, INSERTs
//!    then UPDATEs; then DELETEs in delete order. Generated keys are kept in
//!    the plan, not written into the objects.
//! 5. Only after the database accepted everything are keys and versions
//!    written into the objects and the objects marked clean, persistent or
//!    deleted (`Session::apply`).

use crate::fast_hash::FastHashMap;
use std::any::TypeId;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::model::{Key, TableDef};
use crate::value::Value;

use super::column_set::ColumnSet;
use super::object::{AnyObj, ObjState};
use super::persistence::{self, Conns, UpdateRow};

/// A pending object's INSERT: the values sent, and the key the database
/// generated for it (filled in by the INSERT).
pub(crate) struct InsertRow {
    pub obj: Rc<dyn AnyObj>,
    /// Every column's value as sent (the version column already 1). The
    /// INSERT takes them for its statement: afterwards only the columns
    /// the flush set itself (`synced`) and `server_default` columns hold
    /// their values, the others are NULL.
    pub values: Vec<Value>,
    /// The auto-increment value the database generated.
    pub generated: Option<Value>,
    /// Columns set from relationships and defaults (written back into the
    /// object after the flush); a set, so that a row needs no allocation.
    pub synced: ColumnSet,
    /// Foreign-key columns waiting for the key of an object INSERTed earlier
    /// in this flush.
    pub patches: super::dependency::Patches,
}

/// A deleted object's DELETE.
pub(crate) struct DeleteRow {
    pub obj: Rc<dyn AnyObj>,
    pub key: Key,
    /// The version the row must still have (versioned tables).
    pub version: Option<Value>,
}

/// The work of one table.
#[derive(Default)]
pub(crate) struct TableWork {
    /// INSERTs in levels (a row referencing another row of the same table
    /// comes in a later level), each level in `add` order.
    pub inserts: Vec<Vec<InsertRow>>,
    pub updates: Vec<UpdateRow>,
    /// DELETEs in levels, parents first; sent last level first.
    pub deletes: Vec<Vec<DeleteRow>>,
}

impl TableWork {
    /// Rows to INSERT, UPDATE and DELETE.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.inserts.iter().map(Vec::len).sum(),
            self.updates.len(),
            self.deletes.iter().map(Vec::len).sum(),
        )
    }

    fn has_inserts(&self) -> bool {
        self.inserts.iter().any(|l| !l.is_empty())
    }

    fn has_deletes(&self) -> bool {
        self.deletes.iter().any(|l| !l.is_empty())
    }
}

/// A flush plan: the tables with their work, and the two orders to visit them.
pub(crate) struct Plan {
    pub tables: Vec<(&'static TableDef, TableWork)>,
    /// Indexes into `tables`: INSERTs and UPDATEs, parents first.
    save_order: Vec<usize>,
    /// Indexes into `tables`: DELETEs, children first.
    delete_order: Vec<usize>,
    /// Many-to-many association rows, written after every INSERT and
    /// UPDATE and before any DELETE.
    pub assoc: Vec<super::dependency::AssocChange>,
    /// Foreign keys set (or cleared) by their own UPDATE: after the
    /// association rows, before any DELETE.
    pub post_updates: Vec<super::dependency::PostUpdate>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.assoc.is_empty() && self.post_updates.is_empty()
    }

    /// The tables with their work, parents first.
    pub fn tables_in_save_order(&self) -> impl Iterator<Item = &(&'static TableDef, TableWork)> {
        self.save_order.iter().map(|&t| &self.tables[t])
    }

    /// Builds the plan. `updates` are the already-diffed changed objects.
    /// Reads every value it needs now and changes nothing.
    pub fn build(
        new: &[Rc<dyn AnyObj>],
        updates: Vec<UpdateRow>,
        deletes: &[Rc<dyn AnyObj>],
    ) -> Result<Plan> {
        let mut index: FastHashMap<TypeId, usize> = FastHashMap::default();
        let mut tables: Vec<(&'static TableDef, TableWork)> = Vec::new();
        let mut slot = |obj: &Rc<dyn AnyObj>| -> usize {
            *index.entry(obj.model_type()).or_insert_with(|| {
                tables.push((obj.table(), TableWork::default()));
                tables.len() - 1
            })
        };
        let mut inserts: Vec<Vec<Rc<dyn AnyObj>>> = Vec::new();
        let mut removals: Vec<Vec<Rc<dyn AnyObj>>> = Vec::new();
        let mut changes: Vec<Vec<UpdateRow>> = Vec::new();
        fn grow<T>(n: usize, v: &mut Vec<Vec<T>>) {
            while v.len() <= n {
                v.push(Vec::new());
            }
        }
        for obj in new {
            let t = slot(obj);
            grow(t, &mut inserts);
            inserts[t].push(obj.clone());
        }
        let one_model = updates.first().map(|r| r.obj.model_type());
        if one_model.is_some_and(|m| updates.iter().all(|r| r.obj.model_type() == m)) {
            // All of one table (the common case): moved, not copied row by row.
            let t = slot(&updates[0].obj);
            grow(t, &mut changes);
            changes[t] = updates;
        } else {
            for row in updates {
                let t = slot(&row.obj);
                grow(t, &mut changes);
                changes[t].push(row);
            }
        }
        for obj in deletes {
            let t = slot(obj);
            grow(t, &mut removals);
            removals[t].push(obj.clone());
        }
        for (t, (table, work)) in tables.iter_mut().enumerate() {
            if let Some(objs) = inserts.get(t).filter(|o| !o.is_empty()) {
                let rows = objs
                    .iter()
                    .map(|obj| insert_row(table, obj))
                    .collect::<Result<Vec<InsertRow>>>()?;
                work.inserts = levels(
                    table,
                    rows,
                    |r| Ok(r.values.clone()),
                    |r| {
                        Ok(r.obj
                            .meta()
                            .borrow()
                            .key
                            .clone()
                            .or_else(|| key_from_values(table, &r.values)))
                    },
                    |r| obj_ptr(&r.obj),
                    |r| r.patches.iter().map(|(_, t)| obj_ptr(t)).collect(),
                )?;
            }
            if let Some(rows) = changes.get_mut(t) {
                work.updates = std::mem::take(rows);
            }
            if let Some(objs) = removals.get(t).filter(|o| !o.is_empty()) {
                let rows = objs
                    .iter()
                    .map(|obj| delete_row(table, obj))
                    .collect::<Result<Vec<DeleteRow>>>()?;
                work.deletes = levels(
                    table,
                    rows,
                    |r| r.obj.values(),
                    |r| Ok(Some(r.key.clone())),
                    |r| obj_ptr(&r.obj),
                    |_| Vec::new(),
                )?;
            }
        }
        let save_order = sort_tables(&tables, |parent, child| {
            parent.has_inserts() && (child.has_inserts() || !child.updates.is_empty())
        })?;
        // Children first: order parents first by the reversed relation, then reverse.
        let mut delete_order = sort_tables(&tables, |parent, child| {
            parent.has_deletes() && child.has_deletes()
        })?;
        delete_order.reverse();
        Ok(Plan {
            tables,
            save_order,
            delete_order,
            assoc: Vec::new(),
            post_updates: Vec::new(),
        })
    }

    /// Every object the flush will write back into (a generated key, a new
    /// version), checked before any SQL is sent.
    pub fn check_writable(&self) -> Result<()> {
        for (table, work) in &self.tables {
            let writes_inserts = table.auto_increment.is_some() || table.version.is_some();
            let inserted = work
                .inserts
                .iter()
                .flatten()
                .filter(|r| writes_inserts || !r.synced.is_empty())
                .map(|r| &r.obj);
            let updated = work
                .updates
                .iter()
                .filter(|r| table.version.is_some() || !r.synced().is_empty())
                .map(|r| &r.obj);
            for obj in inserted.chain(updated) {
                writable(obj, "flushing (an explicit flush, or the autoflush of a query, get(), merge() or commit()): \
                               the flush writes its generated key or new version into it. Nothing was sent")?;
            }
        }
        for pu in &self.post_updates {
            writable(&pu.obj, "flushing (an explicit flush, or the autoflush of a query, get(), merge() or commit()): \
                               the flush writes a post_update key into it. Nothing was sent")?;
        }
        Ok(())
    }

    /// Sends the plan's statements, keeping generated keys in the plan. A
    /// foreign key waiting for a key generated in this flush is filled in
    /// just before its row is sent.
    ///
    /// Each table's rows go to the table's engine (on the row's shard in a
    /// sharded session), in the one save order of the whole plan, so that a
    /// key generated on one engine can fill a foreign key sent to another.
    pub fn execute(&mut self, conns: &mut Conns<'_>, sharded: bool) -> Result<()> {
        let mut generated: FastHashMap<*const (), Value> = FastHashMap::default();
        for &t in &self.save_order {
            let (table, work) = &mut self.tables[t];
            // UPDATEs first, as SQLAlchemy's save_obj does (a row giving up a
            // unique value before a new row takes it), except those that
            // wait for a key generated by this table's INSERTs.
            // Split in place of a copy: a second list of every row was W4's
            // largest allocation (2.5 MB of UpdateRows at 10,000 rows).
            let mut ready = std::mem::take(&mut work.updates);
            let waiting: Vec<UpdateRow> = if ready.iter().any(|r| !r.patches().is_empty()) {
                let (waiting, rest): (Vec<UpdateRow>, Vec<UpdateRow>) =
                    ready.into_iter().partition(|r| !r.patches().is_empty());
                ready = rest;
                waiting
            } else {
                Vec::new()
            };
            if sharded {
                ready.sort_by_key(|r| persistence::shard_of(&r.obj));
            }
            for (shard, range) in persistence::shard_runs(&ready, |r| &r.obj) {
                persistence::update(conns.ctx(table, shard)?, table, &ready[range])?;
            }
            work.updates = ready;
            work.updates.extend(waiting);
            let first_waiting = work.updates.iter().position(|r| !r.patches().is_empty());
            for level in work.inserts.iter_mut() {
                if level.is_empty() {
                    continue;
                }
                for row in level.iter_mut() {
                    for (column, target) in row.patches.iter() {
                        row.values[*column] = patched(&generated, target)?;
                    }
                }
                if sharded {
                    level.sort_by_key(|r| persistence::shard_of(&r.obj));
                }
                for (shard, range) in persistence::shard_runs(level, |r| &r.obj) {
                    persistence::insert(conns.ctx(table, shard)?, table, &mut level[range])?;
                }
                for row in level.iter() {
                    if let Some(key) = &row.generated {
                        generated.insert(obj_ptr(&row.obj), key.clone());
                    }
                }
            }
            if let Some(first) = first_waiting {
                let waiting = &mut work.updates[first..];
                for row in waiting.iter_mut() {
                    row.fill_patches(|target| patched(&generated, target))?;
                }
                if sharded {
                    waiting.sort_by_key(|r| persistence::shard_of(&r.obj));
                }
                for (shard, range) in persistence::shard_runs(waiting, |r| &r.obj) {
                    persistence::update(conns.ctx(table, shard)?, table, &waiting[range])?;
                }
            }
        }
        self.write_associations(conns, &generated)?;
        self.write_post_updates(conns, &generated)?;
        for &t in &self.delete_order {
            let (table, work) = &mut self.tables[t];
            for level in work.deletes.iter_mut().rev() {
                if level.is_empty() {
                    continue;
                }
                if sharded {
                    level.sort_by_key(|r| persistence::shard_of(&r.obj));
                }
                for (shard, range) in persistence::shard_runs(level, |r| &r.obj) {
                    let rows: Vec<(Key, Option<Value>)> = level[range]
                        .iter()
                        .map(|r| (r.key.clone(), r.version.clone()))
                        .collect();
                    persistence::delete(conns.ctx(table, shard)?, table, &rows)?;
                }
            }
        }
        Ok(())
    }
}

impl Plan {
    /// The `post_update` foreign keys: one UPDATE per row, once both rows exist.
    fn write_post_updates(
        &mut self,
        conns: &mut Conns<'_>,
        generated: &FastHashMap<*const (), Value>,
    ) -> Result<()> {
        for pu in &mut self.post_updates {
            let table = pu.obj.table();
            let ctx = conns.ctx(table, persistence::shard_of(&pu.obj))?;
            let value = match &pu.target {
                Some(t) => patched(generated, t)?,
                None => Value::Null,
            };
            let key = patched(generated, &pu.obj)?;
            let mut sql = String::from("UPDATE ");
            ctx.dialect.quote_ident(table.name, &mut sql);
            sql.push_str(" SET ");
            ctx.dialect
                .quote_ident(table.columns[pu.column].name, &mut sql);
            sql.push_str(" = ? WHERE ");
            ctx.dialect
                .quote_ident(table.columns[table.primary_key[0]].name, &mut sql);
            sql.push_str(" = ?");
            ctx.conn.execute(&sql, &[value.clone(), key])?;
            pu.value = Some(value);
        }
        Ok(())
    }

    /// INSERTs and DELETEs the many-to-many association rows, batched per
    /// table, with keys generated in this flush filled in.
    /// The association rows go to the engine (and shard) of the owner's table.
    fn write_associations(
        &self,
        conns: &mut Conns<'_>,
        generated: &FastHashMap<*const (), Value>,
    ) -> Result<()> {
        const BATCH: usize = 1000;
        type Group = (
            &'static crate::relationship::Secondary,
            bool,
            (&'static crate::model::TableDef, Option<u16>),
            Vec<Value>,
        );
        let mut groups: Vec<Group> = Vec::new();
        for change in &self.assoc {
            let owner = patched(generated, &change.owner)?;
            let target = patched(generated, &change.target)?;
            let route = (change.owner.table(), persistence::shard_of(&change.owner));
            let group = match groups.iter_mut().find(|(s, add, r, _)| {
                std::ptr::eq(*s, change.secondary)
                    && *add == change.add
                    && std::ptr::eq(r.0, route.0)
                    && r.1 == route.1
            }) {
                Some(g) => g,
                None => {
                    groups.push((change.secondary, change.add, route, Vec::new()));
                    groups.last_mut().expect("just pushed")
                }
            };
            group.3.push(owner);
            group.3.push(target);
        }
        // Removals first: a link removed and added again in one flush ends present.
        groups.sort_by_key(|(_, add, _, _)| *add);
        for (sec, add, (owner_table, shard), params) in groups {
            let ctx = conns.ctx(owner_table, shard)?;
            for chunk in params.chunks(BATCH * 2) {
                let rows = chunk.len() / 2;
                // `(local, remote)` and `(?, ?), (?, ?), ...`
                let mut columns = String::from("(");
                ctx.dialect.quote_ident(sec.local, &mut columns);
                columns.push_str(", ");
                ctx.dialect.quote_ident(sec.remote, &mut columns);
                columns.push(')');
                let tuples = vec!["(?, ?)"; rows].join(", ");
                let mut table = String::new();
                ctx.dialect.quote_ident(sec.table, &mut table);
                let sql = if add {
                    format!("INSERT INTO {table} {columns} VALUES {tuples}")
                } else {
                    format!("DELETE FROM {table} WHERE {columns} IN ({tuples})")
                };
                ctx.conn.execute(&sql, chunk)?;
            }
        }
        Ok(())
    }
}

/// `AlreadyBorrowed` naming `action` when `obj` has a live guard: the flush
/// would have to write into it after the database said yes.
pub(crate) fn writable(obj: &Rc<dyn AnyObj>, action: &'static str) -> Result<()> {
    if obj.can_write() {
        Ok(())
    } else {
        Err(Error::AlreadyBorrowed {
            table: obj.table().name,
            action,
        })
    }
}

fn obj_ptr(obj: &Rc<dyn AnyObj>) -> *const () {
    Rc::as_ptr(obj) as *const ()
}

/// The key `target` got from its INSERT earlier in this flush.
fn patched(generated: &FastHashMap<*const (), Value>, target: &Rc<dyn AnyObj>) -> Result<Value> {
    if let Some(key) = generated.get(&obj_ptr(target)) {
        return Ok(key.clone());
    }
    match target.current_key()? {
        Some(key) => Ok(key.values()[0].clone()),
        None => Err(Error::invalid(format!(
            "internal error: a foreign key refers to a `{}` object that was not inserted before it",
            target.table().model
        ))),
    }
}

/// Reads a pending object's values for its INSERT (version 1 for a versioned table).
fn insert_row(table: &'static TableDef, obj: &Rc<dyn AnyObj>) -> Result<InsertRow> {
    let mut values = obj.values()?;
    if let Some(v) = table.version {
        values[v] = Value::Int(1);
    }
    let (mut synced, patches) = super::dependency::insert_fks(obj, &mut values)?;
    super::defaults::insert_defaults(table, &mut values, &mut synced);
    Ok(InsertRow {
        obj: obj.clone(),
        values,
        generated: None,
        synced,
        patches,
    })
}

/// Reads a deleted object's key and the version its row must still have
/// (the one it was loaded or last flushed with).
fn delete_row(table: &'static TableDef, obj: &Rc<dyn AnyObj>) -> Result<DeleteRow> {
    let meta = obj.meta().borrow();
    let key = meta.key.clone().ok_or_else(|| {
        Error::invalid(format!(
            "internal error: a deleted `{}` object has no identity key",
            table.model
        ))
    })?;
    let version = match (table.version, &meta.snapshot) {
        (Some(v), Some(snapshot)) => Some(snapshot.value(v)),
        (Some(v), None) => Some(obj.column_value(v)?),
        (None, _) => None,
    };
    Ok(DeleteRow {
        obj: obj.clone(),
        key,
        version,
    })
}

/// Orders tables so that every table comes after the tables it references.
/// Only the references for which `constrains(parent, child)` holds must be
/// respected; the others are respected where they can be (so that the
/// statement order is the usual parents-first one), and dropped where they
/// would form a cycle. Self-references are left to [`levels`]. A cycle among
/// the constraining references is [`Error::FlushCycle`].
fn sort_tables(
    tables: &[(&'static TableDef, TableWork)],
    constrains: impl Fn(&TableWork, &TableWork) -> bool,
) -> Result<Vec<usize>> {
    // (parent, constraining) for each table.
    let parents: Vec<Vec<(usize, bool)>> = (0..tables.len())
        .map(|i| {
            let (t, child) = &tables[i];
            // References declared on the child, and one-to-many / one-to-one
            // relationships of other tables whose key lives on the child.
            let referenced = t
                .foreign_keys
                .iter()
                .filter(|fk| !super::dependency::is_post_update(t, fk.column))
                .map(|fk| (fk.target)());
            let owners = tables
                .iter()
                .filter(|(p, _)| {
                    p.relationships.iter().any(|r| {
                        matches!(
                            r.kind,
                            crate::relationship::RelKind::OneToMany
                                | crate::relationship::RelKind::OneToOne
                        ) && std::ptr::eq((r.target)(), *t)
                    })
                })
                .map(|(p, _)| *p);
            referenced
                .chain(owners)
                .filter(|target| !std::ptr::eq(*target, *t))
                .filter_map(|target| {
                    let p = tables.iter().position(|(d, _)| std::ptr::eq(*d, target))?;
                    Some((p, constrains(&tables[p].1, child)))
                })
                .collect()
        })
        .collect();
    let mut placed = vec![false; tables.len()];
    let mut sequence = Vec::with_capacity(tables.len());
    while sequence.len() < tables.len() {
        let ready = |i: usize, all: bool| {
            !placed[i]
                && parents[i]
                    .iter()
                    .all(|&(p, constraining)| placed[p] || (!all && !constraining))
        };
        let next = (0..tables.len())
            .find(|&i| ready(i, true))
            .or_else(|| (0..tables.len()).find(|&i| ready(i, false)));
        match next {
            Some(i) => {
                placed[i] = true;
                sequence.push(i);
            }
            None => {
                let mut models: Vec<&'static str> = (0..tables.len())
                    .filter(|&i| !placed[i])
                    .map(|i| tables[i].0.model)
                    .collect();
                models.sort_unstable();
                return Err(Error::FlushCycle { models });
            }
        }
    }
    Ok(sequence)
}

/// The key of a row about to be inserted, from its values (`None` while
/// an auto-increment key is unset).
fn key_from_values(table: &TableDef, values: &[Value]) -> Option<Key> {
    let key: Vec<Value> = table
        .primary_key
        .iter()
        .map(|&i| values[i].clone())
        .collect();
    if key.iter().any(Value::is_null) {
        None
    } else {
        Some(Key::new(key))
    }
}

/// Splits the rows of one table into levels so that a row referencing
/// another row of the same table (in this batch) comes in a later level.
/// Tables without self-references give a single level.
fn levels<T>(
    table: &'static TableDef,
    rows: Vec<T>,
    values_of: impl Fn(&T) -> Result<Vec<Value>>,
    key_of: impl Fn(&T) -> Result<Option<Key>>,
    ptr_of: impl Fn(&T) -> *const (),
    deps_of: impl Fn(&T) -> Vec<*const ()>,
) -> Result<Vec<Vec<T>>> {
    let self_fks: Vec<usize> = table
        .foreign_keys
        .iter()
        .filter(|fk| std::ptr::eq((fk.target)(), table))
        .filter(|fk| !super::dependency::is_post_update(table, fk.column))
        .map(|fk| fk.column)
        .collect();
    if self_fks.is_empty() || rows.len() < 2 || table.primary_key.len() != 1 {
        return Ok(vec![rows]);
    }
    let by_ptr: FastHashMap<*const (), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (ptr_of(r), i))
        .collect();
    let mut index_of: FastHashMap<Value, usize> = FastHashMap::default();
    for (i, row) in rows.iter().enumerate() {
        if let Some(v) = key_of(row)?.as_ref().and_then(|k| k.values().last()) {
            index_of.insert(v.clone(), i);
        }
    }
    let mut parents: Vec<Vec<usize>> = Vec::with_capacity(rows.len());
    for row in &rows {
        let values = values_of(row)?;
        let mut p: Vec<usize> = self_fks
            .iter()
            .filter(|&&c| !values[c].is_null())
            .filter_map(|&c| index_of.get(&values[c]).copied())
            .collect();
        p.extend(deps_of(row).iter().filter_map(|d| by_ptr.get(d).copied()));
        parents.push(p);
    }
    let mut level = vec![usize::MAX; rows.len()];
    let mut done = 0;
    let mut current = 0;
    while done < rows.len() {
        let ready: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                level[i] == usize::MAX && parents[i].iter().all(|&p| p != i && level[p] < current)
            })
            .collect();
        if ready.is_empty() {
            return Err(Error::FlushCycle {
                models: vec![table.model],
            });
        }
        for &i in &ready {
            level[i] = current;
        }
        done += ready.len();
        current += 1;
    }
    let mut out: Vec<Vec<T>> = (0..current).map(|_| Vec::new()).collect();
    for (i, row) in rows.into_iter().enumerate() {
        out[level[i]].push(row);
    }
    Ok(out)
}

/// Computes the UPDATE for one written object: the changed columns, or
/// `None` when nothing really changed. Changes nothing (the snapshot is
/// cleared only when the flush succeeded). The version column is managed by
/// the session and never taken from the user's value.
pub(crate) fn diff(obj: &Rc<dyn AnyObj>) -> Result<Option<UpdateRow>> {
    let table = obj.table();
    // Compare against the snapshot in place: cloning it (every text column
    // of every written object) was a visible part of W4's flush in the
    // workloads bench profile.
    let meta = obj.meta().borrow();
    let snapshot = match (&meta.snapshot, &meta.key, meta.state) {
        (Some(s), Some(_), ObjState::Persistent) if !meta.marked_deleted && !meta.expired => s,
        _ => return Ok(None),
    };
    // Each column compared with the snapshot where it is; the new values
    // are read when the statement is built.
    let changes = obj.changed_columns(&**snapshot, table.version)?;
    if changes.is_empty() {
        return Ok(None);
    }
    let old_version = table.version.map(|v| snapshot.value(v));
    Ok(Some(UpdateRow::new(obj.clone(), changes, old_version)))
}

/// A pending object that takes over the row of an object deleted in the
/// same flush (same model and key): one UPDATE instead of DELETE + INSERT
/// (SQLAlchemy's "row switch").
pub(crate) struct RowSwitch {
    pub table: &'static TableDef,
    pub new: Rc<dyn AnyObj>,
    pub old: Rc<dyn AnyObj>,
    pub key: Key,
    /// The deleted object's version: the UPDATE checks it.
    pub old_version: Option<Value>,
    /// The UPDATE, until the flush moves it into the plan (`None` when no column differs).
    pub update: Option<UpdateRow>,
    /// Whether an UPDATE is sent.
    pub updated: bool,
}

type Split = (Vec<Rc<dyn AnyObj>>, Vec<Rc<dyn AnyObj>>, Vec<RowSwitch>);

/// Pairs pending objects with deleted objects of the same key; returns the
/// remaining inserts, the remaining deletes and the switches.
pub(crate) fn row_switches(new: &[Rc<dyn AnyObj>], deleted: &[Rc<dyn AnyObj>]) -> Result<Split> {
    if new.is_empty() || deleted.is_empty() {
        return Ok((new.to_vec(), deleted.to_vec(), Vec::new()));
    }
    let mut by_identity: FastHashMap<(TypeId, Key), usize> = FastHashMap::default();
    for (i, obj) in deleted.iter().enumerate() {
        if let Some(key) = obj.meta().borrow().key.clone() {
            by_identity.insert((obj.model_type(), key), i);
        }
    }
    let mut taken = vec![false; deleted.len()];
    let mut inserts = Vec::with_capacity(new.len());
    let mut switches = Vec::new();
    for obj in new {
        let hit = match obj.current_key()? {
            Some(key) => by_identity
                .get(&(obj.model_type(), key.clone()))
                .filter(|&&i| !taken[i])
                .map(|&i| (i, key)),
            None => None,
        };
        let Some((i, key)) = hit else {
            inserts.push(obj.clone());
            continue;
        };
        taken[i] = true;
        let old = deleted[i].clone();
        let table = obj.table();
        // What the row holds: the deleted object's snapshot when it was
        // written after loading (its in-memory values are not the row's),
        // else its values; an expired object's row is unknown, so every
        // column is sent.
        let (snapshot, expired) = {
            let meta = old.meta().borrow();
            (meta.snapshot.as_ref().map(|s| s.values()), meta.expired)
        };
        let row_values = match snapshot {
            Some(values) => Some(values),
            None if expired => None,
            None => Some(old.values()?),
        };
        let mut changes = ColumnSet::default();
        for (c, v) in obj.values()?.iter().enumerate() {
            if !table.is_key_column(c)
                && Some(c) != table.version
                && row_values.as_ref().map_or(true, |row| *v != row[c])
            {
                changes.insert(c);
            }
        }
        let old_version = match (table.version, &row_values) {
            (Some(v), Some(row)) => Some(row[v].clone()),
            (Some(v), None) => Some(old.column_value(v)?),
            (None, _) => None,
        };
        let update = (!changes.is_empty())
            .then(|| UpdateRow::switched(obj.clone(), key.clone(), changes, old_version.clone()));
        switches.push(RowSwitch {
            table,
            new: obj.clone(),
            old,
            key,
            old_version,
            updated: update.is_some(),
            update,
        });
    }
    let deletes = deleted
        .iter()
        .zip(&taken)
        .filter(|(_, t)| !**t)
        .map(|(o, _)| o.clone())
        .collect();
    Ok((inserts, deletes, switches))
}
