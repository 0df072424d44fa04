//! Parsing `mysql://user:password@host:port/db?options` into a
//! [`MySqlConfig`] and the engine's [`PoolOptions`].

use std::fmt;
use std::time::Duration;

use orm_core::pool::options::{parse_bool, parse_seconds};
use orm_core::pool::PoolOptions;
use orm_core::{Error, Result};

/// Whether and how to use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP (the default).
    #[default]
    Disabled,
    /// TLS (without verifying the server's certificate) when the server
    /// offers it, plain TCP when it does not, as MySQL's `--ssl-mode=PREFERRED`.
    /// Without the `tls` feature: plain TCP. It protects only against a
    /// passive eavesdropper; use `Required` or a verifying mode for more.
    Preferred,
    /// TLS, without verifying the server's certificate; a server without
    /// TLS is an error.
    Required,
    /// TLS, verifying the certificate chain but not the host name.
    VerifyCa,
    /// TLS, verifying the certificate and the host name.
    VerifyIdentity,
}

/// The order in which an engine with several hosts tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOrder {
    /// The first that answers, from the first in the URL (a primary with
    /// standbys).
    InOrder,
    /// From a random host each time (spreading connections over peers).
    Random,
}

/// The connection settings of a MySQL/MariaDB engine. `Debug` masks the password.
#[derive(Clone)]
pub struct MySqlConfig {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (default 3306).
    pub port: u16,
    /// Further servers to try, in order, when `host:port` does not answer
    /// (`mysql://h1:3306,h2:3306/db`): a failover list. With such a list, a
    /// Galera node that is not ready for application use (`wsrep_ready =
    /// OFF`: out of the primary component, or still joining) is skipped too.
    pub fallback_hosts: Vec<(String, u16)>,
    /// The order in which the hosts are tried for each new connection
    /// (`host_order=in_order|random`).
    pub host_order: HostOrder,
    /// User name.
    pub user: Option<String>,
    /// Password (never printed).
    pub password: Option<String>,
    /// Database to select.
    pub database: Option<String>,
    /// How long opening a connection may take, TCP connect and the
    /// server's handshake each (default 10 s).
    pub connect_timeout: Duration,
    /// Socket read timeout for statements (default `None`: wait as long as
    /// the statement runs). A read timeout cannot tell a long report, a big
    /// DELETE or DDL from a dead peer, and on expiry the connection is lost
    /// (and the pool invalidated) while the server goes on running the
    /// statement, so there is none by default. A dead peer or half-open
    /// socket is detected instead by TCP keepalive (first probe after 30 s
    /// idle, then every 10 s, 3 probes) and `TCP_USER_TIMEOUT` (30 s of
    /// unacknowledged data, Linux), neither of which fires while the server
    /// is alive, and the pre-ping has its own short [`ping_timeout`](Self::ping_timeout).
    pub read_timeout: Option<Duration>,
    /// Socket write timeout (default 60 s; `None` waits forever).
    pub write_timeout: Option<Duration>,
    /// Read timeout of a ping (the pool's pre-ping; default 5 s; `None`
    /// waits as long as `read_timeout`). A ping is answered at once by a
    /// live server, so a short bound finds a half-open connection quickly.
    pub ping_timeout: Option<Duration>,
    /// Use `INSERT ... RETURNING` where the server has it (MariaDB 10.5+).
    /// `insert_returning=off` forces the fallback path.
    pub insert_returning: bool,
    /// Keep the server's autocommit on and send `BEGIN` only before a
    /// transaction's first write, so that reads outside a write run on their
    /// own (each sees the latest data) and a session that only read ends
    /// with no round trip (`autocommit_reads=on`). Off by default: the
    /// connection runs with `autocommit = 0`, its first statement opens the
    /// transaction (no `BEGIN` round trip) and the session's reads share
    /// one snapshot.
    pub autocommit_reads: bool,
    /// TLS mode (needs the `tls` feature for anything but `Disabled`).
    pub tls: TlsMode,
}

impl Default for MySqlConfig {
    fn default() -> Self {
        MySqlConfig {
            host: "127.0.0.1".into(),
            port: 3306,
            fallback_hosts: Vec::new(),
            host_order: HostOrder::InOrder,
            user: None,
            password: None,
            database: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
            write_timeout: Some(Duration::from_secs(60)),
            ping_timeout: Some(Duration::from_secs(5)),
            insert_returning: true,
            autocommit_reads: false,
            tls: TlsMode::Disabled,
        }
    }
}

/// The options this backend adds to the pool's.
pub const BACKEND_OPTIONS: &[&str] = &[
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "ping_timeout",
    "insert_returning",
    "autocommit_reads",
    "ssl_mode",
    "tls",
    "host_order",
];

