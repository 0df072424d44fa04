//! Turning the unit of work's plan into SQL: batched INSERTs (with
//! `RETURNING` where the server has it), batched UPDATEs of the changed
//! columns only, batched DELETEs, and the row-count checks of optimistic
//! locking. Called only by the unit of work.

use std::rc::Rc;

use crate::backend::{Dialect, ServerInfo, ServerKind, UpdateBatch};
use crate::engine::{Engine, PooledConnection};
use crate::error::{Error, Result};
use crate::expr::push_placeholders;
use crate::model::{Key, TableDef};
use crate::sql_texts::SqlKey;
use crate::value::Value;

use super::binds::{BindIdx, Binds};
use super::column_set::ColumnSet;
use super::object::AnyObj;
use super::unit_of_work::InsertRow;

/// Everything the statements need to know about the connection.
pub(crate) struct Ctx<'a> {
    pub conn: &'a mut PooledConnection,
    /// The connection's engine: its dialect and reused statement texts.
    pub engine: &'a Engine,
    pub server: ServerInfo,
}

/// The flush's connections: one [`Ctx`] per engine the plan writes to,
/// and how a table's rows (on a shard) find theirs.
pub(crate) struct Conns<'a> {
    pub ctxs: Vec<(BindIdx, Ctx<'a>)>,
    pub binds: &'a Binds,
}

impl<'a> Conns<'a> {
    /// The connection of `table`'s rows (on `shard` in a sharded session).
    pub fn ctx(&mut self, table: &TableDef, shard: Option<u16>) -> Result<&mut Ctx<'a>> {
        let bind = self.binds.for_table(table.name, shard);
        self.ctxs
            .iter_mut()
            .find(|(b, _)| *b == bind)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "internal error: the flush has no connection for table `{}`",
                    table.name
                ))
            })
    }
}

/// The shard of an object (`None` outside a sharded session).
pub(crate) fn shard_of(obj: &Rc<dyn AnyObj>) -> Option<u16> {
    obj.meta().borrow().shard()
}

/// Splits `rows` (already sorted by shard) into runs of one shard.
pub(crate) fn shard_runs<T>(
    rows: &[T],
    obj: impl Fn(&T) -> &Rc<dyn AnyObj>,
) -> Vec<(Option<u16>, std::ops::Range<usize>)> {
    let mut out: Vec<(Option<u16>, std::ops::Range<usize>)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let shard = shard_of(obj(row));
        match out.last_mut() {
            Some((s, range)) if *s == shard => range.end = i + 1,
            _ => out.push((shard, i..i + 1)),
        }
    }
    out
}

impl<'a> Ctx<'a> {
    /// The engine's SQL dialect.
    pub fn dialect(&self) -> &'a dyn Dialect {
        self.engine.dialect()
    }

    fn ident(&self, name: &str, sql: &mut String) {
        self.dialect().quote_ident(name, sql);
    }

    /// The bytes of parameters a statement may carry: the server's packet
    /// limit, less room for the statement text and packet headers.
    fn packet_budget(&self) -> usize {
        self.server
            .max_allowed_packet
            .saturating_sub(64 * 1024)
            .max(1024)
    }

    /// Rows of `per_row` placeholders and about `row_bytes` bytes that fit one statement.
    fn rows_per_statement(&self, per_row: usize, row_bytes: usize) -> usize {
        let by_placeholders = self.server.max_placeholders / per_row.max(1);
        let budget = self.packet_budget();
        let by_bytes = budget / (row_bytes + 4 * per_row).max(1);
        by_placeholders.min(by_bytes).max(1)
    }
}

/// An UPDATE to send for one object: which columns it sets. The new
/// values are read from the object when the statement is built, except
/// those the flush sets itself (see [`UpdateRow::set`]).
pub(crate) struct UpdateRow {
    pub obj: Rc<dyn AnyObj>,
    /// The columns the UPDATE sets.
    pub columns: ColumnSet,
    /// What only some rows have, boxed so that a plain changed object's row
    /// stays small and allocation-free.
    extra: Option<Box<UpdateExtra>>,
}

#[derive(Default)]
struct UpdateExtra {
    /// The row's key, for a row that is not the object's own (a row
    /// switch); else the object's identity key is the row's.
    old_key: Option<Key>,
    /// The version before the bump, if the table is versioned.
    old_version: Option<Value>,
    /// (column, value) for the set columns whose value is not the
    /// object's: foreign keys from relationships, `on_update` values.
    overrides: Vec<(usize, Value)>,
    /// Foreign-key columns whose value is the key of an object INSERTed
    /// earlier in the same flush, filled in just before sending.
    patches: Vec<(usize, Rc<dyn AnyObj>)>,
    /// Columns set from relationships or defaults, written back into the
    /// object once the flush succeeded.
    synced: ColumnSet,
}

impl UpdateRow {
    /// The UPDATE of a persistent object's own row (the one its identity
    /// key names; the flush changes that key only after the statements).
    pub fn new(obj: Rc<dyn AnyObj>, columns: ColumnSet, old_version: Option<Value>) -> Self {
        let extra = old_version.map(|v| {
            Box::new(UpdateExtra {
                old_version: Some(v),
                ..UpdateExtra::default()
            })
        });
        UpdateRow {
            obj,
            columns,
            extra,
        }
    }

