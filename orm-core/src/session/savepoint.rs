//! Nested transactions (SAVEPOINTs) and SQLAlchemy's accounting when one
//! is rolled back: objects added inside become transient, objects deleted
//! inside are restored, objects changed inside are expired.

use crate::error::{Error, Result};

use super::transaction::{self, Phase, Savepoint};
use super::{Session, State};

impl Session {
    /// Whether a nested transaction (savepoint) is open.
    pub fn in_nested_transaction(&self) -> bool {
        !self.inner.state.borrow().tx.savepoints.is_empty()
    }

    /// Begins a nested transaction (a SAVEPOINT), flushing first. Finish it
    /// with [`NestedTransaction::commit`] (RELEASE) or
    /// [`NestedTransaction::rollback`] (ROLLBACK TO: objects added inside
    /// become transient, objects changed or deleted inside are expired or
    /// restored; the outer transaction stays usable). Dropping it unfinished
    /// rolls it back.
    pub fn begin_nested(&self) -> Result<NestedTransaction<'_>> {
        let _span = crate::trace::savepoint_span("begin");
        self.flush()?;
        let mut st = self.state()?;
        self.check_usable(&st)?;
        st.tx.next_savepoint += 1;
        let name = format!("sa_savepoint_{}", st.tx.next_savepoint);
        let sp = Savepoint {
            name: name.clone(),
            inserted_mark: st.tx.inserted.len(),
            deleted_mark: st.tx.deleted.len(),
            updated_mark: st.tx.updated.len(),
            sent: false,
        };
        st.tx.savepoints.push(sp);
        // SAVEPOINT needs the transaction's connection: send it now.
        self.connection(&mut st)?;
        Ok(NestedTransaction {
            session: self,
            depth: st.tx.savepoints.len(),
            done: false,
        })
    }

    /// Runs `work` inside a savepoint: released on `Ok`, rolled back on `Err`
    /// (the outer transaction stays usable) or panic.
    pub fn nested<T>(&self, work: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let nested = self.begin_nested()?;
        match work(self) {
            Ok(v) => {
                nested.commit()?;
                Ok(v)
            }
            Err(e) => {
                nested.rollback()?;
                Err(e)
            }
        }
    }

    pub(super) fn end_savepoint(&self, depth: usize, commit: bool) -> Result<()> {
        let _span = crate::trace::savepoint_span(if commit { "release" } else { "rollback" });
        if commit {
            self.flush()?;
        }
        let mut st = self.state()?;
        if st.tx.savepoints.len() != depth {
            return Err(Error::invalid(
                "this nested transaction is not the innermost one (or is already finished); finish inner savepoints first",
            ));
        }
        let sp = match st.tx.savepoints.pop() {
            Some(sp) => sp,
            None => return Ok(()),
        };
        if commit {
            self.check_usable(&st)?;
            if sp.sent {
                if let Some(conn) = st.tx.conn.as_mut() {
                    if let Err(e) = conn.release_savepoint(&sp.name) {
                        return Err(self.note_error(&mut st, e));
                    }
                }
            }
            return Ok(());
        }
        if sp.sent {
            if let Some(conn) = st.tx.conn.as_mut() {
                if let Err(e) = conn.rollback_to_savepoint(&sp.name) {
                    return Err(self.note_error(&mut st, e));
                }
            }
        }
        self.rollback_savepoint_state(&mut st, &sp);
        // A flush that failed inside the savepoint left the session needing
        // rollback; rolling the savepoint back is that rollback.
        if matches!(st.tx.phase, Phase::NeedsRollback(_)) && st.tx.conn.is_some() {
            st.tx.phase = Phase::Active;
        }
        Ok(())
    }

    /// SQLAlchemy's savepoint accounting: objects added inside become
    /// transient, objects deleted inside are restored, objects changed
    /// inside are expired.
    pub(super) fn rollback_savepoint_state(&self, st: &mut State, sp: &Savepoint) {
        let State {
            map,
            new,
            deleted,
            tx,
            ..
        } = st;
        for obj in tx.deleted.drain(sp.deleted_mark..) {
            transaction::restore_deleted(&obj, map);
        }
        for obj in tx.inserted.drain(sp.inserted_mark..) {
            transaction::make_transient(&obj, map);
        }
        // begin_nested flushed, so everything still pending was added inside.
        for obj in new.drain(..) {
            transaction::make_transient(&obj, map);
        }
        for obj in deleted.drain(..) {
            obj.meta().borrow_mut().marked_deleted = false;
            transaction::expire(&obj);
        }
        for obj in tx.updated.drain(sp.updated_mark..) {
            transaction::expire(&obj);
        }
        for obj in self.inner.modified.borrow_mut().drain(..) {
            transaction::expire(&obj);
        }
    }
}

/// A savepoint begun with [`Session::begin_nested`].
#[must_use = "a nested transaction is rolled back when dropped unfinished"]
pub struct NestedTransaction<'s> {
    session: &'s Session,
    depth: usize,
    done: bool,
}

impl NestedTransaction<'_> {
    /// Flushes and RELEASEs the savepoint; its changes join the outer transaction.
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.session.end_savepoint(self.depth, true)
    }

    /// ROLLs BACK TO the savepoint, with SQLAlchemy's object accounting.
    pub fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.session.end_savepoint(self.depth, false)
    }
}

impl Drop for NestedTransaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.session.end_savepoint(self.depth, false);
        }
    }
}
