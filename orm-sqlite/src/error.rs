//! Turning rusqlite's errors into [`DbError`]s with a [`DbErrorKind`].

use orm_core::{DbError, DbErrorKind, Error};
use rusqlite::ErrorCode;

/// The kind of an SQLite result code: constraint violations are integrity
/// errors; `SQLITE_BUSY` and `SQLITE_LOCKED` (another connection holds the
/// lock, or a read snapshot went stale) are retryable; `SQLITE_CANTOPEN`
/// and `SQLITE_NOTADB` are connect errors. An embedded database never
/// loses its connection.
pub fn classify_code(code: ErrorCode) -> DbErrorKind {
    match code {
        ErrorCode::ConstraintViolation => DbErrorKind::Integrity,
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => DbErrorKind::Retryable,
        ErrorCode::CannotOpen | ErrorCode::NotADatabase => DbErrorKind::Connect,
        _ => DbErrorKind::Other,
    }
}

/// An error from a statement on an open connection. The code is SQLite's
/// extended result code (2067: `SQLITE_CONSTRAINT_UNIQUE`, 787:
/// `SQLITE_CONSTRAINT_FOREIGNKEY`, 517: `SQLITE_BUSY_SNAPSHOT`, ...).
pub(crate) fn from_driver(e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let kind = classify_code(failure.code);
            let detail = message.unwrap_or_else(|| failure.to_string());
            let hint = match kind {
                DbErrorKind::Retryable => {
                    "; another connection holds the database lock or changed it since this \
                     transaction began: roll back and retry (or raise busy_timeout)"
                }
                _ => "",
            };
            Error::Database(DbError {
                kind,
                code: u16::try_from(failure.extended_code).ok(),
                sqlstate: None,
                message: format!("{detail}{hint}"),
            })
        }
        other => Error::Database(DbError {
            kind: DbErrorKind::Other,
            code: None,
            sqlstate: None,
            message: format!("sqlite: {other}"),
        }),
    }
}

/// An error while opening `target`.
pub(crate) fn from_connect(e: rusqlite::Error, target: &str) -> Error {
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => u16::try_from(f.extended_code).ok(),
        _ => None,
    };
    Error::Database(DbError {
        kind: DbErrorKind::Connect,
        code,
        sqlstate: None,
        message: format!(
            "cannot open {target}: {e}; check that the directory exists and is writable \
             and that the file is an SQLite database"
        ),
    })
}