    /// The UPDATE of the row of key `row_key`, which a pending object takes
    /// over (a row switch).
    pub fn switched(
        obj: Rc<dyn AnyObj>,
        row_key: Key,
        columns: ColumnSet,
        old_version: Option<Value>,
    ) -> Self {
        UpdateRow {
            obj,
            columns,
            extra: Some(Box::new(UpdateExtra {
                old_key: Some(row_key),
                old_version,
                ..UpdateExtra::default()
            })),
        }
    }

    /// Calls `f` with the key of the row to update (the WHERE clause).
    fn with_old_key<R>(&self, f: impl FnOnce(&Key) -> R) -> Result<R> {
        if let Some(key) = self.extra.as_ref().and_then(|e| e.old_key.as_ref()) {
            return Ok(f(key));
        }
        let meta = self.obj.meta().borrow();
        let key = meta.key.as_ref().ok_or_else(|| no_key(self.obj.table()))?;
        Ok(f(key))
    }

    /// The key of the row to update.
    pub fn old_key(&self) -> Result<Key> {
        self.with_old_key(Key::clone)
    }

    fn extra_mut(&mut self) -> &mut UpdateExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// The version before the bump, if the table is versioned.
    pub fn old_version(&self) -> Option<&Value> {
        self.extra.as_ref().and_then(|e| e.old_version.as_ref())
    }

    pub fn patches(&self) -> &[(usize, Rc<dyn AnyObj>)] {
        self.extra.as_ref().map_or(&[], |e| &e.patches)
    }

    /// The columns written back into the object after the flush.
    pub fn synced(&self) -> impl Iterator<Item = usize> + '_ {
        self.extra.iter().flat_map(|e| e.synced.iter())
    }

    /// Sets `column` to `value` instead of the object's value.
    pub fn set(&mut self, column: usize, value: Value) {
        self.columns.insert(column);
        put_override(&mut self.extra_mut().overrides, column, value);
    }

    /// Fills in the patched columns still in the UPDATE with the keys
    /// `key_of` gives their targets (generated by this flush's INSERTs).
    pub fn fill_patches(
        &mut self,
        key_of: impl Fn(&Rc<dyn AnyObj>) -> Result<Value>,
    ) -> Result<()> {
        let Some(extra) = self.extra.as_deref_mut() else {
            return Ok(());
        };
        let UpdateExtra {
            patches, overrides, ..
        } = extra;
        for (column, target) in patches.iter() {
            let value = key_of(target)?;
            if self.columns.contains(*column) {
                put_override(overrides, *column, value);
            }
        }
        Ok(())
    }

    /// Leaves `column` out of the UPDATE.
    pub fn unset(&mut self, column: usize) {
        self.columns.remove(column);
        if let Some(extra) = &mut self.extra {
            extra.overrides.retain(|(c, _)| *c != column);
        }
    }

    /// The value set for `column` in place of the object's, if any.
    pub fn set_value(&self, column: usize) -> Option<&Value> {
        let extra = self.extra.as_ref()?;
        extra
            .overrides
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| v)
    }

    /// Records that `column` is written back into the object after the flush.
    pub fn push_synced(&mut self, column: usize) {
        self.extra_mut().synced.insert(column);
    }

    /// `column` waits for the key `target` gets from its INSERT.
    pub fn push_patch(&mut self, column: usize, target: Rc<dyn AnyObj>) {
        self.extra_mut().patches.push((column, target));
    }

    /// Appends the new values of `columns` (this row's columns, ascending).
    fn push_values(&self, columns: &[usize], out: &mut Vec<Value>) -> Result<()> {
        let start = out.len();
        self.obj.push_column_values(columns, out)?;
        if let Some(extra) = &self.extra {
            for (column, value) in &extra.overrides {
                if let Ok(at) = columns.binary_search(column) {
                    out[start + at] = value.clone();
                }
            }
        }
        Ok(())
    }
}

fn put_override(overrides: &mut Vec<(usize, Value)>, column: usize, value: Value) {
    match overrides.iter_mut().find(|(c, _)| *c == column) {
        Some(slot) => slot.1 = value,
        None => overrides.push((column, value)),
    }
}

#[cold]
fn no_key(table: &TableDef) -> Error {
    Error::invalid(format!(
        "internal error: an updated `{}` object has no identity key",
        table.model
    ))
}

/// Rows per multi-row INSERT at most (SQLAlchemy's `insertmanyvalues_page_size`).
/// Measured on MariaDB 10.11, loopback (benches/workloads.rs, W1): 10,000
/// users inserted as one statement took 52 ms, as ten 1,000-row statements
/// 31 ms (the server's cost per row grows with the statement's size).
const MAX_INSERT_ROWS: usize = 1000;

/// Rows per multi-row UPDATE at most, for the same reason. Measured on
/// MariaDB 10.11, loopback (W4, changing one column of 10,000 rows, medians
/// of 7, twice): one 10,000-row statement 50.0 / 43.3 ms, 2,500-row
/// statements 40.4 / 39.6 ms, 1,000-row statements 41.3 / 38.9 ms (minima
/// 41.9, 39.0, 37.4 ms). DELETE `IN` lists showed no such effect (W7) and
/// stay cut by size only.
const MAX_UPDATE_ROWS: usize = 1000;

