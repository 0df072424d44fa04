//! [`MySqlConnector`]: opens connections and learns what the server is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use mysql::consts::CapabilityFlags;
use mysql::prelude::Queryable;
use orm_core::backend::{
    AutoIncrement, BeginMode, Connection, Connector, Dialect, ServerInfo, ServerKind,
};
use orm_core::Result;

use crate::config::{MySqlConfig, TlsMode};
use crate::connection::MySqlConnection;
use crate::dialect::MySqlDialect;
use crate::error::{from_connect, from_driver_during, Phase};

/// TCP keepalive: first probe after 30 s idle, then every 10 s, 3 probes.
const KEEPALIVE_TIME_MS: u32 = 30_000;
const KEEPALIVE_INTERVAL_S: u32 = 10;
const KEEPALIVE_PROBES: u32 = 3;
/// `TCP_USER_TIMEOUT` (Linux): data sent and unacknowledged this long drops
/// the connection, so a statement sent to a dead peer fails in 30 s instead
/// of the kernel's ~15 minutes of retransmissions. A live server acknowledges
/// at once, however long the statement runs.
#[cfg(target_os = "linux")]
const USER_TIMEOUT_MS: u32 = 30_000;
/// The most placeholders a prepared statement may have (a 16-bit count).
const MAX_PLACEHOLDERS: usize = 65_535;

/// What the first connection learned, reused by every later one.
struct Learned {
    opts: mysql::Opts,
    info: ServerInfo,
}

/// Opens MySQL/MariaDB connections over TCP.
pub struct MySqlConnector {
    config: MySqlConfig,
    base_opts: mysql::Opts,
    learned: OnceLock<Learned>,
    /// `ssl_mode=preferred` found a server without TLS: connect in plain TCP.
    tls_unavailable: AtomicBool,
    description: String,
}

fn without_tls(opts: mysql::Opts) -> mysql::Opts {
    mysql::OptsBuilder::from_opts(opts)
        .ssl_opts(None::<mysql::SslOpts>)
        .into()
}

