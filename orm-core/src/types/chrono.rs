//! `chrono` date and time types.
//!
//! Years outside 0..=9999 (which SQL cannot store) are sent as ISO text, for
//! the server to reject. Time is kept to the microsecond (`DATETIME(6)`);
//! nanoseconds are truncated and a leap second becomes `.999999`.

use ::chrono::{
    DateTime as ChronoDateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc,
};

use crate::value::{
    wrong, ColumnType, ConversionError, Date, DateTime, FromValue, SqlType, Time, ToValue, Value,
};

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn invalid(target: &'static str, reason: impl Into<String>) -> ConversionError {
    ConversionError::Invalid {
        target,
        reason: reason.into(),
    }
}

fn to_date(d: NaiveDate) -> Option<Date> {
    Some(Date {
        year: u16::try_from(d.year()).ok().filter(|y| *y <= 9999)?,
        month: d.month() as u8,
        day: d.day() as u8,
    })
}

fn micros_of(t: NaiveTime) -> u32 {
    (t.nanosecond() / 1000).min(999_999)
}

fn to_datetime(dt: NaiveDateTime) -> Option<DateTime> {
    let t = dt.time();
    Some(DateTime {
        date: to_date(dt.date())?,
        hour: t.hour() as u8,
        minute: t.minute() as u8,
        second: t.second() as u8,
        micros: micros_of(t),
    })
}

fn from_date(target: &'static str, d: Date) -> Result<NaiveDate, ConversionError> {
    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
        .ok_or_else(|| invalid(target, format!("{} is not a calendar date", Value::Date(d))))
}

fn from_datetime(target: &'static str, dt: DateTime) -> Result<NaiveDateTime, ConversionError> {
    let date = from_date(target, dt.date)?;
    let time = NaiveTime::from_hms_micro_opt(
        u32::from(dt.hour),
        u32::from(dt.minute),
        u32::from(dt.second),
        dt.micros,
    )
    .ok_or_else(|| {
        invalid(
            target,
            format!("{} is not a valid time of day", Value::DateTime(dt)),
        )
    })?;
    Ok(date.and_time(time))
}

fn parse<T>(
    target: &'static str,
    s: &str,
    formats: &[&str],
    f: impl Fn(&str, &str) -> Option<T>,
) -> Result<T, ConversionError> {
    formats
        .iter()
        .find_map(|fmt| f(s.trim(), fmt))
        .ok_or_else(|| invalid(target, format!("{s:?} is not in a supported format")))
}

impl ToValue for NaiveDate {
    fn to_value(&self) -> Value {
        to_date(*self).map_or_else(|| Value::Text(self.to_string()), Value::Date)
    }
}
impl FromValue for NaiveDate {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        const T: &str = "NaiveDate";
        match v {
            Value::Date(d) => from_date(T, d),
            Value::DateTime(dt) => {
                let full = from_datetime(T, dt)?;
                if full.time() == NaiveTime::MIN {
                    Ok(full.date())
                } else {
                    Err(invalid(
                        T,
                        format!("{} has a time part", Value::DateTime(dt)),
                    ))
                }
            }
            Value::Text(s) => parse(T, &s, &["%Y-%m-%d"], |s, f| {
                NaiveDate::parse_from_str(s, f).ok()
            }),
            other => Err(wrong(T, &other)),
        }
    }
}
impl SqlType for NaiveDate {
    const COLUMN_TYPE: ColumnType = ColumnType::Date;
}

impl ToValue for NaiveDateTime {
    fn to_value(&self) -> Value {
        to_datetime(*self).map_or_else(|| Value::Text(self.to_string()), Value::DateTime)
    }
}
impl FromValue for NaiveDateTime {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        const T: &str = "NaiveDateTime";
        match v {
            Value::DateTime(dt) => from_datetime(T, dt),
            Value::Date(d) => Ok(from_date(T, d)?.and_time(NaiveTime::MIN)),
            Value::Text(s) => parse(
                T,
                &s,
                &["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"],
                |s, f| NaiveDateTime::parse_from_str(s, f).ok(),
            ),
            other => Err(wrong(T, &other)),
        }
    }
}
impl SqlType for NaiveDateTime {
    const COLUMN_TYPE: ColumnType = ColumnType::DateTime;
}

impl ToValue for NaiveTime {
    fn to_value(&self) -> Value {
        let micros =
            i64::from(self.num_seconds_from_midnight()) * 1_000_000 + i64::from(micros_of(*self));
        Value::Time(Time { micros })
    }
}
impl FromValue for NaiveTime {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        const T: &str = "NaiveTime";
        match v {
            Value::Time(t) if (0..MICROS_PER_DAY).contains(&t.micros) => {
                let secs = (t.micros / 1_000_000) as u32;
                let micros = (t.micros % 1_000_000) as u32;
                NaiveTime::from_num_seconds_from_midnight_opt(secs, micros * 1000)
                    .ok_or_else(|| invalid(T, format!("{}us is not a time of day", t.micros)))
            }
            Value::Time(t) => Err(ConversionError::OutOfRange {
                target: T,
                value: format!(
                    "{}us (a time of day is 00:00:00 to 23:59:59.999999)",
                    t.micros
                ),
            }),
            Value::Text(s) => parse(T, &s, &["%H:%M:%S%.f"], |s, f| {
                NaiveTime::parse_from_str(s, f).ok()
            }),
            other => Err(wrong(T, &other)),
        }
    }
}
impl SqlType for NaiveTime {
    const COLUMN_TYPE: ColumnType = ColumnType::Time;
}