/// The rows a statement being filled holds: at most `max_rows` (the
/// placeholder limit and a row cap) and, past its first row, parameters
/// within the packet budget. The one rule for cutting batches.
struct Fill {
    per_row: usize,
    max_rows: usize,
    budget: usize,
    rows: usize,
    bytes: usize,
}

impl Fill {
    fn new(ctx: &Ctx<'_>, per_row: usize, row_cap: usize) -> Fill {
        Fill {
            per_row,
            max_rows: ctx.rows_per_statement(per_row, 1).min(row_cap),
            budget: ctx.packet_budget(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Adds a row of `bytes` parameter bytes if it fits the statement;
    /// `false` when the statement is full (start the next with `clear`).
    fn add(&mut self, bytes: usize) -> bool {
        let b = bytes + 4 * self.per_row;
        if self.rows > 0 && (self.rows == self.max_rows || self.bytes + b > self.budget) {
            return false;
        }
        self.rows += 1;
        self.bytes += b;
        true
    }

    fn clear(&mut self) {
        self.rows = 0;
        self.bytes = 0;
    }
}

/// Splits `items` into statements by estimated size: consecutive chunks
/// whose placeholder count and byte size fit one statement, and at most
/// `row_cap` rows.
fn chunks<T>(
    ctx: &Ctx<'_>,
    items: &[T],
    per_row: usize,
    row_cap: usize,
    bytes: impl Fn(&T) -> usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut fill = Fill::new(ctx, per_row, row_cap);
    let mut start = 0;
    for (end, item) in items.iter().enumerate() {
        if !fill.add(bytes(item)) {
            out.push(start..end);
            start = end;
            fill.clear();
            fill.add(bytes(item));
        }
    }
    if start < items.len() {
        out.push(start..items.len());
    }
    out
}

/// INSERTs `rows` (all of one table, in add order) and records the keys the
/// database generated in them. Writes nothing into the objects.
pub(crate) fn insert(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    rows: &mut [InsertRow],
) -> Result<()> {
    // Rows whose auto-increment value is unset omit that column; group
    // consecutive rows with the same column set.
    // Likewise `server_default` columns whose value is unset, so that the
    // server's DEFAULT applies.
    let server_defaults = super::defaults::server_columns(table).0;
    let omitted = |values: &[Value]| omitted_column(table, values, server_defaults);
    let mut start = 0;
    while start < rows.len() {
        let omit = omitted(&rows[start].values);
        let mut end = start + 1;
        while end < rows.len() && omitted(&rows[end].values) == omit {
            end += 1;
        }
        let server = super::defaults::omitted_columns(table, omit.1);
        insert_group(ctx, table, &mut rows[start..end], omit.0, &server)?;
        start = end;
    }
    Ok(())
}

/// The auto-increment column and the `server_default` columns (a bit mask,
/// see `defaults::server_omitted`) an INSERT leaves out.
fn omitted_column(
    table: &TableDef,
    values: &[Value],
    server_defaults: bool,
) -> (Option<usize>, u64) {
    let server = if server_defaults {
        super::defaults::server_omitted(table, values)
    } else {
        0
    };
    (
        table.auto_increment.filter(|&i| values[i].is_null()),
        server,
    )
}

fn insert_group(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    rows: &mut [InsertRow],
    omit: Option<usize>,
    server: &[usize],
) -> Result<()> {
    let columns: Vec<usize> = (0..table.columns.len())
        .filter(|&i| Some(i) != omit && !server.contains(&i))
        .collect();
    let per_row = columns.len();
    let row_bytes = |r: &InsertRow| {
        columns
            .iter()
            .map(|&i| r.values[i].wire_size())
            .sum::<usize>()
    };
    let generated = omit;
    // Without RETURNING, a multi-row INSERT's keys are computed from the
    // first one only where this connection's settings guarantee them
    // (`ServerInfo::multi_row_key_step`); otherwise one row per statement.
    let step = ctx.server.multi_row_key_step();
    let one_at_a_time = generated.is_some() && !ctx.server.supports_returning && step.is_none();
    let ranges: Vec<std::ops::Range<usize>> = if one_at_a_time {
        (0..rows.len()).map(|i| i..i + 1).collect()
    } else {
        chunks(ctx, rows, per_row, MAX_INSERT_ROWS, row_bytes)
    };
    // Where the connection guarantees consecutive keys, they come from the
    // first one (`LAST_INSERT_ID()`, in the OK packet): cheaper for the
    // server than a RETURNING result set (W1 on MariaDB 10.11, medians of 7,
    // twice: 29.6 / 29.5 ms against 35.2 / 37.9 ms). RETURNING otherwise,
    // and whenever server-generated columns must come back.
    let returning = ctx.server.supports_returning
        && (!server.is_empty() || (generated.is_some() && step.is_none()));
    for range in ranges {
        let batch = &mut rows[range];
        let mut sql = String::with_capacity(64 + batch.len() * (per_row * 3 + 4));
        sql.push_str("INSERT INTO ");
        ctx.ident(table.name, &mut sql);
        sql.push_str(" (");
        push_columns(ctx, table, &columns, &mut sql);
        sql.push_str(") VALUES ");
        push_row_placeholders(&mut sql, batch.len(), per_row);
        // The rows' values go to the statement (moved, not copied: a copy
        // of every string was ~10% of W1's flush), except those the flush
        // reads again afterwards.
        let params = take_values(table, batch, &columns);
        // With RETURNING: the generated key first, then the server-default
        // values, `width` values per row in one flat list.
        let returned: Vec<usize> = match returning {
            true => generated
                .into_iter()
                .chain(server.iter().copied())
                .collect(),
            false => Vec::new(),
        };
        let width = returned.len();
        let mut back: Vec<Value> = Vec::with_capacity(batch.len() * width);
        let sent = if returning {
            push_returning(ctx, table, &returned, &mut sql);
            ctx.conn
                .query(&sql, &params, &mut |row| {
                    let mut values = row.into_values().into_iter();
                    back.extend((0..width).map(|_| values.next().unwrap_or(Value::Null)));
                    Ok(())
                })
                .map(|()| None)
        } else {
            // Handed over: the driver's values take the strings.
            ctx.conn.execute_owned(&sql, params).map(Some)
        };
        let outcome = sent?;
        match (generated, outcome) {
            (_, None) => {
                if back.len() != batch.len() * width {
                    return Err(Error::invalid(format!(
                        "INSERT ... RETURNING into `{}` returned {} keys for {} rows",
                        table.name,
                        back.len() / width.max(1),
                        batch.len()
                    )));
                }
                let mut back = back.into_iter();
                for row in batch.iter_mut() {
                    if generated.is_some() {
                        row.generated = Some(back.next().unwrap_or(Value::Null));
                    }
                    for &c in server {
                        row.values[c] = back.next().unwrap_or(Value::Null);
                    }
                }
            }
            (Some(_), Some(outcome)) => {
                let first = outcome.last_insert_id.ok_or_else(|| {
                    Error::invalid(format!(
                        "the server reported no generated key for the INSERT into `{}`",
                        table.name
                    ))
                })?;
                // One row, or several whose keys are provably `first + n * step`.
                let step = step.unwrap_or(1);
                for (n, row) in batch.iter_mut().enumerate() {
                    let key = (n as u64)
                        .checked_mul(step)
                        .and_then(|offset| first.checked_add(offset))
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "the generated keys of the INSERT into `{}` overflow a 64-bit integer",
                                table.name
                            ))
                        })?;
                    row.generated = Some(Value::UInt(key));
                }
            }
            (None, Some(_)) => {}
        }
    }
    Ok(())
}

