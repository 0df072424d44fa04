//! The unit of work: what a flush must send, and in which order.
//!
//! 1. Gather: pending objects (in `add` order), objects written since their
//!    last load or flush whose column values really changed, and objects
//!    marked for deletion.
//! 2. Order: tables by their declared references (parents inserted before
//!    children, children deleted after... before parents); rows of a
//!    self-referencing table in levels, parent rows first.
//! 3. Send, through [`super::persistence`]: per table in order, INSERTs then
//!    UPDATEs; then DELETEs in reverse table order.
//! 4. Only after the database accepted everything are objects marked clean,
//!    persistent or deleted ([`Applied::apply`]).

use std::any::TypeId;
use std::collections::HashMap;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::model::{Key, TableDef};
use crate::value::Value;

use super::object::{AnyObj, ObjState};
use super::persistence::{self, Ctx, UpdateRow};

/// The work of one table.
#[derive(Default)]
pub(crate) struct TableWork {
    pub inserts: Vec<Rc<dyn AnyObj>>,
    pub updates: Vec<UpdateRow>,
    pub deletes: Vec<Rc<dyn AnyObj>>,
}

/// A flush plan: the tables in dependency order with their work.
pub(crate) struct Plan {
    pub tables: Vec<(&'static TableDef, TableWork)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Builds the plan. `updates` are the already-diffed changed objects.
    pub fn build(
        new: &[Rc<dyn AnyObj>],
        updates: Vec<UpdateRow>,
        deletes: &[Rc<dyn AnyObj>],
    ) -> Result<Plan> {
        let mut order: Vec<TypeId> = Vec::new();
        let mut work: HashMap<TypeId, (&'static TableDef, TableWork)> = HashMap::new();
        fn slot<'a>(
            order: &mut Vec<TypeId>,
            work: &'a mut HashMap<TypeId, (&'static TableDef, TableWork)>,
            obj: &Rc<dyn AnyObj>,
        ) -> &'a mut TableWork {
            let t = obj.model_type();
            if !work.contains_key(&t) {
                order.push(t);
            }
            &mut work
                .entry(t)
                .or_insert_with(|| (obj.table(), TableWork::default()))
                .1
        }
        for obj in new {
            slot(&mut order, &mut work, obj).inserts.push(obj.clone());
        }
        for row in updates {
            let obj = row.obj.clone();
            slot(&mut order, &mut work, &obj).updates.push(row);
        }
        for obj in deletes {
            slot(&mut order, &mut work, obj).deletes.push(obj.clone());
        }
        let tables: Vec<(&'static TableDef, TableWork)> =
            order.iter().filter_map(|t| work.remove(t)).collect();
        Ok(Plan {
            tables: sort_tables(tables)?,
        })
    }

    /// Sends the plan's statements.
    pub fn execute(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        for (table, work) in &self.tables {
            for level in row_levels(table, &work.inserts)? {
                persistence::insert(ctx, table, &level)?;
            }
            if !work.updates.is_empty() {
                persistence::update(ctx, table, &work.updates)?;
            }
        }
        for (table, work) in self.tables.iter().rev() {
            if work.deletes.is_empty() {
                continue;
            }
            for level in row_levels(table, &work.deletes)?.into_iter().rev() {
                let rows = level
                    .iter()
                    .map(|obj| {
                        let meta = obj.meta().borrow();
                        let key = meta.key.clone().ok_or_else(|| {
                            Error::invalid(format!(
                                "a deleted `{}` object has no identity key",
                                table.model
                            ))
                        })?;
                        let version = match table.version {
                            Some(v) => Some(obj.column_value(v)?),
                            None => None,
                        };
                        Ok((key, version))
                    })
                    .collect::<Result<Vec<(Key, Option<Value>)>>>()?;
                persistence::delete(ctx, table, &rows)?;
            }
        }
        Ok(())
    }
}

