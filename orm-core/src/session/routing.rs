//! Which server a session's reads go to: a replica of the factory's
//! [`ReplicaSet`](crate::replicas::ReplicaSet) while the session has not
//! written, else the primary (the rules are on the
//! [`replicas`](crate::replicas) module). Writes always take the primary
//! connection through `Session::connection`, which ends the replica read.
//!
//! Replicas serve the session's default engine only (engine 0 of `binds`:
//! the factory's engine, or the first shard). Reads of a model bound to
//! another engine, or of another shard, go to that engine's transaction
//! connection, and writes there leave the default engine's reads where they
//! are.

use crate::engine::PooledConnection;
use crate::error::{Error, Result};
use crate::replicas;

use super::binds::BindIdx;
use super::identity_map::IdentityMap;
use super::transaction::Phase;
use super::{Session, State};

/// The session transaction's reads on a replica: the connection (holding
/// the read snapshot) and which replica of the set it is.
pub(crate) struct ReplicaRead {
    pub conn: PooledConnection,
    pub index: usize,
}

impl Session {
    /// Makes sure the session has a connection to read from: the replica
    /// read already open, else a replica when the session may read from
    /// one (replicas configured, no primary connection, no explicit
    /// `begin()`, no connection lent to a stream) and one is healthy, else
    /// the primary transaction's connection.
    pub(super) fn prepare_read(&self, st: &mut State) -> Result<()> {
        let set = match self.inner.replicas.as_deref() {
            Some(set) if !st.tx.has_conn_to(0) && !st.tx.explicit && !st.tx.lent => set,
            _ => return self.connection(st, 0).map(|_| ()),
        };
        self.check_usable(st)?;
        if st.tx.read.is_none() {
            match set.checkout(&self.inner.engine) {
                Some((index, conn)) => st.tx.read = Some(ReplicaRead { conn, index }),
                None => return self.connection(st, 0).map(|_| ()),
            }
        }
        // Autobegin, as a read on the primary does: in_transaction() is
        // the same with or without replicas.
        st.tx.phase = Phase::Active;
        self.sync_flags(st);
        Ok(())
    }

    /// Runs the read `read` on engine `bind`'s read connection (for the
    /// default engine, see [`prepare_read`](Self::prepare_read); another
    /// engine's is its transaction connection), with the identity map
    /// beside it. A read whose replica died under it (connection lost, or no
    /// connection could be made) is run again once from the start, on
    /// another replica or the primary: the replica is marked down. Other
    /// errors pass through `note_error`.
    pub(super) fn with_reader<T>(
        &self,
        st: &mut State,
        bind: BindIdx,
        mut read: impl FnMut(&mut IdentityMap, &mut PooledConnection) -> Result<T>,
    ) -> Result<T> {
        if bind != 0 {
            self.connection(st, bind)?;
            let State { map, tx, .. } = &mut *st;
            let conn = tx
                .conn_mut(bind)
                .ok_or_else(|| Error::invalid("the session lost its connection"))?;
            return match read(map, conn) {
                Ok(v) => Ok(v),
                Err(e) => Err(self.note_error(st, e)),
            };
        }
        let mut retried = false;
        loop {
            self.prepare_read(st)?;
            let State { map, tx, .. } = &mut *st;
            let replica = tx.read.as_ref().map(|r| r.index);
            let conn = match tx.read.as_mut() {
                Some(r) => &mut r.conn,
                None => tx
                    .conn_mut(0)
                    .ok_or_else(|| Error::invalid("the session lost its connection"))?,
            };
            let result = read(map, conn);
            let set = self.inner.replicas.as_deref();
            match (result, replica, set) {
                (Ok(v), Some(_), Some(set)) => {
                    set.count_replica_read();
                    return Ok(v);
                }
                (Ok(v), _, _) => return Ok(v),
                (Err(e), Some(index), Some(set)) if !retried && replicas::replica_gone(&e) => {
                    set.mark_down(index);
                    set.count_read_retry();
                    st.tx.read = None;
                    retried = true;
                }
                (Err(e), _, _) => return Err(self.note_error(st, e)),
            }
        }
    }

    /// Counts a read a replica answered outside [`with_reader`](Self::with_reader)
    /// (a stream).
    pub(super) fn count_replica_read(&self) {
        if let Some(set) = self.inner.replicas.as_deref() {
            set.count_replica_read();
        }
    }

    /// Moves the session to the primary now, for a query on `table` that
    /// takes row locks: the replica read ends and the primary transaction
    /// begins. Nothing to do without replicas, or when `table` is bound to
    /// another engine than the default one (which has no replicas; the
    /// query's own read goes to that engine's primary).
    pub(crate) fn use_primary(&self, table: &crate::model::TableDef) -> Result<()> {
        if self.inner.replicas.is_none() || self.bind_of(table) != 0 {
            return Ok(());
        }
        let mut st = self.state()?;
        self.connection(&mut st, 0).map(|_| ())
    }
}
