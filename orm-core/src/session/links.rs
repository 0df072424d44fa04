//! Relationships at run time: the links an object's handle keeps (loaded
//! related objects, foreign keys to set at the next flush), the typed
//! accessors on [`Obj`], in-memory `back_populates` sync, the save-update
//! and delete-orphan cascades, and lazy and eager (`selectin`) loading.
//!
//! Where the links live: in each object's bookkeeping (`Meta::links`), beside
//! its snapshot, not in the model value (which stays plain `Clone + Send`
//! data) and not in a session-wide table. An object built and linked before
//! it is added to any session (a transient graph) carries its links with it,
//! as SQLAlchemy's instance state does, and `add` cascades along them.
//! Expiring an object (commit, rollback, `expire`) drops its links: its
//! relationships reload on next access.

use crate::fast_hash::{FastHashMap, FastHashSet};
use std::any::TypeId;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::model::{Key, Model};
use crate::relationship::{Cascade, Lazy, LoadedRows, Many, One, RelKind, RelationshipDef};
use crate::sql_texts::SqlKey;
use crate::value::Value;

use super::identity_map::Identity;
use super::m2m_changes::{M2mChange, M2mChanges};
use super::members::Members;
use super::object::{addr, downcast, AnyObj, Obj, ObjState};
use super::short_list::ShortList;
use super::{in_list, persistence, Session};

/// An object's relationship state.
#[derive(Default)]
pub(crate) struct Links {
    /// Related objects known for a relationship, by index: a loaded
    /// collection, or a loaded one-to-one target (zero or one element).
    /// Most objects have one collection loaded, kept inline (an eager
    /// load's parents paid an allocation and a free each for a list).
    pub loaded: ShortList<(usize, Members)>,
    /// Foreign-key columns of this object to set at the next flush, one
    /// entry per column: nearly always one (a child's parent).
    pub fks: ShortList<FkSync>,
    /// Many-to-many links made or broken from this side since the last flush.
    pub m2m: M2mChanges,
}

/// A foreign key of the object to set at the next flush from a related
/// object's key (`None`: set it NULL).
#[derive(Clone)]
pub(crate) struct FkSync {
    pub column: usize,
    pub target: Option<Rc<dyn AnyObj>>,
    /// The relationship, for messages: the table that declares it and its
    /// index there (formatted only when a message needs it).
    pub relationship: RelRef,
}

impl Links {
    fn loaded(&self, rel: usize) -> Option<&Members> {
        self.loaded.iter().find(|(i, _)| *i == rel).map(|(_, v)| v)
    }

    fn loaded_mut(&mut self, rel: usize) -> Option<&mut Members> {
        self.loaded
            .iter_mut()
            .find(|(i, _)| *i == rel)
            .map(|(_, v)| v)
    }

    fn set_loaded(&mut self, rel: usize, objs: Vec<Rc<dyn AnyObj>>) {
        let objs = Members::new(objs);
        if let Some((_, v)) = self.loaded.iter_mut().find(|(i, _)| *i == rel) {
            *v = objs;
            return;
        }
        self.loaded.push((rel, objs));
    }

    /// Sets the assignment of `column`, replacing the one it had.
    fn set_fk(&mut self, column: usize, target: Option<Rc<dyn AnyObj>>, relationship: RelRef) {
        let fk = FkSync {
            column,
            target,
            relationship,
        };
        if let Some(held) = self.fks.iter_mut().find(|f| f.column == column) {
            *held = fk;
            return;
        }
        self.fks.push(fk);
    }
}

fn same(a: &Rc<dyn AnyObj>, b: &Rc<dyn AnyObj>) -> bool {
    addr(a) == addr(b)
}

fn with_links<R>(obj: &Rc<dyn AnyObj>, f: impl FnOnce(&mut Links) -> R) -> R {
    let mut meta = obj.meta().borrow_mut();
    f(meta.links.get_or_insert_with(Default::default))
}

fn loaded_of(obj: &Rc<dyn AnyObj>, rel: usize) -> Option<Vec<Rc<dyn AnyObj>>> {
    obj.meta()
        .borrow()
        .links
        .as_ref()
        .and_then(|l| l.loaded(rel).map(|m| m.to_vec()))
}

/// Sets the loaded objects of `obj`'s relationship `index` (eager loading
/// from joined rows).
pub(crate) fn populate(obj: &Rc<dyn AnyObj>, index: usize, objs: Vec<Rc<dyn AnyObj>>) {
    with_links(obj, |l| l.set_loaded(index, objs));
}

/// The pending foreign-key assignment of `obj` for `column`, if any.
fn pending_fk(obj: &Rc<dyn AnyObj>, column: usize) -> Option<Option<Rc<dyn AnyObj>>> {
    obj.meta().borrow().links.as_ref().and_then(|l| {
        l.fks
            .iter()
            .find(|f| f.column == column)
            .map(|f| f.target.clone())
    })
}

