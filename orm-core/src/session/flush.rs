//! Flushing: gathering what changed, running the unit of work's plan inside
//! the transaction, and marking objects done — or restoring them when the
//! database refuses.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{Error, Result};

use super::identity_map::Identity;
use super::object::{AnyObj, ObjState};
use super::transaction::{self, Phase, Savepoint};
use super::{persistence, unit_of_work, Session, State};

impl Session {
    /// Sends every pending change (INSERT, UPDATE of changed columns, DELETE)
    /// inside the transaction, beginning it if needed. With nothing to do it
    /// sends nothing and begins nothing. On failure the transaction is
    /// rolled back at once, the session's state restored, and the session
    /// refuses work ([`Error::PendingRollback`]) until `rollback()`.
    pub fn flush(&self) -> Result<()> {
        let mut st = self.state()?;
        if st.flushing {
            return Err(Error::invalid(
                "flush() is already in progress on this session",
            ));
        }
        self.check_usable(&st)?;
        let modified: Vec<Rc<dyn AnyObj>> = std::mem::take(&mut *self.inner.modified.borrow_mut());
        if st.new.is_empty() && st.deleted.is_empty() && modified.is_empty() {
            return Ok(());
        }
        let mut updates = Vec::new();
        for obj in &modified {
            if obj.meta().borrow().snapshot.is_none() {
                continue; // already flushed through another entry
            }
            if let Some(row) = unit_of_work::diff(obj)? {
                obj.meta().borrow_mut().snapshot = None;
                updates.push(row);
            }
        }
        let (inserts, deletes, switched) = match unit_of_work::row_switches(&st.new, &st.deleted) {
            Ok(split) => split,
            Err(e) => {
                self.restore_snapshots(&modified);
                return Err(e);
            }
        };
        let mut switched = switched;
        updates.extend(switched.iter_mut().filter_map(|s| s.update.take()));
        let plan = unit_of_work::Plan::build(&inserts, updates, &deletes);
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                self.restore_snapshots(&modified);
                return Err(e);
            }
        };
        let _span = crate::trace::flush_span(
            plan.tables
                .iter()
                .map(|(t, w)| (t.name, w.inserts.len(), w.updates.len(), w.deletes.len())),
        );
        if plan.is_empty() {
            // Nothing to send, but a row switch with no changed column still
            // moves the row from the deleted object to the new one.
            self.apply(&mut st, plan, switched);
            return Ok(());
        }
        st.flushing = true;
        let result = self.run_plan(&mut st, &plan);
        st.flushing = false;
        match result {
            Ok(()) => {
                self.apply(&mut st, plan, switched);
                Ok(())
            }
            Err(e) => Err(self.fail_flush(&mut st, e)),
        }
    }

    pub(super) fn restore_snapshots(&self, modified: &[Rc<dyn AnyObj>]) {
        self.inner
            .modified
            .borrow_mut()
            .extend(modified.iter().cloned());
    }

    pub(super) fn run_plan(&self, st: &mut State, plan: &unit_of_work::Plan) -> Result<()> {
        let dialect = self.inner.engine.dialect();
        let conn = self.connection(st)?;
        let server = conn.server_info().clone();
        let mut ctx = persistence::Ctx {
            conn,
            dialect,
            server,
        };
        plan.execute(&mut ctx)
    }

    /// Marks everything the plan wrote as done.
    pub(super) fn apply(
        &self,
        st: &mut State,
        plan: unit_of_work::Plan,
        switched: Vec<unit_of_work::RowSwitch>,
    ) {
        let State {
            map,
            new,
            deleted,
            tx,
            ..
        } = st;
        for (table, work) in plan.tables {
            for obj in work.inserts {
                let key = obj.current_key().ok().flatten();
                {
                    let mut meta = obj.meta().borrow_mut();
                    meta.state = ObjState::Persistent;
                    meta.key = key.clone();
                    meta.snapshot = None;
                }
                if let Some(key) = key {
                    map.insert(
                        Identity {
                            model: obj.model_type(),
                            key,
                        },
                        obj.clone(),
                    );
                }
                tx.inserted.push(obj);
            }
            for row in work.updates {
                let obj = row.obj;
                if let (Some(v), Some(old)) = (table.version, &row.old_version) {
                    let next = persistence::bumped(old);
                    // The object was readable a moment ago; a failure here
                    // only leaves the in-memory version behind, which the
                    // next flush reports as stale data rather than losing writes.
                    let _ = obj.set_column(v, next);
                }
                let new_key = obj.current_key().ok().flatten();
                if new_key.is_some() && new_key.as_ref() != Some(&row.old_key) {
                    map.remove(&Identity {
                        model: obj.model_type(),
                        key: row.old_key.clone(),
                    });
                    if let Some(key) = new_key.clone() {
                        map.insert(
                            Identity {
                                model: obj.model_type(),
                                key,
                            },
                            obj.clone(),
                        );
                    }
                    obj.meta().borrow_mut().key = new_key;
                }
                tx.updated.push(obj);
            }
            for obj in work.deletes {
                {
                    let mut meta = obj.meta().borrow_mut();
                    meta.state = ObjState::Deleted;
                    meta.marked_deleted = false;
                }
                if let Some(identity) = transaction::identity_of(&obj) {
                    map.remove(&identity);
                }
                tx.deleted.push(obj);
            }
        }
        for sw in switched {
            if let (Some(v), Some(version), false) = (sw.table.version, sw.old_version, sw.updated)
            {
                // No column changed, so no UPDATE: the row keeps its version.
                let _ = sw.new.set_column(v, version);
            }
            {
                let mut meta = sw.old.meta().borrow_mut();
                meta.state = ObjState::Deleted;
                meta.marked_deleted = false;
            }
            tx.deleted.push(sw.old);
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
                },
                sw.new.clone(),
            );
            tx.inserted.push(sw.new);
        }
        new.clear();
        deleted.clear();
    }

    /// A flush failed: roll back (the savepoint, or the whole transaction),
    /// restore the objects, and require rollback().
    pub(super) fn fail_flush(&self, st: &mut State, e: Error) -> Error {
        let cause = Arc::new(e.clone());
        if let Some(sp_index) = st.tx.savepoints.len().checked_sub(1) {
            let name = st.tx.savepoints[sp_index].name.clone();
            let sent = st.tx.savepoints[sp_index].sent;
            let ok = sent
                && st
                    .tx
                    .conn
                    .as_mut()
                    .is_some_and(|c| c.rollback_to_savepoint(&name).is_ok());
            if ok {
                // Only the savepoint is lost: restore its objects now, and
                // keep the savepoint open so that its rollback() clears the state.
                let sp = Savepoint {
                    name,
                    inserted_mark: st.tx.savepoints[sp_index].inserted_mark,
                    deleted_mark: st.tx.savepoints[sp_index].deleted_mark,
                    updated_mark: st.tx.savepoints[sp_index].updated_mark,
                    sent: true,
                };
                self.rollback_savepoint_state(st, &sp);
                st.tx.phase = Phase::NeedsRollback(cause);
                return e;
            }
        }
        if let Some(conn) = st.tx.conn.as_mut() {
            if conn.rollback().is_err() {
                conn.invalidate();
            }
        }
        self.rollback_state(st);
        // rollback_state reset the transaction; keep the session locked
        // until the user acknowledges with rollback().
        st.tx.phase = Phase::NeedsRollback(cause);
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
        if self.inner.autoflush.get() {
            self.flush()
        } else {
            let st = self.state()?;
            self.check_usable(&st)
        }
    }
}
