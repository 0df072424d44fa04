//! Rows as they come back from the backend.
//!
//! A backend may hand the same `Row` to the caller for every row of a result
//! set ([`Connection::query_each`](crate::backend::Connection::query_each)):
//! the caller takes the values it keeps out with [`Row::take`], and the
//! backend clears and refills the row, so that its allocation is reused.

use crate::value::Value;

/// One result row: its values in select-list order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// A row of these values.
    #[inline]
    pub fn new(values: Vec<Value>) -> Self {
        Row { values }
    }

    /// The values, in select-list order.
    #[inline]
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The value at `index`, if there is one.
    #[inline]
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// An empty row with room for `columns` values.
    #[inline]
    pub fn with_capacity(columns: usize) -> Self {
        Row {
            values: Vec::with_capacity(columns),
        }
    }

    /// Appends a value (backends filling a row).
    #[inline]
    pub fn push(&mut self, value: Value) {
        self.values.push(value);
    }

    /// Removes every value, keeping the allocation (backends reusing a row).
    #[inline]
    pub fn clear(&mut self) {
        self.values.clear();
    }

    /// Takes the value at `index` out, leaving `Value::Null` in its place
    /// (`Value::Null` too when there is no such value).
    #[inline]
    pub fn take(&mut self, index: usize) -> Value {
        self.values
            .get_mut(index)
            .map_or(Value::Null, std::mem::take)
    }

    /// Takes the whole row out, leaving an empty row with room for as many
    /// values (a backend refilling it allocates once, not on every push).
    #[inline]
    pub fn take_all(&mut self) -> Row {
        let room = Row::with_capacity(self.values.len());
        std::mem::replace(self, room)
    }

    /// Takes the values out.
    #[inline]
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// How many values the row has.
    #[inline]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no values.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
