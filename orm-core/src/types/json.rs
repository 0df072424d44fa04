//! `serde_json::Value`, a JSON document stored as text in a JSON column.

use crate::value::{ColumnType, ConversionError, FromValue, SqlType, ToValue, Value};

const T: &str = "serde_json::Value";

impl ToValue for serde_json::Value {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl FromValue for serde_json::Value {
    fn from_value(v: Value) -> Result<Self, ConversionError> {
        let invalid = |e: serde_json::Error| ConversionError::Invalid {
            target: T,
            reason: format!("not a JSON document: {e}"),
        };
        match v {
            Value::Text(s) => serde_json::from_str(&s).map_err(invalid),
            Value::Bytes(b) => serde_json::from_slice(&b).map_err(invalid),
            Value::Null => Err(ConversionError::UnexpectedNull { target: T }),
            other => Err(ConversionError::WrongType {
                target: T,
                found: other.kind(),
            }),
        }
    }
}

impl SqlType for serde_json::Value {
    const COLUMN_TYPE: ColumnType = ColumnType::Json;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_as_text() {
        let doc = json!({"a": [1, 2.5, null], "b": "x"});
        let v = doc.to_value();
        assert!(matches!(&v, Value::Text(_)));
        assert_eq!(serde_json::Value::from_value(v), Ok(doc.clone()));
        assert_eq!(
            serde_json::Value::from_value(Value::Bytes(b"[true]".to_vec())),
            Ok(json!([true]))
        );
        // JSON null is a document, SQL NULL is not.
        assert_eq!(
            serde_json::Value::from_value(Value::Text("null".into())),
            Ok(serde_json::Value::Null)
        );
        assert_eq!(serde_json::Value::COLUMN_TYPE, ColumnType::Json);
    }

    #[test]
    fn bad_json_is_an_error() {
        assert!(matches!(
            serde_json::Value::from_value(Value::Text("{".into())),
            Err(ConversionError::Invalid { .. })
        ));
        assert!(matches!(
            serde_json::Value::from_value(Value::Null),
            Err(ConversionError::UnexpectedNull { .. })
        ));
        assert!(matches!(
            serde_json::Value::from_value(Value::Int(1)),
            Err(ConversionError::WrongType { .. })
        ));
    }
}