/// The pending foreign-key assignments of `obj`.
pub(crate) fn pending_fks(obj: &Rc<dyn AnyObj>) -> Vec<FkSync> {
    obj.meta()
        .borrow()
        .links
        .as_ref()
        .map(|l| l.fks.iter().cloned().collect())
        .unwrap_or_default()
}

/// Forgets the pending foreign-key assignments and many-to-many changes of
/// `obj` (flushed).
pub(crate) fn clear_fks(obj: &Rc<dyn AnyObj>) {
    if let Some(links) = obj.meta().borrow_mut().links.as_mut() {
        links.fks.clear();
        links.m2m.clear();
    }
}

/// The pending many-to-many changes of `obj`.
pub(crate) fn pending_m2m(obj: &Rc<dyn AnyObj>) -> Vec<M2mChange> {
    obj.meta()
        .borrow()
        .links
        .as_ref()
        .map(|l| l.m2m.to_vec())
        .unwrap_or_default()
}

fn secondary_of<'r>(
    owner: &Rc<dyn AnyObj>,
    rel: &'r RelationshipDef,
) -> Result<&'r crate::relationship::Secondary> {
    rel.secondary.as_ref().ok_or_else(|| {
        Error::invalid(format!(
            "relationship `{}` is many-to-many but names no association table",
            rel_name(owner, rel)
        ))
    })
}

/// The statements `head WHERE <name> IN (...)` that together select the
/// rows whose `name` is one of `values`, at most [`EAGER_BATCH`] parameters
/// each, with their parameters. Runs of consecutive integer keys go as
/// ranges where `column`, the model's column of that name, allows
/// ([`in_list`]).
fn where_in(
    dialect: &dyn crate::backend::Dialect,
    head: &str,
    name: &str,
    column: Option<&crate::model::ColumnDef>,
    values: &[Value],
) -> Vec<(String, Vec<Value>)> {
    let on = in_list::InColumn {
        dialect,
        name,
        column,
    };
    in_list::batches(&on, values, EAGER_BATCH)
        .into_iter()
        .map(|(condition, params)| (format!("{head} WHERE {condition}"), params))
        .collect()
}

/// Parameters per eager-load statement: 10,000 stays far below every
/// backend's placeholder limit (MySQL 65,535, SQLite 32,766) and makes
/// 1,000 or 10,000 parents one statement (SQLAlchemy's 500 costs a round
/// trip per 500 parents).
const EAGER_BATCH: usize = 10_000;

/// `SELECT t.cols FROM target AS t JOIN secondary AS s ON s.remote = t.pk`.
fn many_to_many_select(
    dialect: &dyn crate::backend::Dialect,
    target: &crate::model::TableDef,
    sec: &crate::relationship::Secondary,
) -> String {
    let mut sql = String::from("SELECT ");
    for (n, c) in target.columns.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str("t.");
        dialect.quote_ident(c.name, &mut sql);
    }
    sql.push_str(" FROM ");
    dialect.quote_ident(target.name, &mut sql);
    sql.push_str(" t JOIN ");
    dialect.quote_ident(sec.table, &mut sql);
    sql.push_str(" s ON s.");
    dialect.quote_ident(sec.remote, &mut sql);
    sql.push_str(" = t.");
    dialect.quote_ident(target.columns[target.primary_key[0]].name, &mut sql);
    sql
}

/// The objects directly reachable from `obj` through its links.
pub(crate) fn reachable(obj: &Rc<dyn AnyObj>, cascade: Cascade) -> Vec<Rc<dyn AnyObj>> {
    let table = obj.table();
    let meta = obj.meta().borrow();
    let Some(links) = meta.links.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (rel, objs) in links.loaded.iter() {
        if table.relationships[*rel].cascade.contains(cascade) {
            out.extend(objs.iter().cloned());
        }
    }
    for fk in links.fks.iter() {
        let cascades = table.relationships.iter().any(|r| {
            r.kind == RelKind::ManyToOne
                && r.fk_column(table) == Some(fk.column)
                && r.cascade.contains(cascade)
        });
        if cascades {
            out.extend(fk.target.iter().cloned());
        }
    }
    out
}

/// A relationship named by its table and index: `Model.field` on demand.
#[derive(Clone, Copy)]
pub(crate) struct RelRef {
    pub table: &'static crate::model::TableDef,
    pub index: usize,
}

impl std::fmt::Display for RelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}",
            self.table.model, self.table.relationships[self.index].name
        )
    }
}

fn rel_ref(owner: &Rc<dyn AnyObj>, index: usize) -> RelRef {
    RelRef {
        table: owner.table(),
        index,
    }
}

fn rel_name(owner: &Rc<dyn AnyObj>, rel: &RelationshipDef) -> String {
    format!("{}.{}", owner.table().model, rel.name)
}

