//! Flushing: gathering what changed, running the unit of work's plan inside
//! the transaction, and marking objects done — or restoring them when the
//! database refuses.

use crate::fast_hash::FastHashSet;
use std::any::TypeId;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::value::Value;

use super::binds::BindIdx;
use super::events::{ModelEvent, SessionEvent};
use super::identity_map::{Identity, ModelMap};
use super::object::{addr, AnyObj, ObjState};
use super::transaction::{self, KeySwitch, Phase};
use super::{persistence, unit_of_work, Session, State};

impl Session {
    /// Sends every pending change (INSERT, UPDATE of changed columns, DELETE)
    /// inside the transaction, beginning it if needed. With nothing to do it
    /// sends nothing and begins nothing.
    ///
    /// A flush changes nothing until the database has accepted all of it:
    /// - an error found before any SQL is sent (an object still borrowed
    ///   through a `read()`/`write()` guard, rows that cannot be ordered, a
    ///   value that cannot be read) leaves the session, its objects and
    ///   their pending changes exactly as they were: fix the cause and flush
    ///   again;
    /// - an error from the database rolls back at once (only the savepoint,
    ///   inside [`Session::begin_nested`]), restores the objects (pending ones
    ///   transient, deleted ones back, changed ones expired), and the session
    ///   refuses work ([`Error::PendingRollback`]) until `rollback()` (or the
    ///   savepoint's rollback).
    pub fn flush(&self) -> Result<()> {
        let hooked = {
            let st = self.state()?;
            if st.flushing {
                return Err(Error::invalid(
                    "flush() is already in progress on this session",
                ));
            }
            self.check_usable(&st)?;
            let modified = self.modified()?;
            if st.new.is_empty() && st.deleted.is_empty() && modified.is_empty() {
                return Ok(());
            }
            self.inner.events.is_some()
                || st
                    .new
                    .iter()
                    .chain(st.deleted.iter())
                    .chain(modified.iter())
                    .any(|o| o.has_model_events())
        };
        if hooked {
            // Nothing was sent: on error, the session keeps its changes.
            self.while_flushing(|| self.before_hooks())?;
        }
        let mut st = self.state()?;
        self.check_usable(&st)?;
        let modified: Vec<Rc<dyn AnyObj>> = std::mem::take(&mut *self.modified()?);
        if st.new.is_empty() && st.deleted.is_empty() && modified.is_empty() {
            return Ok(());
        }
        let (mut plan, switched) = match self.prepare(&st, &modified) {
            Ok(prepared) => prepared,
            Err(e) => {
                // Nothing was sent and nothing changed: keep every pending change.
                self.restore_modified(modified);
                return Err(e);
            }
        };
        let _span = crate::trace::flush_span(plan.tables_in_save_order().map(|(t, w)| {
            let (inserts, updates, deletes) = w.counts();
            (t.name, inserts, updates, deletes)
        }));
        let after = if hooked {
            self.after_list(&plan, &switched)
        } else {
            Vec::new()
        };
        if plan.is_empty() {
            // Nothing to send, but a row switch with no changed column still
            // moves the row from the deleted object to the new one, and
            // objects written back to their loaded values are clean again.
            return match self.apply(&mut st, plan, switched, &modified) {
                Ok(()) => {
                    drop(st);
                    self.after_hooks(hooked, after)
                }
                Err(e) => {
                    self.restore_modified(modified);
                    Err(self.fail_flush(&mut st, e))
                }
            };
        }
        st.tx.autobegin();
        st.flushing = true;
        let result = self.run_plan(&mut st, &mut plan);
        st.flushing = false;
        let result = result.and_then(|()| self.apply(&mut st, plan, switched, &modified));
        match result {
            Ok(()) => {
                drop(st);
                self.after_hooks(hooked, after)
            }
            Err(e) => {
                self.restore_modified(modified);
                Err(self.fail_flush(&mut st, e))
            }
        }
    }

