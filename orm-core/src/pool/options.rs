//! Pool configuration: [`PoolOptions`] with SQLAlchemy's defaults, and the
//! generic `name=value` option parsing that every backend's URL reuses.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pool::hooks::Hooks;

/// Which pool implementation an engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolClass {
    /// Keeps up to `pool_size` idle connections and opens up to
    /// `max_overflow` more under load (SQLAlchemy's `QueuePool`).
    #[default]
    Queue,
    /// Opens a connection per checkout and closes it on return.
    Null,
    /// Exactly one connection, shared by every checkout in turn; a second
    /// concurrent checkout waits (up to `timeout`) until it is returned.
    Static,
}

/// What is done to a connection when it goes back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResetOnReturn {
    /// `ROLLBACK`, skipped when no transaction is known to be open.
    #[default]
    Rollback,
    /// `COMMIT`, skipped when no transaction is known to be open.
    Commit,
    /// Nothing.
    None,
}

/// What `echo` prints to standard error (SQLAlchemy's `echo`), whether or
/// not a `tracing` subscriber is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Echo {
    /// Nothing (the default).
    #[default]
    Off,
    /// Every statement's SQL text (`echo=true`).
    Statements,
    /// Every statement's SQL text and its parameter values (`echo=debug`).
    Debug,
}

impl From<bool> for Echo {
    fn from(on: bool) -> Echo {
        if on {
            Echo::Statements
        } else {
            Echo::Off
        }
    }
}

/// Pool configuration. `PoolOptions::default()` has SQLAlchemy's defaults:
/// a queue pool of 5 plus 10 overflow, 30 s timeout, no recycle, no
/// pre-ping, rollback on return, FIFO.
#[derive(Clone)]
pub struct PoolOptions {
    /// The pool implementation.
    pub class: PoolClass,
    /// Idle connections kept open. `0` means no limit at all (and no overflow accounting).
    pub pool_size: usize,
    /// Connections opened beyond `pool_size` under load, closed when returned.
    /// `usize::MAX` (`max_overflow=-1` in a URL) means unlimited.
    pub max_overflow: usize,
    /// How long a checkout waits for a connection before failing with
    /// [`Error::PoolTimeout`].
    pub timeout: Duration,
    /// Connections older than this (since opened) are closed and reopened at checkout.
    pub recycle: Option<Duration>,
    /// Ping a connection at checkout when it has been idle at least `pre_ping_idle`.
    pub pre_ping: bool,
    /// The idle time after which a pre-ping is done (default 1 s). A connection
    /// reused sooner than this is trusted: measured on loopback MariaDB 10.11
    /// (release build), a checkout plus `SELECT 1` takes about 48 µs without a
    /// ping and about 148 µs with a ping at every checkout, so pinging busy
    /// connections would triple the cost of short units of work. A connection
    /// that was fine a second ago is very likely fine now, and a failure is
    /// still detected and handled at its first statement. `0` pings every reuse.
    pub pre_ping_idle: Duration,
    /// What is done to a connection when it is returned.
    pub reset_on_return: ResetOnReturn,
    /// Reuse the most recently returned connection first (LIFO) instead of the
    /// least recently returned (FIFO).
    pub use_lifo: bool,
    /// Print every statement (and with [`Echo::Debug`] its parameters) to stderr.
    pub echo: Echo,
    /// Statements that take longer than this are logged at WARN level
    /// (through `tracing`, and to stderr when `echo` is on).
    pub slow_statement: Option<Duration>,
    /// Record parameter values on the statement spans (off by default:
    /// values may be personal data).
    pub trace_params: bool,
    /// Callbacks run at connect, checkout, checkin and invalidation.
    pub hooks: Hooks,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            class: PoolClass::Queue,
            pool_size: 5,
            max_overflow: 10,
            timeout: Duration::from_secs(30),
            recycle: None,
            pre_ping: false,
            pre_ping_idle: Duration::from_secs(1),
            reset_on_return: ResetOnReturn::Rollback,
            use_lifo: false,
            echo: Echo::Off,
            slow_statement: None,
            trace_params: false,
            hooks: Hooks::default(),
        }
    }
}