impl MySqlConnector {
    /// A connector for these settings. Nothing is connected yet.
    pub fn new(config: MySqlConfig) -> Result<MySqlConnector> {
        let mut builder = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(config.host.clone()))
            .tcp_port(config.port)
            .user(config.user.clone())
            .pass(config.password.clone())
            .db_name(config.database.clone())
            .prefer_socket(false)
            .tcp_nodelay(true)
            .tcp_connect_timeout(Some(config.connect_timeout))
            // The handshake and the first queries are bounded by
            // connect_timeout; `finish_connect` then sets read_timeout.
            .read_timeout(Some(config.connect_timeout))
            .write_timeout(config.write_timeout)
            .tcp_keepalive_time_ms(Some(KEEPALIVE_TIME_MS))
            .tcp_keepalive_probe_interval_secs(Some(KEEPALIVE_INTERVAL_S))
            .tcp_keepalive_probe_count(Some(KEEPALIVE_PROBES))
            // Prepared statements are cached by the connection itself
            // (`statement_cache`), which skips the driver's per-execution
            // scan of the SQL text for named parameters.
            .stmt_cache_size(Some(0))
            .additional_capabilities(
                CapabilityFlags::CLIENT_FOUND_ROWS | CapabilityFlags::CLIENT_SESSION_TRACK,
            )
            // The server reports in every OK packet that changes it whether
            // a transaction is open, so that a statement that ends the
            // transaction implicitly (DDL, LOCK TABLES) is noticed. With
            // autocommit off a transaction's first statement opens it: no
            // BEGIN round trip (both statements are sent once, at connect).
            .init(if config.autocommit_reads {
                vec!["SET SESSION session_track_transaction_info = 'STATE'"]
            } else {
                vec![
                    "SET SESSION session_track_transaction_info = 'STATE'",
                    "SET SESSION autocommit = 0",
                ]
            });
        #[cfg(target_os = "linux")]
        {
            builder = builder.tcp_user_timeout_ms(Some(USER_TIMEOUT_MS));
        }
        builder = apply_tls(builder, config.tls)?;
        let description = config.describe();
        Ok(MySqlConnector {
            config,
            base_opts: builder.into(),
            learned: OnceLock::new(),
            tls_unavailable: AtomicBool::new(false),
            description,
        })
    }

    /// The settings.
    pub fn config(&self) -> &MySqlConfig {
        &self.config
    }

    /// How its connections begin transactions (`autocommit_reads`).
    fn begin_mode(&self) -> BeginMode {
        if self.config.autocommit_reads {
            BeginMode::AtFirstWrite
        } else {
            BeginMode::Implicit
        }
    }

    /// Opens a connection to the first host of the URL's list that answers
    /// and passes `finish` (from a random one with `host_order=random`); a
    /// host that cannot be reached, refuses the connection, or (a Galera
    /// node) is not ready for application use is skipped, and the last such
    /// error is returned when none answers.
    fn open<T>(
        &self,
        opts: mysql::Opts,
        finish: impl Fn(mysql::Conn, &str) -> Result<T>,
    ) -> Result<T> {
        if self.config.fallback_hosts.is_empty() {
            let address = format!("{}:{}", self.config.host, self.config.port);
            return self.open_one(opts).and_then(|c| finish(c, &address));
        }
        let mut hosts: Vec<(String, u16)> =
            std::iter::once((self.config.host.clone(), self.config.port))
                .chain(self.config.fallback_hosts.iter().cloned())
                .collect();
        if self.config.host_order == crate::config::HostOrder::Random {
            let start = random_below(hosts.len());
            hosts.rotate_left(start);
        }
        let mut last = None;
        for (host, port) in hosts {
            let address = format!("{host}:{port}");
            let candidate: mysql::Opts = mysql::OptsBuilder::from_opts(opts.clone())
                .ip_or_hostname(Some(host))
                .tcp_port(port)
                .into();
            match self.open_one(candidate).and_then(|c| finish(c, &address)) {
                Ok(conn) => return Ok(conn),
                Err(e)
                    if e.db_kind() == Some(orm_core::DbErrorKind::Connect)
                        || e.is_connection_lost() =>
                {
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| orm_core::Error::Config("no host to connect to".into())))
    }

    fn open_one(&self, opts: mysql::Opts) -> Result<mysql::Conn> {
        let opts = if self.tls_unavailable.load(Ordering::Relaxed) {
            without_tls(opts)
        } else {
            opts
        };
        match mysql::Conn::new(opts.clone()) {
            // `ssl_mode=preferred` and the server has no TLS: plain TCP, and
            // no more TLS attempts by this connector.
            Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported))
                if self.config.tls == TlsMode::Preferred =>
            {
                self.tls_unavailable.store(true, Ordering::Relaxed);
                mysql::Conn::new(without_tls(opts))
            }
            result => result,
        }
        .map_err(|e| from_connect(e, &self.description, &self.config.timeouts()))
    }

    /// Reads the product, version and `max_allowed_packet` in one query.
    /// The per-session facts are read by every connection itself.
    fn learn(&self, conn: &mut mysql::Conn) -> Result<Learned> {
        let row: Option<(String, Option<u64>)> = conn
            .query_first("SELECT VERSION(), @@max_allowed_packet")
            .map_err(|e| from_driver_during(e, &self.config.timeouts(), Phase::Connect))?;
        let (version, max_packet) = row.unwrap_or_default();
        let (kind, version) = parse_server_version(&version).unwrap_or_else(|| {
            let (a, b, c) = conn.server_version();
            (ServerKind::Other, (a, b, c))
        });
        let max_allowed_packet = max_packet
            .and_then(|p| usize::try_from(p).ok())
            .unwrap_or(4 * 1024 * 1024);
        let info = ServerInfo {
            kind,
            version,
            supports_returning: self.config.insert_returning
                && kind == ServerKind::MariaDb
                && version >= (10, 5, 0),
            auto_increment: AutoIncrement::default(),
            max_allowed_packet,
            max_placeholders: MAX_PLACEHOLDERS,
        };
        let opts = mysql::OptsBuilder::from_opts(self.base_opts.clone())
            .max_allowed_packet(Some(max_allowed_packet))
            .into();
        Ok(Learned { opts, info })
    }

    /// Wraps a just-opened connection: learns the server on the very first
    /// one, reads the session's facts, and with a failover host list checks
    /// that a Galera node is ready (a single host is used as it is, so that
    /// a node out of the cluster can still be inspected or repaired).
    fn finish(&self, mut conn: mysql::Conn, address: &str) -> Result<MySqlConnection> {
        let info = match self.learned.get() {
            Some(learned) => learned.info.clone(),
            None => {
                let learned = self.learn(&mut conn)?;
                let info = learned.info.clone();
                let _ = self.learned.set(learned);
                info
            }
        };
        let mut conn = MySqlConnection::new(conn, info, self.config.timeouts(), self.begin_mode());
        conn.finish_connect()?;
        if !self.config.fallback_hosts.is_empty() {
            conn.check_node_ready(address)?;
        }
        Ok(conn)
    }
}

