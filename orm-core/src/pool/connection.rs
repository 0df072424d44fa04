//! [`PooledConnection`]: a checked-out connection, an RAII guard that
//! resets and returns it on drop, tracks the transaction state, invalidates
//! lost connections and reconnects transparently when that is safe.

use std::fmt;

use crate::backend::{BeginMode, ExecOutcome, ServerInfo};
use crate::error::{DbError, Error, Result};
use crate::pool::instrument;
use crate::pool::observe::{self, Outcome};
use crate::pool::options::ResetOnReturn;
use crate::pool::queue::{ConnRecord, Slot};
use crate::row::Row;
use crate::value::Value;

/// What the guard knows about the transaction on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    /// No transaction is open (fresh checkout, or after COMMIT/ROLLBACK).
    Idle,
    /// `begin()` was called (see `PooledConnection::unsent` for whether
    /// anything of it reached the server).
    Active,
    /// Arbitrary SQL ran outside a known transaction: it may have opened one.
    Unknown,
    /// The connection was lost inside a transaction; only `rollback()` is accepted.
    Lost,
    /// The server ended the transaction by itself (rolled it back on a
    /// deadlock, or committed it implicitly); only `rollback()` is accepted.
    Ended,
}

/// A connection checked out of an engine's pool.
///
/// Dropping it resets the connection (`ROLLBACK`, skipped when no
/// transaction is known to be open: a connection just committed goes back
/// with no extra round trip) and returns it to the pool, or closes it when
/// it is overflow or invalidated.
///
/// A lost connection (see [`crate::DbErrorKind::ConnectionLost`]) is
/// invalidated together with every pooled connection opened before it.
/// Outside a transaction the error is returned and the next call
/// reconnects. Inside one (after [`begin`](Self::begin)) the call returns
/// [`Error::ConnectionLostInTransaction`], later calls return
/// [`Error::InvalidTransaction`] until [`rollback`](Self::rollback) is called,
/// which succeeds quietly; the call after that reconnects.
pub struct PooledConnection {
    slot: Slot,
    tx: TxState,
    /// With `TxState::Active`: nothing of the transaction reached the server
    /// yet (it begins implicitly with its first statement, or `BEGIN` waits
    /// for the first write). A dead connection then loses nothing: it is
    /// replaced and the statement sent again once, and ending the
    /// transaction sends nothing.
    unsent: bool,
    /// With `TxState::Idle` on an autocommit-off connection: queries ran, so
    /// a transaction holding only reads is open (rolled back on return).
    open_reads: bool,
    /// How the live connection begins transactions.
    mode: BeginMode,
    /// Why the server ended the transaction (with `TxState::Ended`).
    ended: Option<Error>,
    info: ServerInfo,
    connection_id: u64,
    /// The XA branch open on this connection (`xa_start`), if any.
    xa: Option<XaBranch>,
}

/// A two-phase (XA) transaction branch on one connection.
#[derive(Debug, Clone)]
struct XaBranch {
    /// The xid as SQL: `'gtrid','bqual'`.
    xid: String,
    /// `XA PREPARE` succeeded (the branch is durable and survives the connection).
    prepared: bool,
}

impl PooledConnection {
    pub(crate) fn new(slot: Slot) -> Result<PooledConnection> {
        let (info, connection_id, mode) = match &slot.rec {
            Some(rec) => (
                rec.conn.server_info().clone(),
                rec.conn.connection_id(),
                rec.conn.begin_mode(),
            ),
            None => {
                return Err(Error::invalid(
                    "internal error: a checkout produced no connection",
                ))
            }
        };
        Ok(PooledConnection {
            slot,
            tx: TxState::Idle,
            unsent: false,
            open_reads: false,
            mode,
            ended: None,
            info,
            connection_id,
            xa: None,
        })
    }

