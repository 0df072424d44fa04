//! Dependency processing at flush (SQLAlchemy's `dependency.py`): turning
//! the relationship links of the objects being flushed into foreign-key
//! values. A link to an object whose key is known sets the column now (in
//! the plan, not yet in the object); a link to an object INSERTed in the
//! same flush becomes a *patch*, filled in from its generated key just
//! before the row that needs it is sent; an unlinked child gets NULL, and a
//! NOT NULL key is an error naming the relationship before any SQL.
//!
//! Nothing here writes into the objects: the flush writes the synced
//! columns back only after the database accepted everything.

use std::rc::Rc;

use crate::error::{Error, Result};
use crate::value::Value;

use super::column_set::ColumnSet;
use super::links;
use super::object::{addr, AnyObj, ObjState};
use super::persistence::UpdateRow;
use super::short_list::ShortList;

/// A foreign-key column waiting for the key of an object INSERTed earlier
/// in the same flush.
pub(crate) type Patch = (usize, Rc<dyn AnyObj>);

/// An INSERT's [`Patch`]es: nearly always none or one (a child whose
/// parent is INSERTed in the same flush).
pub(crate) type Patches = ShortList<Patch>;

/// What a link gives a foreign-key column.
enum FkValue {
    /// A value known now.
    Known(Value),
    /// The key of an object INSERTed earlier in this flush.
    Deferred(Rc<dyn AnyObj>),
}

fn resolve(
    obj: &Rc<dyn AnyObj>,
    column: usize,
    target: Option<&Rc<dyn AnyObj>>,
    relationship: &links::RelRef,
) -> Result<FkValue> {
    let table = obj.table();
    let Some(target) = target else {
        if !table.columns[column].nullable {
            return Err(Error::invalid(format!(
                "relationship `{relationship}`: this `{}` object lost its parent (removed from the \
                 collection, or the parent was deleted), but its key `{}` cannot be NULL. Delete it too \
                 (cascade = \"all, delete-orphan\"), give it another parent, or make the column nullable. \
                 Nothing was sent",
                table.model, table.columns[column].name
            )));
        }
        return Ok(FkValue::Known(Value::Null));
    };
    let (key, state, session) = {
        let meta = target.meta().borrow();
        (meta.key.clone(), meta.state, meta.session_ptr())
    };
    let key = match key {
        Some(key) => Some(key),
        None => target.current_key()?,
    };
    if let Some(key) = key {
        return Ok(FkValue::Known(key.values()[0].clone()));
    }
    let same_session = session.is_some() && session == obj.meta().borrow().session_ptr();
    if state == ObjState::Pending && same_session {
        return Ok(FkValue::Deferred(target.clone()));
    }
    Err(Error::invalid(format!(
        "relationship `{relationship}`: the related `{}` object is not in this session and has no key \
         yet; add() it to the session (the relationship's save-update cascade is off). Nothing was sent",
        target.table().model
    )))
}

/// Whether `column` of `table` is the key of a many-to-one relationship
/// declared `post_update`: set by a second UPDATE after the INSERTs, and
/// left out of the table order.
pub(crate) fn is_post_update(table: &'static crate::model::TableDef, column: usize) -> bool {
    table.relationships.iter().any(|r| {
        r.post_update
            && r.kind == crate::relationship::RelKind::ManyToOne
            && r.fk_column(table) == Some(column)
    })
}

/// A foreign key set by its own UPDATE once every row exists (or cleared
/// before a DELETE): SQLAlchemy's `post_update`.
pub(crate) struct PostUpdate {
    pub obj: Rc<dyn AnyObj>,
    pub column: usize,
    pub target: Option<Rc<dyn AnyObj>>,
    /// The value sent, for the write-back.
    pub value: Option<Value>,
}

/// The post-update links of `obj` (taken out of its INSERT or UPDATE).
pub(crate) fn post_updates(obj: &Rc<dyn AnyObj>) -> Vec<PostUpdate> {
    let table = obj.table();
    // Read in place: most linked objects have no post_update key, and a copy
    // of the list per object was visible in W5's profile.
    let meta = obj.meta().borrow();
    let Some(links) = meta.links.as_ref() else {
        return Vec::new();
    };
    links
        .fks
        .iter()
        .filter(|f| is_post_update(table, f.column))
        .map(|f| PostUpdate {
            obj: obj.clone(),
            column: f.column,
            target: f.target.clone(),
            value: None,
        })
        .collect()
}

