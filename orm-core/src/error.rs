//! The one error type of the crate.
//!
//! Every variant's message says what went wrong and what to do next. Errors
//! from the database keep the server's code and message in a [`DbError`],
//! classified by [`DbErrorKind`] so that callers (and the pool) can tell a
//! lost connection from a duplicate key or a deadlock worth retrying.

use std::sync::Arc;
use std::time::Duration;

use crate::value::ConversionError;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure a database error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// The connection is gone (I/O error, server gone away, killed, timed
    /// out), or is useless until the server recovers (a Galera node out of
    /// the cluster's primary component, error 1047). The connection is
    /// invalidated; a transaction open on it is lost.
    ConnectionLost,
    /// A constraint was violated (duplicate key, foreign key).
    Integrity,
    /// A transient conflict (deadlock, lock wait timeout): the transaction
    /// was or should be rolled back and may be retried.
    Retryable,
    /// Could not connect at all (refused, unreachable, bad credentials).
    Connect,
    /// Anything else the server or driver reported (syntax, unknown column, ...).
    Other,
}

/// An error reported by the database or its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// The classification.
    pub kind: DbErrorKind,
    /// The server's (or client library's) numeric error code, when there is one.
    pub code: Option<u16>,
    /// The five-character SQLSTATE, when the server sent one.
    pub sqlstate: Option<String>,
    /// The message, as the server or driver said it (never contains a password).
    pub message: String,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.sqlstate) {
            (Some(code), Some(state)) => write!(f, "({code}, {state}) {}", self.message),
            (Some(code), None) => write!(f, "({code}) {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DbError {}

/// Everything that can go wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database reported an error; see [`DbError::kind`].
    #[error("database error: {0}")]
    Database(DbError),

    /// The connection was lost while a transaction was open on it. The work
    /// of that transaction is gone; roll back to continue.
    #[error(
        "the database connection was lost inside a transaction ({0}); the transaction's work is lost. \
         Call rollback() and retry the transaction: the next use reconnects"
    )]
    ConnectionLostInTransaction(DbError),

    /// The connection was lost while `COMMIT` was in flight: the server may
    /// or may not have committed. Never treat it as "rolled back": check the
    /// data (or make the work idempotent) before retrying.
    #[error(
        "the database connection was lost while COMMIT was in flight ({0}): the transaction may or may \
         not have been committed. Check whether its changes are there before retrying (unless the work \
         is idempotent); call rollback() to go on: the next use reconnects"
    )]
    CommitOutcomeUnknown(DbError),

    /// A connection was invalidated inside a transaction and `rollback()`
    /// has not been called yet.
    #[error(
        "can't reconnect until the invalid transaction is rolled back: the connection was lost \
         inside a transaction. Call rollback() first; the next use reconnects"
    )]
    InvalidTransaction,

    /// The server ended the transaction by itself (see the cause: a deadlock
    /// or lock wait timeout rolled it back, or a statement committed it
    /// implicitly); statements of that transaction are refused until
    /// `rollback()`.
    #[error(
        "the server already ended this transaction ({0}); nothing more can run in it. \
         Call rollback() first, then retry the transaction"
    )]
    TransactionEnded(Arc<Error>),

    /// A statement made the server commit the open transaction implicitly
    /// (DDL such as CREATE/ALTER/DROP TABLE, LOCK TABLES, ...): the work of
    /// the transaction so far is committed and the transaction is over.
    #[error(
        "the statement `{statement}` made the server commit the open transaction implicitly, so the \
         transaction is over (its earlier work is committed). Run such statements outside a \
         transaction (on a connection from engine.connect()); call rollback() to go on"
    )]
    ImplicitCommit {
        /// The statement (its first 200 characters).
        statement: String,
    },

    /// The pool had no connection to give within its timeout.
    #[error(
        "connection pool limit of size {size} overflow {overflow} reached, connection timed out \
         after {timeout:?}; return connections sooner (drop sessions and connections when done) \
         or raise pool_size / max_overflow / pool_timeout"
    )]
    PoolTimeout {
        /// The pool's `pool_size`.
        size: usize,
        /// The pool's `max_overflow`.
        overflow: usize,
        /// The pool's `pool_timeout`.
        timeout: Duration,
    },

    /// The engine's configuration (URL or builder) is wrong.
    #[error("invalid database configuration: {0}")]
    Config(String),

    /// A value read from the database does not fit the model's field.
    #[error("cannot read column `{table}`.`{column}`: {source}")]
    Decode {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// Why.
        #[source]
        source: ConversionError,
    },

    /// `one()` found no row.
    #[error("no row was found for one() on table `{table}`; use one_or_none() or first() if none is acceptable")]
    NoResultFound {
        /// The table queried.
        table: &'static str,
    },

    /// `one()` or `one_or_none()` found more than one row.
    #[error("multiple rows were found for one() on table `{table}`; add a filter that selects one row, or use first()")]
    MultipleResultsFound {
        /// The table queried.
        table: &'static str,
    },

    /// An optimistic-lock or row-count check failed: another transaction
    /// changed or deleted the row since it was loaded.
    #[error("{}", stale_message(statement, table, key, *expected, *matched))]
    StaleData {
        /// `UPDATE` or `DELETE`, or `merge` for `Session::merge`'s version check.
        statement: &'static str,
        /// The table.
        table: &'static str,
        /// The key of (one of) the rows that did not match, printed.
        key: String,
        /// Rows the statement should have matched.
        expected: u64,
        /// Rows it did match.
        matched: u64,
    },

    /// An earlier error (a failed flush, a lost connection, a transaction the
    /// server ended) left the session's transaction unusable; the session
    /// refuses work until `rollback()` (or, for a flush that failed inside a
    /// savepoint, until that savepoint is rolled back).
    #[error("{}", pending_rollback_message(.0))]
    PendingRollback(Arc<Error>),

    /// A commit across several engines (binds or shards) failed after at
    /// least one engine had committed: the servers now disagree.
    #[error(
        "commit across several databases only partly done: committed on [{}], NOT committed on \
         [{}] ({failed} failed: {cause}). The data is now inconsistent across servers: repair \
         it by hand; SessionFactory::two_phase(true) (XA) prevents this. The session was rolled \
         back and is usable",
        .committed.join(", "), .not_committed.join(", ")
    )]
    PartialCommit {
        /// The engines (in commit order) whose COMMIT succeeded.
        committed: Vec<String>,
        /// The engine whose COMMIT failed.
        failed: String,
        /// Every engine whose work was not committed (`failed` first).
        not_committed: Vec<String>,
        /// Why that COMMIT failed.
        cause: Box<Error>,
    },

    /// A two-phase (XA) commit: every branch was prepared, and `XA COMMIT`
    /// failed on at least one. The prepared branches still hold their locks
    /// and outlive the connection: finish them with `XA COMMIT 'gtrid','bqual'`
    /// (or `XA ROLLBACK`) on the server that lists them in `XA RECOVER`.
    #[error(
        "two-phase commit incomplete: every branch of global transaction '{gtrid}' was prepared, \
         XA COMMIT succeeded on [{}] but failed on [{}] ({cause}). The branches still prepared \
         are durable and hold their locks: on those servers run XA RECOVER, then \
         XA COMMIT '{gtrid}','<bqual>' to finish (or XA ROLLBACK). The session was reset and is usable",
        .committed.join(", "), .in_doubt.join(", ")
    )]
    XaCommitIncomplete {
        /// The global transaction id shared by every branch.
        gtrid: String,
        /// The engines whose branch committed.
        committed: Vec<String>,
        /// The engines whose branch is prepared and not committed (each as
        /// `engine (bqual 'b')`).
        in_doubt: Vec<String>,
        /// Why the first failing XA COMMIT failed.
        cause: Box<Error>,
    },

    /// An expired object's row no longer exists.
    #[error(
        "the row of this `{table}` object (key {key}) was deleted; the object is no longer usable"
    )]
    ObjectDeleted {
        /// The table.
        table: &'static str,
        /// The key, printed.
        key: String,
    },

    /// An operation needs the object's session, but it is detached.
    #[error("this `{table}` object is detached from its session and expired, so it cannot be loaded; merge() or add() it into a session first")]
    DetachedInstance {
        /// The table.
        table: &'static str,
    },

    /// The flush cannot order these models: their references form a cycle
    /// among the rows being written.
    #[error(
        "cannot order the flush: the references between {} form a cycle among the rows being inserted or \
         deleted; nothing was sent. Insert the rows of one side first with the reference unset, flush, then set it",
        .models.join(", ")
    )]
    FlushCycle {
        /// The models involved.
        models: Vec<&'static str>,
    },

    /// The operation is not valid in the object's or session's current state.
    /// The message says why and what to do.
    #[error("{0}")]
    InvalidRequest(String),

    /// An event hook (a closure registered on the
    /// [`SessionFactory`](crate::session::SessionFactory), or a
    /// [`ModelEvents`](crate::session::ModelEvents) method) returned an
    /// error. From a `before_*` hook the flush stops before any SQL and the
    /// session keeps its pending changes (those the hooks made included);
    /// from an `after_*` hook of a flush the transaction is rolled back and
    /// the session requires `rollback()`, naming this error as the cause.
    #[error("the `{event}` event hook{} returned an error: {source}", hook_model(.model))]
    Hook {
        /// The event (`before_flush`, `before_insert`, ...).
        event: &'static str,
        /// The model of a model event.
        model: Option<&'static str>,
        /// What the hook returned.
        source: Arc<Error>,
    },

    /// The object is borrowed elsewhere (a `Ref`/`RefMut` from its handle is still alive).
    #[error("this `{table}` object is already borrowed through its handle; drop the other borrow before {action}")]
    AlreadyBorrowed {
        /// The table.
        table: &'static str,
        /// What was being attempted.
        action: &'static str,
    },
}