    /// The live raw connection, reconnecting if the previous one was lost.
    fn record(&mut self) -> Result<&mut ConnRecord> {
        self.check_open()?;
        if self.slot.rec.is_none() {
            let rec = self.slot.pool.open_connection()?;
            self.info = rec.conn.server_info().clone();
            self.connection_id = rec.conn.connection_id();
            self.mode = rec.conn.begin_mode();
            // A begun transaction of which nothing was sent lives on.
            if !self.begun_unsent() {
                self.tx = TxState::Idle;
            }
            self.open_reads = false;
            self.slot.rec = Some(rec);
        }
        match self.slot.rec.as_mut() {
            Some(rec) => Ok(rec),
            None => Err(Error::invalid(
                "internal error: no connection after reconnecting",
            )),
        }
    }

    /// A transaction was begun and nothing of it reached the server yet.
    fn begun_unsent(&self) -> bool {
        self.tx == TxState::Active && self.unsent
    }

    /// Refuses statements while the transaction is lost or was ended by the server.
    fn check_open(&self) -> Result<()> {
        match self.tx {
            TxState::Lost => Err(Error::InvalidTransaction),
            TxState::Ended => Err(Error::TransactionEnded(std::sync::Arc::new(
                self.ended
                    .clone()
                    .unwrap_or_else(|| Error::invalid("the server ended the transaction")),
            ))),
            TxState::Idle | TxState::Active | TxState::Unknown => Ok(()),
        }
    }

    /// Sends one statement through `f`, handling a lost connection and
    /// noticing an error that ended the transaction on the server. This is
    /// the one place every statement passes.
    fn run<T: Outcome>(
        &mut self,
        sql: &str,
        f: impl FnMut(&mut dyn crate::backend::Connection) -> Result<T>,
    ) -> Result<T> {
        self.run_with_params(sql, &[], f)
    }

