//! `rust_decimal::Decimal`, exchanged as canonical decimal text so that no
//! digit is lost on the way.

use ::rust_decimal::Decimal;

use crate::value::{ColumnType, ConversionError, FromValue, SqlType, ToValue, Value};

const T: &str = "Decimal";

impl ToValue for Decimal {
    fn to_value(&self) -> Value {
        Value::Decimal(self.to_string())
    }
}

impl FromValue for Decimal {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        match v {
            Value::Decimal(s) | Value::Text(s) => parse(s.trim()),
            Value::Int(i) => Ok(Decimal::from(i)),
            Value::UInt(u) => Ok(Decimal::from(u)),
            Value::Double(d) => Decimal::try_from(d).map_err(|_| ConversionError::OutOfRange {
                target: T,
                value: d.to_string(),
            }),
            Value::Float(f) => Decimal::try_from(f).map_err(|_| ConversionError::OutOfRange {
                target: T,
                value: f.to_string(),
            }),
            Value::Null => Err(ConversionError::UnexpectedNull { target: T }),
            other => Err(ConversionError::WrongType {
                target: T,
                found: other.kind(),
            }),
        }
    }
}

/// Parses decimal text exactly. Trailing zeros after the point carry no
/// value (a `DECIMAL(65, 30)` column sends `1.500000000000000000000000000000`,
/// 30 digits of scale where `Decimal` holds 28), so they are dropped first;
/// what still does not fit is an error naming the limit, never rounded.
fn parse(s: &str) -> Result<Decimal, ConversionError> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let plain = digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1
        && digits.bytes().any(|b| b.is_ascii_digit());
    if !plain {
        // Scientific notation is accepted as a fallback.
        return Decimal::from_scientific(s).map_err(|e| ConversionError::Invalid {
            target: T,
            reason: format!("{s:?}: {e}"),
        });
    }
    let trimmed = if digits.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    };
    Decimal::from_str_exact(trimmed).map_err(|_| ConversionError::Invalid {
        target: T,
        reason: format!(
            "{s:?} does not fit: Decimal holds at most 28 digits after the point and a \
             magnitude below 2^96 (about 7.9e28); read the column as String, or narrow it \
             (DECIMAL(28, 10)) or ROUND() it in SQL"
        ),
    })
}

impl SqlType for Decimal {
    /// `DECIMAL(65, 30)`: holds every `Decimal` exactly (at most 28 digits
    /// after the point, and 29 before), so a value reads back as written. A
    /// narrower column (`#[orm(sql_type = "DECIMAL(10, 2)")]`) takes less
    /// space, but the server rounds what has more digits after the point
    /// than it holds (SQL's rule, a note and not an error even in strict
    /// mode) and refuses what has more before it.
    const COLUMN_TYPE: ColumnType = ColumnType::Decimal(65, 30);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_as_text() {
        let d = Decimal::new(-1250, 2);
        assert_eq!(d.to_value(), Value::Decimal("-12.50".into()));
        assert_eq!(Decimal::from_value(d.to_value()), Ok(d));
        assert_eq!(
            Decimal::from_value(Value::Text(" 3.000 ".into())),
            Ok(Decimal::new(3000, 3))
        );
        assert_eq!(Decimal::from_value(Value::Int(-7)), Ok(Decimal::from(-7)));
        assert_eq!(
            Decimal::from_value(Value::UInt(u64::MAX)),
            Ok(Decimal::from(u64::MAX))
        );
        assert_eq!(
            Decimal::from_value(Value::Double(0.5)),
            Ok(Decimal::new(5, 1))
        );
        assert_eq!(Decimal::COLUMN_TYPE, ColumnType::Decimal(65, 30));
    }

    #[test]
    fn bad_decimals_are_errors() {
        assert!(matches!(
            Decimal::from_value(Value::Decimal("12.x".into())),
            Err(ConversionError::Invalid { .. })
        ));
        let too_long = "1".repeat(40);
        assert!(matches!(
            Decimal::from_value(Value::Decimal(too_long)),
            Err(ConversionError::Invalid { .. })
        ));
        assert!(matches!(
            Decimal::from_value(Value::Double(f64::NAN)),
            Err(ConversionError::OutOfRange { .. })
        ));
        assert!(matches!(
            Decimal::from_value(Value::Null),
            Err(ConversionError::UnexpectedNull { .. })
        ));
        assert!(matches!(
            Decimal::from_value(Value::Bool(true)),
            Err(ConversionError::WrongType { .. })
        ));
    }

    #[test]
    fn trailing_zeros_read_and_what_does_not_fit_names_the_limit() {
        assert_eq!(
            Decimal::from_value(Value::Decimal("1.500000000000000000000000000000".into())),
            Ok(Decimal::new(15, 1))
        );
        assert_eq!(
            Decimal::from_value(Value::Decimal("-0.000000000000000000000000000000".into())),
            Ok(Decimal::ZERO)
        );
        assert_eq!(
            Decimal::from_value(Value::Decimal("100".into())),
            Ok(Decimal::from(100))
        );
        assert_eq!(
            Decimal::from_value(Value::Decimal("12.".into())),
            Ok(Decimal::from(12))
        );
        for too_big in [
            "0.000000000000000000000000000001",       // scale 30
            "123456789012345678901234567890123456.5", // 2^96 exceeded
        ] {
            let e = Decimal::from_value(Value::Decimal(too_big.into())).unwrap_err();
            assert!(e.to_string().contains("28 digits after the point"), "{e}");
        }
        assert_eq!(
            Decimal::from_value(Value::Text("1e3".into())),
            Ok(Decimal::from(1000))
        );
    }
}
