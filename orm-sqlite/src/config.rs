//! Parsing `sqlite://path/to/file.db?options` and `sqlite::memory:` into a
//! [`SqliteConfig`] and the engine's [`PoolOptions`].

use std::path::PathBuf;
use std::time::Duration;

use orm_core::backend::UpdateBatch;
use orm_core::pool::options::{parse_bool, parse_seconds};
use orm_core::pool::{PoolClass, PoolOptions};
use orm_core::{Error, Result};

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    /// A database file (created if missing).
    File(PathBuf),
    /// A private in-memory database, which lives as long as its one connection.
    Memory,
}

/// The settings of an SQLite engine.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The file, or memory.
    pub target: SqliteTarget,
    /// How long a statement waits for another connection's lock before
    /// failing with a retryable error (default 5 s).
    pub busy_timeout: Duration,
    /// Use `INSERT ... RETURNING` (SQLite 3.35+; default on).
    pub insert_returning: bool,
    /// How batched UPDATEs are sent (`update_batch=from_values|per_row`).
    pub update_batch: UpdateBatch,
}

/// The options this backend adds to the pool's.
const BACKEND_OPTIONS: &[&str] = &["busy_timeout", "insert_returning", "update_batch"];

impl SqliteConfig {
    /// A description for messages: the URL without options.
    pub fn describe(&self) -> String {
        match &self.target {
            SqliteTarget::File(p) => format!("sqlite://{}", p.display()),
            SqliteTarget::Memory => "sqlite::memory:".to_string(),
        }
    }

    /// Sets one backend option; `Ok(false)` when `name` is not one.
    pub fn set_option(&mut self, name: &str, value: &str) -> Result<bool> {
        match name {
            "busy_timeout" => self.busy_timeout = parse_seconds(name, value)?,
            "insert_returning" => {
                self.insert_returning = match value.trim() {
                    "auto" => true,
                    other => parse_bool(name, other)?,
                }
            }
            "update_batch" => {
                self.update_batch = match value.trim() {
                    "from_values" => UpdateBatch::FromValues,
                    "per_row" => UpdateBatch::PerRow,
                    other => {
                        return Err(Error::Config(format!(
                            "update_batch={other} is not valid; use from_values or per_row"
                        )))
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The pool SQLAlchemy picks for a target: a queue pool for a file; for
/// memory, one connection shared in turn by every checkout
/// ([`PoolClass::Static`]), because each connection to `:memory:` would be
/// a database of its own.
pub fn default_pool(target: &SqliteTarget) -> PoolOptions {
    match target {
        SqliteTarget::File(_) => PoolOptions::default(),
        SqliteTarget::Memory => PoolOptions {
            class: PoolClass::Static,
            pool_size: 1,
            max_overflow: 0,
            ..PoolOptions::default()
        },
    }
}

/// Parses `sqlite://<path>[?options]` (`sqlite:///tmp/x.db` is the absolute
/// path `/tmp/x.db`, `sqlite://data/x.db` is relative to the working
/// directory) or `sqlite::memory:` / `sqlite://:memory:`.
pub(crate) fn parse_url(url: &str) -> Result<(SqliteConfig, PoolOptions)> {
    let rest = if let Some(r) = url.strip_prefix("sqlite://") {
        r
    } else if let Some(r) = url.strip_prefix("sqlite:") {
        if !r.starts_with(":memory:") {
            return Err(bad_url(url));
        }
        r
    } else {
        return Err(bad_url(url));
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let target = match path {
        ":memory:" => SqliteTarget::Memory,
        "" => return Err(bad_url(url)),
        p => SqliteTarget::File(PathBuf::from(p)),
    };
    let mut pool = default_pool(&target);
    let mut config = SqliteConfig {
        target,
        busy_timeout: Duration::from_secs(5),
        insert_returning: true,
        update_batch: UpdateBatch::FromValues,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        apply_option(&mut config, &mut pool, name, value)?;
    }
    check_pool(&config, &pool)?;
    Ok((config, pool))
}

fn bad_url(url: &str) -> Error {
    Error::Config(format!(
        "`{url}` is not an SQLite URL; write sqlite://path/to/file.db \
         (sqlite:///abs/path.db for an absolute path) or sqlite::memory:"
    ))
}

/// An in-memory database must keep its one connection.
pub(crate) fn check_pool(config: &SqliteConfig, pool: &PoolOptions) -> Result<()> {
    if config.target == SqliteTarget::Memory && pool.class != PoolClass::Static {
        return Err(Error::Config(
            "an in-memory SQLite database exists only inside its one connection, so it needs \
             poolclass=static (the default for sqlite::memory:); use a file for a pool"
                .to_string(),
        ));
    }
    Ok(())
}

/// Sets a pool or backend option by name.
pub(crate) fn apply_option(
    config: &mut SqliteConfig,
    pool: &mut PoolOptions,
    name: &str,
    value: &str,
) -> Result<()> {
    if pool.set_option(name, value)? || config.set_option(name, value)? {
        return Ok(());
    }
    let mut known: Vec<&str> = PoolOptions::KNOWN_OPTIONS
        .iter()
        .chain(BACKEND_OPTIONS)
        .copied()
        .collect();
    known.sort_unstable();
    Err(Error::Config(format!(
        "unknown option `{name}` in the database URL; known options: {}",
        known.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_files_memory_and_options() {
        let (c, p) = parse_url("sqlite:///tmp/a.db?pool_size=2&busy_timeout=0.5").unwrap();
        assert_eq!(c.target, SqliteTarget::File("/tmp/a.db".into()));
        assert_eq!(c.busy_timeout, Duration::from_millis(500));
        assert_eq!(p.pool_size, 2);
        assert_eq!(p.class, PoolClass::Queue);
        let (c, _) = parse_url("sqlite://data/x.db").unwrap();
        assert_eq!(c.target, SqliteTarget::File("data/x.db".into()));
        assert_eq!(c.describe(), "sqlite://data/x.db");
        for url in ["sqlite::memory:", "sqlite://:memory:"] {
            let (c, p) = parse_url(url).unwrap();
            assert_eq!(c.target, SqliteTarget::Memory);
            assert_eq!(p.class, PoolClass::Static);
        }
        let (c, _) =
            parse_url("sqlite::memory:?insert_returning=off&update_batch=per_row").unwrap();
        assert!(!c.insert_returning);
        assert_eq!(c.update_batch, UpdateBatch::PerRow);
        assert!(parse_url("sqlite::memory:?update_batch=join").is_err());
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        let e = parse_url("sqlite::memory:?poolclass=queue").unwrap_err();
        assert!(e.to_string().contains("poolclass=static"), "{e}");
        let e = parse_url("sqlite://x.db?bogus=1").unwrap_err();
        assert!(e.to_string().contains("busy_timeout"), "{e}");
        let e = parse_url("sqlite:x.db").unwrap_err();
        assert!(e.to_string().contains("sqlite::memory:"), "{e}");
        assert!(parse_url("sqlite://").is_err());
    }
}
