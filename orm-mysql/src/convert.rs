//! Values both ways between `mysql::Value` and the core's [`Value`], using
//! the column metadata of result sets.

use mysql::consts::{ColumnFlags, ColumnType as MyType};
use mysql::Value as MyValue;
use orm_core::value::{Date, DateTime, Time, Value};

/// The binary pseudo-charset: a string column with it holds bytes.
const BINARY_CHARSET: u16 = 63;
const MICROS_PER_SEC: i64 = 1_000_000;

/// Converts bound parameters.
pub(crate) fn to_params(params: &[Value]) -> mysql::Params {
    if params.is_empty() {
        return mysql::Params::Empty;
    }
    mysql::Params::Positional(params.iter().map(to_mysql).collect())
}

/// Converts bound parameters it is handed: strings and bytes move into the
/// driver's values instead of being copied.
pub(crate) fn into_params(params: Vec<Value>) -> mysql::Params {
    if params.is_empty() {
        return mysql::Params::Empty;
    }
    mysql::Params::Positional(params.into_iter().map(into_mysql).collect())
}

/// [`to_mysql`], moving a string's or bytes' buffer.
fn into_mysql(v: Value) -> MyValue {
    match v {
        Value::Text(s) | Value::Decimal(s) => MyValue::Bytes(s.into_bytes()),
        Value::Bytes(b) => MyValue::Bytes(b),
        other => to_mysql(&other),
    }
}

/// One value to the driver's representation.
pub(crate) fn to_mysql(v: &Value) -> MyValue {
    match v {
        Value::Null => MyValue::NULL,
        Value::Bool(b) => MyValue::Int(i64::from(*b)),
        Value::Int(i) => MyValue::Int(*i),
        Value::UInt(u) => MyValue::UInt(*u),
        Value::Float(f) => MyValue::Float(*f),
        Value::Double(d) => MyValue::Double(*d),
        Value::Text(s) | Value::Decimal(s) => MyValue::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => MyValue::Bytes(b.clone()),
        Value::Date(d) => MyValue::Date(d.year, d.month, d.day, 0, 0, 0, 0),
        Value::DateTime(d) => MyValue::Date(
            d.date.year,
            d.date.month,
            d.date.day,
            d.hour,
            d.minute,
            d.second,
            d.micros,
        ),
        Value::Time(t) => {
            let neg = t.micros < 0;
            let abs = t.micros.unsigned_abs();
            let micros = (abs % 1_000_000) as u32;
            let secs = abs / 1_000_000;
            let days = secs / 86_400;
            let rem = secs % 86_400;
            MyValue::Time(
                neg,
                u32::try_from(days).unwrap_or(u32::MAX),
                (rem / 3600) as u8,
                (rem % 3600 / 60) as u8,
                (rem % 60) as u8,
                micros,
            )
        }
    }
}

fn is_integer(t: MyType) -> bool {
    matches!(
        t,
        MyType::MYSQL_TYPE_TINY
            | MyType::MYSQL_TYPE_SHORT
            | MyType::MYSQL_TYPE_LONG
            | MyType::MYSQL_TYPE_INT24
            | MyType::MYSQL_TYPE_LONGLONG
            | MyType::MYSQL_TYPE_YEAR
    )
}

/// What converting a column's values needs to know, read once per result
/// set instead of once per value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnKind {
    ty: MyType,
    unsigned: bool,
    binary: bool,
}

impl ColumnKind {
    /// The kind of `column`.
    pub(crate) fn of(column: &mysql::Column) -> ColumnKind {
        ColumnKind {
            ty: column.column_type(),
            unsigned: column.flags().contains(ColumnFlags::UNSIGNED_FLAG),
            binary: column.character_set() == BINARY_CHARSET,
        }
    }
}

/// One value from a result row, interpreted by its column's kind.
///
/// Never fails (see [`from_bytes`]), so it returns the value itself: a
/// `Result` of the core's error type is several times the size of a value
/// and was copied for every value loaded (a third of this function's cost
/// in the workloads bench's profile).
#[inline]
pub(crate) fn from_mysql_as(v: MyValue, kind: ColumnKind) -> Value {
    let ColumnKind { ty, unsigned, .. } = kind;
    match v {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) if unsigned && i >= 0 => Value::UInt(i as u64),
        MyValue::Int(i) => Value::Int(i),
        MyValue::UInt(u) if !unsigned => match i64::try_from(u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(u),
        },
        MyValue::UInt(u) => Value::UInt(u),
        MyValue::Float(f) => Value::Float(f),
        MyValue::Double(d) if ty == MyType::MYSQL_TYPE_FLOAT => Value::Float(d as f32),
        MyValue::Double(d) => Value::Double(d),
        MyValue::Date(year, month, day, hour, minute, second, micros) => {
            let date = Date { year, month, day };
            if ty == MyType::MYSQL_TYPE_DATE || ty == MyType::MYSQL_TYPE_NEWDATE {
                Value::Date(date)
            } else {
                Value::DateTime(DateTime {
                    date,
                    hour,
                    minute,
                    second,
                    micros,
                })
            }
        }
        MyValue::Time(neg, days, hours, minutes, seconds, micros) => {
            let secs = i64::from(days) * 86_400
                + i64::from(hours) * 3600
                + i64::from(minutes) * 60
                + i64::from(seconds);
            let total = secs * MICROS_PER_SEC + i64::from(micros);
            Value::Time(Time {
                micros: if neg { -total } else { total },
            })
        }
        MyValue::Bytes(bytes) => from_bytes(bytes, kind),
    }
}

/// Bytes: text or binary by charset, or a number sent as text.
///
/// Never fails: what cannot be interpreted by its column type (text that is
/// not UTF-8, a malformed number) is passed on as it came (`Bytes` or
/// `Text`), so that the model's field type rejects it with
/// [`orm_core::Error::Decode`], which names the table and column.
fn from_bytes(bytes: Vec<u8>, kind: ColumnKind) -> Value {
    let ColumnKind {
        ty,
        unsigned,
        binary,
    } = kind;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Value::Bytes(e.into_bytes()),
    };
    match ty {
        MyType::MYSQL_TYPE_DECIMAL | MyType::MYSQL_TYPE_NEWDECIMAL => Value::Decimal(text),
        MyType::MYSQL_TYPE_JSON => Value::Text(text),
        t if is_integer(t) && unsigned => text.parse().map_or(Value::Text(text), Value::UInt),
        t if is_integer(t) => text.parse().map_or(Value::Text(text), Value::Int),
        MyType::MYSQL_TYPE_FLOAT => text.parse().map_or(Value::Text(text), Value::Float),
        MyType::MYSQL_TYPE_DOUBLE => text.parse().map_or(Value::Text(text), Value::Double),
        MyType::MYSQL_TYPE_BIT | MyType::MYSQL_TYPE_GEOMETRY => Value::Bytes(text.into_bytes()),
        _ if binary => Value::Bytes(text.into_bytes()),
        _ => Value::Text(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_roundtrip_sign_and_days() {
        let t = Value::Time(Time {
            micros: -(26 * 3600 + 61) * MICROS_PER_SEC - 5,
        });
        match to_mysql(&t) {
            MyValue::Time(neg, days, h, m, s, us) => {
                assert_eq!((neg, days, h, m, s, us), (true, 1, 2, 1, 1, 5))
            }
            other => panic!("{other:?}"),
        }
    }
}
