//! A unit-of-work ORM for MySQL, MariaDB and SQLite: SQLAlchemy's `Session`, the Rust way.
//!
//! # Mapping a struct to a table
//!
//! Derive [`Model`] on a plain struct with named fields. Every field is a
//! column; the attributes are documented on the [derive](macro@Model).
//!
//! ```
//! use orm::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Model)]
//! #[orm(table = "users")]
//! pub struct User {
//!     /// `None` until the row is inserted.
//!     #[orm(primary_key, auto_increment)]
//!     pub id: Option<i64>,
//!     #[orm(unique, sql_type = "VARCHAR(64)")]
//!     pub name: String,
//!     pub email: Option<String>,
//! }
//!
//! #[derive(Debug, Clone, Model)]
//! pub struct Post {
//!     #[orm(primary_key, auto_increment)]
//!     pub id: Option<i64>,
//!     #[orm(references = User, index)]
//!     pub author_id: i64,
//!     pub title: String,
//! }
//!
//! let table = User::table();
//! assert_eq!(table.name, "users");
//! assert_eq!(Post::table().name, "post"); // default: the struct name in snake_case
//! assert_eq!(table.columns[1].name, "name");
//!
//! // Typed column handles, for filters and ordering:
//! let name: Column<User, String> = User::NAME;
//! assert_eq!(name.name, "name");
//!
//! // A model converts to and from rows of values:
//! let ann = User { id: Some(1), name: "ann".into(), email: None };
//! let values = ann.to_values();
//! assert_eq!(values, vec![Value::Int(1), Value::Text("ann".into()), Value::Null]);
//! assert_eq!(User::from_row(orm::row::Row::new(values))?, ann);
//! # Ok::<(), orm::Error>(())
//! ```
//!
//! # Creating the tables
//!
//! [`schema::create_all`] creates the tables of the given models, parents
//! before children; [`schema::create_table_sql`] shows the DDL without running it.
//!
//! # The session
//!
//! A [`Session`] is the unit of work: it hands out [`Obj`] handles (one per
//! row, from its identity map), tracks what changed, and sends it at
//! `flush`/`commit` in as few statements as possible. Sessions come from a
//! [`SessionFactory`]; they belong to one thread. (This example runs on an
//! in-memory SQLite database; `mysql://root@127.0.0.1:3306/test` would run
//! it on MariaDB.)
//!
//! ```
//! use orm::prelude::*;
//!
//! #[derive(Debug, Clone, Model)]
//! #[orm(table = "accounts")]
//! struct Account {
//!     #[orm(primary_key, auto_increment)]
//!     id: Option<i64>,
//!     owner: String,
//!     balance: i64,
//!     #[orm(version)]
//!     version: i64,
//! }
//!
//! let engine = orm::create_engine("sqlite::memory:")?;
//! orm::schema::create_all(&engine, &[Account::table()])?;
//! let sessions = SessionFactory::new(engine);
//!
//! // Commit on Ok, roll back on Err or panic, always release the connection.
//! let acct = sessions.begin(|s| {
//!     let acct = s.add(Account { id: None, owner: "ann".into(), balance: 100, version: 0 })?;
//!     s.flush()?; // INSERT ... RETURNING "id"
//!     Ok(acct)
//! })?;
//! let id: i64 = acct.key()?; // committed and detached, yet no SELECT: a key never changes
//!
//! let s = sessions.session();
//! let acct = s.get::<Account>(id)?.expect("just inserted");
//! acct.write()?.balance -= 30;              // UPDATE of `balance` only, version-checked
//! let rich = s.query::<Account>().filter(Account::BALANCE.ge(50)).count()?; // autoflush first
//! s.commit()?;                               // acct is expired: the next read() reloads it
//! let plain: Account = acct.value()?;       // a detached copy, free to cross threads
//! assert_eq!((rich, plain.balance, plain.version), (1, 70, 2));
//! # Ok::<(), orm::Error>(())
//! ```
//!
//! # Events and column defaults
//!
//! Hooks registered on the [`SessionFactory`] run at flush, commit, rollback,
//! begin and load (see [`session::ModelEvents`] for the list, the order and
//! what an error does); `#[orm(default = expr)]`, `on_update`,
//! `server_default` and `server_on_update` give columns their values (see
//! the [derive](macro@Model)). A value the server generates comes back in
//! the INSERT's `RETURNING` where it can:
//!
//! ```
//! use orm::prelude::*;
//! use orm::value::DateTime;
//!
//! #[derive(Debug, Clone, Model)]
//! struct Note {
//!     #[orm(auto_increment)]
//!     id: Option<i64>,
//!     body: String,
//!     #[orm(default = 1)]
//!     revision: Option<i32>,
//!     #[orm(server_default = "CURRENT_TIMESTAMP")]
//!     created_at: Option<DateTime>,
//! }
//!
//! let engine = orm::create_engine("sqlite::memory:")?;
//! orm::schema::create_all(&engine, &[Note::table()])?;
//! let sessions = SessionFactory::new(engine).before_update::<Note>(|_, note| {
//!     let mut n = note.write()?; // a change made here is part of the UPDATE
//!     n.revision = n.revision.map(|r| r + 1);
//!     Ok(())
//! });
//! let s = sessions.session();
//! let note = s.add(Note { id: None, body: "hi".into(), revision: None, created_at: None })?;
//! s.flush()?; // INSERT INTO "note" ("body", "revision") VALUES (?, ?) RETURNING "id", "created_at"
//! assert_eq!(note.read()?.revision, Some(1));
//! assert!(note.read()?.created_at.is_some()); // no SELECT: it came back with the INSERT
//! note.write()?.body = "hello".into();
//! s.commit()?;
//! assert_eq!(note.read()?.revision, Some(2));
//! # Ok::<(), orm::Error>(())
//! ```
//!
//! # Errors
//!
//! Everything fails with one [`Error`] type whose messages say what went
//! wrong and what to do next. Values that do not fit a field (NULL into a
//! non-`Option` field, an out-of-range integer) are [`Error::Decode`] naming
//! the table and the column, never a panic.
//!
//! # Crate features
//!
//! - `chrono`: `chrono::{NaiveDate, NaiveDateTime, NaiveTime, DateTime<Utc>}` fields;
//! - `decimal`: `rust_decimal::Decimal` fields;
//! - `json`: `serde_json::Value` fields (a JSON column);
//! - `uuid`: `uuid::Uuid` fields (stored as 36-character text);
//! - `full`: all of the above; `tls`: TLS connections (MySQL);
//! - `mysql` and `sqlite` (both default): the backends [`create_engine`]
//!   can pick from the URL;
//! - `tracing` (on by default): spans for every statement, flush, commit,
//!   rollback and savepoint, and pool events, through the `tracing` crate
//!   (see the README's "Seeing inside"). With no subscriber installed it
//!   costs one atomic load per statement.

