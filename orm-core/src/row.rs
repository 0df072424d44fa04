//! Rows as they come back from the backend.

use crate::value::Value;

/// One result row: its values in select-list order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// A row of these values.
    pub fn new(values: Vec<Value>) -> Self {
        Row { values }
    }

    /// The values, in select-list order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The value at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// Takes the values out.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// How many values the row has.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
