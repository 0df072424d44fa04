//! Nested transactions (SAVEPOINTs) and SQLAlchemy's accounting when one
//! is rolled back: objects added inside become transient, objects deleted
//! inside are restored, objects changed inside are expired, primary-key
//! changes made inside are reverted.

use crate::error::{Error, Result};

use super::transaction::{self, Phase, Record, Savepoint};
use super::{Session, State};

impl Session {
    /// Whether a nested transaction (savepoint) is open. Never fails (see
    /// [`Session::in_transaction`]).
    pub fn in_nested_transaction(&self) -> bool {
        match self.inner.state.try_borrow() {
            Ok(st) => !st.tx.savepoints.is_empty(),
            Err(_) => self.inner.flags.get().nested_depth > 0,
        }
    }

    /// Begins a nested transaction (a SAVEPOINT), flushing first. The
    /// SAVEPOINT is sent now; if that fails (no connection could be checked
    /// out, the connection was lost) no savepoint is open afterwards.
    ///
    /// Finish it with [`NestedTransaction::commit`] (flush, then RELEASE)
    /// or [`NestedTransaction::rollback`] (ROLLBACK TO: objects added inside
    /// become transient, objects changed or deleted inside are expired or
    /// restored; the outer transaction stays usable). Dropping it unfinished
    /// rolls it back. A flush that fails inside the savepoint rolls back to
    /// it at once; the session then refuses work until the savepoint (or the
    /// whole transaction) is rolled back. A flush that fails in `commit()`
    /// rolls the savepoint back and returns the error, leaving the outer
    /// transaction usable: SQLAlchemy's "try it inside a savepoint, skip it
    /// on IntegrityError, go on".
    pub fn begin_nested(&self) -> Result<NestedTransaction<'_>> {
        let _span = crate::trace::savepoint_span("begin");
        self.flush()?;
        let mut st = self.state()?;
        self.check_usable(&st)?;
        if self.inner.binds.two_phase {
            return Err(Error::invalid(
                "begin_nested() is not available in a two-phase (XA) session: MariaDB and MySQL \
                 allow no SAVEPOINT inside an XA transaction. Use a factory without two_phase(true) \
                 for work that needs savepoints",
            ));
        }
        let name = format!("sa_savepoint_{}", st.tx.next_savepoint + 1);
        // A savepoint is a write: with read replicas it moves the default
        // engine to its primary (and `connection` refuses while a stream
        // has a connection lent, which would miss the savepoint).
        if !st.tx.has_conn() || self.inner.replicas.is_some() || st.tx.lent {
            self.connection(&mut st, 0)?;
        }
        // Every engine's connection gets the savepoint (and a connection
        // opened later inside it gets it at checkout).
        for i in 0..st.tx.conns.len() {
            if let Err(e) = st.tx.conns[i].1.savepoint(&name) {
                // The connections that took it release it with the
                // transaction; the savepoint is not recorded.
                return Err(self.note_error(&mut st, e));
            }
        }
        st.tx.next_savepoint += 1;
        st.tx.savepoints.push(Savepoint {
            name,
            record: Record::default(),
        });
        self.sync_flags(&st);
        Ok(NestedTransaction {
            session: self,
            depth: st.tx.savepoints.len(),
            done: false,
        })
    }

    /// Runs `work` inside a savepoint: released on `Ok` (after a flush; a
    /// failing flush rolls the savepoint back and returns the error), rolled
    /// back on `Err` or panic. The outer transaction stays usable either way,
    /// unless the failure ended the whole transaction (a lost connection, a
    /// deadlock).
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
        {
            let st = self.state()?;
            super::transaction::check_not_lent(&st)?;
            if st.tx.savepoints.len() != depth {
                return Err(Error::invalid(
                    "this nested transaction is not the innermost one (or is already finished); finish inner savepoints first",
                ));
            }
        }
        if commit {
            if let Err(e) = self.flush() {
                // The failed flush rolled back to the savepoint (or, when the
                // whole transaction is gone, required a full rollback); undo
                // the savepoint so that the outer transaction can go on.
                self.end_savepoint(depth, false)?;
                return Err(e);
            }
            let mut st = self.state()?;
            self.check_usable(&st)?;
            let Some(name) = st.tx.savepoints.last().map(|sp| sp.name.clone()) else {
                return Ok(());
            };
            for i in 0..st.tx.conns.len() {
                if let Err(e) = st.tx.conns[i].1.release_savepoint(&name) {
                    return Err(self.note_error(&mut st, e));
                }
            }
            st.tx.release_innermost();
            self.sync_flags(&st);
            return Ok(());
        }
        let mut st = self.state()?;
        let Some(mut sp) = st.tx.savepoints.pop() else {
            return Ok(());
        };
        let whole_transaction_failed = matches!(
            st.tx.phase,
            Phase::NeedsRollback {
                savepoint: None,
                ..
            }
        );
        if whole_transaction_failed {
            // The transaction is gone; only rollback() helps. Keep this
            // level's record so that rollback() undoes it.
            st.tx.current().absorb_from(&mut sp.record);
            self.sync_flags(&st);
            return Ok(());
        }
        let failed = st
            .tx
            .conns
            .iter_mut()
            .map(|(_, c)| c.rollback_to_savepoint(&sp.name))
            .collect::<Vec<_>>()
            .into_iter()
            .find_map(|r| r.err());
        {
            if let Some(e) = failed {
                st.tx.current().absorb_from(&mut sp.record);
                let e = self.note_error(&mut st, e);
                // Whatever the error, the savepoint cannot be trusted any more.
                if matches!(st.tx.phase, Phase::Active) {
                    st.tx.fail(e.clone());
                }
                self.sync_flags(&st);
                return Err(e);
            }
        }
        self.rollback_savepoint_state(&mut st, &mut sp.record);
        // A flush that failed inside this savepoint (or one it contained)
        // left the session needing this rollback; it is done.
        if let Phase::NeedsRollback {
            savepoint: Some(failed),
            ..
        } = st.tx.phase
        {
            if failed >= depth {
                st.tx.phase = Phase::Active;
            }
        }
        self.sync_flags(&st);
        Ok(())
    }

    /// SQLAlchemy's savepoint accounting: objects added inside become
    /// transient, objects deleted inside are restored, objects changed
    /// inside are expired, key changes reverted; objects pending, marked
    /// for deletion or written but not yet flushed are undone too.
    pub(super) fn rollback_savepoint_state(&self, st: &mut State, record: &mut Record) {
        let State {
            map, new, deleted, ..
        } = st;
        transaction::restore_level(record, map, true);
        // begin_nested flushed, so everything still pending was added inside.
        for obj in new.drain(..) {
            transaction::make_transient(&obj, map);
        }
        for obj in deleted.drain(..) {
            obj.meta().borrow_mut().marked_deleted = false;
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
    /// Flushes and RELEASEs the savepoint; its changes join the outer
    /// transaction. If the flush fails, the savepoint is rolled back and the
    /// error returned; the outer transaction stays usable.
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
