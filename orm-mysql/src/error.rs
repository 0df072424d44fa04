//! Turning the driver's errors into [`DbError`]s with a [`DbErrorKind`].

use std::time::Duration;

use orm_core::{DbError, DbErrorKind, Error};

use crate::config::Timeouts;

/// The kind of a server (or client library) error code.
///
/// Disconnects: 1927 (MariaDB: connection killed), 2006 (server gone
/// away), 2013 (lost during query), 2014, 2045, 2055, 4031 (MySQL idle
/// timeout), 1053 (server shutdown), 1153 (packet larger than
/// `max_allowed_packet`: the server closes the connection after sending it),
/// 1047 (Galera: `WSREP has not yet prepared node for application use`, the
/// node left the cluster's primary component or is still joining; the
/// connection is useless until it rejoins, so it is replaced like a lost one,
/// and an engine with a failover host list reconnects to a node that is
/// ready). Not 2007 or 4032. Integrity: duplicate keys 1062, 1022, 1169, 1586;
/// foreign keys 1451, 1452, 1216, 1217; NOT NULL 1048, 1364; CHECK
/// constraints 3819 (MySQL) and 4025 (MariaDB). Retryable: 1213 (deadlock),
/// 1205 (lock wait timeout). Connect: 1045 (access denied), 1040 (too many
/// connections), 1044, 1049.
pub fn classify_code(code: u16) -> DbErrorKind {
    match code {
        1927 | 2006 | 2013 | 2014 | 2045 | 2055 | 4031 | 1053 | 1153 | NODE_NOT_READY => {
            DbErrorKind::ConnectionLost
        }
        1062 | 1022 | 1169 | 1586 | 1451 | 1452 | 1216 | 1217 | 1048 | 1364 | 3819 | 4025 => {
            DbErrorKind::Integrity
        }
        1213 | 1205 => DbErrorKind::Retryable,
        1045 | 1040 | 1044 | 1049 => DbErrorKind::Connect,
        _ => DbErrorKind::Other,
    }
}

/// ER_UNKNOWN_COM_ERROR, which Galera sends for "WSREP has not yet prepared
/// node for application use" (SQLSTATE 08S01, a communication failure).
pub(crate) const NODE_NOT_READY: u16 = 1047;

fn db(kind: DbErrorKind, code: Option<u16>, sqlstate: Option<String>, message: String) -> Error {
    Error::Database(DbError {
        kind,
        code,
        sqlstate,
        message,
    })
}

/// An error from a statement on an open connection.
pub(crate) fn from_driver(e: mysql::Error) -> Error {
    use mysql::DriverError as D;
    match e {
        mysql::Error::MySqlError(m) => {
            let kind = match classify_code(m.code) {
                // Codes that only mean "cannot connect" at connect time.
                DbErrorKind::Connect => DbErrorKind::Other,
                kind => kind,
            };
            let message = if m.code == NODE_NOT_READY && m.message.contains("WSREP") {
                format!(
                    "{}: this Galera node is not in the cluster's primary component (or is still \
                     joining); the connection is closed and the work may be retried (a failover \
                     host list in the URL reconnects to a node that is ready)",
                    m.message
                )
            } else {
                m.message
            };
            db(kind, Some(m.code), Some(m.state), message)
        }
        mysql::Error::IoError(io) => db(
            DbErrorKind::ConnectionLost,
            None,
            None,
            format!("lost connection to the server: {io}"),
        ),
        // The driver refuses to send a packet over the server's limit and
        // drops the connection (its state is unknown).
        mysql::Error::CodecError(c) if c.to_string().contains("max_allowed_packet") => db(
            DbErrorKind::ConnectionLost,
            None,
            None,
            format!(
                "the statement was not sent: {c}; the connection is closed. Send less per \
                 statement, or raise max_allowed_packet on the server"
            ),
        ),
        mysql::Error::CodecError(c) => db(
            DbErrorKind::ConnectionLost,
            None,
            None,
            format!("lost connection to the server (protocol error): {c}"),
        ),
        mysql::Error::DriverError(d) => {
            let lost = matches!(
                d,
                D::ConnectTimeout
                    | D::CouldNotConnect(_)
                    | D::PacketOutOfSync
                    | D::UnexpectedPacket
                    | D::Timeout
                    | D::SetupError
                    | D::Protocol41NotSet
            );
            let kind = if lost {
                DbErrorKind::ConnectionLost
            } else {
                DbErrorKind::Other
            };
            db(kind, None, None, format!("mysql driver error: {d}"))
        }
        other => db(DbErrorKind::Other, None, None, other.to_string()),
    }
}

/// What a connection was doing when an error happened, to name the
/// timeout that expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Opening: the handshake and the first queries.
    Connect,
    /// A statement.
    Statement,
    /// A ping.
    Ping,
}

