//! Column defaults and generated values at flush time.
//!
//! - `default = expr`: an INSERT whose field is `None` sends `expr` instead,
//!   and the flush writes it into the object.
//! - `on_update = expr`: every UPDATE of the row that does not change that
//!   column sends `expr` for it too, written into the object.
//! - `server_default = "SQL"`: an INSERT whose field is `None` leaves the
//!   column out, so the server's `DEFAULT` applies; the value comes back
//!   with `RETURNING` where the server has it (MariaDB 10.5+, SQLite),
//!   else the object is expired and loads it at its next use.
//! - `server_on_update = "SQL"`: the server changes the column on UPDATE
//!   (MySQL's `ON UPDATE`); MariaDB has no `UPDATE ... RETURNING`, so the
//!   flush expires the object.

use crate::model::TableDef;
use crate::value::Value;

use super::column_set::ColumnSet;
use super::persistence::UpdateRow;

/// Fills the `default` columns of an INSERT whose value is NULL, and lists
/// the columns whose final value the flush writes back into the object
/// (those, and the `server_default` columns left for the server).
pub(crate) fn insert_defaults(table: &TableDef, values: &mut [Value], synced: &mut ColumnSet) {
    for (i, column) in table.columns.iter().enumerate() {
        if !values[i].is_null() {
            continue;
        }
        if let Some(default) = column.default {
            values[i] = default();
            synced.insert(i);
        } else if column.server_default.is_some() {
            synced.insert(i);
        }
    }
}

/// Adds the `on_update` columns the UPDATE does not change already.
pub(crate) fn update_defaults(row: &mut UpdateRow) {
    let table = row.obj.table();
    for (i, column) in table.columns.iter().enumerate() {
        let Some(on_update) = column.on_update else {
            continue;
        };
        if !row.columns.contains(i) {
            row.set(i, on_update());
            row.push_synced(i);
        }
    }
}

/// Whether the INSERTed values still lack a value the server generated
/// (a `server_default` column the server could not return).
pub(crate) fn expire_after_insert(table: &TableDef, values: &[Value]) -> bool {
    table
        .columns
        .iter()
        .zip(values)
        .any(|(c, v)| c.server_default.is_some() && v.is_null())
}

/// Whether the table has `server_default` columns, and `server_on_update`
/// columns (whose UPDATE leaves the server's values to load). Once per
/// table and flush, so that tables without them pay nothing per row.
pub(crate) fn server_columns(table: &TableDef) -> (bool, bool) {
    let defaults = table.columns.iter().any(|c| c.server_default.is_some());
    let on_update = table.columns.iter().any(|c| c.server_on_update.is_some());
    (defaults, on_update)
}

/// The `server_default` columns of an INSERT left to the server: a bit per
/// such column (the first 64 of a table; later ones are always sent).
pub(crate) fn server_omitted(table: &TableDef, values: &[Value]) -> u64 {
    let mut mask = 0u64;
    let mut k = 0;
    for (i, column) in table.columns.iter().enumerate() {
        if column.server_default.is_some() {
            if k < 64 && values[i].is_null() {
                mask |= 1 << k;
            }
            k += 1;
        }
    }
    mask
}

/// The column indices of the server-default columns in `mask`.
pub(crate) fn omitted_columns(table: &TableDef, mask: u64) -> Vec<usize> {
    if mask == 0 {
        return Vec::new();
    }
    table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.server_default.is_some())
        .take(64)
        .enumerate()
        .filter(|(k, _)| mask & (1 << k) != 0)
        .map(|(_, (i, _))| i)
        .collect()
}