/// `columns` of every row as one parameter list, in row order. The values
/// are moved out of the rows (left NULL), so that the statement can hand
/// them to the driver without a copy; copied are only those the flush
/// reads after the INSERT: the columns it set itself (`synced`, written
/// back into the object) and `server_default` columns (whose NULL says the
/// object must be reloaded).
fn take_values(table: &TableDef, batch: &mut [InsertRow], columns: &[usize]) -> Vec<Value> {
    let mut params = Vec::with_capacity(batch.len() * columns.len());
    for row in batch.iter_mut() {
        for &i in columns {
            let kept = row.synced.contains(i) || table.columns[i].server_default.is_some();
            params.push(match kept {
                true => row.values[i].clone(),
                false => std::mem::take(&mut row.values[i]),
            });
        }
    }
    params
}

/// UPDATEs the changed columns of `rows` (one table). Rows with the same
/// set of changed columns share statements. Every row must match, else
/// [`Error::StaleData`].
pub(crate) fn update(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    rows: &[UpdateRow],
) -> Result<()> {
    // The distinct column sets in first-seen order, with their row counts.
    // Each set's rows are then found by a pass over all rows: a list of
    // every row's group was 130 KB of W4's peak heap at 10,000 rows, and
    // each group is at least one statement, which costs more than a pass.
    let mut groups: Vec<(&ColumnSet, usize)> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|(c, _)| **c == row.columns) {
            Some((_, count)) => *count += 1,
            None => groups.push((&row.columns, 1)),
        }
    }
    let nkey = table.primary_key.len();
    for (set, count) in groups {
        let cols: Vec<usize> = set.iter().collect();
        let per_row = nkey + cols.len() + usize::from(table.version.is_some());
        let mut fill = Fill::new(ctx, per_row, MAX_UPDATE_ROWS);
        // Each row's parameters, in order: key, new values, old version.
        // A statement is cut when the next row would not fit it, so the
        // lists hold at most one row more than a statement.
        let cap = count.min(fill.max_rows) + 1;
        let mut params = Vec::with_capacity(per_row * cap);
        let mut batch: Vec<&UpdateRow> = Vec::with_capacity(cap);
        for row in rows.iter().filter(|r| r.columns == *set) {
            let mark = params.len();
            row.with_old_key(|key| params.extend_from_slice(key.values()))?;
            row.push_values(&cols, &mut params)?;
            if table.version.is_some() {
                params.push(row.old_version().cloned().unwrap_or(Value::Null));
            }
            let bytes = params[mark..].iter().map(Value::wire_size).sum::<usize>();
            if !fill.add(bytes) {
                update_batch(ctx, table, &cols, &batch, &mut params[..mark])?;
                params.drain(..mark);
                batch.clear();
                fill.clear();
                fill.add(bytes);
            }
            batch.push(row);
        }
        update_batch(ctx, table, &cols, &batch, &mut params)?;
    }
    Ok(())
}

