//! SQL values and the conversions between them and Rust types.
//!
//! [`Value`] is the closed set of values the core moves between models and
//! backends. A Rust type takes part in a model by implementing three small
//! traits:
//!
//! - [`ToValue`]: encode the field into a [`Value`] (for INSERT, UPDATE, filters);
//! - [`FromValue`]: decode it back from a row, failing with a
//!   [`ConversionError`] rather than panicking;
//! - [`SqlType`]: the column type used by `create_all` for DDL.
//!
//! ```
//! use orm_core::value::{ColumnType, ConversionError, FromValue, SqlType, ToValue, Value};
//!
//! /// A user type stored as an integer number of cents.
//! #[derive(Debug, Clone, Copy, PartialEq)]
//! struct Cents(i64);
//!
//! impl ToValue for Cents {
//!     fn to_value(&self) -> Value { Value::Int(self.0) }
//! }
//! impl FromValue for Cents {
//!     fn from_value(v: Value) -> Result<Self, ConversionError> { i64::from_value(v).map(Cents) }
//! }
//! impl SqlType for Cents {
//!     const COLUMN_TYPE: ColumnType = ColumnType::BigInt { unsigned: false };
//! }
//! assert_eq!(Cents::from_value(Cents(250).to_value()).unwrap(), Cents(250));
//! ```

use std::fmt;
use std::hash::{Hash, Hasher};

/// A calendar date (`DATE`).
///
/// Reading a value that is not a calendar date fails with
/// [`ConversionError::Invalid`] ("... is not a calendar date"), as the
/// `chrono` types do: MySQL's zero date `'0000-00-00'` and dates with a zero
/// month or day (which some `sql_mode`s let a `DATE` column hold) have no
/// `Date`. To read such a column, turn those values into NULL and make the
/// field an `Option<Date>`: fix the data once (`UPDATE t SET d = NULL WHERE
/// d = '0000-00-00'`) or select `NULLIF(d, '0000-00-00')` in a raw query; or
/// give the field a type of your own whose [`FromValue`] maps them as you
/// wish (it receives the raw `Value::Date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    /// Year, 0..=9999.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31.
    pub day: u8,
}

/// A wall-clock date and time without zone (`DATETIME(6)`). Like [`Date`],
/// reading a value that is not a real date and time (`'0000-00-00
/// 00:00:00'`) is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateTime {
    /// The date part.
    pub date: Date,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
    /// Microsecond, 0..=999_999.
    pub micros: u32,
}

/// A signed duration as stored in a `TIME(6)` column (which spans
/// -838:59:59 to 838:59:59), in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Time {
    /// The signed duration in microseconds.
    pub micros: i64,
}

/// A SQL value, as bound to a statement or read from a row.
///
/// Floats compare and hash by their bit pattern, so `Value` can be part of
/// an identity-map key.
#[derive(Debug, Clone, Default)]
pub enum Value {
    /// SQL `NULL`.
    #[default]
    Null,
    /// A boolean (`TINYINT(1)` on MySQL).
    Bool(bool),
    /// A signed integer of any width.
    Int(i64),
    /// An unsigned integer of any width.
    UInt(u64),
    /// A single-precision float.
    Float(f32),
    /// A double-precision float.
    Double(f64),
    /// Text (UTF-8).
    Text(String),
    /// Raw bytes (`BLOB`, `VARBINARY`).
    Bytes(Vec<u8>),
    /// A date.
    Date(Date),
    /// A time of day or a duration.
    Time(Time),
    /// A date and time.
    DateTime(DateTime),
    /// An exact decimal number in its canonical text form (`"-12.50"`).
    Decimal(String),
}