    /// [`run`](Self::run) for a statement with bound parameters (for echo, spans and hooks).
    fn run_with_params<T: Outcome>(
        &mut self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&mut dyn crate::backend::Connection) -> Result<T>,
    ) -> Result<T> {
        let instruments = std::sync::Arc::clone(&self.slot.pool.instruments);
        let rec = self.record()?;
        let statement = instruments.statement(sql, params, rec.conn.connection_id())?;
        let result = statement.finish(f(&mut *rec.conn));
        self.settle(result)
    }

    /// [`run_with_params`](Self::run_with_params) handing the parameters
    /// to the backend (`execute_owned`). Only where nothing needs them once
    /// the statement was sent (see `execute_owned`).
    fn run_owned(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecOutcome> {
        let instruments = std::sync::Arc::clone(&self.slot.pool.instruments);
        let rec = self.record()?;
        let statement = instruments
            .statement(sql, &params, rec.conn.connection_id())?
            .without_params();
        let result = statement.finish(rec.conn.execute_owned(sql, params));
        self.settle(result)
    }

    /// A statement's result, after a lost connection or an error that
    /// ended the server's transaction was noted.
    fn settle<T>(&mut self, result: Result<T>) -> Result<T> {
        match result {
            Ok(v) => Ok(v),
            Err(e) if e.is_connection_lost() => Err(self.connection_lost(e)),
            Err(e) => {
                if self.tx == TxState::Active {
                    let ended = match (e.db_error(), self.slot.rec.as_mut()) {
                        (Some(db), Some(rec)) => rec.conn.ended_transaction(db),
                        _ => false,
                    };
                    if ended {
                        self.tx = TxState::Ended;
                        self.ended = Some(e.clone());
                    }
                }
                Err(e)
            }
        }
    }

    /// After a statement that succeeded: a transaction the server reports
    /// closed was ended by that statement (an implicit commit).
    fn note_outcome(&mut self, sql: &str, outcome: &ExecOutcome) {
        if self.tx != TxState::Active || self.unsent {
            return;
        }
        let open = match (outcome.in_transaction, self.slot.rec.as_mut()) {
            (None, Some(rec)) => rec.conn.transaction_still_open(sql),
            (known, _) => known,
        };
        if open == Some(false) {
            self.tx = TxState::Ended;
            self.ended = Some(Error::ImplicitCommit {
                statement: sql.chars().take(200).collect(),
            });
        }
    }

    /// Invalidates this connection and the pool's older ones; returns the error to raise.
    fn connection_lost(&mut self, error: Error) -> Error {
        let pool = std::sync::Arc::clone(&self.slot.pool);
        pool.invalidate_all();
        if let Some(rec) = self.slot.rec.take() {
            pool.invalidate_record(rec, Some(&error));
        }
        self.open_reads = false;
        if self.begun_unsent() {
            // Nothing of the transaction reached the server: nothing is lost.
            error
        } else if self.tx == TxState::Active {
            self.tx = TxState::Lost;
            let db = error.db_error().cloned().unwrap_or_else(|| DbError {
                kind: crate::DbErrorKind::ConnectionLost,
                code: None,
                sqlstate: None,
                message: error.to_string(),
            });
            Error::ConnectionLostInTransaction(db)
        } else {
            self.tx = TxState::Idle;
            error
        }
    }

    /// Sends a statement through [`run_with_params`](Self::run_with_params),
    /// first taking care of a begun transaction of which nothing reached
    /// the server yet: with [`BeginMode::AtFirstWrite`], `BEGIN` goes out
    /// right before the first statement that is not a query (queries before
    /// it run on their own); and the transaction's first statement that
    /// meets a dead connection is sent again once on a fresh connection (the
    /// server cannot have kept anything of the transaction). Counted in
    /// [`EngineStats::statement_retries`](crate::engine::EngineStats).
    fn send<T: Outcome>(
        &mut self,
        sql: &str,
        params: &[Value],
        is_query: bool,
        delivered: Option<&std::cell::Cell<bool>>,
        mut f: impl FnMut(&mut dyn crate::backend::Connection) -> Result<T>,
    ) -> Result<T> {
        if !self.begun_unsent() {
            return self.run_with_params(sql, params, f);
        }
        match self.send_first(sql, params, is_query, &mut f) {
            Err(e)
                if e.is_connection_lost()
                    && self.begun_unsent()
                    && !delivered.is_some_and(|d| d.get()) =>
            {
                instrument::bump(&self.slot.pool.instruments.statement_retries);
                match self.send_first(sql, params, is_query, &mut f) {
                    Ok(v) => Ok(v),
                    // No fresh connection either: the first failure is the
                    // one that says what happened.
                    Err(again) if again.db_kind() == Some(crate::DbErrorKind::Connect) => Err(e),
                    Err(again) => Err(again),
                }
            }
            other => other,
        }
    }

    /// One attempt of [`send`](Self::send) while nothing of the transaction
    /// reached the server.
    fn send_first<T: Outcome>(
        &mut self,
        sql: &str,
        params: &[Value],
        is_query: bool,
        f: &mut impl FnMut(&mut dyn crate::backend::Connection) -> Result<T>,
    ) -> Result<T> {
        let opens = !(is_query && self.mode == BeginMode::AtFirstWrite);
        if opens && self.mode == BeginMode::AtFirstWrite {
            let begin = self.slot.pool.connector.dialect().begin_sql();
            self.run(begin, |c| c.execute_text(begin))?;
            self.unsent = false;
        }
        let result = self.run_with_params(sql, params, &mut *f);
        match &result {
            Err(e) if e.is_connection_lost() => {}
            // The statement reached the server: it opened the transaction.
            _ if opens => self.unsent = false,
            _ => {}
        }
        result
    }

    fn mark_user_sql(&mut self) {
        if self.tx == TxState::Idle {
            self.tx = TxState::Unknown;
        }
    }

    /// Runs a statement with bound parameters and no result rows.
    ///
    /// Outside a transaction begun with [`begin`](Self::begin), arbitrary SQL
    /// makes the transaction state unknown, so the connection is rolled back
    /// when returned.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecOutcome> {
        let out = self.send(sql, params, false, None, |c| c.execute(sql, params))?;
        self.note_outcome(sql, &out);
        self.mark_user_sql();
        Ok(out)
    }

    /// [`execute`](Self::execute), handed the parameters: the backend may
    /// move their strings into the driver's values instead of copying them
    /// (the flush's INSERTs, whose values were read from the objects for
    /// this statement only). Where the parameters may be needed after the
    /// statement was sent, they are lent as by `execute` instead: the first
    /// statement of a transaction, sent again on a fresh connection when
    /// the first one was found dead, and an `after_execute` hook, which
    /// sees them.
    pub fn execute_owned(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecOutcome> {
        if self.begun_unsent() || self.slot.pool.instruments.shows_params_after() {
            return self.execute(sql, &params);
        }
        let out = self.run_owned(sql, params)?;
        self.note_outcome(sql, &out);
        self.mark_user_sql();
        Ok(out)
    }

    /// Runs a parameterless statement over the text protocol (DDL, SET, ...).
    /// Like [`execute`](Self::execute), it makes the transaction state unknown
    /// outside a known transaction.
    pub fn execute_text(&mut self, sql: &str) -> Result<ExecOutcome> {
        let out = self.send(sql, &[], false, None, |c| c.execute_text(sql))?;
        self.note_outcome(sql, &out);
        self.mark_user_sql();
        Ok(out)
    }

    /// Runs a query, calling `each` per row as rows arrive (not buffered).
    /// On a connection with autocommit off (MySQL/MariaDB by default) a
    /// query outside a begun transaction opens one holding only reads,
    /// rolled back when the connection is returned.
    ///
    /// Outside a transaction (no `begin()`, no statement other than queries
    /// on this checkout), or as the first statement of a transaction, a
    /// query that meets a dead connection before any row arrived is sent
    /// again once on a fresh connection: the server cannot have kept
    /// anything of it. Counted in
    /// [`EngineStats::statement_retries`](crate::engine::EngineStats).
    pub fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        self.query_each(sql, params, &mut |row| each(row.take_all()))
    }

    /// Like [`query`](Self::query), handing `each` a `Row` the backend may
    /// reuse for the next row ([`crate::backend::Connection::query_each`]):
    /// take what you keep with [`Row::take`].
    pub fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(&mut Row) -> Result<()>,
    ) -> Result<()> {
        let delivered = std::cell::Cell::new(false);
        let mut counting = |row: &mut Row| {
            delivered.set(true);
            each(row)
        };
        if self.begun_unsent() {
            return self
                .send(sql, params, true, Some(&delivered), |c| {
                    observe::counted_query(c, sql, params, &mut counting)
                })
                .map(|_| ());
        }
        let may_retry = self.tx == TxState::Idle;
        if may_retry && self.mode == BeginMode::Implicit {
            // With autocommit off the query opens a transaction.
            self.open_reads = true;
        }
        let first = self.run_with_params(sql, params, |c| {
            observe::counted_query(c, sql, params, &mut counting)
        });
        match first {
            Err(e) if may_retry && !delivered.get() && e.is_connection_lost() => {
                instrument::bump(&self.slot.pool.instruments.statement_retries);
                let again = self.run_with_params(sql, params, |c| {
                    observe::counted_query(c, sql, params, &mut counting)
                });
                match again {
                    Ok(_) => Ok(()),
                    // No fresh connection either: the first failure is the
                    // one that says what happened.
                    Err(again) if again.db_kind() == Some(crate::DbErrorKind::Connect) => Err(e),
                    Err(again) => Err(again),
                }
            }
            other => other.map(|_| ()),
        }
    }

    /// Runs a query and collects its rows.
    pub fn query_rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        self.query(sql, params, &mut |row| {
            rows.push(row);
            Ok(())
        })?;
        Ok(rows)
    }

    /// Runs a query that reads no table (server or session variables,
    /// `MASTER_GTID_WAIT`) and collects its rows. Unlike
    /// [`query`](Self::query) it leaves the connection's transaction state
    /// as it was: such a statement opens no read snapshot, so returning the
    /// connection needs no `ROLLBACK`. Never for a query that reads a
    /// table: a snapshot it opened would go back to the pool. Outside a
    /// transaction, a dead connection is replaced and the query sent again
    /// once (it changes nothing), as [`query`](Self::query) does.
    pub(crate) fn query_no_tables(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let attempt = |conn: &mut Self| {
            let mut rows = Vec::new();
            conn.run_with_params(sql, params, |c| {
                observe::counted_query(c, sql, params, &mut |row| {
                    rows.push(row.take_all());
                    Ok(())
                })
            })
            .map(|_| rows)
        };
        let may_retry = self.tx == TxState::Idle && !self.open_reads;
        match attempt(self) {
            Err(e) if may_retry && e.is_connection_lost() => {
                instrument::bump(&self.slot.pool.instruments.statement_retries);
                match attempt(self) {
                    // No fresh connection either: the first failure says what happened.
                    Err(again) if again.db_kind() == Some(crate::DbErrorKind::Connect) => Err(e),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// The replication position of the transaction the last statement
    /// committed, when the server reported it with the statement's outcome
    /// (see [`Connection::tracked_commit_position`](crate::backend::Connection::tracked_commit_position)).
    pub(crate) fn tracked_commit_position(&self) -> Option<String> {
        self.slot
            .rec
            .as_ref()
            .and_then(|rec| rec.conn.tracked_commit_position())
    }

    /// Begins a transaction. On MySQL/MariaDB this sends nothing: the
    /// connection runs with autocommit off and the transaction's first
    /// statement opens it (with `autocommit_reads=on`, `BEGIN` is sent right
    /// before its first statement that is not a query). If the connection
    /// turns out to be lost before anything of the transaction reached the
    /// server, that statement (or `BEGIN`) is sent again once on a new
    /// connection. A transaction of which nothing was sent ends with no
    /// round trip.
    ///
    /// After statements outside a transaction on an autocommit-off
    /// connection (`engine.connect()`'s "commit as you go"), the transaction
    /// they opened continues.
    pub fn begin(&mut self) -> Result<()> {
        match self.tx {
            TxState::Lost | TxState::Ended => return self.check_open(),
            TxState::Active => {
                return Err(Error::invalid(
                    "a transaction is already in progress on this connection; commit() or rollback() it first",
                ))
            }
            TxState::Idle | TxState::Unknown => {}
        }
        match self.mode {
            BeginMode::Implicit => {
                // Statements already ran with autocommit off: their
                // transaction is open on the server and this one is it.
                self.unsent = self.tx == TxState::Idle && !self.open_reads;
                self.open_reads = false;
                self.tx = TxState::Active;
                return Ok(());
            }
            BeginMode::AtFirstWrite => {
                self.unsent = true;
                self.tx = TxState::Active;
                return Ok(());
            }
            _ => {}
        }
        let sql = self.slot.pool.connector.dialect().begin_sql();
        match self.run(sql, |c| c.execute_text(sql)) {
            Ok(_) => {}
            Err(e) if e.is_connection_lost() => {
                instrument::bump(&self.slot.pool.instruments.statement_retries);
                self.run(sql, |c| c.execute_text(sql))?;
            }
            Err(e) => return Err(e),
        }
        self.tx = TxState::Active;
        self.unsent = false;
        Ok(())
    }

    /// Commits the transaction. A connection lost while COMMIT was in flight
    /// is [`Error::CommitOutcomeUnknown`] (the server may have committed);
    /// the transaction is then invalid: roll back to continue.
    pub fn commit(&mut self) -> Result<()> {
        self.check_open()?;
        if self.xa.is_some() {
            return Err(Error::invalid(
                "this connection runs a two-phase (XA) branch: end it with xa_prepare() then \
                 xa_commit(), or rollback()",
            ));
        }
        if self.begun_unsent() {
            self.tx = TxState::Idle;
            return Ok(());
        }
        match self.run("COMMIT", |c| c.execute_text("COMMIT")) {
            Ok(_) => {
                self.tx = TxState::Idle;
                self.open_reads = false;
                Ok(())
            }
            Err(e) if e.is_connection_lost() => {
                let db = e.db_error().cloned().unwrap_or_else(|| DbError {
                    kind: crate::DbErrorKind::ConnectionLost,
                    code: None,
                    sqlstate: None,
                    message: e.to_string(),
                });
                Err(Error::CommitOutcomeUnknown(db))
            }
            Err(e) => Err(e),
        }
    }

    /// Rolls the transaction back. After a connection was lost inside a
    /// transaction this succeeds quietly (the server already discarded the
    /// work) and the next call reconnects. Skipped (no round trip) when no
    /// transaction is known to be open.
    pub fn rollback(&mut self) -> Result<()> {
        if self.xa.is_some() {
            return self.xa_rollback();
        }
        match self.tx {
            TxState::Lost => {
                self.tx = TxState::Idle;
                Ok(())
            }
            TxState::Idle if !self.open_reads => Ok(()),
            TxState::Active if self.unsent => {
                self.tx = TxState::Idle;
                Ok(())
            }
            TxState::Idle | TxState::Active | TxState::Unknown | TxState::Ended => {
                self.ended = None;
                if self.slot.rec.is_none() {
                    self.tx = TxState::Idle;
                    return Ok(());
                }
                self.tx = TxState::Active;
                self.unsent = false;
                match self.run("ROLLBACK", |c| c.execute_text("ROLLBACK")) {
                    Ok(_) => {
                        self.tx = TxState::Idle;
                        self.open_reads = false;
                        Ok(())
                    }
                    Err(Error::ConnectionLostInTransaction(_)) => {
                        // The connection is gone and so is the transaction: that is a rollback.
                        self.tx = TxState::Idle;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Begins a two-phase branch with `XA START 'gtrid','bqual'` (MySQL /
    /// MariaDB), instead of [`begin`](Self::begin). Both ids must be at most
    /// 64 characters of letters, digits, `-`, `_` and `.`. A transaction the
    /// connection holds from earlier statements is rolled back first (XA
    /// START refuses to run inside one).
    ///
    /// End the branch with [`xa_prepare`](Self::xa_prepare) then
    /// [`xa_commit`](Self::xa_commit), or [`rollback`](Self::rollback)
    /// (`XA END` + `XA ROLLBACK`); a guard dropped with a branch open rolls it back.
    pub fn xa_start(&mut self, gtrid: &str, bqual: &str) -> Result<()> {
        let valid = |id: &str| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !valid(gtrid) || !valid(bqual) {
            return Err(Error::invalid(format!(
                "invalid XA transaction id '{gtrid}','{bqual}': use 1 to 64 letters, digits, '-', '_' or '.'"
            )));
        }
        match self.tx {
            TxState::Active if self.xa.is_none() => {
                return Err(Error::invalid(
                    "a transaction is already in progress on this connection; commit() or rollback() it before xa_start()",
                ))
            }
            TxState::Active => {
                return Err(Error::invalid(
                    "an XA branch is already open on this connection",
                ))
            }
            TxState::Lost | TxState::Ended => return self.check_open(),
            TxState::Idle | TxState::Unknown => self.rollback()?,
        }
        let xid = format!("'{gtrid}','{bqual}'");
        let sql = format!("XA START {xid}");
        self.run(&sql, |c| c.execute_text(&sql))?;
        self.tx = TxState::Active;
        self.unsent = false;
        self.open_reads = false;
        self.xa = Some(XaBranch {
            xid,
            prepared: false,
        });
        Ok(())
    }

    /// The open XA branch's xid as SQL (`'gtrid','bqual'`), if any.
    pub fn xa_id(&self) -> Option<&str> {
        self.xa.as_ref().map(|b| b.xid.as_str())
    }

    /// Phase one: `XA END` then `XA PREPARE`. After success the branch is
    /// durable on the server (it survives this connection, listed by
    /// `XA RECOVER`) until [`xa_commit`](Self::xa_commit) or rollback.
    pub fn xa_prepare(&mut self) -> Result<()> {
        self.check_open()?;
        let xid = match &self.xa {
            Some(b) if !b.prepared => b.xid.clone(),
            Some(_) => return Ok(()),
            None => {
                return Err(Error::invalid(
                    "xa_prepare(): no XA branch is open on this connection (xa_start() first)",
                ))
            }
        };
        let end = format!("XA END {xid}");
        self.run(&end, |c| c.execute_text(&end))?;
        let prepare = format!("XA PREPARE {xid}");
        self.run(&prepare, |c| c.execute_text(&prepare))?;
        if let Some(b) = self.xa.as_mut() {
            b.prepared = true;
        }
        Ok(())
    }

    /// Phase two: `XA COMMIT` of a prepared branch. On failure the branch
    /// stays prepared on the server (never rolled back by this guard: the
    /// connection is closed instead), to be finished from `XA RECOVER`.
    pub fn xa_commit(&mut self) -> Result<()> {
        let xid =
            match &self.xa {
                Some(b) if b.prepared => b.xid.clone(),
                _ => return Err(Error::invalid(
                    "xa_commit(): no prepared XA branch on this connection (xa_prepare() first)",
                )),
            };
        let sql = format!("XA COMMIT {xid}");
        match self.run(&sql, |c| c.execute_text(&sql)) {
            Ok(_) => {
                self.xa = None;
                self.tx = TxState::Idle;
                Ok(())
            }
            Err(e) => {
                // Whatever happened, the branch must not be rolled back by
                // the return path: close the connection (a prepared branch
                // outlives it).
                self.xa = None;
                self.invalidate();
                self.tx = TxState::Idle;
                Err(e)
            }
        }
    }

    /// Rolls an XA branch back: `XA END` (if not prepared) and `XA ROLLBACK`.
    fn xa_rollback(&mut self) -> Result<()> {
        let Some(branch) = self.xa.take() else {
            return Ok(());
        };
        if matches!(self.tx, TxState::Lost) || self.slot.rec.is_none() {
            // The connection is gone: the server rolled an unprepared branch back.
            self.tx = TxState::Idle;
            return Ok(());
        }
        self.tx = TxState::Active;
        self.ended = None;
        if !branch.prepared {
            let end = format!("XA END {}", branch.xid);
            match self.run(&end, |c| c.execute_text(&end)) {
                Ok(_) => {}
                Err(e) if e.is_connection_lost() => {
                    self.tx = TxState::Idle;
                    return Ok(());
                }
                // Already ended (XAER_RMFAIL in the IDLE state): roll back anyway.
                Err(_) => {}
            }
        }
        let sql = format!("XA ROLLBACK {}", branch.xid);
        match self.run(&sql, |c| c.execute_text(&sql)) {
            Ok(_) => {
                self.tx = TxState::Idle;
                self.open_reads = false;
                Ok(())
            }
            Err(e) if e.is_connection_lost() && !branch.prepared => {
                self.tx = TxState::Idle;
                Ok(())
            }
            Err(e) => {
                self.tx = TxState::Idle;
                Err(e)
            }
        }
    }

    fn savepoint_sql(&self, verb: &str, name: &str) -> String {
        let mut sql = String::with_capacity(verb.len() + name.len() + 3);
        sql.push_str(verb);
        sql.push(' ');
        self.slot
            .pool
            .connector
            .dialect()
            .quote_ident(name, &mut sql);
        sql
    }

    /// `SAVEPOINT name` (the name is quoted as an identifier).
    pub fn savepoint(&mut self, name: &str) -> Result<()> {
        let sql = self.savepoint_sql("SAVEPOINT", name);
        self.send(&sql, &[], false, None, |c| c.execute_text(&sql))
            .map(|_| ())
    }

    /// `RELEASE SAVEPOINT name`.
    pub fn release_savepoint(&mut self, name: &str) -> Result<()> {
        let sql = self.savepoint_sql("RELEASE SAVEPOINT", name);
        self.run(&sql, |c| c.execute_text(&sql)).map(|_| ())
    }

    /// `ROLLBACK TO SAVEPOINT name`.
    pub fn rollback_to_savepoint(&mut self, name: &str) -> Result<()> {
        let sql = self.savepoint_sql("ROLLBACK TO SAVEPOINT", name);
        self.run(&sql, |c| c.execute_text(&sql)).map(|_| ())
    }

    /// Whether a transaction begun with [`begin`](Self::begin) is open
    /// (including one invalidated by a lost connection and not yet rolled back).
    pub fn in_transaction(&self) -> bool {
        matches!(self.tx, TxState::Active | TxState::Lost | TxState::Ended)
    }

    /// Whether the transaction is gone (the connection was lost inside it, or
    /// the server ended it) and [`rollback`](Self::rollback) is required.
    pub fn needs_rollback(&self) -> bool {
        matches!(self.tx, TxState::Lost | TxState::Ended)
    }

    /// Why the server ended the transaction on its own (a deadlock, an
    /// implicit commit), while [`rollback`](Self::rollback) has not been called.
    pub fn ended_by_server(&self) -> Option<&Error> {
        match self.tx {
            TxState::Ended => self.ended.as_ref(),
            _ => None,
        }
    }

    /// What the server is and can do, as of the live connection's last
    /// statement (its session settings may have changed since checkout).
    pub fn server_info(&self) -> &ServerInfo {
        match &self.slot.rec {
            Some(rec) => rec.conn.server_info(),
            None => &self.info,
        }
    }

    /// The server's id of the current (or last) raw connection (`CONNECTION_ID()`).
    pub fn connection_id(&self) -> u64 {
        self.connection_id
    }

    /// Closes the raw connection now; it is not returned to the pool. Inside
    /// a transaction, [`rollback`](Self::rollback) is then required; the next
    /// call reconnects.
    pub fn invalidate(&mut self) {
        if let Some(rec) = self.slot.rec.take() {
            self.slot.pool.invalidate_record(rec, None);
        }
        self.open_reads = false;
        self.tx = match self.tx {
            TxState::Active | TxState::Lost | TxState::Ended => TxState::Lost,
            TxState::Idle | TxState::Unknown => TxState::Idle,
        };
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if self.slot.rec.is_none() {
            return; // The slot's own drop frees it.
        }
        if self.xa.is_some() {
            // An XA branch refuses ROLLBACK/COMMIT and new transactions:
            // end it with XA END + XA ROLLBACK whatever the reset option,
            // or close the connection (the server then rolls an unprepared
            // branch back).
            if self.xa_rollback().is_err() {
                if let Some(rec) = self.slot.rec.take() {
                    self.slot.pool.close(rec);
                }
                return;
            }
        }
        let needs_reset = match self.tx {
            TxState::Active => !self.unsent,
            TxState::Idle => self.open_reads,
            TxState::Unknown | TxState::Ended => true,
            TxState::Lost => false,
        };
        let reset = match self.slot.pool.options.reset_on_return {
            ResetOnReturn::Rollback if needs_reset => Some("ROLLBACK"),
            ResetOnReturn::Commit if needs_reset => Some("COMMIT"),
            _ => None,
        };
        if let Some(sql) = reset {
            self.tx = TxState::Idle; // a lost connection here is not "in a transaction"
            if let Err(e) = self.run(sql, |c| c.execute_text(sql)) {
                if let Some(rec) = self.slot.rec.take() {
                    self.slot.pool.invalidate_record(rec, Some(&e));
                }
                return;
            }
        }
        if let Some(hook) = self.slot.pool.options.hooks.on_checkin.clone() {
            if let Some(rec) = self.slot.rec.as_mut() {
                if hook(&mut *rec.conn).is_err() {
                    if let Some(rec) = self.slot.rec.take() {
                        self.slot.pool.close(rec);
                    }
                }
            }
        }
        // Dropping the slot (right after this) returns the connection.
    }
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("engine", &self.slot.pool.connector.describe())
            .field("connection_id", &self.connection_id)
            .field("connected", &self.slot.rec.is_some())
            .field("transaction", &self.tx)
            .finish()
    }
}