impl MySqlConfig {
    /// `mysql://user:***@host:port/db`: the password masked.
    pub fn describe(&self) -> String {
        let mut s = String::from("mysql://");
        if let Some(user) = &self.user {
            s.push_str(user);
            if self.password.is_some() {
                s.push_str(":***");
            }
            s.push('@');
        }
        let hosts = std::iter::once((&self.host, self.port))
            .chain(self.fallback_hosts.iter().map(|(h, p)| (h, *p)));
        for (n, (host, port)) in hosts.enumerate() {
            if n > 0 {
                s.push(',');
            }
            if host.contains(':') {
                s.push_str(&format!("[{host}]"));
            } else {
                s.push_str(host);
            }
            s.push_str(&format!(":{port}"));
        }
        if let Some(db) = &self.database {
            s.push('/');
            s.push_str(db);
        }
        s
    }

    /// Sets a backend option; `Ok(false)` if `name` is not one.
    pub fn set_option(&mut self, name: &str, value: &str) -> Result<bool> {
        let timeout = |v: &str| -> Result<Option<Duration>> {
            let d = parse_seconds(name, v)?;
            Ok(if d.is_zero() { None } else { Some(d) })
        };
        match name {
            "connect_timeout" => self.connect_timeout = parse_seconds(name, value)?,
            "read_timeout" => self.read_timeout = timeout(value)?,
            "write_timeout" => self.write_timeout = timeout(value)?,
            "ping_timeout" => self.ping_timeout = timeout(value)?,
            "insert_returning" => {
                self.insert_returning = match value.to_ascii_lowercase().as_str() {
                    "auto" | "on" | "true" | "1" => true,
                    "off" | "false" | "0" => false,
                    _ => {
                        return Err(Error::Config(format!(
                            "option `insert_returning` has the invalid value `{value}`; expected auto or off"
                        )))
                    }
                }
            }
            "autocommit_reads" => {
                self.autocommit_reads = match value.to_ascii_lowercase().as_str() {
                    "on" | "true" | "1" => true,
                    "off" | "false" | "0" => false,
                    _ => {
                        return Err(Error::Config(format!(
                            "option `autocommit_reads` has the invalid value `{value}`; expected on or off"
                        )))
                    }
                }
            }
            "host_order" => {
                self.host_order = match value.to_ascii_lowercase().as_str() {
                    "in_order" => HostOrder::InOrder,
                    "random" => HostOrder::Random,
                    _ => {
                        return Err(Error::Config(format!(
                            "option `host_order` has the invalid value `{value}`; expected in_order or random"
                        )))
                    }
                };
            }
            "ssl_mode" => {
                self.tls = match value.to_ascii_lowercase().replace('-', "_").as_str() {
                    "disabled" | "disable" => TlsMode::Disabled,
                    "preferred" | "prefer" => TlsMode::Preferred,
                    "required" | "require" => TlsMode::Required,
                    "verify_ca" => TlsMode::VerifyCa,
                    "verify_identity" | "verify_full" => TlsMode::VerifyIdentity,
                    _ => {
                        return Err(Error::Config(format!(
                            "option `ssl_mode` has the invalid value `{value}`; expected disabled, preferred, \
                             required, verify_ca or verify_identity"
                        )))
                    }
                }
            }
            "tls" => {
                self.tls = if parse_bool(name, value)? { TlsMode::VerifyIdentity } else { TlsMode::Disabled }
            }
            _ => return Ok(false),
        }
        if !matches!(self.tls, TlsMode::Disabled | TlsMode::Preferred) && !cfg!(feature = "tls") {
            return Err(Error::Config(format!(
                "option `{name}={value}` asks for TLS, but orm-mysql was built without its `tls` feature; \
                 enable the feature (orm = {{ features = [\"tls\"] }})"
            )));
        }
        Ok(true)
    }
}

impl fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlConfig")
            .field("url", &self.describe())
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("ping_timeout", &self.ping_timeout)
            .field("insert_returning", &self.insert_returning)
            .field("autocommit_reads", &self.autocommit_reads)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The timeouts a connection applies and names in its error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub read: Option<Duration>,
    pub write: Option<Duration>,
    pub ping: Option<Duration>,
}

impl MySqlConfig {
    pub(crate) fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            read: self.read_timeout,
            write: self.write_timeout,
            ping: self.ping_timeout,
        }
    }
}

fn config_error(message: String) -> Error {
    Error::Config(message)
}

fn percent_decode(part: &str, what: &str) -> Result<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => out.push(b),
                None => {
                    return Err(config_error(format!(
                        "the {what} in the database URL has a malformed percent-escape; write `%` as `%25`"
                    )))
                }
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| config_error(format!("the {what} in the database URL is not valid UTF-8")))
}

/// Parses a URL into connection settings and pool options.
/// One `host[:port]` (IPv6 in brackets) of the URL's host list.
fn parse_host(hostport: &str) -> Result<(String, Option<u16>)> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| {
            config_error("the database URL has an unclosed `[` in its IPv6 host".into())
        })?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(config_error(
            "the database URL has no host; write mysql://user:password@host:3306/database".into(),
        ));
    }
    let host = percent_decode(host, "host")?;
    let port = match port {
        Some(port) => Some(port.parse().map_err(|_| {
            config_error(format!(
                "the port `{port}` in the database URL is not a number between 0 and 65535"
            ))
        })?),
        None => None,
    };
    Ok((host, port))
}