/// Orders tables so that every table comes after the tables it references.
/// Self-references are left to [`row_levels`].
fn sort_tables(
    mut tables: Vec<(&'static TableDef, TableWork)>,
) -> Result<Vec<(&'static TableDef, TableWork)>> {
    let defs: Vec<&'static TableDef> = tables.iter().map(|(t, _)| *t).collect();
    let parents_of = |t: &TableDef| -> Vec<usize> {
        t.foreign_keys
            .iter()
            .filter_map(|fk| {
                let target = (fk.target)();
                if std::ptr::eq(target, t) {
                    return None;
                }
                defs.iter().position(|d| std::ptr::eq(*d, target))
            })
            .collect()
    };
    let mut placed = vec![false; defs.len()];
    let mut sequence = Vec::with_capacity(defs.len());
    while sequence.len() < defs.len() {
        let next =
            (0..defs.len()).find(|&i| !placed[i] && parents_of(defs[i]).iter().all(|&p| placed[p]));
        match next {
            Some(i) => {
                placed[i] = true;
                sequence.push(i);
            }
            None => {
                let models = (0..defs.len())
                    .filter(|&i| !placed[i])
                    .map(|i| defs[i].model)
                    .collect();
                return Err(Error::FlushCycle { models });
            }
        }
    }
    let mut slots: Vec<Option<(&'static TableDef, TableWork)>> =
        tables.drain(..).map(Some).collect();
    Ok(sequence
        .into_iter()
        .filter_map(|i| slots[i].take())
        .collect())
}

/// Splits the rows of one table into levels so that a row referencing
/// another row of the same table (in this batch) comes in a later level.
/// Tables without self-references give a single level.
fn row_levels(
    table: &'static TableDef,
    objs: &[Rc<dyn AnyObj>],
) -> Result<Vec<Vec<Rc<dyn AnyObj>>>> {
    let self_fks: Vec<usize> = table
        .foreign_keys
        .iter()
        .filter(|fk| std::ptr::eq((fk.target)(), table))
        .map(|fk| fk.column)
        .collect();
    if self_fks.is_empty() || objs.len() < 2 || table.primary_key.len() != 1 {
        return Ok(vec![objs.to_vec()]);
    }
    let mut index_of: HashMap<Value, usize> = HashMap::new();
    for (i, obj) in objs.iter().enumerate() {
        let key = match obj.meta().borrow().key.clone() {
            Some(k) => Some(k),
            None => obj.current_key()?,
        };
        if let Some(v) = key.as_ref().and_then(|k| k.values().last()) {
            index_of.insert(v.clone(), i);
        }
    }
    let mut parents: Vec<Vec<usize>> = Vec::with_capacity(objs.len());
    for obj in objs {
        let mut p = Vec::new();
        for &c in &self_fks {
            let v = obj.column_value(c)?;
            if let Some(&j) = index_of.get(&v) {
                p.push(j);
            }
        }
        parents.push(p);
    }
    let mut level = vec![usize::MAX; objs.len()];
    let mut done = 0;
    let mut current = 0;
    while done < objs.len() {
        let ready: Vec<usize> = (0..objs.len())
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
    let mut levels = vec![Vec::new(); current];
    for (i, obj) in objs.iter().enumerate() {
        levels[level[i]].push(obj.clone());
    }
    Ok(levels)
}

/// Computes the UPDATE for one written object: the changed columns, or
/// `None` when nothing really changed. The version column is managed by the
/// session and never taken from the user's value.
pub(crate) fn diff(obj: &Rc<dyn AnyObj>) -> Result<Option<UpdateRow>> {
    let table = obj.table();
    // Compare against the snapshot in place: cloning it (every text column
    // of every written object) was a visible part of W4's flush in the
    // workloads bench profile.
    let (changes, key, old_version) = {
        let meta = obj.meta().borrow();
        let (snapshot, key) = match (&meta.snapshot, &meta.key, meta.state) {
            (Some(s), Some(k), ObjState::Persistent) if !meta.marked_deleted && !meta.expired => {
                (s, k)
            }
            _ => return Ok(None),
        };
        let current = obj.values()?;
        let changes: Vec<(usize, Value)> = current
            .into_iter()
            .enumerate()
            .filter(|(i, v)| Some(*i) != table.version && *v != snapshot[*i])
            .collect();
        if changes.is_empty() {
            (changes, None, None)
        } else {
            let old_version = table.version.map(|v| snapshot[v].clone());
            (changes, Some(key.clone()), old_version)
        }
    };
    let Some(key) = key else {
        obj.meta().borrow_mut().snapshot = None;
        return Ok(None);
    };
    Ok(Some(UpdateRow {
        obj: obj.clone(),
        old_key: key,
        old_version,
        changes,
    }))
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
    let mut by_identity: HashMap<(TypeId, Key), usize> = HashMap::new();
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
        let old_values = old.values()?;
        let changes: Vec<(usize, Value)> = obj
            .values()?
            .into_iter()
            .enumerate()
            .filter(|(c, v)| {
                !table.is_key_column(*c) && Some(*c) != table.version && *v != old_values[*c]
            })
            .collect();
        let old_version = table.version.map(|v| old_values[v].clone());
        let update = (!changes.is_empty()).then(|| UpdateRow {
            obj: obj.clone(),
            old_key: key.clone(),
            old_version: old_version.clone(),
            changes,
        });
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