impl Value {
    /// Whether this is SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Bool(_) => "bool",
            Value::Int(_) => "signed integer",
            Value::UInt(_) => "unsigned integer",
            Value::Float(_) => "float",
            Value::Double(_) => "double",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::DateTime(_) => "datetime",
            Value::Decimal(_) => "decimal",
        }
    }

    /// An estimate of the bytes this value takes on the wire, used to keep
    /// batched statements under the server's packet limit.
    pub fn wire_size(&self) -> usize {
        match self {
            Value::Null => 1,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::UInt(_) | Value::Double(_) => 8,
            Value::Float(_) => 4,
            Value::Text(s) | Value::Decimal(s) => s.len() + 9,
            Value::Bytes(b) => b.len() + 9,
            Value::Date(_) => 5,
            Value::Time(_) => 13,
            Value::DateTime(_) => 12,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (UInt(a), UInt(b)) => a == b,
            (Int(a), UInt(b)) | (UInt(b), Int(a)) => u64::try_from(*a).is_ok_and(|a| a == *b),
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Double(a), Double(b)) => a.to_bits() == b.to_bits(),
            (Text(a), Text(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            (Time(a), Time(b)) => a == b,
            (DateTime(a), DateTime(b)) => a == b,
            (Decimal(a), Decimal(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    /// Whether a value read back from the database (`self`) is the value
    /// `written` there, by SQL's notion of equality rather than by exact
    /// variant: `TINYINT(1)` `1` is `true`, `DECIMAL` `"1.5000"` is `"1.5"`
    /// (and the integer or float written into it), a `FLOAT` column's single
    /// precision value is the double written into it, `DATETIME` midnight is
    /// the date, and trailing spaces of text do not count (PAD SPACE).
    pub(crate) fn same_as_written(&self, written: &Value) -> bool {
        use Value::*;
        if self == written {
            return true;
        }
        match (self, written) {
            (Bool(b), Int(_) | UInt(_)) | (Int(_) | UInt(_), Bool(b)) => {
                let n = if matches!(self, Bool(_)) {
                    written
                } else {
                    self
                };
                *n == Int(i64::from(*b))
            }
            (Float(a), Double(b)) | (Double(b), Float(a)) => *a == *b as f32,
            (Double(a), Double(b)) => a == b,
            (Float(a), Float(b)) => a == b,
            (Text(a), Text(b)) => a.trim_end_matches(' ') == b.trim_end_matches(' '),
            (Date(d), DateTime(dt)) | (DateTime(dt), Date(d)) => {
                dt.date == *d && (dt.hour, dt.minute, dt.second, dt.micros) == (0, 0, 0, 0)
            }
            (Decimal(_), _) | (_, Decimal(_)) => {
                match (canonical_number(self), canonical_number(written)) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

/// A number as `-123.45` with no leading or trailing zeros (`0` for zero),
/// or `None` if `v` is not a number written in plain decimal notation.
fn canonical_number(v: &Value) -> Option<String> {
    let text = match v {
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Double(d) if d.is_finite() => d.to_string(),
        Value::Float(f) if f.is_finite() => f.to_string(),
        Value::Decimal(s) | Value::Text(s) => s.trim().to_string(),
        _ => return None,
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(int.len() + frac.len() + 3);
    if negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        use Value::*;
        match self {
            Null => 0u8.hash(state),
            Bool(b) => b.hash(state),
            // Int and UInt of the same number are equal, so they must hash alike.
            Int(i) => match u64::try_from(*i) {
                Ok(u) => u.hash(state),
                Err(_) => i.hash(state),
            },
            UInt(u) => u.hash(state),
            Float(f) => f.to_bits().hash(state),
            Double(f) => f.to_bits().hash(state),
            Text(s) | Decimal(s) => s.hash(state),
            Bytes(b) => b.hash(state),
            Date(d) => d.hash(state),
            Time(t) => t.hash(state),
            DateTime(d) => d.hash(state),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Double(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Date(d) => write!(f, "{:04}-{:02}-{:02}", d.year, d.month, d.day),
            Value::Time(t) => write!(f, "{}us", t.micros),
            Value::DateTime(d) => write!(
                f,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
                d.date.year, d.date.month, d.date.day, d.hour, d.minute, d.second, d.micros
            ),
            Value::Decimal(s) => f.write_str(s),
        }
    }
}

/// Why a [`Value`] could not become the requested Rust type.
///
/// The core wraps it into [`crate::Error::Decode`] with the table and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// NULL was read into a type that cannot hold it.
    #[error("NULL cannot be stored in a non-Option field of type {target}; make the field an Option<{target}>")]
    UnexpectedNull {
        /// The Rust type asked for.
        target: &'static str,
    },
    /// The value has the wrong kind for the target type.
    #[error("a {found} value cannot be read as {target}")]
    WrongType {
        /// The Rust type asked for.
        target: &'static str,
        /// The kind of value found.
        found: &'static str,
    },
    /// The value is of the right kind but does not fit the target type.
    #[error("value {value} is out of range for {target}")]
    OutOfRange {
        /// The Rust type asked for.
        target: &'static str,
        /// The value, printed.
        value: String,
    },
    /// The value could not be parsed (bad UTF-8, a malformed decimal, ...).
    #[error("invalid {target}: {reason}")]
    Invalid {
        /// The Rust type asked for.
        target: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Encodes a Rust value as a [`Value`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a column: it does not implement `ToValue`",
    label = "not a column type",
    note = "a model field must be an integer, a float, bool, String, Vec<u8>, an orm date type, an Option of one of those, or a type that implements ToValue, FromValue and SqlType; the chrono, rust_decimal, serde_json and uuid types need the crate features of those names"
)]
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value;

    /// Whether [`to_value`](Self::to_value) would equal `value`. The flush
    /// compares every column of a written object with its snapshot this way;
    /// types whose value owns memory (text, bytes) override it to compare
    /// without building the value.
    fn eq_value(&self, value: &Value) -> bool {
        self.to_value() == *value
    }

    /// Whether `self` and `other` bind as the same value (by default
    /// `self.eq_value(&other.to_value())`). The flush compares each column
    /// of a written object with its snapshot (a copy of the object) this
    /// way; the built-in types compare directly, without building a value.
    fn same_as(&self, other: &Self) -> bool
    where
        Self: Sized,
    {
        self.eq_value(&other.to_value())
    }
}

/// Decodes a [`Value`] into a Rust value.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a column: it does not implement `FromValue`",
    label = "not a column type",
    note = "a model field must be an integer, a float, bool, String, Vec<u8>, an orm date type, an Option of one of those, or a type that implements ToValue, FromValue and SqlType; the chrono, rust_decimal, serde_json and uuid types need the crate features of those names"
)]
pub trait FromValue: Sized {
    /// Convert, or say why not.
    fn from_value(value: Value) -> Result<Self, ConversionError>;
}

/// The abstract column type of a field, mapped to DDL by the backend's
/// dialect (see `Dialect::column_type_sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// 8-bit integer.
    TinyInt {
        /// Unsigned.
        unsigned: bool,
    },
    /// 16-bit integer.
    SmallInt {
        /// Unsigned.
        unsigned: bool,
    },
    /// 32-bit integer.
    Int {
        /// Unsigned.
        unsigned: bool,
    },
    /// 64-bit integer.
    BigInt {
        /// Unsigned.
        unsigned: bool,
    },
    /// Single-precision float.
    Float,
    /// Double-precision float.
    Double,
    /// Boolean.
    Bool,
    /// Variable-length text of at most this many characters.
    VarChar(u32),
    /// Long text.
    Text,
    /// Long binary data.
    Blob,
    /// Date.
    Date,
    /// Time or duration, microsecond precision.
    Time,
    /// Date and time, microsecond precision.
    DateTime,
    /// Exact decimal with precision and scale.
    Decimal(u8, u8),
    /// JSON document.
    Json,
    /// UUID (stored as its 36-character text form).
    Uuid,
}

/// Associates a Rust type with its column type and nullability. A type
/// that implements it is a model field type, so it also implements
/// [`ToValue`] and [`FromValue`] (its supertraits): the derive then reports
/// an unsupported field type with this one error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a model field: it does not implement `SqlType` (with `ToValue` and `FromValue`)",
    label = "not a column type",
    note = "a model field must be an integer, a float, bool, String, Vec<u8>, an orm date type, an Option of one of those, or a type that implements orm's ToValue, FromValue and SqlType (see orm::value); the chrono, rust_decimal, serde_json and uuid types need the crate features of those names"
)]
pub trait SqlType: ToValue + FromValue {
    /// The column type used for DDL.
    const COLUMN_TYPE: ColumnType;
    /// Whether the column accepts NULL (true only for `Option<T>`).
    const NULLABLE: bool = false;
}

/// The error for a value of the wrong kind (or NULL) for `target`; shared
/// with the optional types in `crate::types`.
pub(crate) fn wrong(target: &'static str, v: &Value) -> ConversionError {
    if v.is_null() {
        ConversionError::UnexpectedNull { target }
    } else {
        ConversionError::WrongType {
            target,
            found: v.kind(),
        }
    }
}

fn out_of_range(target: &'static str, v: impl fmt::Display) -> ConversionError {
    ConversionError::OutOfRange {
        target,
        value: v.to_string(),
    }
}

/// An integer type from any value but the kind its column arrives as
/// (the integer types' inline `from_value` handles that one).
#[inline(never)]
fn int_from_other<T>(target: &'static str, v: Value) -> Result<T, ConversionError>
where
    T: TryFrom<i64> + TryFrom<u64> + From<bool> + std::str::FromStr,
{
    match v {
        Value::Int(i) => T::try_from(i).map_err(|_| out_of_range(target, i)),
        Value::UInt(u) => T::try_from(u).map_err(|_| out_of_range(target, u)),
        Value::Bool(b) => Ok(T::from(b)),
        Value::Text(s) | Value::Decimal(s) => int_from_text(target, &s),
        other => Err(wrong(target, &other)),
    }
}

/// Parses integer text (servers send some numbers as text).
fn int_from_text<T: std::str::FromStr>(
    target: &'static str,
    s: &str,
) -> Result<T, ConversionError> {
    s.trim().parse().map_err(|_| ConversionError::Invalid {
        target,
        reason: format!("{s:?} is not an integer in range"),
    })
}

macro_rules! signed_int {
    ($($t:ty => $ct:ident),*) => {$(
        impl ToValue for $t {
            #[inline]
            fn to_value(&self) -> Value { Value::Int(i64::from(*self)) }
            #[inline]
            fn same_as(&self, other: &Self) -> bool { self == other }
        }
        impl FromValue for $t {
            // The kinds a signed column arrives as are decoded inline in the
            // caller (a model's generated decoding, in another crate); the
            // rest takes a call.
            #[inline]
            fn from_value(v: Value) -> Result<Self, ConversionError> {
                match v {
                    Value::Int(i) => match <$t>::try_from(i) {
                        Ok(n) => Ok(n),
                        Err(_) => Err(out_of_range(stringify!($t), i)),
                    },
                    // Generated keys come back unsigned.
                    Value::UInt(u) => match <$t>::try_from(u) {
                        Ok(n) => Ok(n),
                        Err(_) => Err(out_of_range(stringify!($t), u)),
                    },
                    other => int_from_other(stringify!($t), other),
                }
            }
        }
        impl SqlType for $t {
            const COLUMN_TYPE: ColumnType = ColumnType::$ct { unsigned: false };
        }
    )*};
}

macro_rules! unsigned_int {
    ($($t:ty => $ct:ident),*) => {$(
        impl ToValue for $t {
            #[inline]
            fn to_value(&self) -> Value { Value::UInt(u64::from(*self)) }
            #[inline]
            fn same_as(&self, other: &Self) -> bool { self == other }
        }
        impl FromValue for $t {
            #[inline]
            fn from_value(v: Value) -> Result<Self, ConversionError> {
                match v {
                    Value::UInt(u) => match <$t>::try_from(u) {
                        Ok(n) => Ok(n),
                        Err(_) => Err(out_of_range(stringify!($t), u)),
                    },
                    other => int_from_other(stringify!($t), other),
                }
            }
        }
        impl SqlType for $t {
            const COLUMN_TYPE: ColumnType = ColumnType::$ct { unsigned: true };
        }
    )*};
}

signed_int!(i8 => TinyInt, i16 => SmallInt, i32 => Int, i64 => BigInt);
unsigned_int!(u8 => TinyInt, u16 => SmallInt, u32 => Int, u64 => BigInt);

impl ToValue for isize {
    fn to_value(&self) -> Value {
        Value::Int(*self as i64)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl FromValue for isize {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        let i = i64::from_value(v)?;
        isize::try_from(i).map_err(|_| out_of_range("isize", i))
    }
}
impl SqlType for isize {
    const COLUMN_TYPE: ColumnType = ColumnType::BigInt { unsigned: false };
}
impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::UInt(*self as u64)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl FromValue for usize {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        let u = u64::from_value(v)?;
        usize::try_from(u).map_err(|_| out_of_range("usize", u))
    }
}
impl SqlType for usize {
    const COLUMN_TYPE: ColumnType = ColumnType::BigInt { unsigned: true };
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl FromValue for bool {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::Bool(b) => Ok(b),
            Value::Int(0) | Value::UInt(0) => Ok(false),
            Value::Int(1) | Value::UInt(1) => Ok(true),
            Value::Int(i) => Err(out_of_range("bool", i)),
            Value::UInt(u) => Err(out_of_range("bool", u)),
            Value::Text(ref s) if s == "0" => Ok(false),
            Value::Text(ref s) if s == "1" => Ok(true),
            other => Err(wrong("bool", &other)),
        }
    }
}
impl SqlType for bool {
    const COLUMN_TYPE: ColumnType = ColumnType::Bool;
}

impl ToValue for f32 {
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl FromValue for f32 {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::Float(f) => Ok(f),
            // DOUBLE into f32 loses precision; accept it only when exact.
            Value::Double(d) if (d as f32) as f64 == d || d.is_nan() => Ok(d as f32),
            Value::Double(d) => Err(out_of_range("f32", d)),
            Value::Int(i) => Ok(i as f32),
            Value::UInt(u) => Ok(u as f32),
            Value::Text(s) | Value::Decimal(s) => {
                s.trim().parse().map_err(|_| ConversionError::Invalid {
                    target: "f32",
                    reason: format!("{s:?} is not a number"),
                })
            }
            other => Err(wrong("f32", &other)),
        }
    }
}
impl SqlType for f32 {
    const COLUMN_TYPE: ColumnType = ColumnType::Float;
}

impl ToValue for f64 {
    #[inline]
    fn to_value(&self) -> Value {
        Value::Double(*self)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl FromValue for f64 {
    #[inline]
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::Double(d) => Ok(d),
            other => f64_from_other(other),
        }
    }
}

/// An `f64` from any value but a DOUBLE.
#[inline(never)]
fn f64_from_other(v: Value) -> Result<f64, ConversionError> {
    match v {
        Value::Double(d) => Ok(d),
        Value::Float(f) => Ok(f64::from(f)),
        Value::Int(i) => Ok(i as f64),
        Value::UInt(u) => Ok(u as f64),
        Value::Text(s) | Value::Decimal(s) => {
            s.trim().parse().map_err(|_| ConversionError::Invalid {
                target: "f64",
                reason: format!("{s:?} is not a number"),
            })
        }
        other => Err(wrong("f64", &other)),
    }
}
impl SqlType for f64 {
    const COLUMN_TYPE: ColumnType = ColumnType::Double;
}

impl ToValue for String {
    #[inline]
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
    #[inline]
    fn eq_value(&self, value: &Value) -> bool {
        self.as_str().eq_value(value)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl ToValue for str {
    #[inline]
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
    #[inline]
    fn eq_value(&self, value: &Value) -> bool {
        matches!(value, Value::Text(text) if text == self)
    }
}
impl FromValue for String {
    #[inline]
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::Text(s) => Ok(s),
            other => string_from_other(other),
        }
    }
}

/// A `String` from any value but text.
#[inline(never)]
fn string_from_other(v: Value) -> Result<String, ConversionError> {
    match v {
        Value::Text(s) | Value::Decimal(s) => Ok(s),
        Value::Bytes(b) => String::from_utf8(b).map_err(|e| ConversionError::Invalid {
            target: "String",
            reason: format!("not valid UTF-8: {e}"),
        }),
        other => Err(wrong("String", &other)),
    }
}
impl SqlType for String {
    const COLUMN_TYPE: ColumnType = ColumnType::VarChar(255);
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
    fn eq_value(&self, value: &Value) -> bool {
        self.as_slice().eq_value(value)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
    fn eq_value(&self, value: &Value) -> bool {
        matches!(value, Value::Bytes(bytes) if bytes == self)
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::Bytes(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => Err(wrong("Vec<u8>", &other)),
        }
    }
}
impl SqlType for Vec<u8> {
    const COLUMN_TYPE: ColumnType = ColumnType::Blob;
}

impl<T: ToValue> ToValue for Option<T> {
    #[inline]
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
    fn eq_value(&self, value: &Value) -> bool {
        match self {
            Some(v) => v.eq_value(value),
            None => value.is_null(),
        }
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.same_as(b),
            (None, None) => true,
            // As the default would decide (a type may bind some values as NULL).
            (Some(v), None) | (None, Some(v)) => v.eq_value(&Value::Null),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    #[inline]
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}
impl<T: SqlType> SqlType for Option<T> {
    const COLUMN_TYPE: ColumnType = T::COLUMN_TYPE;
    const NULLABLE: bool = true;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
    fn eq_value(&self, value: &Value) -> bool {
        (**self).eq_value(value)
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl FromValue for Value {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        Ok(v)
    }
}

impl ToValue for Date {
    fn to_value(&self) -> Value {
        Value::Date(*self)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
/// Whether `d` is a day of the (proleptic Gregorian) calendar, year 0..=9999.
fn is_calendar_date(d: Date) -> bool {
    let leap = d.year % 4 == 0 && (d.year % 100 != 0 || d.year % 400 == 0);
    let days = match d.month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    d.year <= 9999 && (1..=days).contains(&d.day)
}

/// `d`, or the error the `chrono` conversions give for a non-date.
fn checked_date(target: &'static str, d: Date) -> Result<Date, ConversionError> {
    if is_calendar_date(d) {
        Ok(d)
    } else {
        Err(ConversionError::Invalid {
            target,
            reason: format!("{} is not a calendar date", Value::Date(d)),
        })
    }
}

/// `dt`, or the error the `chrono` conversions give for a non-date or a
/// time of day out of range.
fn checked_datetime(target: &'static str, dt: DateTime) -> Result<DateTime, ConversionError> {
    checked_date(target, dt.date)?;
    if dt.hour < 24 && dt.minute < 60 && dt.second < 60 && dt.micros < 1_000_000 {
        Ok(dt)
    } else {
        Err(ConversionError::Invalid {
            target,
            reason: format!("{} is not a valid time of day", Value::DateTime(dt)),
        })
    }
}

impl FromValue for Date {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::Date(d) => checked_date("Date", d),
            Value::DateTime(dt)
                if dt.hour == 0 && dt.minute == 0 && dt.second == 0 && dt.micros == 0 =>
            {
                checked_date("Date", dt.date)
            }
            other => Err(wrong("Date", &other)),
        }
    }
}
impl SqlType for Date {
    const COLUMN_TYPE: ColumnType = ColumnType::Date;
}
impl ToValue for DateTime {
    fn to_value(&self) -> Value {
        Value::DateTime(*self)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl FromValue for DateTime {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::DateTime(d) => checked_datetime("DateTime", d),
            Value::Date(date) => Ok(DateTime {
                date: checked_date("DateTime", date)?,
                hour: 0,
                minute: 0,
                second: 0,
                micros: 0,
            }),
            other => Err(wrong("DateTime", &other)),
        }
    }
}
impl SqlType for DateTime {
    const COLUMN_TYPE: ColumnType = ColumnType::DateTime;
}
impl ToValue for Time {
    fn to_value(&self) -> Value {
        Value::Time(*self)
    }
    #[inline]
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}
impl FromValue for Time {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::Time(t) => Ok(t),
            other => Err(wrong("Time", &other)),
        }
    }
}
impl SqlType for Time {
    const COLUMN_TYPE: ColumnType = ColumnType::Time;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_check_their_range() {
        assert_eq!(i8::from_value(Value::Int(-128)), Ok(-128));
        assert!(matches!(
            i8::from_value(Value::Int(128)),
            Err(ConversionError::OutOfRange { .. })
        ));
        assert!(matches!(
            u32::from_value(Value::Int(-1)),
            Err(ConversionError::OutOfRange { .. })
        ));
        assert_eq!(u64::from_value(Value::UInt(u64::MAX)), Ok(u64::MAX));
        assert!(matches!(
            i64::from_value(Value::UInt(u64::MAX)),
            Err(ConversionError::OutOfRange { .. })
        ));
    }

    #[test]
    fn null_into_non_option_is_an_error_that_says_what_to_do() {
        let e = String::from_value(Value::Null).unwrap_err();
        assert!(e.to_string().contains("Option<String>"), "{e}");
        assert_eq!(Option::<String>::from_value(Value::Null), Ok(None));
    }

    #[test]
    fn int_and_uint_of_same_number_are_one_key() {
        use std::collections::hash_map::DefaultHasher;
        let h = |v: &Value| {
            let mut s = DefaultHasher::new();
            v.hash(&mut s);
            s.finish()
        };
        assert_eq!(Value::Int(7), Value::UInt(7));
        assert_eq!(h(&Value::Int(7)), h(&Value::UInt(7)));
        assert_ne!(Value::Int(-1), Value::UInt(u64::MAX));
    }

    #[test]
    fn values_read_back_compare_by_sql_equality() {
        let same = |db: Value, mem: Value| db.same_as_written(&mem);
        assert!(same(Value::Int(1), Value::Bool(true)));
        assert!(same(Value::Int(0), Value::Bool(false)));
        assert!(!same(Value::Int(2), Value::Bool(true)));
        assert!(same(
            Value::Decimal("1.5000".into()),
            Value::Text("1.5".into())
        ));
        assert!(same(
            Value::Decimal("-001.50".into()),
            Value::Decimal("-1.5".into())
        ));
        assert!(same(Value::Decimal("0.000".into()), Value::Int(0)));
        assert!(same(
            Value::Decimal("-0.00".into()),
            Value::Decimal("0".into())
        ));
        assert!(same(Value::Decimal("12.0000".into()), Value::UInt(12)));
        assert!(same(Value::Decimal("0.2500".into()), Value::Double(0.25)));
        assert!(!same(
            Value::Decimal("1.5001".into()),
            Value::Decimal("1.5".into())
        ));
        assert!(!same(
            Value::Decimal("15".into()),
            Value::Decimal("1.5".into())
        ));
        assert!(!same(
            Value::Decimal("1e3".into()),
            Value::Decimal("1000".into())
        ));
        assert!(same(Value::Float(1.1), Value::Double(1.1)));
        assert!(!same(Value::Float(1.2), Value::Double(1.1)));
        assert!(same(Value::Text("ab".into()), Value::Text("ab  ".into())));
        assert!(!same(Value::Text("ab".into()), Value::Text("AB".into())));
        let d = Date {
            year: 2024,
            month: 2,
            day: 29,
        };
        let midnight = DateTime {
            date: d,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        };
        assert!(same(Value::DateTime(midnight), Value::Date(d)));
        assert!(!same(
            Value::DateTime(DateTime {
                hour: 1,
                ..midnight
            }),
            Value::Date(d)
        ));
        assert!(same(Value::Null, Value::Null));
        assert!(!same(Value::Null, Value::Int(0)));
    }

    #[test]
    fn built_in_dates_reject_what_is_not_a_date() {
        let date = |year, month, day| Date { year, month, day };
        let at = |d, hour, minute, second, micros| DateTime {
            date: d,
            hour,
            minute,
            second,
            micros,
        };
        for bad in [
            date(0, 0, 0),
            date(2024, 0, 1),
            date(2024, 1, 0),
            date(2023, 2, 29),
            date(2024, 4, 31),
            date(2024, 13, 1),
        ] {
            let e = Date::from_value(Value::Date(bad)).unwrap_err();
            assert!(
                matches!(&e, ConversionError::Invalid { target: "Date", reason } if reason.contains("is not a calendar date")),
                "{e}"
            );
            assert!(DateTime::from_value(Value::Date(bad)).is_err());
            assert!(DateTime::from_value(Value::DateTime(at(bad, 0, 0, 0, 0))).is_err());
        }
        assert_eq!(
            Date::from_value(Value::Date(date(2024, 2, 29))),
            Ok(date(2024, 2, 29))
        );
        assert_eq!(
            Date::from_value(Value::Date(date(0, 1, 1))),
            Ok(date(0, 1, 1))
        );
        let ok = at(date(2000, 2, 29), 23, 59, 59, 999_999);
        assert_eq!(DateTime::from_value(Value::DateTime(ok)), Ok(ok));
        let e =
            DateTime::from_value(Value::DateTime(at(date(2000, 1, 1), 24, 0, 0, 0))).unwrap_err();
        assert!(e.to_string().contains("not a valid time of day"), "{e}");
    }
}