pub(crate) fn parse_url(url: &str) -> Result<(MySqlConfig, PoolOptions)> {
    let rest = url
        .strip_prefix("mysql://")
        .or_else(|| url.strip_prefix("mariadb://"))
        .ok_or_else(|| {
            let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
            config_error(format!(
                "the database URL must look like mysql://user:password@host:3306/database?options \
                 (got scheme `{scheme}`)"
            ))
        })?;
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, p),
        None => (main, ""),
    };
    let mut config = MySqlConfig::default();
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, pass) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                config.user = Some(percent_decode(user, "user name")?);
            }
            if let Some(p) = pass {
                config.password = Some(percent_decode(p, "password")?);
            }
            hostport
        }
        None => authority,
    };
    let mut hosts = Vec::new();
    for one in hostport.split(',') {
        hosts.push(parse_host(one)?);
    }
    let mut hosts = hosts.into_iter();
    if let Some((host, port)) = hosts.next() {
        config.host = host;
        if let Some(port) = port {
            config.port = port;
        }
    }
    let default_port = config.port;
    config.fallback_hosts = hosts.map(|(h, p)| (h, p.unwrap_or(default_port))).collect();
    let db = percent_decode(path.trim_end_matches('/'), "database name")?;
    if !db.is_empty() {
        config.database = Some(db);
    }
    let mut pool = PoolOptions::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, "true"));
        let name = percent_decode(name, "option name")?;
        let value = percent_decode(value, "option value")?;
        apply_option(&mut config, &mut pool, &name, &value)?;
    }
    Ok((config, pool))
}

/// Applies one option to the backend config or the pool options.
pub(crate) fn apply_option(
    config: &mut MySqlConfig,
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
    Err(config_error(format!(
        "unknown option `{name}` in the database URL; known options: {}",
        known.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_url() {
        let (c, p) = parse_url("mysql://us%40r:p%3Ass@db.example:3307/app?pool_size=3&read_timeout=0&insert_returning=off")
            .unwrap();
        assert_eq!(c.user.as_deref(), Some("us@r"));
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        assert_eq!((c.host.as_str(), c.port), ("db.example", 3307));
        assert_eq!(c.database.as_deref(), Some("app"));
        assert_eq!(c.read_timeout, None);
        assert!(!c.insert_returning);
        assert_eq!(p.pool_size, 3);
        assert_eq!(c.describe(), "mysql://us@r:***@db.example:3307/app");
        assert!(!format!("{c:?}").contains("p:ss"));
    }

    #[test]
    fn defaults_and_ipv6() {
        let (c, _) = parse_url("mysql://[::1]/").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.database.clone()),
            ("::1", 3306, None)
        );
        assert_eq!(c.describe(), "mysql://[::1]:3306");
    }

    #[test]
    fn rejects_bad_urls() {
        for (url, needle) in [
            ("postgres://x/y", "scheme `postgres`"),
            ("mysql://root@host:port/db", "port `port`"),
            ("mysql:///db", "no host"),
            (
                "mysql://root@h/db?pool_sise=3",
                "unknown option `pool_sise`",
            ),
            ("mysql://root@h/db?pool_size=-2", "pool_size"),
            ("mysql://root:%zz@h/db", "percent-escape"),
        ] {
            let e = parse_url(url).unwrap_err().to_string();
            assert!(e.contains(needle), "{url}: {e}");
        }
        let e = parse_url("mysql://h/db?bogus=1").unwrap_err().to_string();
        assert!(
            e.contains("known options")
                && e.contains("pool_recycle")
                && e.contains("connect_timeout")
                && e.contains("slow_statement_ms")
                && e.contains("trace_params"),
            "{e}"
        );
        let e = parse_url("mysql://h/db?echo=loud").unwrap_err().to_string();
        assert!(e.contains("true, false or debug"), "{e}");
    }

    #[test]
    fn timeouts_default_to_no_read_timeout_and_a_short_ping() {
        let (c, _) = parse_url("mysql://h/db").unwrap();
        assert_eq!(c.read_timeout, None);
        assert_eq!(c.ping_timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.write_timeout, Some(Duration::from_secs(60)));
        let (c, _) = parse_url("mysql://h/db?ping_timeout=0.25&read_timeout=90").unwrap();
        assert_eq!(c.ping_timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.read_timeout, Some(Duration::from_secs(90)));
    }

    #[test]
    fn ssl_mode_preferred_is_its_own_mode_and_needs_no_tls_feature() {
        let (c, _) = parse_url("mysql://h/db?ssl_mode=preferred").unwrap();
        assert_eq!(c.tls, TlsMode::Preferred);
        let required = parse_url("mysql://h/db?ssl_mode=REQUIRED").map(|(c, _)| c.tls);
        if cfg!(feature = "tls") {
            assert_eq!(required.unwrap(), TlsMode::Required);
        } else {
            assert!(required.unwrap_err().to_string().contains("`tls` feature"));
        }
    }
}
