//! Spans and events through the `tracing` crate (the `tracing` feature, on
//! by default in the `orm` facade) for the session and the pool. The
//! statement span lives in `pool::observe`.
//!
//! Targets and levels, so that a filter such as `orm=debug` shows them:
//!
//! | target | what | level |
//! | --- | --- | --- |
//! | `orm::statement` | span `statement` per statement (see `pool::observe`); event `slow statement` | DEBUG; WARN |
//! | `orm::session` | spans `flush` (rows per table and operation), `commit`, `rollback`, `savepoint` | DEBUG |
//! | `orm::pool` | `connected`, `pool invalidated`, `recycled` | DEBUG, INFO, INFO |
//! | `orm::pool` | `connect failed`, `pre-ping failed`, `invalidated` with a cause (a lost connection) | WARN |
//! | `orm::pool` | `invalidated` explicitly or as older than a lost connection | INFO |
//! | `orm::pool` | `checkout` (with `waited_ms` when it waited: DEBUG), `checkin` | TRACE |
//!
//! Without the feature every function here is empty and the guards are
//! zero-sized. With it and no subscriber, each costs one atomic load.

use std::time::Duration;

use crate::error::Error;

/// Keeps a span entered until dropped (zero-sized without the `tracing` feature).
#[must_use = "the span ends when this guard is dropped"]
pub(crate) struct SpanGuard {
    #[cfg(feature = "tracing")]
    _entered: tracing::span::EnteredSpan,
}

/// The span of one flush, with the rows it sends per table and operation:
/// `tables` reads `users: 2 insert, 1 update; posts: 5 delete`, and
/// `inserts`, `updates`, `deletes` are the totals. `tables` yields
/// (table, inserts, updates, deletes) and is only read when the span is enabled.
pub(crate) fn flush_span<'a>(
    tables: impl Iterator<Item = (&'a str, usize, usize, usize)>,
) -> SpanGuard {
    #[cfg(feature = "tracing")]
    {
        let span = tracing::debug_span!(
            target: "orm::session",
            "flush",
            tables = tracing::field::Empty,
            inserts = tracing::field::Empty,
            updates = tracing::field::Empty,
            deletes = tracing::field::Empty,
        );
        if !span.is_disabled() {
            let (mut summary, mut totals) = (String::new(), [0usize; 3]);
            for (table, inserts, updates, deletes) in tables {
                if !summary.is_empty() {
                    summary.push_str("; ");
                }
                summary.push_str(table);
                summary.push(':');
                let mut first = true;
                for (i, (n, what)) in [
                    (inserts, "insert"),
                    (updates, "update"),
                    (deletes, "delete"),
                ]
                .into_iter()
                .enumerate()
                {
                    if n > 0 {
                        summary.push_str(if first { " " } else { ", " });
                        summary.push_str(&format!("{n} {what}"));
                        totals[i] += n;
                        first = false;
                    }
                }
            }
            span.record("tables", summary.as_str());
            span.record("inserts", totals[0]);
            span.record("updates", totals[1]);
            span.record("deletes", totals[2]);
        }
        SpanGuard {
            _entered: span.entered(),
        }
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = tables;
        SpanGuard {}
    }
}

/// The span of `Session::commit` (its flush and `COMMIT`).
pub(crate) fn commit_span() -> SpanGuard {
    SpanGuard {
        #[cfg(feature = "tracing")]
        _entered: tracing::debug_span!(target: "orm::session", "commit").entered(),
    }
}

/// The span of `Session::rollback`.
pub(crate) fn rollback_span() -> SpanGuard {
    SpanGuard {
        #[cfg(feature = "tracing")]
        _entered: tracing::debug_span!(target: "orm::session", "rollback").entered(),
    }
}

/// The span of a savepoint operation: `op` is `begin`, `release` or `rollback`.
pub(crate) fn savepoint_span(op: &'static str) -> SpanGuard {
    #[cfg(not(feature = "tracing"))]
    let _ = op;
    SpanGuard {
        #[cfg(feature = "tracing")]
        _entered: tracing::debug_span!(target: "orm::session", "savepoint", op).entered(),
    }
}

/// A new connection was opened.
pub(crate) fn connected(connection_id: u64) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "orm::pool", connection_id, "connected");
    #[cfg(not(feature = "tracing"))]
    let _ = connection_id;
}

/// A unit of work failed with an error safe to retry and runs again.
pub(crate) fn retrying(attempt: u32, delay: Duration, error: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "orm::session",
        attempt,
        delay_ms = delay.as_secs_f64() * 1000.0,
        error = %error,
        "retrying the unit of work"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (attempt, delay, error);
}

/// Opening a connection failed (the error is also returned to the caller).
pub(crate) fn connect_failed(error: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "orm::pool", error = %error, "connect failed");
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}

/// A connection was checked out; `waited` is set when the pool was full.
pub(crate) fn checkout(connection_id: u64, waited: Option<Duration>) {
    #[cfg(feature = "tracing")]
    match waited {
        Some(waited) => tracing::debug!(
            target: "orm::pool",
            connection_id,
            waited_ms = crate::pool::observe::millis(waited),
            "checkout"
        ),
        None => tracing::trace!(target: "orm::pool", connection_id, "checkout"),
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (connection_id, waited);
}

/// A connection was returned to the pool (`kept`) or is about to be closed.
pub(crate) fn checkin(connection_id: u64, kept: bool) {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: "orm::pool", connection_id, kept, "checkin");
    #[cfg(not(feature = "tracing"))]
    let _ = (connection_id, kept);
}

/// A connection was invalidated. With a cause (a lost connection, a failed
/// ping or reset) it is a warning; without one (explicit, or opened before
/// a lost connection was detected) it is information.
pub(crate) fn invalidated(connection_id: u64, cause: Option<&Error>, reason: &'static str) {
    #[cfg(feature = "tracing")]
    match cause {
        Some(error) => tracing::warn!(
            target: "orm::pool",
            connection_id,
            reason,
            error = %error,
            "invalidated"
        ),
        None => tracing::info!(target: "orm::pool", connection_id, reason, "invalidated"),
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (connection_id, cause, reason);
}

/// Every connection opened so far will be replaced (after a lost connection,
/// or `Engine::invalidate_pool`).
pub(crate) fn pool_invalidated() {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "orm::pool",
        "pool invalidated: connections opened before now are replaced at their next checkout"
    );
}

/// A connection older than `pool_recycle` was closed at checkout.
pub(crate) fn recycled(connection_id: u64, age: Duration) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "orm::pool",
        connection_id,
        age_s = age.as_secs(),
        "recycled: older than pool_recycle"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (connection_id, age);
}

/// A pre-ping at checkout failed.
pub(crate) fn ping_failed(connection_id: u64, error: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "orm::pool", connection_id, error = %error, "pre-ping failed");
    #[cfg(not(feature = "tracing"))]
    let _ = (connection_id, error);
}