fn fk_column(owner: &Rc<dyn AnyObj>, rel: &RelationshipDef) -> Result<usize> {
    rel.fk_column(owner.table()).ok_or_else(|| {
        Error::invalid(format!(
            "relationship `{}`: key field `{}` is not a column of `{}`",
            rel_name(owner, rel),
            rel.key,
            rel.fk_table(owner.table()).model
        ))
    })
}

/// The session an object belongs to, if any.
fn session_of(obj: &Rc<dyn AnyObj>) -> Option<Session> {
    obj.meta()
        .borrow()
        .session
        .as_ref()
        .and_then(std::rc::Weak::upgrade)
        .map(Session::from_inner)
}

/// Records that `obj` has unflushed relationship changes.
fn touch(obj: &Rc<dyn AnyObj>) {
    // A pending object's links go into its INSERT (the flush reads every
    // pending object): only an object with a row needs the modified list.
    if obj.meta().borrow().state == ObjState::Pending {
        return;
    }
    if let Some(session) = session_of(obj) {
        session.inner.note_modified(obj.clone());
    }
}

/// Save-update cascade at link time: a transient target linked to an
/// object in a session joins that session.
fn cascade_add(
    owner: &Rc<dyn AnyObj>,
    rel: &RelationshipDef,
    target: &Rc<dyn AnyObj>,
) -> Result<()> {
    let Some(session) = session_of(owner) else {
        return Ok(());
    };
    let (state, other) = {
        let meta = target.meta().borrow();
        (meta.state, meta.in_other_session(&session.inner))
    };
    if other {
        return Err(Error::invalid(format!(
            "relationship `{}`: the `{}` object belongs to another session; merge() it into this one first",
            rel_name(owner, rel),
            target.table().model
        )));
    }
    if rel.cascade.contains(Cascade::SAVE_UPDATE) && state == ObjState::Transient {
        session.add_erased(target.clone())?;
    }
    Ok(())
}

fn raise_error(owner: &Rc<dyn AnyObj>, rel: &RelationshipDef) -> Error {
    Error::invalid(format!(
        "relationship `{}` may not be loaded on access (lazy = \"raise\" on the relationship, or the \
         query's raise_lazy()): the N+1 guard; load it with the query, e.g. .load({}::{})",
        rel_name(owner, rel),
        owner.table().model,
        rel.name.to_uppercase()
    ))
}

/// The objects related to `owner` through relationship `index`, loading
/// them if needed (one SELECT; none for a many-to-one whose target is in the
/// identity map).
pub(crate) fn related(owner: &Rc<dyn AnyObj>, index: usize) -> Result<Vec<Rc<dyn AnyObj>>> {
    let table = owner.table();
    let rel = &table.relationships[index];
    match rel.kind {
        RelKind::ManyToOne => {
            let column = fk_column(owner, rel)?;
            if let Some(pending) = pending_fk(owner, column) {
                return Ok(pending.into_iter().collect());
            }
            if owner.meta().borrow().expired {
                match session_of(owner) {
                    Some(s) => s.load_expired(owner)?,
                    None => return Err(Error::DetachedInstance { table: table.name }),
                }
            }
            let value = owner.column_value(column)?;
            if value.is_null() {
                return Ok(Vec::new());
            }
            let target = (rel.target)();
            // Related objects live on the owner's shard (sharded sessions).
            let shard = owner.meta().borrow().shard();
            let identity = Identity {
                model: (rel.target_type)(),
                key: Key::from_values([value.clone()]),
                shard,
            };
            let Some(session) = session_of(owner) else {
                return Err(Error::DetachedInstance { table: table.name });
            };
            if let Some(hit) = session.state()?.map.get(&identity).cloned() {
                return Ok(vec![hit]);
            }
            if rel.lazy == Lazy::Raise || owner.meta().borrow().raise_lazy {
                return Err(raise_error(owner, rel));
            }
            session.autoflush()?;
            let sql = session
                .engine()
                .sql_text(SqlKey::select_by_key(target), |dialect| {
                    persistence::select_by_key_sql(dialect, target)
                });
            Ok(session
                .loading_on(shard, || (rel.load)(&session, &sql, &[value]))?
                .0)
        }
        RelKind::OneToMany | RelKind::OneToOne | RelKind::ManyToMany => {
            if let Some(objs) = loaded_of(owner, index) {
                return Ok(objs);
            }
            let (state, key) = {
                let meta = owner.meta().borrow();
                (meta.state, meta.key.clone())
            };
            let key = match (state, key) {
                (ObjState::Persistent | ObjState::Deleted, Some(key)) => key,
                (ObjState::Detached, _) => {
                    return Err(Error::DetachedInstance { table: table.name })
                }
                // Not in the database yet: nothing to load.
                _ => {
                    with_links(owner, |l| l.set_loaded(index, Vec::new()));
                    return Ok(Vec::new());
                }
            };
            if rel.lazy == Lazy::Raise || owner.meta().borrow().raise_lazy {
                return Err(raise_error(owner, rel));
            }
            let session = session_of(owner).ok_or(Error::DetachedInstance { table: table.name })?;
            let target = (rel.target)();
            let engine = session.engine();
            let sql: std::sync::Arc<str> = if rel.kind == RelKind::ManyToMany {
                let sec = secondary_of(owner, rel)?;
                let dialect = engine.dialect();
                let mut sql = many_to_many_select(dialect, target, sec);
                sql.push_str(" WHERE s.");
                dialect.quote_ident(sec.local, &mut sql);
                sql.push_str(" = ?");
                sql.into()
            } else {
                let column = fk_column(owner, rel)?;
                engine.sql_text(SqlKey::select_where(target, column), |dialect| {
                    let mut sql = persistence::select_sql(dialect, target);
                    sql.push_str(" WHERE ");
                    dialect.quote_ident(target.columns[column].name, &mut sql);
                    sql.push_str(" = ?");
                    sql
                })
            };
            let shard = owner.meta().borrow().shard();
            let mut objs =
                session.loading_on(shard, || session.query_erased(rel, &sql, key.values()))?;
            if rel.kind == RelKind::OneToOne {
                objs.truncate(1);
            }
            with_links(owner, |l| l.set_loaded(index, objs.clone()));
            Ok(objs)
        }
    }
}