/// The socket timeout inside `e`, if it is one (`EAGAIN`/`EWOULDBLOCK` from
/// a socket with `SO_RCVTIMEO`/`SO_SNDTIMEO`, or `ETIMEDOUT`), whether the
/// driver reports it directly or inside its packet codec's error.
fn socket_timeout(e: &mysql::Error) -> Option<&std::io::Error> {
    use std::error::Error as _;
    let io = match e {
        mysql::Error::IoError(io) => io,
        mysql::Error::CodecError(c) => c.source()?.downcast_ref::<std::io::Error>()?,
        _ => return None,
    };
    matches!(
        io.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
    .then_some(io)
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// The message for a socket timeout during `phase`: which setting expired,
/// what state the connection is in, and what to do.
fn timeout_message(timeouts: &Timeouts, phase: Phase, io: &std::io::Error) -> String {
    match phase {
        Phase::Connect => format!(
            "timed out: the server accepted the TCP connection but did not complete the handshake \
             within connect_timeout = {} ({io}); check that the server is healthy and not overloaded, \
             or raise connect_timeout",
            secs(timeouts.connect)
        ),
        Phase::Ping => format!(
            "timed out: the server did not answer a ping within ping_timeout = {} ({io}); the \
             connection is treated as lost and replaced. Check the server and the network, or \
             raise ping_timeout",
            timeouts.ping.map_or_else(|| "none".to_string(), secs)
        ),
        Phase::Statement => {
            let setting = match (timeouts.read, timeouts.write) {
                (Some(r), Some(w)) => format!(
                    "read_timeout = {} (or, while sending, write_timeout = {})",
                    secs(r),
                    secs(w)
                ),
                (Some(r), None) => format!("read_timeout = {}", secs(r)),
                (None, Some(w)) => format!("write_timeout = {}", secs(w)),
                (None, None) => "the TCP keepalive / user timeout".to_string(),
            };
            format!(
                "timed out: no answer from the server within {setting} ({io}); the connection is \
                 closed, and the statement may still be running on the server. If statements \
                 legitimately take longer, raise read_timeout (0 = no limit, the default); \
                 otherwise check the server and the network"
            )
        }
    }
}

/// An error from a connection during `phase`; a socket timeout says which
/// setting expired and what to do.
pub(crate) fn from_driver_during(e: mysql::Error, timeouts: &Timeouts, phase: Phase) -> Error {
    match socket_timeout(&e) {
        Some(io) => db(
            DbErrorKind::ConnectionLost,
            None,
            None,
            timeout_message(timeouts, phase, io),
        ),
        None => from_driver(e),
    }
}

/// An error while connecting to `target` (a masked description).
pub(crate) fn from_connect(e: mysql::Error, target: &str, timeouts: &Timeouts) -> Error {
    let timed_out = socket_timeout(&e).map(|io| timeout_message(timeouts, Phase::Connect, io));
    let (code, sqlstate, detail) = match e {
        mysql::Error::MySqlError(m) => (Some(m.code), Some(m.state), m.message),
        _ if timed_out.is_some() => (None, None, timed_out.unwrap_or_default()),
        mysql::Error::DriverError(mysql::DriverError::ConnectTimeout) => (
            None,
            None,
            format!(
                "timed out: the TCP connection was not established within connect_timeout = {}",
                secs(timeouts.connect)
            ),
        ),
        other => (None, None, other.to_string()),
    };
    let hint = match code {
        Some(1045) | Some(1044) => "check the user name and password in the URL",
        Some(1049) => "check the database name in the URL, or create the database",
        Some(1040) => {
            "the server has too many connections; lower pool sizes or raise max_connections"
        }
        _ => "check that the server is running and that the host and port are right",
    };
    db(
        DbErrorKind::Connect,
        code,
        sqlstate,
        format!("cannot connect to {target}: {detail}; {hint}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        for code in [
            1062, 1022, 1169, 1586, 1451, 1452, 1216, 1217, 1048, 1364, 3819, 4025,
        ] {
            assert_eq!(classify_code(code), DbErrorKind::Integrity, "{code}");
        }
        for code in [1927, 2006, 2013, 2014, 2045, 2055, 4031, 1053, 1153, 1047] {
            assert_eq!(classify_code(code), DbErrorKind::ConnectionLost, "{code}");
        }
        for code in [2007, 4032, 1064, 1146] {
            assert_eq!(classify_code(code), DbErrorKind::Other, "{code}");
        }
        assert_eq!(classify_code(1213), DbErrorKind::Retryable);
        assert_eq!(classify_code(1045), DbErrorKind::Connect);
    }

    #[test]
    fn galera_node_not_ready_is_a_lost_connection_that_says_why() {
        let e = from_driver(mysql::Error::MySqlError(mysql::MySqlError {
            state: "08S01".into(),
            message: "WSREP has not yet prepared node for application use".into(),
            code: 1047,
        }));
        assert!(e.is_connection_lost(), "{e:?}");
        assert_eq!(e.code(), Some(1047));
        let text = e.to_string();
        assert!(text.contains("primary component"), "{text}");
        assert!(text.contains("failover host list"), "{text}");
    }
}
