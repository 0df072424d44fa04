//! Conversions for types of other crates, each behind the crate feature of
//! the same name (`decimal` for rust_decimal, `json` for serde_json):
//!
//! | Rust type | feature | [`Value`](crate::value::Value) | column type |
//! | --- | --- | --- | --- |
//! | `chrono::NaiveDate` | `chrono` | `Date` | `DATE` |
//! | `chrono::NaiveDateTime` | `chrono` | `DateTime` | `DATETIME(6)` |
//! | `chrono::NaiveTime` | `chrono` | `Time` | `TIME(6)` |
//! | `chrono::DateTime<Utc>` | `chrono` | `DateTime`, in UTC | `DATETIME(6)` |
//! | `rust_decimal::Decimal` | `decimal` | `Decimal` (canonical text) | `DECIMAL(65, 30)` (every `Decimal` exactly) |
//! | `serde_json::Value` | `json` | `Text` (the JSON document) | `JSON` |
//! | `uuid::Uuid` | `uuid` | `Text` (36 characters, lower-case, hyphenated) | the dialect's UUID type |
//!
//! Reading never panics: a value that does not fit (a zero date
//! `0000-00-00`, a decimal with more digits than `Decimal` holds, malformed
//! JSON) is a [`ConversionError`](crate::value::ConversionError).
//!
//! Use `#[orm(sql_type = "...")]` on a field for another DDL type (say
//! `DECIMAL(10, 2)`), the conversions stay the same.

#[cfg(feature = "chrono")]
mod chrono;
#[cfg(feature = "decimal")]
mod decimal;
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "uuid")]
mod uuid;
