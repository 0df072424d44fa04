//! Models: the static description of a table and the trait `#[derive(Model)]` implements.
//!
//! A model is a plain struct (`Clone`, owned data) whose fields map to
//! columns. Its [`TableDef`] is a `static` built by the derive; everything the
//! session and the schema tools need to know about the table is there.

use std::fmt;
use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::row::Row;
use crate::value::{ColumnType, FromValue, Value};

/// One column of a table.
#[derive(Debug)]
pub struct ColumnDef {
    /// The column name in the database.
    pub name: &'static str,
    /// The Rust field name.
    pub field: &'static str,
    /// The abstract type, mapped to DDL by the dialect.
    pub column_type: ColumnType,
    /// An explicit SQL type for DDL (`#[orm(sql_type = "VARCHAR(64)")]`),
    /// used verbatim instead of `column_type`.
    pub sql_type: Option<&'static str>,
    /// Whether NULL is allowed (the field is an `Option`).
    pub nullable: bool,
    /// Whether the column has a UNIQUE index (`#[orm(unique)]`).
    pub unique: bool,
    /// Whether the column has a plain index (`#[orm(index)]`).
    pub indexed: bool,
    /// `#[orm(default = expr)]`: the value INSERTed when the field is
    /// `None` (evaluated at each flush, then written into the object).
    pub default: Option<fn() -> Value>,
    /// `#[orm(on_update = expr)]`: the value sent with every UPDATE of the
    /// row that does not change this column itself (then written into the
    /// object).
    pub on_update: Option<fn() -> Value>,
    /// `#[orm(server_default = "SQL")]`: `DEFAULT SQL` in the DDL. A `None`
    /// field is left out of the INSERT so that the server fills it in; the
    /// value is fetched back with `RETURNING` where the server has it, else
    /// the object is expired and loads it at next use.
    pub server_default: Option<&'static str>,
    /// `#[orm(server_on_update = "SQL")]`: `ON UPDATE SQL` in the DDL (MySQL
    /// and MariaDB; SQLite has no such clause). An UPDATE of the row expires
    /// the object so that the server's value loads at next use.
    pub server_on_update: Option<&'static str>,
}

impl ColumnDef {
    /// A column with no index, no default and no explicit SQL type: the
    /// base for struct-update syntax in hand-written tables
    /// (`ColumnDef { unique: true, ..ColumnDef::new("name", "name", ty, false) }`).
    pub const fn new(
        name: &'static str,
        field: &'static str,
        column_type: ColumnType,
        nullable: bool,
    ) -> ColumnDef {
        ColumnDef {
            name,
            field,
            column_type,
            sql_type: None,
            nullable,
            unique: false,
            indexed: false,
            default: None,
            on_update: None,
            server_default: None,
            server_on_update: None,
        }
    }
}

/// A foreign key: `column` refers to the primary key of `target`.
#[derive(Debug)]
pub struct ForeignKeyDef {
    /// Index of the referencing column in [`TableDef::columns`].
    pub column: usize,
    /// The referenced model's table (a function so that models may refer to
    /// each other, or to themselves).
    pub target: fn() -> &'static TableDef,
    /// What the database does to this row when the referenced row is
    /// deleted (`#[orm(references = Parent, on_delete = "cascade")]`).
    pub on_delete: OnDelete,
}

/// A foreign key's `ON DELETE` action, emitted by `create_all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// No clause: the database refuses to delete a referenced row.
    Restrict,
    /// `ON DELETE CASCADE`: the referencing rows are deleted too.
    Cascade,
    /// `ON DELETE SET NULL`: the reference is cleared (the column must be nullable).
    SetNull,
}

/// The static description of a model's table.
#[derive(Debug)]
pub struct TableDef {
    /// The table name.
    pub name: &'static str,
    /// The Rust type name, for messages.
    pub model: &'static str,
    /// The persisted columns, in field order.
    pub columns: &'static [ColumnDef],
    /// Indices (into `columns`) of the primary key, in key order.
    pub primary_key: &'static [usize],
    /// Index of the auto-increment column, if any (always part of the key).
    pub auto_increment: Option<usize>,
    /// Index of the optimistic-lock version column, if any.
    pub version: Option<usize>,
    /// Foreign keys declared with `references = Parent` (or implied by a
    /// many-to-one relationship).
    pub foreign_keys: &'static [ForeignKeyDef],
    /// Relationships to other models, in field order.
    pub relationships: &'static [crate::relationship::RelationshipDef],
}

impl TableDef {
    /// The column at `index`.
    pub fn column(&self, index: usize) -> &'static ColumnDef {
        &self.columns[index]
    }

    /// The index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The relationship declared by field `name`.
    pub fn relationship(
        &self,
        name: &str,
    ) -> Option<(usize, &'static crate::relationship::RelationshipDef)> {
        self.relationships
            .iter()
            .enumerate()
            .find(|(_, r)| r.name == name)
    }

    /// Whether `index` is part of the primary key.
    pub fn is_key_column(&self, index: usize) -> bool {
        self.primary_key.contains(&index)
    }
}