impl fmt::Debug for PoolOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolOptions")
            .field("class", &self.class)
            .field("pool_size", &self.pool_size)
            .field("max_overflow", &self.max_overflow)
            .field("timeout", &self.timeout)
            .field("recycle", &self.recycle)
            .field("pre_ping", &self.pre_ping)
            .field("pre_ping_idle", &self.pre_ping_idle)
            .field("reset_on_return", &self.reset_on_return)
            .field("use_lifo", &self.use_lifo)
            .field("echo", &self.echo)
            .field("slow_statement", &self.slow_statement)
            .field("trace_params", &self.trace_params)
            .field("hooks", &self.hooks)
            .finish()
    }
}

impl PoolOptions {
    /// The option names [`PoolOptions::set_option`] understands.
    pub const KNOWN_OPTIONS: &'static [&'static str] = &[
        "pool_size",
        "max_overflow",
        "pool_timeout",
        "pool_recycle",
        "pool_pre_ping",
        "pool_pre_ping_idle",
        "pool_reset_on_return",
        "pool_use_lifo",
        "poolclass",
        "echo",
        "slow_statement_ms",
        "trace_params",
    ];

    /// Sets one option from its URL spelling (`pool_size=10`). Returns
    /// `Ok(false)` when `name` is not a pool option (so the backend can try its
    /// own), and [`Error::Config`] when the value is malformed.
    pub fn set_option(&mut self, name: &str, value: &str) -> Result<bool> {
        let value = value.trim();
        match name {
            "pool_size" => self.pool_size = parse_usize(name, value)?,
            "max_overflow" => {
                self.max_overflow = if value == "-1" {
                    usize::MAX
                } else {
                    parse_usize(name, value)?
                }
            }
            "pool_timeout" => self.timeout = parse_seconds(name, value)?,
            "pool_recycle" => {
                self.recycle = if value.starts_with('-') {
                    let n: f64 = value.parse().map_err(|_| {
                        bad_value(name, value, "a number of seconds, or -1 for off")
                    })?;
                    if n < 0.0 {
                        None
                    } else {
                        return Err(bad_value(name, value, "a number of seconds, or -1 for off"));
                    }
                } else {
                    Some(parse_seconds(name, value)?)
                }
            }
            "pool_pre_ping" => self.pre_ping = parse_bool(name, value)?,
            "pool_pre_ping_idle" => self.pre_ping_idle = parse_seconds(name, value)?,
            "pool_reset_on_return" => {
                self.reset_on_return = match value.to_ascii_lowercase().as_str() {
                    "rollback" => ResetOnReturn::Rollback,
                    "commit" => ResetOnReturn::Commit,
                    "none" | "" => ResetOnReturn::None,
                    _ => return Err(bad_value(name, value, "rollback, commit or none")),
                }
            }
            "pool_use_lifo" => self.use_lifo = parse_bool(name, value)?,
            "poolclass" => {
                self.class = match value.to_ascii_lowercase().as_str() {
                    "queue" | "queuepool" => PoolClass::Queue,
                    "null" | "nullpool" => PoolClass::Null,
                    "static" | "staticpool" => PoolClass::Static,
                    _ => return Err(bad_value(name, value, "queue, null or static")),
                }
            }
            "echo" => {
                self.echo = if value.eq_ignore_ascii_case("debug") {
                    Echo::Debug
                } else {
                    parse_bool(name, value)
                        .map_err(|_| bad_value(name, value, "true, false or debug"))?
                        .into()
                }
            }
            "slow_statement_ms" => {
                let ms = parse_usize(name, value).map_err(|_| {
                    bad_value(name, value, "a number of milliseconds, or 0 for off")
                })?;
                self.slow_statement = match ms {
                    0 => None,
                    ms => Some(Duration::from_millis(ms as u64)),
                }
            }
            "trace_params" => self.trace_params = parse_bool(name, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The most connections the pool may have open at once (`None`: no limit).
    pub(crate) fn limit(&self) -> Option<usize> {
        match self.class {
            PoolClass::Null => None,
            PoolClass::Static => Some(1),
            PoolClass::Queue if self.pool_size == 0 || self.max_overflow == usize::MAX => None,
            PoolClass::Queue => Some(self.pool_size.saturating_add(self.max_overflow)),
        }
    }
}

fn bad_value(name: &str, value: &str, expected: &str) -> Error {
    Error::Config(format!(
        "option `{name}` has the invalid value `{value}`; expected {expected}"
    ))
}

/// Parses a non-negative integer option.
pub fn parse_usize(name: &str, value: &str) -> Result<usize> {
    value
        .parse()
        .map_err(|_| bad_value(name, value, "a non-negative integer"))
}

/// Parses a number of seconds (integer or decimal, `0.2`) into a duration.
pub fn parse_seconds(name: &str, value: &str) -> Result<Duration> {
    let secs: f64 = value
        .parse()
        .map_err(|_| bad_value(name, value, "a number of seconds such as 30 or 0.5"))?;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(bad_value(
            name,
            value,
            "a non-negative number of seconds such as 30 or 0.5",
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a boolean option: true/false, 1/0, yes/no, on/off.
pub fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad_value(name, value, "true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sqlalchemys() {
        let o = PoolOptions::default();
        assert_eq!(
            (o.pool_size, o.max_overflow, o.timeout),
            (5, 10, Duration::from_secs(30))
        );
        assert_eq!(o.recycle, None);
        assert!(!o.pre_ping && !o.use_lifo);
        assert_eq!(o.reset_on_return, ResetOnReturn::Rollback);
        assert_eq!(o.limit(), Some(15));
    }

    #[test]
    fn parses_options() {
        let mut o = PoolOptions::default();
        assert!(o.set_option("pool_size", "2").unwrap());
        assert!(o.set_option("max_overflow", "-1").unwrap());
        assert_eq!(o.limit(), None);
        assert!(o.set_option("pool_timeout", "0.2").unwrap());
        assert_eq!(o.timeout, Duration::from_millis(200));
        assert!(o.set_option("pool_recycle", "-1").unwrap());
        assert_eq!(o.recycle, None);
        assert!(o.set_option("pool_recycle", "3600").unwrap());
        assert_eq!(o.recycle, Some(Duration::from_secs(3600)));
        assert!(o.set_option("pool_pre_ping", "true").unwrap());
        assert!(o.set_option("poolclass", "static").unwrap());
        assert_eq!(o.class, PoolClass::Static);
        assert!(!o.set_option("nonsense", "1").unwrap());
        let e = o.set_option("pool_size", "many").unwrap_err().to_string();
        assert!(e.contains("pool_size") && e.contains("many"), "{e}");
        assert!(o.set_option("pool_timeout", "-3").is_err());
        assert!(o.set_option("pool_reset_on_return", "sometimes").is_err());
    }

    #[test]
    fn parses_echo_and_slow_statements() {
        let mut o = PoolOptions::default();
        assert_eq!(
            (o.echo, o.slow_statement, o.trace_params),
            (Echo::Off, None, false)
        );
        assert!(o.set_option("echo", "true").unwrap());
        assert_eq!(o.echo, Echo::Statements);
        assert!(o.set_option("echo", "DEBUG").unwrap());
        assert_eq!(o.echo, Echo::Debug);
        assert!(o.set_option("echo", "off").unwrap());
        assert_eq!(o.echo, Echo::Off);
        let e = o.set_option("echo", "loud").unwrap_err().to_string();
        assert!(e.contains("echo") && e.contains("debug"), "{e}");
        assert!(o.set_option("slow_statement_ms", "100").unwrap());
        assert_eq!(o.slow_statement, Some(Duration::from_millis(100)));
        assert!(o.set_option("slow_statement_ms", "0").unwrap());
        assert_eq!(o.slow_statement, None);
        let e = o
            .set_option("slow_statement_ms", "0.5s")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("slow_statement_ms") && e.contains("milliseconds"),
            "{e}"
        );
        assert!(o.set_option("trace_params", "yes").unwrap());
        assert!(o.trace_params);
    }
}