    /// Runs `work` with the session marked as flushing (a nested flush is
    /// an error, autoflush is skipped) and its state not borrowed, so that
    /// hooks can use the session.
    fn while_flushing<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        /// Clears the flag however `work` ends (a panicking hook included).
        struct Done<'a>(&'a Session);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                if let Ok(mut st) = self.0.inner.state.try_borrow_mut() {
                    st.flushing = false;
                }
            }
        }
        self.state()?.flushing = true;
        let _done = Done(self);
        work()
    }

    /// `before_flush`, then `before_insert`/`before_update`/`before_delete`
    /// for every object until no hook added a new one.
    fn before_hooks(&self) -> Result<()> {
        self.run_hooks(SessionEvent::BeforeFlush)?;
        let mut done: FastHashSet<(*const (), ModelEvent)> = FastHashSet::default();
        loop {
            let mut todo: Vec<(Rc<dyn AnyObj>, ModelEvent)> = Vec::new();
            {
                let st = self.state()?;
                let modified = self.modified()?;
                let inserts = st.new.iter().map(|o| (o, ModelEvent::BeforeInsert));
                let deletes = st.deleted.iter().map(|o| (o, ModelEvent::BeforeDelete));
                let updates = modified.iter().map(|o| (o, ModelEvent::BeforeUpdate));
                for (obj, event) in inserts.chain(deletes).chain(updates) {
                    let id = (addr(obj), event);
                    if !obj.listens(self, event) || done.contains(&id) {
                        continue;
                    }
                    if event == ModelEvent::BeforeUpdate {
                        // Only objects with a real change (diff ignores
                        // objects marked for deletion).
                        let changed = unit_of_work::diff(obj)?.is_some()
                            || (obj.meta().borrow().links.is_some()
                                && !super::links::pending_fks(obj).is_empty());
                        if !changed || obj.meta().borrow().marked_deleted {
                            continue;
                        }
                    }
                    done.insert(id);
                    todo.push((obj.clone(), event));
                }
            }
            if todo.is_empty() {
                return Ok(());
            }
            for (obj, event) in todo {
                obj.fire(event, self)?;
            }
        }
    }

    /// The objects whose `after_insert`/`after_update`/`after_delete` hooks
    /// run if the flush succeeds.
    fn after_list(
        &self,
        plan: &unit_of_work::Plan,
        switched: &[unit_of_work::RowSwitch],
    ) -> Vec<(Rc<dyn AnyObj>, ModelEvent)> {
        let mut out = Vec::new();
        for (_, work) in plan.tables_in_save_order() {
            for row in work.inserts.iter().flatten() {
                out.push((row.obj.clone(), ModelEvent::AfterInsert));
            }
            for row in &work.updates {
                out.push((row.obj.clone(), ModelEvent::AfterUpdate));
            }
        }
        for sw in switched {
            if !sw.updated {
                out.push((sw.new.clone(), ModelEvent::AfterUpdate));
            }
        }
        for (_, work) in plan.tables_in_save_order() {
            for row in work.deletes.iter().flatten() {
                out.push((row.obj.clone(), ModelEvent::AfterDelete));
            }
        }
        out.retain(|(obj, event)| obj.listens(self, *event));
        out
    }

    /// The `after_*` hooks of a flush the database accepted, then
    /// `after_flush`. An error rolls back like a failed flush.
    fn after_hooks(&self, hooked: bool, after: Vec<(Rc<dyn AnyObj>, ModelEvent)>) -> Result<()> {
        if !hooked {
            return Ok(());
        }
        let result = self.while_flushing(|| {
            for (obj, event) in after {
                obj.fire(event, self)?;
            }
            self.run_hooks(SessionEvent::AfterFlush)
        });
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut st = self.state()?;
                Err(self.fail_flush(&mut st, e))
            }
        }
    }

    /// Everything a flush decides before sending SQL; changes nothing.
    fn prepare(
        &self,
        st: &State,
        modified: &[Rc<dyn AnyObj>],
    ) -> Result<(unit_of_work::Plan, Vec<unit_of_work::RowSwitch>)> {
        // Sized once: growing them by doubling was visible in W4's peak heap.
        let mut updates = Vec::with_capacity(modified.len());
        // foldhash, as the identity map: SipHash of 10,000 pointers showed
        // in W4's and W7's profiles.
        let mut seen: FastHashSet<*const ()> =
            FastHashSet::with_capacity_and_hasher(modified.len(), Default::default());
        for obj in modified {
            if !seen.insert(addr(obj)) {
                continue; // written, flushed, written again: one entry is enough
            }
            let row = unit_of_work::diff(obj)?;
            if let Some(row) = super::dependency::update_fks(obj, row)? {
                updates.push(row);
            }
        }
        let (inserts, deletes, mut switched) = unit_of_work::row_switches(&st.new, &st.deleted)?;
        updates.extend(switched.iter_mut().filter_map(|s| s.update.take()));
        // `on_update` columns, looked up once per table of consecutive rows.
        let mut last: Option<(*const crate::model::TableDef, bool)> = None;
        for row in &mut updates {
            let table = row.obj.table();
            let has = match last {
                Some((t, has)) if std::ptr::eq(t, table) => has,
                _ => {
                    let has = table.columns.iter().any(|c| c.on_update.is_some());
                    last = Some((table, has));
                    has
                }
            };
            if has {
                super::defaults::update_defaults(row);
            }
        }
        let mut plan = unit_of_work::Plan::build(&inserts, updates, &deletes)?;
        plan.assoc = super::dependency::association_changes(st.new.iter().chain(modified));
        // Only linked objects of a table with a post_update relationship can
        // have post_update keys: the rest (the bulk of a large flush) costs
        // two checks, not a set insert.
        let mut seen_post: FastHashSet<*const ()> = FastHashSet::default();
        for obj in st.new.iter().chain(modified) {
            if obj.table().relationships.iter().any(|r| r.post_update)
                && obj.meta().borrow().links.is_some()
                && seen_post.insert(addr(obj))
            {
                plan.post_updates
                    .extend(super::dependency::post_updates(obj));
            }
        }
        // A row about to be deleted first lets go of the rows it points at
        // through a post_update key (they may be deleted in this flush too).
        for obj in &deletes {
            let table = obj.table();
            for rel in table.relationships.iter().filter(|r| r.post_update) {
                if let Some(column) = rel.fk_column(table) {
                    if !obj.column_value(column)?.is_null() {
                        plan.post_updates.push(super::dependency::PostUpdate {
                            obj: obj.clone(),
                            column,
                            target: None,
                            value: None,
                        });
                    }
                }
            }
        }
        plan.check_writable()?;
        for sw in switched.iter().filter(|sw| sw.table.version.is_some()) {
            unit_of_work::writable(&sw.new, "flushing (an explicit flush, or the autoflush of a query, get(), merge() or commit()): \
                                             the flush writes the row's version into it. Nothing was sent")?;
        }
        Ok((plan, switched))
    }

    fn modified(&self) -> Result<std::cell::RefMut<'_, Vec<Rc<dyn AnyObj>>>> {
        self.inner.modified.try_borrow_mut().map_err(|_| {
            Error::invalid("the session is busy (called from inside one of its own operations); do not reenter it")
        })
    }

    /// Puts the written objects back on the modified list after a flush
    /// that did not complete (their snapshots were never cleared).
    fn restore_modified(&self, modified: Vec<Rc<dyn AnyObj>>) {
        if let Ok(mut list) = self.inner.modified.try_borrow_mut() {
            let later = std::mem::replace(&mut *list, modified);
            list.extend(later);
        }
    }

    fn run_plan(&self, st: &mut State, plan: &mut unit_of_work::Plan) -> Result<()> {
        let binds = &*self.inner.binds;
        // The engines this plan writes to, each connection checked out (and
        // its transaction begun) before the first statement.
        let mut needed: Vec<BindIdx> = Vec::new();
        let sharded = binds.is_sharded();
        let mut need = |table: &crate::model::TableDef, obj: &Rc<dyn AnyObj>| {
            let shard = if sharded {
                persistence::shard_of(obj)
            } else {
                None
            };
            let bind = binds.for_table(table.name, shard);
            if !needed.contains(&bind) {
                needed.push(bind);
            }
        };
        // Save order first, so that the engines are used (and later
        // committed) in the order their first statement goes out.
        let tables = plan
            .tables_in_save_order()
            .chain(plan.tables.iter())
            .collect::<Vec<_>>();
        for (table, work) in tables {
            let rows = work
                .inserts
                .iter()
                .flatten()
                .map(|r| &r.obj)
                .chain(work.updates.iter().map(|r| &r.obj))
                .chain(work.deletes.iter().flatten().map(|r| &r.obj));
            if sharded {
                rows.for_each(|obj| need(table, obj));
            } else if let Some(obj) = rows.take(1).next() {
                // Every row of a table goes to the table's engine.
                need(table, obj);
            }
        }
        for change in &plan.assoc {
            need(change.owner.table(), &change.owner);
        }
        for pu in &plan.post_updates {
            need(pu.obj.table(), &pu.obj);
        }
        // Read replicas serve the default engine: a write to it moves the
        // session's reads to its primary and its commit's position is kept.
        if needed.contains(&0) {
            st.tx.wrote = true;
        }
        for &bind in &needed {
            self.connection(st, bind)?;
        }
        let mut ctxs = Vec::with_capacity(needed.len());
        for (bind, conn) in st.tx.conns.iter_mut() {
            if needed.contains(bind) {
                let server = conn.server_info().clone();
                ctxs.push((
                    *bind,
                    persistence::Ctx {
                        conn,
                        engine: binds.engine(*bind),
                        server,
                    },
                ));
            }
        }
        let mut conns = persistence::Conns { ctxs, binds };
        plan.execute(&mut conns, binds.is_sharded())?;
        self.check_still_open(st)
    }

    /// Marks everything the plan wrote as done, once the database accepted
    /// all of it: generated keys and versions are written into the objects
    /// (checked writable before any SQL; only a key that does not fit its
    /// field can fail here, and then the flush fails and is rolled back),
    /// then states, snapshots and the identity map are updated.
    fn apply(
        &self,
        st: &mut State,
        plan: unit_of_work::Plan,
        switched: Vec<unit_of_work::RowSwitch>,
        modified: &[Rc<dyn AnyObj>],
    ) -> Result<()> {
        // 1. Write-back, the only fallible part.
        for (table, work) in &plan.tables {
            for row in work.inserts.iter().flatten() {
                for column in row.synced.iter() {
                    row.obj.set_column(column, row.values[column].clone())?;
                }
                if let (Some(ai), Some(key)) = (table.auto_increment, &row.generated) {
                    row.obj.set_column(ai, key.clone())?;
                    row.obj.meta().borrow_mut().generated_key = true;
                }
                if let Some(v) = table.version {
                    row.obj.set_column(v, Value::Int(1))?;
                }
            }
            for row in &work.updates {
                for column in row.synced() {
                    if let Some(value) = row.set_value(column) {
                        row.obj.set_column(column, value.clone())?;
                    }
                }
            }
            if let Some(v) = table.version {
                for row in &work.updates {
                    if let Some(old) = row.old_version() {
                        row.obj.set_column(v, persistence::bumped(old))?;
                    }
                }
            }
        }
        for pu in &plan.post_updates {
            if let Some(value) = &pu.value {
                if !pu.obj.meta().borrow().marked_deleted {
                    pu.obj.set_column(pu.column, value.clone())?;
                }
            }
        }
        for sw in &switched {
            if let (Some(v), Some(version), false) = (sw.table.version, &sw.old_version, sw.updated)
            {
                // No column changed, so no UPDATE: the row keeps its version.
                sw.new.set_column(v, version.clone())?;
            }
        }
        // 2. States, snapshots, the identity map and the level's record.
        let State {
            map,
            new,
            deleted,
            tx,
            ..
        } = st;
        let record = tx.current();
        // The pending objects that took over a deleted row (a scan of the
        // switches per updated row made a flush of n switches cost n²).
        let switched_new: FastHashSet<*const ()> =
            switched.iter().map(|sw| addr(&sw.new)).collect();
        for (table, work) in plan.tables {
            let (server_defaults, server_on_update) = super::defaults::server_columns(table);
            let inserted = work.inserts.iter().map(Vec::len).sum::<usize>();
            record.inserted.reserve(inserted);
            record.updated.reserve(work.updates.len());
            // The model's map is looked up again only when the model or
            // shard changes from one row to the next (once per table
            // unsharded), not per row.
            let mut objects: Option<((TypeId, Option<u16>), &mut ModelMap)> = None;
            for row in work.inserts.into_iter().flatten() {
                let obj = row.obj;
                let key = obj.current_key().ok().flatten();
                let shard = {
                    let mut meta = obj.meta().borrow_mut();
                    meta.state = ObjState::Persistent;
                    meta.key = key.clone();
                    meta.snapshot = None;
                    meta.shard()
                };
                if server_defaults && super::defaults::expire_after_insert(table, &row.values) {
                    // The server filled in values it could not return.
                    transaction::expire(&obj);
                }
                if let Some(key) = key {
                    let at = (obj.model_type(), shard);
                    let model_map = match objects.take() {
                        Some((held, model_map)) if held == at => model_map,
                        _ => {
                            let model_map = map.model_mut(at.0, at.1);
                            model_map.reserve(inserted);
                            model_map
                        }
                    };
                    model_map.insert(&key, obj.clone());
                    objects = Some((at, model_map));
                }
                record.inserted.push(obj);
            }
            for row in work.updates {
                let obj = row.obj;
                obj.meta().borrow_mut().snapshot = None;
                let new_key = obj.current_key().ok().flatten();
                let switched_row = switched_new.contains(&addr(&obj));
                // The identity key is the row's key until here.
                let old_key = match (switched_row, &new_key) {
                    (false, Some(_)) => {
                        let meta = obj.meta().borrow();
                        (meta.key != new_key).then(|| meta.key.clone()).flatten()
                    }
                    _ => None,
                };
                if let Some(old_key) = old_key {
                    map.remove(&Identity {
                        model: obj.model_type(),
                        key: old_key.clone(),
                        shard: persistence::shard_of(&obj),
                    });
                    obj.meta().borrow_mut().key = new_key.clone();
                    if let Some(key) = new_key {
                        map.insert(
                            Identity {
                                model: obj.model_type(),
                                key,
                                shard: persistence::shard_of(&obj),
                            },
                            obj.clone(),
                        );
                    }
                    record.key_switches.push(KeySwitch {
                        obj: obj.clone(),
                        old_key,
                    });
                }
                if server_on_update {
                    // The server's ON UPDATE value loads at next use.
                    transaction::expire(&obj);
                }
                if !switched_row {
                    record.updated.push(obj);
                }
            }
            for row in work.deletes.into_iter().flatten() {
                transaction::record_deleted(row.obj, map, record);
            }
        }
        for sw in switched {
            {
                let mut meta = sw.old.meta().borrow_mut();
                meta.state = ObjState::Deleted;
                meta.marked_deleted = false;
            }
            record.deleted.push(sw.old);
            {
                let mut meta = sw.new.meta().borrow_mut();
                meta.state = ObjState::Persistent;
                meta.key = Some(sw.key.clone());
                meta.snapshot = None;
            }
            map.insert(
                Identity {
                    model: sw.new.model_type(),
                    key: sw.key,
                    shard: persistence::shard_of(&sw.new),
                },
                sw.new.clone(),
            );
            record.inserted.push(sw.new);
        }
        // Relationship links are now in the foreign keys.
        for obj in new.iter().chain(modified.iter()).chain(deleted.iter()) {
            super::links::clear_fks(obj);
        }
        // Objects written back to their loaded values need no UPDATE: clean.
        for obj in modified {
            let mut meta = obj.meta().borrow_mut();
            if meta.snapshot.is_some() && meta.state == ObjState::Persistent {
                meta.snapshot = None;
            }
        }
        new.clear();
        deleted.clear();
        Ok(())
    }

    /// A flush failed after it began talking to the database: roll back (the
    /// savepoint, or the whole transaction), restore the objects, and require
    /// a rollback of that level. Returns the error to raise.
    fn fail_flush(&self, st: &mut State, e: Error) -> Error {
        if !st.tx.has_conn() {
            // No connection could be had (pool timeout, server down): no
            // statement of this transaction reached the server, so there is
            // nothing to roll back and nothing to restore. The caller put
            // the written objects back; the session is as it was.
            return e;
        }
        let depth = st.tx.savepoints.len();
        let transaction_alive =
            st.tx.conns.iter().all(|(_, c)| !c.needs_rollback()) && !e.is_connection_lost();
        if depth > 0 && transaction_alive {
            let name = st.tx.savepoints[depth - 1].name.clone();
            // Every engine's connection holds the savepoint.
            let rolled_back = st
                .tx
                .conns
                .iter_mut()
                .all(|(_, c)| c.rollback_to_savepoint(&name).is_ok());
            if rolled_back {
                // Only the savepoint is lost: restore its objects now; the
                // savepoint stays open until its rollback() acknowledges.
                let mut record = std::mem::take(&mut st.tx.savepoints[depth - 1].record);
                self.rollback_savepoint_state(st, &mut record);
                st.tx.phase = Phase::NeedsRollback {
                    cause: Arc::new(e.clone()),
                    savepoint: Some(depth),
                };
                self.sync_flags(st);
                return e;
            }
        }
        st.tx.rollback_all();
        self.rollback_state(st);
        // rollback_state reset the transaction; keep the session locked
        // until the user acknowledges with rollback().
        st.tx.fail(e.clone());
        self.sync_flags(st);
        e
    }

    /// Runs `work` with autoflush off, restoring the previous setting even on error.
    pub fn no_autoflush<T>(&self, work: impl FnOnce(&Session) -> T) -> T {
        struct Restore<'a>(&'a Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.inner.autoflush, self.inner.autoflush.replace(false));
        work(self)
    }

    pub(crate) fn autoflush(&self) -> Result<()> {
        let flushing = self.state_ref()?.flushing;
        if self.inner.autoflush.get() && !flushing {
            self.flush()
        } else {
            let st = self.state()?;
            self.check_usable(&st)
        }
    }
}