impl PartialEq for TableDef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

/// A primary-key value: one [`Value`] per key column, in key order.
///
/// Immutable and cheap to clone: a one-column key holds its value inline (no
/// allocation for the common integer key: loading an object costs one
/// allocation less), a composite key a shared slice.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key(KeyRepr);

/// One value inline, or several shared. A one-value key is always `One`, so
/// that the derived equality and hash agree between constructors.
#[derive(Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    One(Value),
    Many(std::sync::Arc<[Value]>),
}

impl Key {
    /// A key of these values, in key-column order.
    pub fn new(mut values: Vec<Value>) -> Self {
        if values.len() == 1 {
            if let Some(one) = values.pop() {
                return Key(KeyRepr::One(one));
            }
        }
        Key(KeyRepr::Many(values.into()))
    }

    /// A key of one column.
    pub fn single(v: impl crate::value::ToValue) -> Self {
        Key(KeyRepr::One(v.to_value()))
    }

    /// A key of one column's value.
    pub(crate) fn one(value: Value) -> Self {
        Key(KeyRepr::One(value))
    }

    /// A key from an iterator of values (no allocation for one value).
    pub fn from_values(values: impl IntoIterator<Item = Value>) -> Self {
        let mut values = values.into_iter();
        let Some(first) = values.next() else {
            return Key(KeyRepr::Many(std::sync::Arc::from(Vec::new())));
        };
        match values.next() {
            None => Key(KeyRepr::One(first)),
            Some(second) => {
                let mut all = vec![first, second];
                all.extend(values);
                Key(KeyRepr::Many(all.into()))
            }
        }
    }