/// One batch of rows with the same columns: `params` holds each row's key,
/// new values and old version.
fn update_batch(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    cols: &[usize],
    batch: &[&UpdateRow],
    params: &mut [Value],
) -> Result<()> {
    let per_row = params.len() / batch.len().max(1);
    match ctx.dialect().update_batch() {
        UpdateBatch::Join if batch.len() > 1 => update_many(ctx, table, cols, batch, params),
        UpdateBatch::FromValues if batch.len() > 1 => {
            update_from_values(ctx, table, cols, batch, params)
        }
        _ => {
            for (row, params) in batch.iter().zip(params.chunks_mut(per_row)) {
                update_one(ctx, table, cols, row, params)?;
            }
            Ok(())
        }
    }
}

fn update_one(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    cols: &[usize],
    row: &UpdateRow,
    params: &mut [Value],
) -> Result<()> {
    let build = |dialect: &dyn Dialect| update_by_key_sql(dialect, table, cols);
    let sql = match SqlKey::update_by_key(table, cols) {
        Some(key) => ctx.engine.sql_text(key, build),
        None => build(ctx.dialect()).into(),
    };
    // key, values, version -> values, key, version (the SET comes first).
    params[..table.primary_key.len() + cols.len()].rotate_left(table.primary_key.len());
    let outcome = ctx.conn.execute(&sql, params)?;
    if outcome.affected_rows != 1 {
        return Err(Error::StaleData {
            statement: "UPDATE",
            table: table.name,
            key: row.old_key()?.to_string(),
            expected: 1,
            matched: outcome.affected_rows,
        });
    }
    Ok(())
}

/// `UPDATE t SET c1 = ?, c2 = ? [, v = v + 1] WHERE pk = ? [AND v = ?]`
fn update_by_key_sql(dialect: &dyn Dialect, table: &TableDef, cols: &[usize]) -> String {
    let mut sql = String::with_capacity(128);
    sql.push_str("UPDATE ");
    dialect.quote_ident(table.name, &mut sql);
    sql.push_str(" SET ");
    for (n, &c) in cols.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        dialect.quote_ident(table.columns[c].name, &mut sql);
        sql.push_str(" = ?");
    }
    if let Some(v) = table.version {
        sql.push_str(", ");
        dialect.quote_ident(table.columns[v].name, &mut sql);
        sql.push_str(" = ");
        dialect.quote_ident(table.columns[v].name, &mut sql);
        sql.push_str(" + 1");
    }
    sql.push_str(" WHERE ");
    key_condition(dialect, table, &mut sql);
    if let Some(v) = table.version {
        sql.push_str(" AND ");
        dialect.quote_ident(table.columns[v].name, &mut sql);
        sql.push_str(" = ?");
    }
    sql
}

/// `pk1 = ? AND pk2 = ?`
fn key_condition(dialect: &dyn Dialect, table: &TableDef, sql: &mut String) {
    for (n, &k) in table.primary_key.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        dialect.quote_ident(table.columns[k].name, sql);
        sql.push_str(" = ?");
    }
}

/// One statement for many rows: the new values travel as a derived table
/// joined on the key, so the server does one key lookup per row:
///
/// ```sql
/// UPDATE `t` JOIN (SELECT ? AS `k0`, ? AS `c0` UNION ALL SELECT ?, ? ...) AS `b`
///   ON `t`.`id` = `b`.`k0` SET `t`.`score` = `b`.`c0`
/// ```
///
/// On MariaDB the rows after the first are `VALUES (?, ?), ...` when
/// [`first_row_types_all`] allows it: the server reads those about a third
/// faster (1,000-row UPDATEs of a DOUBLE: ~70 against ~105 ms per 10,000
/// rows), but it types the derived table's columns from the first row alone.
fn update_many(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    cols: &[usize],
    batch: &[&UpdateRow],
    params: &[Value],
) -> Result<()> {
    let nkey = table.primary_key.len();
    let versioned = table.version.is_some();
    let per_row = nkey + cols.len() + usize::from(versioned);
    let mut sql = String::with_capacity(128 + batch.len() * (per_row * 3 + 8));
    sql.push_str("UPDATE ");
    ctx.ident(table.name, &mut sql);
    sql.push_str(" JOIN (SELECT ");
    let mut aliases = Vec::with_capacity(per_row);
    aliases.extend((0..nkey).map(|n| format!("k{n}")));
    aliases.extend((0..cols.len()).map(|n| format!("c{n}")));
    if versioned {
        aliases.push("v0".to_string());
    }
    // A parameter is text in the connection's character set: bytes that
    // are not valid there would fail to enter a derived table's text column
    // ("Incorrect string value"), so a column that carries bytes is typed
    // binary (`CAST(? AS BINARY)`: no length, so no padding).
    let binary: Vec<bool> = (0..per_row)
        .map(|c| {
            params
                .iter()
                .skip(c)
                .step_by(per_row)
                .any(|v| matches!(v, Value::Bytes(_)))
        })
        .collect();
    let placeholder = |c: usize| if binary[c] { "CAST(? AS BINARY)" } else { "?" };
    for (n, alias) in aliases.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(placeholder(n));
        sql.push_str(" AS ");
        ctx.ident(alias, &mut sql);
    }
    let values_rows =
        ctx.server.kind == ServerKind::MariaDb && first_row_types_all(params, per_row);
    for n in 1..batch.len() {
        if values_rows {
            // Numbers only (see `first_row_types_all`): no binary column.
            sql.push_str(if n == 1 { " UNION ALL VALUES (" } else { ", (" });
            push_placeholders(&mut sql, per_row);
            sql.push(')');
        } else {
            sql.push_str(" UNION ALL SELECT ");
            for c in 0..per_row {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(placeholder(c));
            }
        }
    }
    sql.push_str(") AS `__b` ON ");
    for (n, &k) in table.primary_key.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        qualified(ctx, table.name, table.columns[k].name, &mut sql);
        sql.push_str(" = `__b`.");
        ctx.ident(&aliases[n], &mut sql);
    }
    if let Some(v) = table.version {
        sql.push_str(" AND ");
        qualified(ctx, table.name, table.columns[v].name, &mut sql);
        sql.push_str(" = `__b`.`v0`");
    }
    sql.push_str(" SET ");
    for (n, &c) in cols.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        qualified(ctx, table.name, table.columns[c].name, &mut sql);
        sql.push_str(" = `__b`.");
        ctx.ident(&aliases[nkey + n], &mut sql);
    }
    if let Some(v) = table.version {
        sql.push_str(", ");
        qualified(ctx, table.name, table.columns[v].name, &mut sql);
        sql.push_str(" = ");
        qualified(ctx, table.name, table.columns[v].name, &mut sql);
        sql.push_str(" + 1");
    }
    let outcome = ctx.conn.execute(&sql, params)?;
    check_batch(ctx, table, cols, batch, params, outcome.affected_rows)
}