/// What `related` would return without sending SQL: `None` when unknown.
fn related_cached(owner: &Rc<dyn AnyObj>, index: usize) -> Option<Vec<Rc<dyn AnyObj>>> {
    let table = owner.table();
    let rel = &table.relationships[index];
    match rel.kind {
        RelKind::ManyToOne => {
            let column = rel.fk_column(table)?;
            if let Some(pending) = pending_fk(owner, column) {
                return Some(pending.into_iter().collect());
            }
            if owner.meta().borrow().expired {
                return None;
            }
            let value = owner.column_value(column).ok()?;
            if value.is_null() {
                return Some(Vec::new());
            }
            let session = session_of(owner)?;
            let identity = Identity {
                model: (rel.target_type)(),
                key: Key::from_values([value]),
                shard: owner.meta().borrow().shard(),
            };
            let hit = session.state().ok()?.map.get(&identity).cloned();
            hit.map(|h| vec![h])
        }
        RelKind::OneToMany | RelKind::OneToOne | RelKind::ManyToMany => loaded_of(owner, index),
    }
}

/// Save-update cascade through the mirror relationship: a transient
/// `owner` linked to an object of a session joins that session when the
/// mirror relationship (`back_populates`) cascades save-update, as
/// SQLAlchemy's backref cascade does (`book.author = author` adds `book`).
fn cascade_back(
    owner: &Rc<dyn AnyObj>,
    rel: &RelationshipDef,
    target: &Rc<dyn AnyObj>,
) -> Result<()> {
    if owner.meta().borrow().state != ObjState::Transient {
        return Ok(());
    }
    let Some(back) = back_index(rel) else {
        return Ok(());
    };
    if !(rel.target)().relationships[back]
        .cascade
        .contains(Cascade::SAVE_UPDATE)
    {
        return Ok(());
    }
    match session_of(target) {
        Some(session) => {
            // Sharded sessions: it joins on the shard of the object it was linked to.
            let shard = target.meta().borrow().shard();
            if shard.is_some() {
                let mut meta = owner.meta().borrow_mut();
                if meta.shard().is_none() {
                    meta.set_shard(shard);
                }
            }
            session.add_erased(owner.clone())
        }
        None => Ok(()),
    }
}

/// The index of the relationship on `target`'s table that mirrors `rel`.
fn back_index(rel: &RelationshipDef) -> Option<usize> {
    let name = rel.back_populates?;
    (rel.target)().relationship(name).map(|(i, _)| i)
}

/// Adds `member` to `obj`'s collection `rel` if it is loaded, or if `obj`
/// has no row yet (its collection is then known: what was linked to it).
fn add_to_loaded(obj: &Rc<dyn AnyObj>, rel: usize, member: &Rc<dyn AnyObj>) {
    let mut meta = obj.meta().borrow_mut();
    let new_object = matches!(meta.state, ObjState::Transient | ObjState::Pending);
    let links = meta.links.get_or_insert_with(Default::default);
    match links.loaded_mut(rel) {
        Some(members) => {
            members.insert(member.clone());
        }
        None if new_object => links.loaded.push((rel, Members::new(vec![member.clone()]))),
        None => {}
    }
}

fn remove_from_loaded(obj: &Rc<dyn AnyObj>, rel: usize, member: &Rc<dyn AnyObj>) {
    let mut meta = obj.meta().borrow_mut();
    if let Some(members) = meta.links.as_mut().and_then(|l| l.loaded_mut(rel)) {
        members.remove(member);
    }
}