    /// The values, in key-column order.
    pub fn values(&self) -> &[Value] {
        match &self.0 {
            KeyRepr::One(v) => std::slice::from_ref(v),
            KeyRepr::Many(vs) => vs,
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Key").field(&self.values()).finish()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.values() {
            [one] => write!(f, "{one}"),
            many => {
                f.write_str("(")?;
                for (i, v) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Something usable as a primary key for `session.get::<M>(key)`: a single
/// value for one-column keys, a tuple for composite keys, or a [`Key`].
pub trait IntoKey {
    /// The key.
    fn into_key(self) -> Key;
}

impl IntoKey for Key {
    fn into_key(self) -> Key {
        self
    }
}

macro_rules! scalar_key {
    ($($t:ty),*) => {$(
        impl IntoKey for $t {
            fn into_key(self) -> Key { Key::single(self) }
        }
    )*};
}
scalar_key!(i8, i16, i32, i64, u8, u16, u32, u64, isize, usize, String, &str, bool);

macro_rules! tuple_key {
    ($($name:ident),+) => {
        impl<$($name: crate::value::ToValue),+> IntoKey for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_key(self) -> Key {
                let ($($name,)+) = self;
                Key::new(vec![$($name.to_value()),+])
            }
        }
    };
}
tuple_key!(A, B);
tuple_key!(A, B, C);
tuple_key!(A, B, C, D);

/// Reads a primary key back as Rust values: a single value for one-column
/// keys (`i64`, `String`, ...), a tuple for composite keys. Used by
/// [`crate::session::Obj::key`].
pub trait FromKey: Sized {
    /// Converts, or says why not.
    fn from_key(key: &Key) -> Result<Self, crate::value::ConversionError>;
}

fn key_arity(key: &Key, n: usize) -> Result<(), crate::value::ConversionError> {
    if key.values().len() == n {
        Ok(())
    } else {
        Err(crate::value::ConversionError::Invalid {
            target: "primary key",
            reason: format!(
                "the key has {} column(s), the requested type {n}; use a tuple for a composite key",
                key.values().len()
            ),
        })
    }
}

impl<T: crate::value::FromValue> FromKey for T {
    fn from_key(key: &Key) -> Result<Self, crate::value::ConversionError> {
        key_arity(key, 1)?;
        T::from_value(key.values()[0].clone())
    }
}

macro_rules! tuple_from_key {
    ($n:expr; $($name:ident : $i:tt),+) => {
        impl<$($name: crate::value::FromValue),+> FromKey for ($($name,)+) {
            fn from_key(key: &Key) -> Result<Self, crate::value::ConversionError> {
                key_arity(key, $n)?;
                Ok(($($name::from_value(key.values()[$i].clone())?,)+))
            }
        }
    };
}
tuple_from_key!(2; A: 0, B: 1);
tuple_from_key!(3; A: 0, B: 1, C: 2);
tuple_from_key!(4; A: 0, B: 1, C: 2, D: 3);

/// A mapped struct. Implement it with `#[derive(Model)]`; implementing it by
/// hand is possible but the derive is the supported way.
///
/// Column indices used by the methods below are positions in
/// [`TableDef::columns`].
pub trait Model: Clone + 'static {
    /// The table description.
    fn table() -> &'static TableDef;

    /// Builds the struct from a row whose values are in column order.
    fn from_row(row: Row) -> Result<Self>;

    /// Builds the struct from a row whose values are in column order,
    /// taking the values it needs out of `row` (left `Value::Null`), so that
    /// the caller can reuse the row's allocation for the next row. The
    /// derive generates it (its `from_row` calls it); the default moves the
    /// whole row into [`from_row`](Self::from_row).
    fn from_row_taking(row: &mut Row) -> Result<Self> {
        Self::from_row(row.take_all())
    }

    /// All column values, in column order.
    fn to_values(&self) -> Vec<Value>;

    /// The value of one column.
    fn column_value(&self, index: usize) -> Value;

    /// Whether column `index` holds `value` (`column_value(index) == *value`
    /// without building the column's value; the derive generates it). Used
    /// by the flush to find the columns changed since the snapshot.
    fn column_eq(&self, index: usize, value: &Value) -> bool {
        self.column_value(index) == *value
    }

    /// Whether column `index` holds the same value in `self` and `other`
    /// (the derive generates it, comparing the fields with
    /// [`ToValue::same_as`](crate::value::ToValue::same_as)). The flush
    /// finds the columns changed since a written object's snapshot, a copy
    /// of the object, with it.
    fn column_same(&self, other: &Self, index: usize) -> bool {
        self.column_eq(index, &other.column_value(index))
    }

    /// Sets one column from a value (generated keys, version bumps, refresh, merge).
    fn set_column_value(&mut self, index: usize, value: Value) -> Result<()>;

    /// Whether the model implements [`crate::session::ModelEvents`] and
    /// asked for it with `#[orm(events)]`. Set by the derive.
    #[doc(hidden)]
    const EVENTS: bool = false;

    /// Calls the model's [`crate::session::ModelEvents`] method for `event`.
    /// Generated by the derive under `#[orm(events)]`; the default does
    /// nothing.
    #[doc(hidden)]
    fn model_event(
        _event: crate::session::ModelEvent,
        _session: &crate::session::Session,
        _obj: &crate::session::Obj<Self>,
    ) -> Result<()> {
        Ok(())
    }

    /// The primary key, or `None` while any key column is unset (an
    /// auto-increment key before insert).
    fn primary_key(&self) -> Option<Key> {
        let table = Self::table();
        if let [i] = table.primary_key {
            // One column: the key holds its value inline, no list to build
            // (the flush and `add` ask for every object's key).
            let v = self.column_value(*i);
            return (!v.is_null()).then_some(Key(KeyRepr::One(v)));
        }
        let mut values = Vec::with_capacity(table.primary_key.len());
        for &i in table.primary_key {
            let v = self.column_value(i);
            if v.is_null() {
                return None;
            }
            values.push(v);
        }
        Some(Key::new(values))
    }
}

/// Reads a [`Row`] into fields in column order, naming table and column in
/// every error. Used by the code `#[derive(Model)]` generates.
pub struct RowReader {
    values: std::vec::IntoIter<Value>,
    table: &'static TableDef,
    index: usize,
}

impl RowReader {
    /// Starts reading `row` for `table`.
    pub fn new(row: Row, table: &'static TableDef) -> Self {
        RowReader {
            values: row.into_values().into_iter(),
            table,
            index: 0,
        }
    }

    /// Decodes the next column.
    #[allow(clippy::should_implement_trait)] // generic over the item type: not an Iterator
    pub fn next<T: FromValue>(&mut self) -> Result<T> {
        let column = self.table.columns.get(self.index).map_or("?", |c| c.name);
        self.index += 1;
        let value = self.values.next().ok_or_else(|| {
            Error::invalid(format!(
                "row for table `{}` has too few columns: column `{column}` is missing; select every column of the model",
                self.table.name
            ))
        })?;
        T::from_value(value).map_err(|source| Error::Decode {
            table: self.table.name,
            column,
            source,
        })
    }
}

/// Decodes a value for column `index` of `table`, naming both in the error.
/// Used by generated `set_column_value`.
pub fn decode_column<T: FromValue>(
    table: &'static TableDef,
    index: usize,
    value: Value,
) -> Result<T> {
    T::from_value(value).map_err(|source| Error::Decode {
        table: table.name,
        column: table.columns.get(index).map_or("?", |c| c.name),
        source,
    })
}

/// A typed handle on one column of model `M` whose field type is `T`, as
/// generated by the derive (`User::NAME`). Filters built from it are typed:
/// `User::NAME.eq(3)` does not compile when `NAME` is a `String` column.
pub struct Column<M, T> {
    /// The column's index in the table.
    pub index: usize,
    /// The column's name.
    pub name: &'static str,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Column<M, T> {
    /// Used by generated code.
    pub const fn new(index: usize, name: &'static str) -> Self {
        Column {
            index,
            name,
            _marker: PhantomData,
        }
    }
}

impl<M, T> Clone for Column<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, T> Copy for Column<M, T> {}

impl<M, T> fmt::Debug for Column<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Column({})", self.name)
    }
}