#![warn(missing_docs)]

pub use orm_core::{
    backend, engine, error, expr, join, model, pool, query, relationship, replicas, row, schema,
    select, session, source, types, value,
};

pub use orm_core::engine::Engine;
pub use orm_core::error::{DbError, DbErrorKind, Error, Result};
pub use orm_core::model::{
    Column, ColumnDef, ForeignKeyDef, FromKey, IntoKey, Key, Model, TableDef,
};
pub use orm_core::relationship::{Cascade, Many, One, ToMany, ToOne};
pub use orm_core::row::Row;
pub use orm_core::value::{ColumnType, ConversionError, FromValue, SqlType, ToValue, Value};
/// Derives [`Model`](trait@Model); see the attributes below.
pub use orm_derive::Model;

pub use orm_core::session::{
    ModelEvent, ModelEvents, NestedTransaction, Obj, ObjState, RetryPolicy, ScopedSession, Session,
    SessionConfig, SessionFactory, ShardId, ShardRules,
};
/// The MySQL/MariaDB backend crate (`orm_mysql`), with its engine builder.
#[cfg(feature = "mysql")]
pub use orm_mysql as mysql;
/// The MySQL/MariaDB engine builder, for options and hooks in code.
#[cfg(feature = "mysql")]
pub use orm_mysql::{builder, MySqlEngineBuilder};
/// The embedded SQLite backend crate (`orm_sqlite`), with its engine builder.
#[cfg(feature = "sqlite")]
pub use orm_sqlite as sqlite;

/// The URL schemes [`create_engine`] knows, and the feature each needs.
const SCHEMES: &[(&str, &str, bool)] = &[
    ("mysql://", "mysql", cfg!(feature = "mysql")),
    ("mariadb://", "mysql", cfg!(feature = "mysql")),
    ("sqlite:", "sqlite", cfg!(feature = "sqlite")),
];

/// An engine for a database URL, the backend picked by its scheme:
///
/// - `mysql://user:password@host:port/db?options` or `mariadb://...`
///   (the `mysql` feature; see [`mysql`]);
/// - `sqlite://path/to/file.db?options` or `sqlite::memory:` (the
///   `sqlite` feature; see [`sqlite`]).
///
/// Both features are on by default. An unknown scheme, or the scheme of a
/// backend compiled out, is an [`Error::Config`] listing what is available.
/// Nothing is connected until the first checkout.
pub fn create_engine(url: &str) -> Result<Engine> {
    let trimmed = url.trim();
    let scheme = SCHEMES
        .iter()
        .find(|(prefix, _, _)| trimmed.starts_with(prefix));
    match scheme {
        #[cfg(feature = "mysql")]
        Some((_, "mysql", true)) => {
            let url = match trimmed.strip_prefix("mariadb://") {
                Some(rest) => format!("mysql://{rest}"),
                None => trimmed.to_string(),
            };
            orm_mysql::create_engine(&url)
        }
        #[cfg(feature = "sqlite")]
        Some((_, "sqlite", true)) => orm_sqlite::create_engine(trimmed),
        Some((prefix, feature, _)) => Err(Error::Config(format!(
            "`{prefix}` URLs need the `{feature}` feature of the orm crate, which this build \
             leaves out; enable it in Cargo.toml"
        ))),
        None => {
            let known: Vec<&str> = SCHEMES
                .iter()
                .filter(|(_, _, on)| *on)
                .map(|(p, _, _)| *p)
                .collect();
            let shown: String = trimmed.chars().take_while(|c| *c != ':').collect();
            Err(Error::Config(format!(
                "unknown database URL scheme `{shown}`; known schemes: {} \
                 (mysql://user@host:3306/db, sqlite://path/to/file.db, sqlite::memory:)",
                known.join(", ")
            )))
        }
    }
}

