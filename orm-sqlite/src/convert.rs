//! Values between the core's [`Value`] and SQLite's five storage classes.
//!
//! Written: integers, booleans (0/1) and floats as themselves; text, bytes
//! and decimals (canonical text) as text and blobs; dates as `YYYY-MM-DD`,
//! date-times as `YYYY-MM-DD HH:MM:SS.ffffff` and times as
//! `[-]HH:MM:SS.ffffff` (hours may exceed 23, as in MySQL's `TIME`), the
//! text forms SQLAlchemy uses on SQLite, which sort correctly within
//! 0000-9999 and 00-99 hours. An unsigned value above `i64::MAX` does not
//! fit SQLite's integers and is refused.
//!
//! Read: by the column's declared type (see `Declared`), so that a `DATE`
//! column gives a date again; a column without a declared type (an
//! expression) comes back as stored.

use orm_core::value::{Date, DateTime, Time, Value};
use orm_core::{Error, Result};
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::dialect::Declared;

/// A borrowed [`Value`] bound as a statement parameter.
pub(crate) struct Bind<'a>(pub &'a Value);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as S;
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(S::Null),
            Value::Bool(b) => ToSqlOutput::Owned(S::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Owned(S::Integer(*i)),
            Value::UInt(u) => match i64::try_from(*u) {
                Ok(i) => ToSqlOutput::Owned(S::Integer(i)),
                Err(e) => return Err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))),
            },
            Value::Float(f) => ToSqlOutput::Owned(S::Real(f64::from(*f))),
            Value::Double(d) => ToSqlOutput::Owned(S::Real(*d)),
            Value::Text(s) | Value::Decimal(s) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Date(d) => ToSqlOutput::Owned(S::Text(date_text(d))),
            Value::DateTime(dt) => ToSqlOutput::Owned(S::Text(datetime_text(dt))),
            Value::Time(t) => ToSqlOutput::Owned(S::Text(time_text(*t))),
        })
    }
}

/// Checks that every parameter can be stored, so that a refused value is a
/// clear error rather than the driver's conversion failure.
pub(crate) fn check_params(params: &[Value]) -> Result<()> {
    for (n, p) in params.iter().enumerate() {
        if let Value::UInt(u) = p {
            if i64::try_from(*u).is_err() {
                return Err(Error::invalid(format!(
                    "parameter {} is the unsigned value {u}, above SQLite's largest integer \
                     ({}); store such values as text or use a signed field",
                    n + 1,
                    i64::MAX
                )));
            }
        }
    }
    Ok(())
}