/// Whether the first row's parameters give every column of a derived table
/// a type that holds all its rows' values, as MariaDB (10.11) requires of
/// `SELECT ? AS c0 UNION ALL VALUES (?), ...`: it types each column as the
/// first row's parameter and does not widen it for the VALUES rows. A
/// later row's longer string then fails ("Data too long for column 'c0'"),
/// a first NULL types the column too narrow for anything, and a DATETIME
/// column typed from a value without fractional seconds silently drops
/// the later rows' microseconds. So: only numbers (integers, booleans,
/// floats), every row's of the same kind as the first row's. `UNION ALL
/// SELECT` rows are typed from all rows.
fn first_row_types_all(params: &[Value], per_row: usize) -> bool {
    let Some(first) = params.get(..per_row) else {
        return false;
    };
    first.iter().enumerate().all(|(c, head)| {
        let fixed = matches!(
            head,
            Value::Int(_) | Value::UInt(_) | Value::Bool(_) | Value::Float(_) | Value::Double(_)
        );
        fixed
            && params
                .iter()
                .skip(c)
                .step_by(per_row)
                .all(|v| std::mem::discriminant(v) == std::mem::discriminant(head))
    })
}

/// After a batched UPDATE that matched `affected` rows: every row must have
/// matched, else [`Error::StaleData`] naming the stale one. `params` are
/// the statement's (key, new values, old version for each row).
fn check_batch(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    cols: &[usize],
    batch: &[&UpdateRow],
    params: &[Value],
    affected: u64,
) -> Result<()> {
    if affected != batch.len() as u64 {
        // A matched row now has the bumped version and this batch's values.
        let mut check: Vec<usize> = table.version.into_iter().collect();
        check.extend_from_slice(cols);
        let nkey = table.primary_key.len();
        let per_row = params.len() / batch.len().max(1);
        let keys: Vec<Key> = params
            .chunks(per_row)
            .map(|p| Key::from_values(p[..nkey].iter().cloned()))
            .collect();
        let rows: Vec<(&Key, Option<Vec<Value>>)> = batch
            .iter()
            .zip(params.chunks(per_row))
            .zip(&keys)
            .map(|((r, p), key)| {
                let mut after: Vec<Value> = r.old_version().into_iter().map(bumped).collect();
                after.extend_from_slice(&p[nkey..nkey + cols.len()]);
                (key, Some(after))
            })
            .collect();
        return Err(stale_data(ctx, table, "UPDATE", &check, &rows, affected));
    }
    Ok(())
}