/// `child` now belongs to `parent` through `parent`'s relationship
/// `index` (one-to-many or one-to-one): its foreign key follows at flush,
/// and the collection it left (if loaded) loses it.
fn attach_child(parent: &Rc<dyn AnyObj>, index: usize, child: &Rc<dyn AnyObj>) -> Result<()> {
    let table = parent.table();
    let rel = &table.relationships[index];
    let column = fk_column(parent, rel)?;
    // The collection the child leaves: the one of its current parent.
    let old_parent = child_parent(child, parent.model_type(), column);
    if let Some(old) = old_parent.filter(|o| !same(o, parent)) {
        remove_from_loaded(&old, index, child);
    }
    with_links(child, |l| {
        l.set_fk(column, Some(parent.clone()), rel_ref(parent, index))
    });
    touch(child);
    Ok(())
}

/// The parent `child` currently has through the foreign key `column` of
/// relationship `rel` (pending assignment, else the identity map), if known
/// without SQL.
fn child_parent(
    child: &Rc<dyn AnyObj>,
    parent_type: TypeId,
    column: usize,
) -> Option<Rc<dyn AnyObj>> {
    if let Some(pending) = pending_fk(child, column) {
        return pending;
    }
    if child.meta().borrow().expired {
        return None;
    }
    let value = child.column_value(column).ok()?;
    if value.is_null() {
        return None;
    }
    let session = session_of(child)?;
    let identity = Identity {
        model: parent_type,
        key: Key::from_values([value]),
        shard: child.meta().borrow().shard(),
    };
    let hit = session.state().ok()?.map.get(&identity).cloned();
    hit
}

/// `child` leaves `parent`'s relationship `index`: its foreign key becomes
/// NULL at flush, or, with `delete-orphan`, it is deleted.
fn detach_child(parent: &Rc<dyn AnyObj>, index: usize, child: &Rc<dyn AnyObj>) -> Result<()> {
    let rel = &parent.table().relationships[index];
    let column = fk_column(parent, rel)?;
    if rel.cascade.contains(Cascade::DELETE_ORPHAN) {
        if let Some(session) = session_of(child) {
            let state = child.meta().borrow().state;
            match state {
                ObjState::Persistent => return session.delete_erased(child.clone()),
                ObjState::Pending => {
                    session.expunge_erased(child)?;
                    // The orphan no longer has this parent, as SQLAlchemy's
                    // backref sets it: added to a session again (through
                    // another relationship's cascade), it is written
                    // without it.
                    with_links(child, |l| l.set_fk(column, None, rel_ref(parent, index)));
                    return Ok(());
                }
                _ => {}
            }
        }
    }
    with_links(child, |l| l.set_fk(column, None, rel_ref(parent, index)));
    touch(child);
    Ok(())
}

fn set_one(owner: &Rc<dyn AnyObj>, index: usize, target: Option<Rc<dyn AnyObj>>) -> Result<()> {
    let table = owner.table();
    let rel = &table.relationships[index];
    if let Some(t) = &target {
        cascade_add(owner, rel, t)?;
    }
    match rel.kind {
        RelKind::ManyToOne => {
            let column = fk_column(owner, rel)?;
            let old = related_cached(owner, index).and_then(|v| v.into_iter().next());
            with_links(owner, |l| {
                l.set_fk(column, target.clone(), rel_ref(owner, index))
            });
            touch(owner);
            if let Some(back) = back_index(rel) {
                let back_rel = &(rel.target)().relationships[back];
                if let Some(old) = old.filter(|o| target.as_ref().map_or(true, |t| !same(o, t))) {
                    remove_from_loaded(&old, back, owner);
                }
                if let Some(t) = &target {
                    match back_rel.kind {
                        RelKind::OneToOne => {
                            let mut meta = t.meta().borrow_mut();
                            if let Some(links) = meta.links.as_mut() {
                                links.set_loaded(back, vec![owner.clone()]);
                            }
                        }
                        _ => add_to_loaded(t, back, owner),
                    }
                }
            }
            if let Some(t) = &target {
                cascade_back(owner, rel, t)?;
            }
            Ok(())
        }
        RelKind::OneToOne => {
            let old = related(owner, index)?.into_iter().next();
            if let Some(old) = old.filter(|o| target.as_ref().map_or(true, |t| !same(o, t))) {
                detach_child(owner, index, &old)?;
            }
            if let Some(t) = &target {
                attach_child(owner, index, t)?;
            }
            with_links(owner, |l| l.set_loaded(index, target.into_iter().collect()));
            Ok(())
        }
        RelKind::OneToMany | RelKind::ManyToMany => Err(Error::invalid(format!(
            "relationship `{}` is a collection: use push() and remove()",
            rel_name(owner, rel)
        ))),
    }
}

/// Records a many-to-many link change on `owner`; a change that undoes a
/// pending one cancels it.
fn note_m2m(owner: &Rc<dyn AnyObj>, index: usize, target: &Rc<dyn AnyObj>, add: bool) {
    with_links(owner, |l| l.m2m.note(index, target, add));
    touch(owner);
}