fn hook_model(model: &Option<&'static str>) -> String {
    match model {
        Some(m) => format!(" of `{m}`"),
        None => String::new(),
    }
}

fn pending_rollback_message(cause: &Error) -> String {
    let what = if matches!(cause, Error::ImplicitCommit { .. }) {
        "was ended by the server (a statement committed it implicitly)"
    } else if cause.is_connection_lost() {
        "was lost with its database connection"
    } else if cause.is_retryable() {
        "was rolled back by the server (a deadlock or lock wait timeout)"
    } else {
        "has been rolled back due to a previous error during flush"
    };
    format!(
        "this session's transaction {what}. To begin a new transaction with this session, first call \
         rollback() (or roll back the savepoint whose flush failed). Original error: {cause}"
    )
}

fn stale_message(statement: &str, table: &str, key: &str, expected: u64, matched: u64) -> String {
    if statement == "merge" {
        format!(
            "merge() of a `{table}` value with key {key}: its version differs from the row's, so it was \
             read before another transaction changed the row. Reload the row, reapply the change and merge again"
        )
    } else {
        format!(
            "{statement} statement on table `{table}` expected to match {expected} row(s); {matched} were matched \
             (key {key}). The row was changed or deleted by another transaction: roll back, reload and retry"
        )
    }
}

