//! What happens around every statement an engine sends: the `before_execute`
//! hook, `echo` to standard error, the `statement` span (with the `tracing`
//! feature), the slow-statement warning and the `after_execute` hook.
//!
//! `PooledConnection::run` calls [`Observer::start`] before sending and
//! [`Statement::finish`] with the result. With nothing to observe (no
//! subscriber interested, no echo, no hooks, no threshold) a statement costs
//! a few branches and one atomic load: the clock is not even read.
//!
//! The statement span (target `orm::statement`, level DEBUG) has the fields
//! `sql`, `params` (how many), `rows` (returned by a query, else affected),
//! `duration_ms`, `url` (the engine's, password masked), `connection_id`,
//! `error` on failure, and `param_values` only with `trace_params=true`.

use std::fmt;
use std::time::{Duration, Instant};

use crate::backend::{Connection, ExecOutcome};
use crate::error::Result;
use crate::pool::hooks::{AfterExecuteHook, BeforeExecuteHook, StatementEvent, StatementOutcome};
use crate::pool::options::{Echo, PoolOptions};
use crate::row::Row;
use crate::value::Value;

/// How many parameter values echo and `param_values` show before `... N more`.
const SHOWN_PARAMS: usize = 20;
/// Longer text values are cut to this many characters when shown.
const SHOWN_TEXT: usize = 100;

/// An engine's per-statement configuration, fixed when the engine is built.
pub(crate) struct Observer {
    echo: Echo,
    slow: Option<Duration>,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    trace_params: bool,
    /// The engine's URL, password masked.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    url: String,
    before: Option<BeforeExecuteHook>,
    after: Option<AfterExecuteHook>,
}

impl Observer {
    pub fn new(options: &PoolOptions, masked_url: String) -> Observer {
        Observer {
            echo: options.echo,
            slow: options.slow_statement,
            trace_params: options.trace_params,
            url: masked_url,
            before: options.hooks.before_execute.clone(),
            after: options.hooks.after_execute.clone(),
        }
    }

    /// Whether a statement's [`finish`](Statement::finish) shows its
    /// parameters to anything (the `after_execute` hook).
    pub fn shows_params_after(&self) -> bool {
        self.after.is_some()
    }

    /// Called just before a statement is sent. An error from the
    /// `before_execute` hook stops it.
    pub fn start<'a, 'p>(
        &'a self,
        sql: &'a str,
        params: &'p [Value],
        connection_id: u64,
    ) -> Result<Statement<'a, 'p>> {
        if let Some(before) = &self.before {
            before(&StatementEvent {
                sql,
                params,
                connection_id,
            })?;
        }
        if self.echo != Echo::Off {
            echo_statement(self.echo, sql, params);
        }
        #[cfg(feature = "tracing")]
        let span = {
            let span = tracing::debug_span!(
                target: "orm::statement",
                "statement",
                sql,
                params = params.len(),
                rows = tracing::field::Empty,
                duration_ms = tracing::field::Empty,
                url = self.url.as_str(),
                connection_id,
                param_values = tracing::field::Empty,
                error = tracing::field::Empty,
            );
            if self.trace_params && !span.is_disabled() {
                span.record("param_values", tracing::field::display(Params(params)));
            }
            span
        };
        #[cfg(feature = "tracing")]
        let traced = !span.is_disabled();
        #[cfg(not(feature = "tracing"))]
        let traced = false;
        let timed = traced || self.slow.is_some() || self.after.is_some();
        Ok(Statement {
            observer: self,
            sql,
            params,
            connection_id,
            started: if timed { Some(Instant::now()) } else { None },
            #[cfg(feature = "tracing")]
            span: span.entered(),
        })
    }
}

/// A statement being sent; [`finish`](Self::finish) it with its result.
pub(crate) struct Statement<'a, 'p> {
    observer: &'a Observer,
    sql: &'a str,
    params: &'p [Value],
    connection_id: u64,
    /// Set only when something needs the duration.
    started: Option<Instant>,
    #[cfg(feature = "tracing")]
    span: tracing::span::EnteredSpan,
}