/// Whether `obj`'s loaded collection `rel` holds `member`; `None` when not loaded.
fn loaded_contains(obj: &Rc<dyn AnyObj>, rel: usize, member: &Rc<dyn AnyObj>) -> Option<bool> {
    let meta = obj.meta().borrow();
    let members = meta.links.as_ref()?.loaded(rel)?;
    Some(members.contains(member))
}

fn push(owner: &Rc<dyn AnyObj>, index: usize, child: Rc<dyn AnyObj>) -> Result<()> {
    let rel = &owner.table().relationships[index];
    cascade_add(owner, rel, &child)?;
    cascade_back(owner, rel, &child)?;
    // Load the collection if needed; then add in place (no copy of it).
    match loaded_contains(owner, index, &child) {
        Some(true) => return Ok(()),
        Some(false) => {}
        None => {
            if related(owner, index)?.iter().any(|o| same(o, &child)) {
                return Ok(());
            }
        }
    }
    if rel.kind == RelKind::ManyToMany {
        note_m2m(owner, index, &child, true);
        if let Some(back) = back_index(rel) {
            add_to_loaded(&child, back, owner);
        }
        add_to_loaded(owner, index, &child);
        return Ok(());
    }
    attach_child(owner, index, &child)?;
    add_to_loaded(owner, index, &child);
    Ok(())
}

fn remove(owner: &Rc<dyn AnyObj>, index: usize, child: &Rc<dyn AnyObj>) -> Result<()> {
    // The collection loaded first (one SELECT when it is not), then the
    // child removed from it in place (no copy of it per removal).
    if loaded_contains(owner, index, child).is_none() {
        let members = related(owner, index)?;
        with_links(owner, |l| l.set_loaded(index, members));
    }
    let removed = with_links(owner, |l| {
        l.loaded_mut(index).is_some_and(|m| m.remove(child))
    });
    if !removed {
        return Ok(());
    }
    let rel = &owner.table().relationships[index];
    if rel.kind == RelKind::ManyToMany {
        note_m2m(owner, index, child, false);
        if let Some(back) = back_index(rel) {
            remove_from_loaded(child, back, owner);
        }
        return Ok(());
    }
    detach_child(owner, index, child)
}

impl<M: Model> Obj<M> {
    /// The object on the other side of a to-one relationship
    /// (`book.one(Book::AUTHOR)`), loading it on first access: no SQL when
    /// the target is already in the identity map (or was just set), one
    /// SELECT otherwise (after autoflush).
    pub fn one<T: Model>(&self, rel: One<M, T>) -> Result<Option<Obj<T>>> {
        Ok(related(&self.erased(), rel.index)?
            .into_iter()
            .next()
            .and_then(downcast::<T>))
    }

    /// The objects of a collection relationship (`author.many(Author::BOOKS)`),
    /// loading them on first access with one SELECT (after autoflush).
    pub fn many<T: Model>(&self, rel: Many<M, T>) -> Result<Vec<Obj<T>>> {
        Ok(related(&self.erased(), rel.index)?
            .into_iter()
            .filter_map(downcast::<T>)
            .collect())
    }

    /// Sets (or, with `None`, clears) a to-one relationship
    /// (`book.set(Book::AUTHOR, Some(&author))`). The foreign key follows at
    /// the next flush, even when the target gets its key in that flush; the
    /// mirror collection (`back_populates`) is updated in memory; a
    /// transient target joins the session (save-update cascade).
    ///
    /// In a sharded session a pending (not yet flushed) object follows its
    /// new parent's shard, as SQLAlchemy's shard chooser usually routes a
    /// child by its parent.
    pub fn set<T: Model>(&self, rel: One<M, T>, target: Option<&Obj<T>>) -> Result<()> {
        if let Some(parent) = target {
            follow_shard(&self.erased(), &parent.erased());
        }
        set_one(&self.erased(), rel.index, target.map(Obj::erased))
    }

    /// Adds an object to a collection relationship
    /// (`author.push(Author::BOOKS, &book)`): its foreign key follows at the
    /// next flush, it leaves its previous parent's collection, and a
    /// transient object joins the session (save-update cascade). Loads the
    /// collection first if needed.
    ///
    /// In a sharded session a pending object pushed follows this object's shard.
    pub fn push<T: Model>(&self, rel: Many<M, T>, target: &Obj<T>) -> Result<()> {
        follow_shard(&target.erased(), &self.erased());
        push(&self.erased(), rel.index, target.erased())
    }

    /// Removes an object from a collection relationship: its foreign key
    /// becomes NULL at the next flush, or, with the `delete-orphan` cascade,
    /// it is deleted.
    pub fn remove<T: Model>(&self, rel: Many<M, T>, target: &Obj<T>) -> Result<()> {
        remove(&self.erased(), rel.index, &target.erased())
    }
}

/// A child not yet in the database (transient or pending: not in the
/// identity map) takes its parent's shard (sharded sessions only).
fn follow_shard(child: &Rc<dyn AnyObj>, parent: &Rc<dyn AnyObj>) {
    let Some(shard) = parent.meta().borrow().shard() else {
        return;
    };
    let mut meta = child.meta().borrow_mut();
    if matches!(meta.state, ObjState::Transient | ObjState::Pending) {
        meta.set_shard(Some(shard));
    }
}

