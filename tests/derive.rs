//! `#[derive(Model)]` without a database: the generated table description,
//! row round trips, decode errors, `set_column_value` and column handles.

use orm::model::Model;
use orm::row::Row;
use orm::{Column, ColumnType, Error, Key, Value};

/// Every supported scalar type, once plain and once as an `Option`.
#[derive(Debug, Clone, PartialEq, orm::Model)]
struct AllTypes {
    #[orm(primary_key, auto_increment)]
    id: Option<u64>,
    a_i8: i8,
    a_i16: i16,
    a_i32: i32,
    a_i64: i64,
    a_u8: u8,
    a_u16: u16,
    a_u32: u32,
    a_u64: u64,
    a_f32: f32,
    a_f64: f64,
    a_bool: bool,
    a_string: String,
    a_bytes: Vec<u8>,
    o_i32: Option<i32>,
    o_u64: Option<u64>,
    o_f64: Option<f64>,
    o_bool: Option<bool>,
    o_string: Option<String>,
    o_bytes: Option<Vec<u8>>,
}

fn sample() -> AllTypes {
    AllTypes {
        id: Some(7),
        a_i8: i8::MIN,
        a_i16: i16::MAX,
        a_i32: -3,
        a_i64: i64::MIN,
        a_u8: u8::MAX,
        a_u16: 16,
        a_u32: u32::MAX,
        a_u64: u64::MAX,
        a_f32: 1.5,
        a_f64: -2.25,
        a_bool: true,
        a_string: "héllo".into(),
        a_bytes: vec![0, 255, 1],
        o_i32: None,
        o_u64: Some(3),
        o_f64: None,
        o_bool: Some(false),
        o_string: Some("x".into()),
        o_bytes: None,
    }
}

#[test]
fn table_def_describes_every_type() {
    let t = AllTypes::table();
    assert_eq!(t.name, "all_types");
    assert_eq!(t.model, "AllTypes");
    assert_eq!(t.columns.len(), 20);
    assert_eq!(t.primary_key, &[0]);
    assert_eq!(t.auto_increment, Some(0));
    assert_eq!(t.version, None);
    assert!(t.foreign_keys.is_empty());
    let expect = [
        ("id", ColumnType::BigInt { unsigned: true }, true),
        ("a_i8", ColumnType::TinyInt { unsigned: false }, false),
        ("a_i16", ColumnType::SmallInt { unsigned: false }, false),
        ("a_i32", ColumnType::Int { unsigned: false }, false),
        ("a_i64", ColumnType::BigInt { unsigned: false }, false),
        ("a_u8", ColumnType::TinyInt { unsigned: true }, false),
        ("a_u16", ColumnType::SmallInt { unsigned: true }, false),
        ("a_u32", ColumnType::Int { unsigned: true }, false),
        ("a_u64", ColumnType::BigInt { unsigned: true }, false),
        ("a_f32", ColumnType::Float, false),
        ("a_f64", ColumnType::Double, false),
        ("a_bool", ColumnType::Bool, false),
        ("a_string", ColumnType::VarChar(255), false),
        ("a_bytes", ColumnType::Blob, false),
        ("o_i32", ColumnType::Int { unsigned: false }, true),
        ("o_u64", ColumnType::BigInt { unsigned: true }, true),
        ("o_f64", ColumnType::Double, true),
        ("o_bool", ColumnType::Bool, true),
        ("o_string", ColumnType::VarChar(255), true),
        ("o_bytes", ColumnType::Blob, true),
    ];
    for (c, (name, ty, nullable)) in t.columns.iter().zip(expect) {
        assert_eq!(
            (c.name, c.field, c.column_type, c.nullable),
            (name, name, ty, nullable)
        );
        assert_eq!((c.sql_type, c.unique, c.indexed), (None, false, false));
    }
}

