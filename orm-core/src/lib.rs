//! The backend-agnostic core of the `orm` crate.
//!
//! Users depend on the `orm` facade crate; this crate holds the pieces:
//! [`value`] (SQL values and conversions), [`model`] (table descriptions and
//! the `Model` trait), [`backend`] (what a database backend implements),
//! [`pool`] and [`engine`] (connections), [`replicas`] (read replicas), [`schema`] (DDL from models),
//! [`expr`] and [`query`] (typed filters and queries), and [`session`] (the
//! unit of work).

#![warn(missing_docs)]

pub mod backend;
pub mod engine;
pub mod error;
pub mod expr;
pub(crate) mod fast_hash;
pub mod join;
pub mod model;
pub mod pool;
pub mod query;
pub mod relationship;
pub mod replicas;
pub mod row;
pub mod schema;
pub mod select;
pub mod session;
pub mod source;
pub(crate) mod sql_texts;
pub(crate) mod trace;
pub mod types;
pub mod value;

pub use error::{DbError, DbErrorKind, Error, Result};