/// Loads `T` rows through `session`'s identity map, type-erased (the
/// relationship loaders).
pub(crate) fn load_erased<T: Model>(
    session: &Session,
    sql: &str,
    params: &[Value],
) -> Result<LoadedRows> {
    let objs = super::loading::load_rows::<T>(session, sql, params)?;
    Ok(LoadedRows(objs.into_iter().map(|o| o.erased()).collect()))
}

/// The parents whose collection `index` must be loaded, with their keys;
/// already loaded collections go to `out`, and a parent with no row yet gets
/// an empty one.
fn to_load(
    parents: &[Rc<dyn AnyObj>],
    index: usize,
    out: &mut Vec<Rc<dyn AnyObj>>,
) -> Vec<(Value, Rc<dyn AnyObj>)> {
    let mut todo = Vec::with_capacity(parents.len());
    for p in parents {
        if let Some(done) = loaded_of(p, index) {
            out.extend(done);
            continue;
        }
        let key = p.meta().borrow().key.clone();
        match key {
            Some(key) => todo.push((key.values()[0].clone(), p.clone())),
            None => with_links(p, |l| l.set_loaded(index, Vec::new())),
        }
    }
    todo
}

impl Session {
    /// Runs `sql` (autoflushing first) and loads its rows as `rel`'s target model.
    pub(crate) fn query_erased(
        &self,
        rel: &RelationshipDef,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Rc<dyn AnyObj>>> {
        self.autoflush()?;
        Ok((rel.load)(self, sql, params)?.0)
    }

    /// Eager `selectin` loading of relationship `index` for `parents` (all
    /// of one model): one `IN (...)` SELECT per batch of keys, whatever the
    /// number of parents. Returns the related objects, for the next level.
    pub(crate) fn load_eager(
        &self,
        parents: &[Rc<dyn AnyObj>],
        index: usize,
    ) -> Result<Vec<Rc<dyn AnyObj>>> {
        let Some(first) = parents.first() else {
            return Ok(Vec::new());
        };
        let table = first.table();
        let rel = &table.relationships[index];
        let target = (rel.target)();
        let column = match rel.kind {
            RelKind::ManyToMany => 0, // unused: the association table links them
            _ => fk_column(first, rel)?,
        };
        let dialect = self.engine().dialect();
        let mut out = Vec::new();
        match rel.kind {
            RelKind::ManyToOne => {
                // The keys to load, in first-seen order, each once.
                let mut wanted: Vec<Value> = Vec::new();
                let mut seen: FastHashSet<Value> = FastHashSet::default();
                {
                    let st = self.state()?;
                    for p in parents {
                        if let Some(pending) = pending_fk(p, column) {
                            out.extend(pending);
                            continue;
                        }
                        let value = p.column_value(column)?;
                        if value.is_null() {
                            continue;
                        }
                        let identity = Identity {
                            model: (rel.target_type)(),
                            key: Key::from_values([value.clone()]),
                            shard: None,
                        };
                        match st.map.get(&identity) {
                            Some(hit) => out.push(hit.clone()),
                            None if seen.insert(value.clone()) => wanted.push(value),
                            None => {}
                        }
                    }
                }
                let pk = &target.columns[target.primary_key[0]];
                let head = persistence::select_sql(dialect, target);
                for (sql, params) in where_in(dialect, &head, pk.name, Some(pk), &wanted) {
                    out.extend(self.query_erased(rel, &sql, &params)?);
                }
            }
            RelKind::ManyToMany => {
                let sec = secondary_of(first, rel)?;
                let todo = to_load(parents, index, &mut out);
                // The association rows, then the targets not in the identity map.
                let mut pairs: Vec<(Value, Value)> = Vec::new();
                let keys: Vec<Value> = todo.iter().map(|(k, _)| k.clone()).collect();
                let mut head = String::from("SELECT ");
                dialect.quote_ident(sec.local, &mut head);
                head.push_str(", ");
                dialect.quote_ident(sec.remote, &mut head);
                head.push_str(" FROM ");
                dialect.quote_ident(sec.table, &mut head);
                // An association table has no column definitions: plain lists.
                for (sql, params) in where_in(dialect, &head, sec.local, None, &keys) {
                    for row in self.query_rows(&sql, &params)? {
                        let mut values = row.into_values().into_iter();
                        if let (Some(l), Some(r)) = (values.next(), values.next()) {
                            pairs.push((l, r));
                        }
                    }
                }
                let mut targets: FastHashMap<Value, Rc<dyn AnyObj>> = FastHashMap::default();
                // The targets to load, in first-seen order, each once.
                let mut missing: Vec<Value> = Vec::new();
                let mut seen: FastHashSet<&Value> = FastHashSet::default();
                {
                    let st = self.state()?;
                    for (_, r) in &pairs {
                        if !seen.insert(r) {
                            continue;
                        }
                        let identity = Identity {
                            model: (rel.target_type)(),
                            key: Key::from_values([r.clone()]),
                            shard: None,
                        };
                        match st.map.get(&identity) {
                            Some(hit) => {
                                targets.insert(r.clone(), hit.clone());
                            }
                            None => missing.push(r.clone()),
                        }
                    }
                }
                let pk = target.primary_key[0];
                let head = persistence::select_sql(dialect, target);
                let pk_column = &target.columns[pk];
                for (sql, params) in
                    where_in(dialect, &head, pk_column.name, Some(pk_column), &missing)
                {
                    for obj in self.query_erased(rel, &sql, &params)? {
                        targets.insert(obj.column_value(pk)?, obj);
                    }
                }
                let mut by_key: FastHashMap<Value, Vec<Rc<dyn AnyObj>>> = FastHashMap::default();
                for (l, r) in pairs {
                    if let Some(t) = targets.get(&r) {
                        by_key.entry(l).or_default().push(t.clone());
                    }
                }
                for (key, parent) in todo {
                    let members = by_key.remove(&key).unwrap_or_default();
                    out.extend(members.iter().cloned());
                    with_links(&parent, |l| l.set_loaded(index, members));
                }
            }
            RelKind::OneToMany | RelKind::OneToOne => {
                let todo = to_load(parents, index, &mut out);
                // A parent's children go under its key: room for every
                // parent up front, not grown (and rehashed) row by row.
                let mut by_key: FastHashMap<Value, Vec<Rc<dyn AnyObj>>> =
                    FastHashMap::with_capacity_and_hasher(todo.len(), Default::default());
                let keys: Vec<Value> = todo.iter().map(|(k, _)| k.clone()).collect();
                let head = persistence::select_sql(dialect, target);
                let parent_key = &target.columns[column];
                for (sql, params) in
                    where_in(dialect, &head, parent_key.name, Some(parent_key), &keys)
                {
                    for child in self.query_erased(rel, &sql, &params)? {
                        let fk = child.column_value(column)?;
                        by_key.entry(fk).or_default().push(child);
                    }
                }
                for (key, parent) in todo {
                    // Moved out, not cloned; a parent listed twice finds
                    // its collection already set by its first occurrence.
                    let mut members = match by_key.remove(&key) {
                        Some(members) => members,
                        None if loaded_of(&parent, index).is_some() => continue,
                        None => Vec::new(),
                    };
                    if rel.kind == RelKind::OneToOne {
                        members.truncate(1);
                    }
                    out.extend(members.iter().cloned());
                    with_links(&parent, |l| l.set_loaded(index, members));
                }
            }
        }
        Ok(out)
    }

    /// Adds a type-erased object (save-update cascade).
    pub(crate) fn add_erased(&self, obj: Rc<dyn AnyObj>) -> Result<()> {
        obj.add_to(self)
    }

    /// Deletes a type-erased object (delete and delete-orphan cascades).
    pub(crate) fn delete_erased(&self, obj: Rc<dyn AnyObj>) -> Result<()> {
        obj.delete_in(self)
    }

    /// Expunges a type-erased object (a pending orphan).
    pub(crate) fn expunge_erased(&self, obj: &Rc<dyn AnyObj>) -> Result<()> {
        obj.clone().expunge_from(self)
    }

    /// What `delete()` does along the relationships of `obj`: with the
    /// `delete` cascade the related objects are deleted too (children
    /// first at flush); without it, loaded children get a NULL foreign key at
    /// flush. `passive_deletes` trusts the database's `ON DELETE` and loads
    /// nothing.
    pub(crate) fn cascade_delete(&self, obj: &Rc<dyn AnyObj>) -> Result<()> {
        let table = obj.table();
        for (index, rel) in table.relationships.iter().enumerate() {
            // The association rows of a many-to-many go with the row (ON
            // DELETE CASCADE on the association table).
            if matches!(rel.kind, RelKind::ManyToOne | RelKind::ManyToMany) {
                continue;
            }
            let children = if rel.passive_deletes {
                loaded_of(obj, index).unwrap_or_default()
            } else {
                related(obj, index)?
            };
            if rel.cascade.contains(Cascade::DELETE) {
                for child in children {
                    let (state, marked) = {
                        let meta = child.meta().borrow();
                        (meta.state, meta.marked_deleted)
                    };
                    match state {
                        ObjState::Persistent if !marked => self.delete_erased(child)?,
                        ObjState::Pending => self.expunge_erased(&child)?,
                        _ => {}
                    }
                }
            } else if !rel.passive_deletes {
                let column = fk_column(obj, rel)?;
                for child in children {
                    if child.meta().borrow().state == ObjState::Persistent {
                        with_links(&child, |l| l.set_fk(column, None, rel_ref(obj, index)));
                        touch(&child);
                    }
                }
            }
        }
        Ok(())
    }
}