impl Error {
    /// The database error inside, if this is one.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            Error::Database(e)
            | Error::ConnectionLostInTransaction(e)
            | Error::CommitOutcomeUnknown(e) => Some(e),
            Error::PendingRollback(cause) | Error::TransactionEnded(cause) => cause.db_error(),
            Error::Hook { source, .. } => source.db_error(),
            _ => None,
        }
    }

    /// The kind of the database error inside, if this is one.
    pub fn db_kind(&self) -> Option<DbErrorKind> {
        self.db_error().map(|e| e.kind)
    }

    /// Whether the connection was lost (directly or inside a transaction).
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            Error::ConnectionLostInTransaction(_) | Error::InvalidTransaction
        ) || self.db_kind() == Some(DbErrorKind::ConnectionLost)
    }

    /// Whether a constraint was violated (duplicate key, foreign key).
    pub fn is_integrity(&self) -> bool {
        self.db_kind() == Some(DbErrorKind::Integrity)
    }

    /// Whether the error is a transient conflict worth retrying (deadlock, lock wait timeout).
    pub fn is_retryable(&self) -> bool {
        self.db_kind() == Some(DbErrorKind::Retryable)
    }

    /// The server's error code, if any.
    pub fn code(&self) -> Option<u16> {
        self.db_error().and_then(|e| e.code)
    }

    /// Shorthand for [`Error::InvalidRequest`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest(message.into())
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        Error::Database(e)
    }
}