#[cfg(feature = "tls")]
fn apply_tls(builder: mysql::OptsBuilder, mode: TlsMode) -> Result<mysql::OptsBuilder> {
    let ssl = match mode {
        TlsMode::Disabled => return Ok(builder),
        TlsMode::Preferred | TlsMode::Required => mysql::SslOpts::default()
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true),
        TlsMode::VerifyCa => mysql::SslOpts::default().with_danger_skip_domain_validation(true),
        TlsMode::VerifyIdentity => mysql::SslOpts::default(),
    };
    Ok(builder.ssl_opts(Some(ssl)))
}

#[cfg(not(feature = "tls"))]
fn apply_tls(builder: mysql::OptsBuilder, mode: TlsMode) -> Result<mysql::OptsBuilder> {
    match mode {
        // Preferred: TLS if possible, and this build cannot.
        TlsMode::Disabled | TlsMode::Preferred => Ok(builder),
        _ => Err(orm_core::Error::Config(
            "TLS was requested, but orm-mysql was built without its `tls` feature; enable the feature".into(),
        )),
    }
}

/// Parses `VERSION()` or a handshake version string: `10.11.19-MariaDB-0+deb12u1`,
/// `5.5.5-10.11.19-MariaDB` (MariaDB's old-protocol prefix), `8.0.36`.
pub(crate) fn parse_server_version(s: &str) -> Option<(ServerKind, (u16, u16, u16))> {
    let mariadb = s.to_ascii_lowercase().contains("mariadb");
    let s = if mariadb {
        s.strip_prefix("5.5.5-").unwrap_or(s)
    } else {
        s
    };
    let numeric: &str = s
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = numeric.split('.').map(|p| p.parse::<u16>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    let kind = if mariadb {
        ServerKind::MariaDb
    } else {
        ServerKind::MySql
    };
    Some((kind, (major, minor, patch)))
}

impl Connector for MySqlConnector {
    /// Opens a connection and reads its session's facts (one round trip;
    /// the very first connection also learns the server's version).
    fn connect(&self) -> Result<Box<dyn Connection>> {
        let opts = match self.learned.get() {
            Some(learned) => learned.opts.clone(),
            None => self.base_opts.clone(),
        };
        let conn = self.open(opts, |conn, address| self.finish(conn, address))?;
        Ok(Box::new(conn))
    }

    fn dialect(&self) -> &dyn Dialect {
        &MySqlDialect
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

impl std::fmt::Debug for MySqlConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MySqlConnector({})", self.description)
    }
}

/// A random index below `n` (from the standard library's random seed).
fn random_below(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(n);
    (h.finish() % n.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_server_version("10.11.19-MariaDB-0+deb12u1"),
            Some((ServerKind::MariaDb, (10, 11, 19)))
        );
        assert_eq!(
            parse_server_version("5.5.5-10.11.19-MariaDB"),
            Some((ServerKind::MariaDb, (10, 11, 19)))
        );
        assert_eq!(
            parse_server_version("8.0.36"),
            Some((ServerKind::MySql, (8, 0, 36)))
        );
        assert_eq!(
            parse_server_version("8.4.0-commercial"),
            Some((ServerKind::MySql, (8, 4, 0)))
        );
        assert_eq!(parse_server_version("garbage"), None);
    }
}
