//! The MySQL/MariaDB backend of the `orm` crate, on the `mysql` crate.
//!
//! ```no_run
//! let engine = orm_mysql::create_engine("mysql://root@127.0.0.1:3306/test?pool_size=2&pool_pre_ping=true")?;
//! let mut conn = engine.connect()?;
//! conn.execute_text("SELECT 1")?;
//! # Ok::<(), orm_core::Error>(())
//! ```
//!
//! Or with the builder, to add hooks:
//!
//! ```no_run
//! let engine = orm_mysql::builder("mysql://root@127.0.0.1:3306/test")?
//!     .pool_size(2)
//!     .on_connect(|c| c.execute_text("SET time_zone = '+00:00'").map(|_| ()))
//!     .build()?;
//! # Ok::<(), orm_core::Error>(())
//! ```
//!
//! URL options (`?name=value&...`): the pool's (`pool_size`, `max_overflow`
//! (-1 unlimited), `pool_timeout`, `pool_recycle` (-1 off), `pool_pre_ping`,
//! `pool_pre_ping_idle`, `pool_reset_on_return` (rollback|commit|none),
//! `pool_use_lifo`, `poolclass` (queue|null|static), `echo` (true|false|debug),
//! `slow_statement_ms` (0 off), `trace_params`) and the
//! connection's: `connect_timeout` (default 10 s, for the TCP connect and
//! the handshake each), `read_timeout` (default none: a statement may run
//! as long as it needs), `write_timeout` (default 60 s), `ping_timeout`
//! (default 5 s: the pre-ping's read timeout), 0 disables a timeout;
//! `insert_returning` (auto|off), `autocommit_reads` (off|on: see below), `ssl_mode`
//! (disabled|preferred|required|verify_ca|verify_identity; all but
//! `disabled` and `preferred` need the `tls` feature; `preferred` falls back
//! to plain TCP when the server has no TLS) / `tls`.
//!
//! A dead server or a half-open socket is detected without a read timeout
//! that would also kill long statements: TCP keepalive (first probe after
//! 30 s idle, then every 10 s, 3 probes), `TCP_USER_TIMEOUT` of 30 s on
//! Linux (data unacknowledged that long drops the connection), and the
//! pre-ping's short `ping_timeout`.
//!
//! Connections run with `autocommit = 0` (set at connect), so a
//! transaction begins with its first statement: no `BEGIN` round trip, and
//! plain connections commit as they go (a write needs `commit()`). With
//! `autocommit_reads=on` they keep autocommit: reads outside a write run on
//! their own, `BEGIN` is sent right before a transaction's first write, and
//! a session that only read ends with no round trip.
//!
//! Connections always use TCP (never the Unix socket), TCP keepalive,
//! `CLIENT_FOUND_ROWS` (UPDATE reports matched rows), and prepared
//! statements from the driver's statement cache for every statement with
//! parameters.

#![warn(missing_docs)]

mod builder;
mod config;
mod connection;
mod connector;
mod convert;
mod dialect;
mod error;
mod statement_cache;

pub use builder::{builder, create_engine, MySqlEngineBuilder};
pub use config::{MySqlConfig, TlsMode};
pub use connection::MySqlConnection;
pub use connector::MySqlConnector;
pub use dialect::MySqlDialect;
pub use error::classify_code;