fn date_text(d: &Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

fn datetime_text(dt: &DateTime) -> String {
    format!(
        "{} {:02}:{:02}:{:02}.{:06}",
        date_text(&dt.date),
        dt.hour,
        dt.minute,
        dt.second,
        dt.micros
    )
}

fn time_text(t: Time) -> String {
    let sign = if t.micros < 0 { "-" } else { "" };
    let m = t.micros.unsigned_abs();
    let (secs, micros) = (m / 1_000_000, m % 1_000_000);
    format!(
        "{sign}{:02}:{:02}:{:02}.{micros:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A stored value of a column declared as `declared`.
pub(crate) fn from_sqlite(v: ValueRef<'_>, declared: Declared) -> Result<Value> {
    let value = match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => match declared {
            Declared::Bool => Value::Bool(i != 0),
            Declared::Decimal => Value::Decimal(i.to_string()),
            _ => Value::Int(i),
        },
        ValueRef::Real(d) => Value::Double(d),
        ValueRef::Text(bytes) => {
            let s = std::str::from_utf8(bytes).map_err(|e| {
                Error::invalid(format!("SQLite returned text that is not UTF-8: {e}"))
            })?;
            let parsed = match declared {
                Declared::Date => parse_date(s).map(Value::Date),
                Declared::DateTime => parse_datetime(s).map(Value::DateTime),
                Declared::Time => parse_time(s).map(Value::Time),
                Declared::Decimal => Some(Value::Decimal(s.to_string())),
                Declared::Plain | Declared::Bool => None,
            };
            // Text that is not in the expected form stays text: the field's
            // FromValue then names the column and the value.
            parsed.unwrap_or_else(|| Value::Text(s.to_string()))
        }
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    };
    Ok(value)
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_date(s: &str) -> Option<Date> {
    let mut parts = s.splitn(3, '-');
    let year = num(parts.next()?)?;
    let month = num(parts.next()?)?;
    let day = num(parts.next()?)?;
    Some(Date { year, month, day })
}

/// `HH:MM[:SS[.ffffff]]` as (hours, minutes, seconds, micros).
fn parse_clock(s: &str) -> Option<(u64, u8, u8, u32)> {
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let mut parts = hms.split(':');
    let hour = num(parts.next()?)?;
    let minute = num(parts.next()?)?;
    let second = match parts.next() {
        Some(p) => num(p)?,
        None => 0,
    };
    if parts.next().is_some() || minute > 59 || second > 59 {
        return None;
    }
    let micros = match frac {
        None => 0,
        Some(f) if f.len() <= 6 => num::<u32>(f)? * 10u32.pow(6 - f.len() as u32),
        Some(_) => return None,
    };
    Some((hour, minute, second, micros))
}

fn parse_datetime(s: &str) -> Option<DateTime> {
    let (date, clock) = s.split_once([' ', 'T'])?;
    let date = parse_date(date)?;
    let (hour, minute, second, micros) = parse_clock(clock)?;
    Some(DateTime {
        date,
        hour: u8::try_from(hour).ok().filter(|h| *h < 24)?,
        minute,
        second,
        micros,
    })
}

fn parse_time(s: &str) -> Option<Time> {
    let (negative, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (h, m, sec, us) = parse_clock(rest)?;
    let total = i64::try_from(h)
        .ok()?
        .checked_mul(3600)?
        .checked_add(i64::from(m) * 60 + i64::from(sec))?
        .checked_mul(1_000_000)?
        .checked_add(i64::from(us))?;
    Some(Time {
        micros: if negative { -total } else { total },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ToSql;

    fn text(v: &Value) -> String {
        match Bind(v).to_sql().unwrap() {
            ToSqlOutput::Owned(rusqlite::types::Value::Text(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dates_and_times_round_trip_as_text() {
        let dt = DateTime {
            date: Date {
                year: 2024,
                month: 2,
                day: 29,
            },
            hour: 23,
            minute: 5,
            second: 9,
            micros: 120,
        };
        let s = text(&Value::DateTime(dt));
        assert_eq!(s, "2024-02-29 23:05:09.000120");
        assert_eq!(
            from_sqlite(ValueRef::Text(s.as_bytes()), Declared::DateTime).unwrap(),
            Value::DateTime(dt)
        );
        let t = Time {
            micros: -(838 * 3600 + 59 * 60 + 59) * 1_000_000 - 5,
        };
        let s = text(&Value::Time(t));
        assert_eq!(s, "-838:59:59.000005");
        assert_eq!(
            from_sqlite(ValueRef::Text(s.as_bytes()), Declared::Time).unwrap(),
            Value::Time(t)
        );
        assert_eq!(
            from_sqlite(ValueRef::Text(b"2024-01-02"), Declared::Date).unwrap(),
            Value::Date(Date {
                year: 2024,
                month: 1,
                day: 2
            })
        );
        // Not a date: stays text, for the field's conversion to report.
        assert_eq!(
            from_sqlite(ValueRef::Text(b"soon"), Declared::Date).unwrap(),
            Value::Text("soon".into())
        );
    }

    #[test]
    fn booleans_decimals_and_big_unsigned() {
        assert_eq!(
            from_sqlite(ValueRef::Integer(1), Declared::Bool).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            from_sqlite(ValueRef::Text(b"12.50"), Declared::Decimal).unwrap(),
            Value::Decimal("12.50".into())
        );
        let err = check_params(&[Value::UInt(u64::MAX)]).unwrap_err();
        assert!(err.to_string().contains("signed"), "{err}");
        assert!(check_params(&[Value::UInt(5)]).is_ok());
    }
}