/// Applies `obj`'s pending links to the values of its INSERT. Returns the
/// synced columns and the patches.
pub(crate) fn insert_fks(
    obj: &Rc<dyn AnyObj>,
    values: &mut [Value],
) -> Result<(ColumnSet, Patches)> {
    let mut synced = ColumnSet::default();
    let mut patches = Patches::default();
    let table = obj.table();
    // Read in place (resolving only reads objects): a copy of the list per
    // INSERTed object was visible in W5's profile.
    let meta = obj.meta().borrow();
    let Some(links) = meta.links.as_ref() else {
        return Ok((synced, patches));
    };
    for fk in links.fks.iter() {
        if is_post_update(table, fk.column) {
            continue;
        }
        match resolve(obj, fk.column, fk.target.as_ref(), &fk.relationship)? {
            FkValue::Known(v) => values[fk.column] = v,
            FkValue::Deferred(t) => {
                values[fk.column] = Value::Null;
                patches.push((fk.column, t));
            }
        }
        synced.insert(fk.column);
    }
    Ok((synced, patches))
}

/// Merges `obj`'s pending links into its UPDATE (`row`, from the diff, if
/// any): a column whose linked value differs from the row's is changed.
pub(crate) fn update_fks(
    obj: &Rc<dyn AnyObj>,
    row: Option<UpdateRow>,
) -> Result<Option<UpdateRow>> {
    {
        // Only a persistent object's links change its row: a pending one's
        // go into its INSERT (`insert_fks`). Checked before copying the list.
        let meta = obj.meta().borrow();
        let has_fks = meta.links.as_ref().is_some_and(|l| !l.fks.is_empty());
        if !has_fks || meta.state != ObjState::Persistent || meta.marked_deleted || meta.expired {
            return Ok(row);
        }
    }
    let fks = links::pending_fks(obj);
    if fks.is_empty() {
        return Ok(row);
    }
    let snapshot = {
        let meta = obj.meta().borrow();
        if meta.key.is_none()
            || meta.state != ObjState::Persistent
            || meta.marked_deleted
            || meta.expired
        {
            return Ok(row);
        }
        meta.snapshot.as_ref().map(|s| s.values())
    };
    let table = obj.table();
    // What the row holds now.
    let current = match snapshot {
        Some(values) => values,
        None => obj.values()?,
    };
    let mut row = row.unwrap_or_else(|| {
        UpdateRow::new(
            obj.clone(),
            Default::default(),
            table.version.map(|v| current[v].clone()),
        )
    });
    for links::FkSync {
        column,
        target,
        relationship,
    } in fks
    {
        if is_post_update(table, column) {
            continue;
        }
        let value = match resolve(obj, column, target.as_ref(), &relationship)? {
            FkValue::Known(v) => {
                if v == current[column] {
                    row.unset(column);
                    row.push_synced(column);
                    continue;
                }
                v
            }
            FkValue::Deferred(t) => {
                row.push_patch(column, t);
                Value::Null
            }
        };
        row.set(column, value);
        row.push_synced(column);
    }
    if row.columns.is_empty() {
        // Nothing to send; the synced columns already hold the values.
        links::clear_fks(obj);
        return Ok(None);
    }
    Ok(Some(row))
}

/// A many-to-many link to INSERT into (or DELETE from) an association table.
pub(crate) struct AssocChange {
    pub secondary: &'static crate::relationship::Secondary,
    pub owner: Rc<dyn AnyObj>,
    pub target: Rc<dyn AnyObj>,
    pub add: bool,
}

/// The association rows to write for the many-to-many changes of `objs`:
/// links of objects being deleted are left to the association table's
/// `ON DELETE CASCADE`; the same link recorded from both sides is written once.
pub(crate) fn association_changes<'a>(
    objs: impl Iterator<Item = &'a Rc<dyn AnyObj>>,
) -> Vec<AssocChange> {
    let mut out: Vec<AssocChange> = Vec::new();
    let mut seen = crate::fast_hash::FastHashSet::default();
    for owner in objs {
        let changes = links::pending_m2m(owner);
        if changes.is_empty() {
            continue;
        }
        let table = owner.table();
        for change in changes {
            let rel = &table.relationships[change.rel];
            let Some(secondary) = rel.secondary.as_ref() else {
                continue;
            };
            let gone = |o: &Rc<dyn AnyObj>| {
                let meta = o.meta().borrow();
                meta.marked_deleted || matches!(meta.state, ObjState::Deleted | ObjState::Transient)
            };
            if change.add && (gone(owner) || gone(&change.target)) {
                continue;
            }
            // One row per (table, pair), whichever side recorded it.
            let (a, b) = (addr(owner), addr(&change.target));
            let pair = if secondary.local <= secondary.remote {
                (a, b)
            } else {
                (b, a)
            };
            if !seen.insert((secondary.table, pair, change.add)) {
                continue;
            }
            out.push(AssocChange {
                secondary,
                owner: owner.clone(),
                target: change.target,
                add: change.add,
            });
        }
    }
    out
}