#[test]
fn values_round_trip_through_a_row() {
    let m = sample();
    let values = m.to_values();
    assert_eq!(values[0], Value::UInt(7));
    assert_eq!(values[1], Value::Int(-128));
    assert_eq!(values[8], Value::UInt(u64::MAX));
    assert_eq!(values[14], Value::Null);
    assert_eq!(AllTypes::from_row(Row::new(values.clone())).unwrap(), m);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(&m.column_value(i), v, "column {i}");
    }
    assert_eq!(m.primary_key(), Some(Key::new(vec![Value::UInt(7)])));
    let unsaved = AllTypes { id: None, ..m };
    assert_eq!(unsaved.primary_key(), None);
}

#[test]
fn decode_errors_name_table_and_column() {
    let mut values = sample().to_values();
    values[12] = Value::Null; // a_string: String
    let e = AllTypes::from_row(Row::new(values)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Decode {
                table: "all_types",
                column: "a_string",
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("`all_types`.`a_string`") && text.contains("Option<String>"),
        "{text}"
    );

    let mut values = sample().to_values();
    values[1] = Value::Int(300); // a_i8
    let e = AllTypes::from_row(Row::new(values)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Decode {
                table: "all_types",
                column: "a_i8",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("out of range"), "{e}");

    let short = sample().to_values()[..5].to_vec();
    let e = AllTypes::from_row(Row::new(short)).unwrap_err();
    assert!(e.to_string().contains("a_u8"), "{e}");
}

#[test]
fn set_column_value_decodes_by_index() {
    let mut m = sample();
    m.set_column_value(0, Value::UInt(99)).unwrap();
    assert_eq!(m.id, Some(99));
    m.set_column_value(12, Value::Text("new".into())).unwrap();
    assert_eq!(m.a_string, "new");
    m.set_column_value(14, Value::Int(5)).unwrap();
    assert_eq!(m.o_i32, Some(5));

    let e = m.set_column_value(2, Value::Int(1 << 20)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Decode {
                column: "a_i16",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(m.a_i16, i16::MAX, "a failed set leaves the field alone");
    let e = m.set_column_value(3, Value::Null).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Decode {
                column: "a_i32",
                ..
            }
        ),
        "{e:?}"
    );

    let e = m.set_column_value(20, Value::Null).unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    assert!(e.to_string().contains("index 20"), "{e}");
}

#[test]
#[should_panic(expected = "no column at index 20")]
fn column_value_out_of_range_is_a_bug() {
    sample().column_value(20);
}

#[derive(Debug, Clone, PartialEq, orm::Model)]
#[orm(table = "users")]
pub struct User {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    #[orm(unique, sql_type = "VARCHAR(64)")]
    pub name: String,
    #[orm(column = "mail", index)]
    pub email: Option<String>,
    #[orm(version)]
    pub version: i32,
    #[orm(skip)]
    pub cache: Vec<String>,
    #[orm(references = User)]
    pub manager_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, orm::Model)]
struct BlogPost {
    #[orm(primary_key)]
    #[orm(references = User)]
    author_id: i64,
    #[orm(primary_key)]
    slug: String,
    #[orm(references = crate::User)]
    editor_id: Option<i64>,
    r#type: String,
}

#[test]
fn attributes_shape_the_table() {
    let t = User::table();
    assert_eq!(t.name, "users");
    let names: Vec<_> = t.columns.iter().map(|c| (c.name, c.field)).collect();
    assert_eq!(
        names,
        [
            ("id", "id"),
            ("name", "name"),
            ("mail", "email"),
            ("version", "version"),
            ("manager_id", "manager_id")
        ]
    );
    assert_eq!(t.columns[1].sql_type, Some("VARCHAR(64)"));
    assert!(t.columns[1].unique && !t.columns[1].indexed);
    assert!(t.columns[2].indexed && !t.columns[2].unique);
    assert_eq!(t.version, Some(3));
    assert_eq!(t.auto_increment, Some(0));
    assert_eq!(t.primary_key, &[0]);
    assert_eq!(t.foreign_keys.len(), 1);
    assert_eq!(t.foreign_keys[0].column, 4);
    assert!(
        std::ptr::eq((t.foreign_keys[0].target)(), User::table()),
        "self-reference"
    );
}

#[test]
fn skipped_fields_are_defaulted() {
    let u = User {
        id: Some(1),
        name: "ann".into(),
        email: None,
        version: 2,
        cache: vec!["not stored".into()],
        manager_id: None,
    };
    let values = u.to_values();
    assert_eq!(values.len(), 5);
    let back = User::from_row(Row::new(values)).unwrap();
    assert!(back.cache.is_empty());
    assert_eq!(back, User { cache: vec![], ..u });
}

#[test]
fn composite_keys_and_default_table_name() {
    let t = BlogPost::table();
    assert_eq!(t.name, "blog_post");
    assert_eq!(t.primary_key, &[0, 1]);
    assert_eq!(t.auto_increment, None);
    assert_eq!(t.columns[3].name, "type");
    let fks: Vec<_> = t
        .foreign_keys
        .iter()
        .map(|f| (f.column, (f.target)().name))
        .collect();
    assert_eq!(fks, [(0, "users"), (2, "users")]);
    let p = BlogPost {
        author_id: 3,
        slug: "hello".into(),
        editor_id: None,
        r#type: "note".into(),
    };
    assert_eq!(
        p.primary_key(),
        Some(Key::new(vec![Value::Int(3), Value::Text("hello".into())]))
    );
    assert_eq!(BlogPost::from_row(Row::new(p.to_values())).unwrap(), p);
}

#[test]
fn column_handles_are_typed() {
    let id: Column<User, Option<i64>> = User::ID;
    let email: Column<User, Option<String>> = User::EMAIL;
    let manager: Column<User, Option<i64>> = User::MANAGER_ID;
    assert_eq!((id.index, id.name), (0, "id"));
    assert_eq!((email.index, email.name), (2, "mail"));
    assert_eq!((manager.index, manager.name), (4, "manager_id"));
    assert_eq!(BlogPost::TYPE.name, "type");
    let slug: Column<BlogPost, String> = BlogPost::SLUG;
    assert_eq!(slug.index, 1);
}

/// The types of other crates (`cargo test --all-features`).
#[cfg(all(
    feature = "chrono",
    feature = "decimal",
    feature = "json",
    feature = "uuid"
))]
mod feature_types {
    use super::*;