/// The names most programs need: `use orm::prelude::*;`.
pub mod prelude {
    pub use crate::{
        create_engine, Column, Engine, Error, IntoKey, Key, Model, ModelEvents, Obj, ObjState,
        Result, Session, SessionFactory, ToMany, ToOne, Value,
    };
}

/// What the code generated by `#[derive(Model)]` uses. Not public API: it
/// may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use orm_core::error::{Error, Result};
    pub use orm_core::model::{
        decode_column, Column, ColumnDef, ForeignKeyDef, Model, OnDelete, RowReader, TableDef,
    };
    pub use orm_core::relationship::{
        key_field, loader, Cascade, HasKey, Lazy, Many, One, RelKind, RelationshipDef, Secondary,
    };

    /// `TypeId::of::<T>` as a function pointer, for generated relationship tables.
    pub fn type_id_of<T: 'static>() -> TypeId {
        TypeId::of::<T>()
    }
    pub use orm_core::row::Row;
    pub use orm_core::session::{model_event, ModelEvent, Obj, Session};
    pub use orm_core::value::{FromValue, SqlType, ToValue, Value};
    pub use std::any::TypeId;
    pub use std::vec::Vec;

    /// What generated code needs of a field type, obtained through the one
    /// bound `T: SqlType` ([`field`]).
    pub struct FieldOps<T> {
        /// `T::COLUMN_TYPE`.
        pub column_type: orm_core::value::ColumnType,
        /// `T::NULLABLE`.
        pub nullable: bool,
        /// `T::to_value`.
        pub encode: fn(&T) -> Value,
        /// `T::eq_value`.
        pub eq: fn(&T, &Value) -> bool,
        /// `T::same_as`.
        pub same: fn(&T, &T) -> bool,
        /// `T::from_value`.
        pub decode: fn(Value) -> ::core::result::Result<T, orm_core::value::ConversionError>,
    }

    /// Every use of a field's type in generated code goes through this one
    /// function, spanned at the field's type: a type that cannot be a field
    /// fails the same bound at the same place everywhere, which the compiler
    /// reports once.
    pub const fn field<T: SqlType>() -> FieldOps<T> {
        FieldOps {
            column_type: T::COLUMN_TYPE,
            nullable: T::NULLABLE,
            encode: <T as ToValue>::to_value,
            eq: <T as ToValue>::eq_value,
            same: <T as ToValue>::same_as,
            decode: <T as FromValue>::from_value,
        }
    }

    /// Decodes a value with `decode` for column `index` of `table`, naming
    /// both in the error (generated `from_row` and `set_column_value`).
    pub fn decode_with<T>(
        table: &'static TableDef,
        index: usize,
        value: Value,
        decode: fn(Value) -> ::core::result::Result<T, orm_core::value::ConversionError>,
    ) -> Result<T> {
        decode(value).map_err(|source| Error::Decode {
            table: table.name,
            column: table.columns.get(index).map_or("?", |c| c.name),
            source,
        })
    }

    /// The error of the generated `from_row_taking` for a row of `len`
    /// values, fewer than the model's columns: it names the first missing one.
    #[cold]
    pub fn row_too_short(table: &'static TableDef, len: usize) -> Error {
        Error::invalid(format!(
            "row for table `{}` has too few columns: column `{}` is missing; select every column of the model",
            table.name,
            table.columns.get(len).map_or("?", |c| c.name)
        ))
    }

    /// The error of `set_column_value` for an index past the last column.
    #[cold]
    pub fn column_index_error(table: &'static TableDef, index: usize) -> Error {
        Error::invalid(format!(
            "model `{}` (table `{}`) has {} columns; there is no column at index {index}",
            table.model,
            table.name,
            table.columns.len()
        ))
    }

    /// `column_value` for an index past the last column: a bug in the caller,
    /// like indexing a slice out of bounds.
    #[cold]
    #[track_caller]
    pub fn column_index_panic(table: &'static TableDef, index: usize) -> ! {
        panic!("{}", column_index_error(table, index))
    }
}