impl<'a> Statement<'a, '_> {
    /// The statement without its parameters, so that they can be handed
    /// on once [`Observer::start`] saw them. Only where
    /// [`Observer::shows_params_after`] is false: the `after_execute` hook
    /// would see none.
    pub fn without_params(self) -> Statement<'a, 'static> {
        Statement {
            observer: self.observer,
            sql: self.sql,
            params: &[],
            connection_id: self.connection_id,
            started: self.started,
            #[cfg(feature = "tracing")]
            span: self.span,
        }
    }

    /// Records how the statement ended and passes its result through.
    pub fn finish<T: Outcome>(self, result: Result<T>) -> Result<T> {
        let Some(started) = self.started else {
            return result;
        };
        let duration = started.elapsed();
        let (rows, error) = match &result {
            Ok(out) => (Some(out.rows()), None),
            Err(e) => (None, Some(e)),
        };
        #[cfg(feature = "tracing")]
        {
            self.span.record("duration_ms", millis(duration));
            if let Some(rows) = rows {
                self.span.record("rows", rows);
            }
            if let Some(error) = error {
                self.span.record("error", tracing::field::display(error));
            }
        }
        if let Some(threshold) = self.observer.slow.filter(|t| duration > *t) {
            self.slow(duration, threshold);
        }
        if let Some(after) = &self.observer.after {
            after(
                &StatementEvent {
                    sql: self.sql,
                    params: self.params,
                    connection_id: self.connection_id,
                },
                &StatementOutcome {
                    rows,
                    duration,
                    error,
                },
            );
        }
        result
    }

    #[cold]
    fn slow(&self, duration: Duration, threshold: Duration) {
        let ms = millis(duration);
        let threshold_ms = millis(threshold);
        if self.observer.echo != Echo::Off {
            eprintln!(
                "[orm] slow statement: {ms:.1} ms (slow_statement_ms={threshold_ms:.0}): {}",
                self.sql
            );
        }
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "orm::statement",
            sql = self.sql,
            duration_ms = ms,
            threshold_ms,
            url = self.observer.url.as_str(),
            connection_id = self.connection_id,
            "slow statement"
        );
    }
}

/// Milliseconds to the microsecond (`0.238`, not `0.23851499999999998`).
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

/// What a statement returned, for its span and the `after_execute` hook.
pub(crate) trait Outcome {
    /// Rows returned (a query) or affected (anything else).
    fn rows(&self) -> u64;
}

impl Outcome for ExecOutcome {
    fn rows(&self) -> u64 {
        self.affected_rows
    }
}

/// The number of rows a query returned.
pub(crate) struct Rows(pub u64);

impl Outcome for Rows {
    fn rows(&self) -> u64 {
        self.0
    }
}

/// Runs a query on `conn`, counting the rows it hands to `each`.
pub(crate) fn counted_query(
    conn: &mut dyn Connection,
    sql: &str,
    params: &[Value],
    each: &mut dyn FnMut(&mut Row) -> Result<()>,
) -> Result<Rows> {
    let mut rows = 0u64;
    conn.query_each(sql, params, &mut |row| {
        rows += 1;
        each(row)
    })?;
    Ok(Rows(rows))
}

/// Prints a statement (and with `Echo::Debug` its parameters) to stderr.
#[cold]
fn echo_statement(echo: Echo, sql: &str, params: &[Value]) {
    if echo == Echo::Debug && !params.is_empty() {
        eprintln!("[orm] {sql}\n[orm] [parameters: {}]", Params(params));
    } else {
        eprintln!("[orm] {sql}");
    }
}

/// Parameter values as `(1, "ann", NULL)`, at most [`SHOWN_PARAMS`] of them,
/// long text cut.
struct Params<'a>(&'a [Value]);

impl fmt::Display for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, value) in self.0.iter().take(SHOWN_PARAMS).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match value {
                Value::Text(s) if s.chars().count() > SHOWN_TEXT => {
                    let cut: String = s.chars().take(SHOWN_TEXT).collect();
                    write!(f, "{cut:?}... ({} characters)", s.chars().count())?;
                }
                other => write!(f, "{other}")?,
            }
        }
        if self.0.len() > SHOWN_PARAMS {
            write!(f, ", ... {} more", self.0.len() - SHOWN_PARAMS)?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_shown_short() {
        let shown = Params(&[Value::Int(1), Value::Text("ann".into()), Value::Null]).to_string();
        assert_eq!(shown, r#"(1, "ann", NULL)"#);
        let many: Vec<Value> = (0..25).map(Value::Int).collect();
        let shown = Params(&many).to_string();
        assert!(shown.ends_with("19, ... 5 more)"), "{shown}");
        let long = Params(&[Value::Text("x".repeat(150))]).to_string();
        assert!(
            long.contains("... (150 characters)") && long.len() < 130,
            "{long}"
        );
    }
}