/// [`update_many`] for a dialect with `UPDATE ... FROM` (SQLite 3.33+): the
/// new values are a `VALUES` list joined on the key (one key lookup per row):
///
/// ```sql
/// UPDATE "t" SET "score" = "__b"."column2" FROM (VALUES (?, ?), (?, ?)) AS "__b"
///   WHERE "t"."id" = "__b"."column1"
/// ```
fn update_from_values(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    cols: &[usize],
    batch: &[&UpdateRow],
    params: &[Value],
) -> Result<()> {
    let nkey = table.primary_key.len();
    let per_row = nkey + cols.len() + usize::from(table.version.is_some());
    // `VALUES` names its columns column1, column2, ...: keys, changes, version.
    let value = |ctx: &Ctx<'_>, n: usize, sql: &mut String| {
        ctx.ident("__b", sql);
        sql.push('.');
        ctx.ident(&format!("column{}", n + 1), sql);
    };
    let mut sql = String::with_capacity(128 + batch.len() * (per_row * 3 + 4));
    sql.push_str("UPDATE ");
    ctx.ident(table.name, &mut sql);
    sql.push_str(" SET ");
    for (n, &c) in cols.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        ctx.ident(table.columns[c].name, &mut sql);
        sql.push_str(" = ");
        value(ctx, nkey + n, &mut sql);
    }
    if let Some(v) = table.version {
        sql.push_str(", ");
        ctx.ident(table.columns[v].name, &mut sql);
        sql.push_str(" = ");
        qualified(ctx, table.name, table.columns[v].name, &mut sql);
        sql.push_str(" + 1");
    }
    sql.push_str(" FROM (VALUES ");
    push_row_placeholders(&mut sql, batch.len(), per_row);
    sql.push_str(") AS ");
    ctx.ident("__b", &mut sql);
    sql.push_str(" WHERE ");
    for (n, &k) in table.primary_key.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        qualified(ctx, table.name, table.columns[k].name, &mut sql);
        sql.push_str(" = ");
        value(ctx, n, &mut sql);
    }
    if let Some(v) = table.version {
        sql.push_str(" AND ");
        qualified(ctx, table.name, table.columns[v].name, &mut sql);
        sql.push_str(" = ");
        value(ctx, per_row - 1, &mut sql);
    }
    let outcome = ctx.conn.execute(&sql, params)?;
    check_batch(ctx, table, cols, batch, params, outcome.affected_rows)
}

/// ` RETURNING a, b` for `columns`.
fn push_returning(ctx: &Ctx<'_>, table: &TableDef, columns: &[usize], sql: &mut String) {
    sql.push_str(" RETURNING ");
    for (n, &c) in columns.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        ctx.ident(table.columns[c].name, sql);
    }
}

/// `(?, ?), (?, ?), ...`: `rows` groups of `per_row` placeholders.
fn push_row_placeholders(sql: &mut String, rows: usize, per_row: usize) {
    for n in 0..rows {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        push_placeholders(sql, per_row);
        sql.push(')');
    }
}

/// `` `a`, `b` ``: the named columns of `table`.
fn push_columns(ctx: &Ctx<'_>, table: &TableDef, columns: &[usize], sql: &mut String) {
    for (n, &c) in columns.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        ctx.ident(table.columns[c].name, sql);
    }
}

fn qualified(ctx: &Ctx<'_>, table: &str, column: &str, sql: &mut String) {
    ctx.ident(table, sql);
    sql.push('.');
    ctx.ident(column, sql);
}

/// A batch matched fewer rows than it should: the `StaleData` error, naming
/// the stale row. Error path only: one SELECT.
///
/// The lookup runs after the batch, inside the same transaction, so it sees
/// the batch's own work: each of `rows` is (key, the `check` columns a
/// matched row must now hold), or (key, `None`) when a matched row must now
/// be gone (DELETE). A row that is missing when it should be there, present
/// when it should be gone, or holding other values is the stale one. When
/// no row can be told apart, the candidate keys are listed.
fn stale_data(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    statement: &'static str,
    check: &[usize],
    rows: &[(&Key, Option<Vec<Value>>)],
    matched: u64,
) -> Error {
    let key = match find_stale(ctx, table, check, rows) {
        Ok(Some(key)) => key.to_string(),
        Ok(None) => {
            let keys: Vec<String> = rows.iter().take(10).map(|(k, _)| k.to_string()).collect();
            let more = if rows.len() > 10 { ", ..." } else { "" };
            format!("one of {}{more}", keys.join(", "))
        }
        Err(e) => return e,
    };
    Error::StaleData {
        statement,
        table: table.name,
        key,
        expected: rows.len() as u64,
        matched,
    }
}

fn find_stale<'k>(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    check: &[usize],
    rows: &[(&'k Key, Option<Vec<Value>>)],
) -> Result<Option<&'k Key>> {
    let mut sql = String::from("SELECT ");
    let mut cols: Vec<usize> = table.primary_key.to_vec();
    cols.extend_from_slice(check);
    push_columns(ctx, table, &cols, &mut sql);
    sql.push_str(" FROM ");
    ctx.ident(table.name, &mut sql);
    sql.push_str(" WHERE ");
    let mut params = Vec::new();
    let keys: Vec<&Key> = rows.iter().map(|(k, _)| *k).collect();
    key_in(ctx, table, &keys, &mut sql, &mut params);
    let nkey = table.primary_key.len();
    let mut found: crate::fast_hash::FastHashMap<Key, Vec<Value>> =
        crate::fast_hash::FastHashMap::default();
    ctx.conn.query(&sql, &params, &mut |row| {
        let mut values = row.into_values();
        let rest = values.split_off(nkey);
        found.insert(Key::new(values), rest);
        Ok(())
    })?;
    let same_key = |db: &Key, mem: &Key| {
        db.values().len() == mem.values().len()
            && db
                .values()
                .iter()
                .zip(mem.values())
                .all(|(d, m)| d.same_as_written(m))
    };
    for (key, after) in rows {
        // The row of `key`: by exact value, else by SQL equality (a DECIMAL
        // or PAD SPACE text key reads back spelled differently).
        let row = found.get(*key).or_else(|| {
            found
                .iter()
                .find(|(db, _)| same_key(db, key))
                .map(|(_, values)| values)
        });
        let stale = match (row, after) {
            (None, Some(_)) => true,
            (Some(_), None) => true,
            // By SQL equality: the row holds what the batch wrote even when
            // it reads back as another variant (TINYINT 1 for true, DECIMAL
            // "1.5000" for "1.5", FLOAT for a double).
            (Some(now), Some(expected)) => {
                now.len() != expected.len()
                    || now
                        .iter()
                        .zip(expected)
                        .any(|(db, mem)| !db.same_as_written(mem))
            }
            (None, None) => false,
        };
        if stale {
            return Ok(Some(*key));
        }
    }
    Ok(None)
}

