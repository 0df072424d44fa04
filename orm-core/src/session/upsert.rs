//! Upserts: `INSERT ... ON DUPLICATE KEY UPDATE` (MySQL, MariaDB) or
//! `INSERT ... ON CONFLICT DO UPDATE` (SQLite) for model values, returning
//! the session's objects for the rows written.

use crate::backend::ServerKind;
use crate::error::{Error, Result};
use crate::model::{Key, Model};
use crate::value::Value;

use super::object::{Obj, ObjState};
use super::{transaction, Session};

impl Session {
    /// Inserts `value`, or, when a row with its primary key (or, without
    /// one, its first unique column) exists, updates that row's other
    /// columns from it; returns the session's object for the row, loaded as
    /// the database now holds it. Sent at once (after autoflush), like the
    /// bulk statements; the version column is set to 1 on insert and left
    /// alone on update.
    pub fn upsert<M: Model>(&self, value: &M) -> Result<Obj<M>> {
        let mut objs = self.upsert_all(std::slice::from_ref(value))?;
        objs.pop()
            .ok_or_else(|| Error::invalid("internal error: an upsert returned no object"))
    }

    /// [`upsert`](Self::upsert) for several values in one statement; each
    /// value needs its primary key (to know which rows were written).
    pub fn upsert_all<M: Model>(&self, values: &[M]) -> Result<Vec<Obj<M>>> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let table = M::table();
        if self.is_sharded() {
            return Err(Error::invalid(format!(
                "upsert of `{}` is not supported in a sharded session: the row's shard is not \
                 known before the statement; get() or merge() the object, or upsert through a \
                 session on that shard's engine",
                table.model
            )));
        }
        self.autoflush()?;
        let dialect = self.engine().dialect();
        let keyed = values.iter().all(|v| v.primary_key().is_some());
        if !keyed && values.len() > 1 {
            return Err(Error::invalid(format!(
                "upsert_all() of `{}` needs the primary key of every value, to know which rows it wrote; \
                 upsert() the values without a key one at a time",
                table.model
            )));
        }
        let omit = if keyed { None } else { table.auto_increment };
        let columns: Vec<usize> = (0..table.columns.len())
            .filter(|&i| Some(i) != omit)
            .collect();
        let quoted = |i: usize| {
            let mut s = String::new();
            dialect.quote_ident(table.columns[i].name, &mut s);
            s
        };
        let conflict: Vec<String> = if keyed {
            table.primary_key.iter().map(|&i| quoted(i)).collect()
        } else {
            let unique = table.columns.iter().position(|c| c.unique).ok_or_else(|| {
                Error::invalid(format!(
                    "upsert() of a `{}` value without its primary key needs a unique column to find the \
                     existing row; set the key, or mark a column #[orm(unique)]",
                    table.model
                ))
            })?;
            vec![quoted(unique)]
        };
        let update: Vec<String> = columns
            .iter()
            .filter(|&&i| !table.is_key_column(i) && Some(i) != table.version)
            .map(|&i| quoted(i))
            .collect();
        let mut sql = String::from("INSERT INTO ");
        dialect.quote_ident(table.name, &mut sql);
        sql.push_str(" (");
        sql.push_str(
            &columns
                .iter()
                .map(|&i| quoted(i))
                .collect::<Vec<_>>()
                .join(", "),
        );
        sql.push_str(") VALUES ");
        let row = format!("({})", vec!["?"; columns.len()].join(", "));
        sql.push_str(&vec![row; values.len()].join(", "));
        let mut params = Vec::with_capacity(values.len() * columns.len());
        for v in values {
            for &i in &columns {
                params.push(match table.version {
                    Some(ver) if ver == i => Value::Int(1),
                    _ => v.column_value(i),
                });
            }
        }
        let ai_quoted = omit.map(quoted);
        sql.push_str(&dialect.upsert_sql(&conflict, &update, ai_quoted.as_deref()));
        let keys: Vec<Key> = if keyed {
            self.execute_for::<M>(&sql, &params)?;
            values.iter().filter_map(Model::primary_key).collect()
        } else {
            let ai = omit.ok_or_else(|| {
                Error::invalid(format!(
                    "upsert() of a `{}` value needs its primary key",
                    table.model
                ))
            })?;
            let sqlite = {
                let mut st = self.state()?;
                self.connection(&mut st, self.bind_of(table))?
                    .server_info()
                    .kind
                    == ServerKind::Sqlite
            };
            if sqlite {
                sql.push_str(" RETURNING ");
                sql.push_str(&quoted(ai));
                let rows = self.query_rows_for::<M>(&sql, &params)?;
                rows.into_iter()
                    .map(|r| Key::new(r.into_values()))
                    .collect()
            } else {
                let outcome = self.execute_for::<M>(&sql, &params)?;
                let id = outcome.last_insert_id.ok_or_else(|| {
                    Error::invalid(format!("the upsert into `{}` reported no key", table.name))
                })?;
                // Keys read back from rows are signed when they fit.
                let id = i64::try_from(id).map_or(Value::UInt(id), Value::Int);
                vec![Key::new(vec![id])]
            }
        };
        // The rows changed under the session: objects it holds reload.
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(existing) = self.identity_lookup::<M>(key.clone())? {
                if existing.state() == ObjState::Persistent {
                    transaction::expire(&existing.erased());
                }
            }
            let obj = self
                .get::<M>(key.clone())?
                .ok_or_else(|| Error::ObjectDeleted {
                    table: table.name,
                    key: key.to_string(),
                })?;
            out.push(obj);
        }
        Ok(out)
    }
}