    #[derive(Debug, Clone, PartialEq, orm::Model)]
    struct Event {
        #[orm(primary_key)]
        id: uuid::Uuid,
        day: chrono::NaiveDate,
        at: chrono::NaiveDateTime,
        time: Option<chrono::NaiveTime>,
        utc: chrono::DateTime<chrono::Utc>,
        #[orm(sql_type = "DECIMAL(10, 2)")]
        price: rust_decimal::Decimal,
        payload: serde_json::Value,
    }

    #[test]
    fn feature_types_map_and_round_trip() {
        let t = Event::table();
        let types: Vec<_> = t.columns.iter().map(|c| c.column_type).collect();
        assert_eq!(
            types,
            [
                ColumnType::Uuid,
                ColumnType::Date,
                ColumnType::DateTime,
                ColumnType::Time,
                ColumnType::DateTime,
                ColumnType::Decimal(65, 30),
                ColumnType::Json,
            ]
        );
        assert_eq!(t.columns[5].sql_type, Some("DECIMAL(10, 2)"));
        let at = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_micro_opt(3, 4, 5, 6)
            .unwrap();
        let e = Event {
            id: uuid::Uuid::from_u128(42),
            day: at.date(),
            at,
            time: Some(at.time()),
            utc: at.and_utc(),
            price: rust_decimal::Decimal::new(1999, 2),
            payload: serde_json::json!({"k": [1, 2]}),
        };
        assert_eq!(Event::from_row(Row::new(e.to_values())).unwrap(), e);
        let mut values = e.to_values();
        values[1] = Value::Text("not a date".into());
        let err = Event::from_row(Row::new(values)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Decode {
                    table: "event",
                    column: "day",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
