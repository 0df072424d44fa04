//! `uuid::Uuid`, stored as its 36-character hyphenated lower-case text.

use ::uuid::Uuid;

use crate::value::{ColumnType, ConversionError, FromValue, SqlType, ToValue, Value};

const T: &str = "Uuid";

impl ToValue for Uuid {
    fn to_value(&self) -> Value {
        Value::Text(self.hyphenated().to_string())
    }
}

impl FromValue for Uuid {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        let invalid = |reason: String| ConversionError::Invalid { target: T, reason };
        match v {
            Value::Text(s) => Uuid::parse_str(s.trim()).map_err(|e| invalid(format!("{s:?}: {e}"))),
            // BINARY(16) columns hold the raw bytes; CHAR(36) read as bytes hold the text.
            Value::Bytes(b) if b.len() == 16 => {
                Uuid::from_slice(&b).map_err(|e| invalid(e.to_string()))
            }
            Value::Bytes(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| Uuid::parse_str(s.trim()).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "{} bytes are neither 16 raw bytes nor UUID text",
                        b.len()
                    ))
                }),
            Value::Null => Err(ConversionError::UnexpectedNull { target: T }),
            other => Err(ConversionError::WrongType {
                target: T,
                found: other.kind(),
            }),
        }
    }
}

impl SqlType for Uuid {
    const COLUMN_TYPE: ColumnType = ColumnType::Uuid;
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

    #[test]
    fn uuids_round_trip_as_text() {
        let u = Uuid::parse_str(TEXT).unwrap();
        assert_eq!(u.to_value(), Value::Text(TEXT.into()));
        assert_eq!(Uuid::from_value(u.to_value()), Ok(u));
        assert_eq!(Uuid::from_value(Value::Text(TEXT.to_uppercase())), Ok(u));
        assert_eq!(Uuid::from_value(Value::Bytes(u.as_bytes().to_vec())), Ok(u));
        assert_eq!(
            Uuid::from_value(Value::Bytes(TEXT.as_bytes().to_vec())),
            Ok(u)
        );
        assert_eq!(Uuid::COLUMN_TYPE, ColumnType::Uuid);
    }

    #[test]
    fn bad_uuids_are_errors() {
        assert!(matches!(
            Uuid::from_value(Value::Text("nope".into())),
            Err(ConversionError::Invalid { .. })
        ));
        assert!(matches!(
            Uuid::from_value(Value::Bytes(vec![1, 2, 3])),
            Err(ConversionError::Invalid { .. })
        ));
        assert!(matches!(
            Uuid::from_value(Value::Null),
            Err(ConversionError::UnexpectedNull { .. })
        ));
        assert!(matches!(
            Uuid::from_value(Value::Int(5)),
            Err(ConversionError::WrongType { .. })
        ));
    }
}