/// Bytes on the wire of a row's key values and old version (a batch's size
/// must count them: long text keys fill a packet as fast as new values).
fn key_and_version_size(key: &Key, version: Option<&Value>) -> usize {
    key.values().iter().map(Value::wire_size).sum::<usize>() + version.map_or(0, Value::wire_size)
}

/// The version after an UPDATE's `version = version + 1`.
pub(crate) fn bumped(version: &Value) -> Value {
    match version {
        Value::Int(n) => Value::Int(n.saturating_add(1)),
        Value::UInt(n) => Value::UInt(n.saturating_add(1)),
        other => other.clone(),
    }
}

/// `pk IN (?, ...)` (runs of consecutive integer keys as ranges:
/// [`super::in_list::push_in`]) or `(k1, k2) IN ((?, ?), ...)`
fn key_in(
    ctx: &Ctx<'_>,
    table: &TableDef,
    keys: &[&Key],
    sql: &mut String,
    params: &mut Vec<Value>,
) {
    if let [k] = table.primary_key {
        let column = &table.columns[*k];
        let values: Vec<Value> = keys
            .iter()
            .flat_map(|key| key.values().iter().cloned())
            .collect();
        let on = super::in_list::InColumn {
            dialect: ctx.dialect(),
            name: column.name,
            column: Some(column),
        };
        super::in_list::push_in(&on, &values, sql, params);
        return;
    }
    sql.push('(');
    push_columns(ctx, table, table.primary_key, sql);
    sql.push_str(") IN (");
    push_row_placeholders(sql, keys.len(), table.primary_key.len());
    sql.push(')');
    for key in keys {
        params.extend(key.values().iter().cloned());
    }
}

/// DELETEs rows by key. A versioned table checks the version of every row
/// and raises [`Error::StaleData`] when one did not match; an unversioned
/// DELETE of a row that is already gone is not an error.
pub(crate) fn delete(
    ctx: &mut Ctx<'_>,
    table: &'static TableDef,
    rows: &[(Key, Option<Value>)],
) -> Result<()> {
    let per_row = table.primary_key.len() + usize::from(table.version.is_some());
    let bytes = |(key, version): &(Key, Option<Value>)| key_and_version_size(key, version.as_ref());
    for range in chunks(ctx, rows, per_row, usize::MAX, bytes) {
        let batch = &rows[range];
        let mut sql = String::from("DELETE FROM ");
        ctx.ident(table.name, &mut sql);
        sql.push_str(" WHERE ");
        let mut params = Vec::with_capacity(batch.len() * per_row);
        match table.version {
            None => {
                let keys: Vec<&Key> = batch.iter().map(|(k, _)| k).collect();
                key_in(ctx, table, &keys, &mut sql, &mut params);
            }
            Some(v) => {
                sql.push('(');
                let mut cols = table.primary_key.to_vec();
                cols.push(v);
                push_columns(ctx, table, &cols, &mut sql);
                sql.push_str(") IN (");
                push_row_placeholders(&mut sql, batch.len(), per_row);
                for (key, version) in batch {
                    params.extend(key.values().iter().cloned());
                    params.push(version.clone().unwrap_or(Value::Null));
                }
                sql.push(')');
            }
        }
        let outcome = ctx.conn.execute(&sql, &params)?;
        if table.version.is_some() && outcome.affected_rows != batch.len() as u64 {
            // A matched row is gone now; a stale one is still there.
            let rows: Vec<(&Key, Option<Vec<Value>>)> =
                batch.iter().map(|(k, _)| (k, None)).collect();
            return Err(stale_data(
                ctx,
                table,
                "DELETE",
                &[],
                &rows,
                outcome.affected_rows,
            ));
        }
    }
    Ok(())
}

/// `SELECT cols FROM t` (no trailing clause).
pub(crate) fn select_sql(dialect: &dyn Dialect, table: &TableDef) -> String {
    let mut sql = String::with_capacity(32 + table.columns.len() * 12);
    sql.push_str("SELECT ");
    for (n, c) in table.columns.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        dialect.quote_ident(c.name, &mut sql);
    }
    sql.push_str(" FROM ");
    dialect.quote_ident(table.name, &mut sql);
    sql
}

/// `SELECT cols FROM t WHERE pk = ?`
pub(crate) fn select_by_key_sql(dialect: &dyn Dialect, table: &TableDef) -> String {
    let mut sql = select_sql(dialect, table);
    sql.push_str(" WHERE ");
    for (n, &k) in table.primary_key.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        dialect.quote_ident(table.columns[k].name, &mut sql);
        sql.push_str(" = ?");
    }
    sql
}
