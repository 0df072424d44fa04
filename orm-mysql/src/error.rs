//! Turning the driver's errors into [`DbError`]s with a [`DbErrorKind`].

use orm_core::{DbError, DbErrorKind, Error};

/// The kind of a server (or client library) error code.
///
/// Disconnects: 1927 (MariaDB: connection killed), 2006 (server gone
/// away), 2013 (lost during query), 2014, 2045, 2055, 4031 (MySQL idle
/// timeout). Not 2007 or 4032. Integrity: 1062, 1451, 1452, 1048, 1216,
/// 1217, 1364. Retryable: 1213 (deadlock), 1205 (lock wait timeout).
/// Connect: 1045 (access denied), 1040 (too many connections), 1044, 1049.
pub fn classify_code(code: u16) -> DbErrorKind {
    match code {
        1927 | 2006 | 2013 | 2014 | 2045 | 2055 | 4031 | 1053 => DbErrorKind::ConnectionLost,
        1062 | 1451 | 1452 | 1048 | 1216 | 1217 | 1364 => DbErrorKind::Integrity,
        1213 | 1205 => DbErrorKind::Retryable,
        1045 | 1040 | 1044 | 1049 => DbErrorKind::Connect,
        _ => DbErrorKind::Other,
    }
}

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
            db(kind, Some(m.code), Some(m.state), m.message)
        }
        mysql::Error::IoError(io) => db(
            DbErrorKind::ConnectionLost,
            None,
            None,
            format!("lost connection to the server: {io}"),
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

/// An error while connecting to `target` (a masked description).
pub(crate) fn from_connect(e: mysql::Error, target: &str) -> Error {
    let (code, sqlstate, detail) = match e {
        mysql::Error::MySqlError(m) => (Some(m.code), Some(m.state), m.message),
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