impl ToValue for ChronoDateTime<Utc> {
    fn to_value(&self) -> Value {
        self.naive_utc().to_value()
    }
}
impl FromValue for ChronoDateTime<Utc> {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        NaiveDateTime::from_value(v)
            .map(|n| n.and_utc())
            .map_err(|e| match e {
                ConversionError::UnexpectedNull { .. } => ConversionError::UnexpectedNull {
                    target: "DateTime<Utc>",
                },
                other => other,
            })
    }
}
impl SqlType for ChronoDateTime<Utc> {
    const COLUMN_TYPE: ColumnType = ColumnType::DateTime;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn dates_round_trip() {
        let d = ymd(2024, 2, 29);
        assert_eq!(
            d.to_value(),
            Value::Date(Date {
                year: 2024,
                month: 2,
                day: 29
            })
        );
        assert_eq!(NaiveDate::from_value(d.to_value()), Ok(d));
        assert_eq!(
            NaiveDate::from_value(Value::Text("2024-02-29".into())),
            Ok(d)
        );
        assert_eq!(Option::<NaiveDate>::from_value(Value::Null), Ok(None));
        assert_eq!(NaiveDate::COLUMN_TYPE, ColumnType::Date);
    }

    #[test]
    fn invalid_dates_are_errors() {
        let zero = Value::Date(Date {
            year: 0,
            month: 0,
            day: 0,
        });
        assert!(matches!(
            NaiveDate::from_value(zero),
            Err(ConversionError::Invalid { .. })
        ));
        let feb30 = Value::Date(Date {
            year: 2023,
            month: 2,
            day: 30,
        });
        assert!(matches!(
            NaiveDate::from_value(feb30),
            Err(ConversionError::Invalid { .. })
        ));
        assert!(matches!(
            NaiveDate::from_value(Value::Text("yesterday".into())),
            Err(ConversionError::Invalid { .. })
        ));
        assert!(matches!(
            NaiveDate::from_value(Value::Null),
            Err(ConversionError::UnexpectedNull { .. })
        ));
        assert!(matches!(
            NaiveDate::from_value(Value::Int(3)),
            Err(ConversionError::WrongType { .. })
        ));
        // A year SQL cannot hold is sent as text for the server to reject.
        assert_eq!(ymd(-5, 1, 1).to_value(), Value::Text("-0005-01-01".into()));
    }

    #[test]
    fn datetimes_keep_microseconds() {
        let dt = ymd(2024, 5, 6).and_hms_micro_opt(7, 8, 9, 123_456).unwrap();
        let v = dt.to_value();
        assert_eq!(
            v,
            Value::DateTime(DateTime {
                date: Date {
                    year: 2024,
                    month: 5,
                    day: 6
                },
                hour: 7,
                minute: 8,
                second: 9,
                micros: 123_456
            })
        );
        assert_eq!(NaiveDateTime::from_value(v.clone()), Ok(dt));
        assert_eq!(
            NaiveDateTime::from_value(Value::Text("2024-05-06 07:08:09.123456".into())),
            Ok(dt)
        );
        assert_eq!(
            NaiveDateTime::from_value(Value::Date(Date {
                year: 2024,
                month: 5,
                day: 6
            })),
            Ok(ymd(2024, 5, 6).and_time(NaiveTime::MIN))
        );
        let utc = dt.and_utc();
        assert_eq!(utc.to_value(), v);
        assert_eq!(ChronoDateTime::<Utc>::from_value(v), Ok(utc));
        assert_eq!(ChronoDateTime::<Utc>::COLUMN_TYPE, ColumnType::DateTime);
        let bad = Value::DateTime(DateTime {
            date: Date {
                year: 2024,
                month: 1,
                day: 1,
            },
            hour: 25,
            minute: 0,
            second: 0,
            micros: 0,
        });
        assert!(matches!(
            NaiveDateTime::from_value(bad),
            Err(ConversionError::Invalid { .. })
        ));
        assert!(matches!(
            ChronoDateTime::<Utc>::from_value(Value::Null),
            Err(ConversionError::UnexpectedNull {
                target: "DateTime<Utc>"
            })
        ));
        // Leap second: clamped to the last microsecond.
        let leap = ymd(2016, 12, 31)
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        assert!(matches!(
            leap.to_value(),
            Value::DateTime(DateTime {
                second: 59,
                micros: 999_999,
                ..
            })
        ));
    }

    #[test]
    fn times_of_day() {
        let t = NaiveTime::from_hms_micro_opt(13, 14, 15, 16).unwrap();
        let micros = ((13 * 60 + 14) * 60 + 15) * 1_000_000 + 16;
        assert_eq!(t.to_value(), Value::Time(Time { micros }));
        assert_eq!(NaiveTime::from_value(t.to_value()), Ok(t));
        assert_eq!(
            NaiveTime::from_value(Value::Text("13:14:15.000016".into())),
            Ok(t)
        );
        for micros in [-1, MICROS_PER_DAY, 838 * 3_600_000_000] {
            assert!(matches!(
                NaiveTime::from_value(Value::Time(Time { micros })),
                Err(ConversionError::OutOfRange { .. })
            ));
        }
    }
}
