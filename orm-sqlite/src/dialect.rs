//! How SQLite spells SQL, and how each column type is stored.

use orm_core::backend::{Dialect, UpdateBatch};
use orm_core::value::ColumnType;

/// The SQLite dialect: double-quoted identifiers, SQLite's type affinities.
///
/// Every integer type is `INTEGER` (so that an auto-increment primary key is
/// SQLite's rowid); a declared type is kept where its affinity stores the
/// value faithfully. Decimals, JSON and UUIDs are stored as text
/// (`DECIMAL_TEXT(p,s)`, `JSON_TEXT`, `CHAR(36)`: TEXT affinity, so
/// `"12.50"` keeps its digits instead of becoming the float 12.5); dates
/// and times as ISO-8601 text (`DATE`, `DATETIME`, `TIME`; see the crate docs).
///
/// UPDATEs of many rows are one `UPDATE ... FROM (VALUES ...)` per batch by
/// default, or one prepared UPDATE per row (the `update_batch=per_row` URL
/// option; measured in the crate docs).
#[derive(Debug, Clone, Copy)]
pub struct SqliteDialect {
    /// How batched UPDATEs are sent.
    pub update_batch: UpdateBatch,
}

impl Default for SqliteDialect {
    fn default() -> Self {
        SqliteDialect {
            update_batch: UpdateBatch::FromValues,
        }
    }
}

impl Dialect for SqliteDialect {
    fn quote_ident(&self, name: &str, out: &mut String) {
        out.reserve(name.len() + 2);
        out.push('"');
        for c in name.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    }

    fn column_type_sql(&self, column_type: ColumnType) -> String {
        match column_type {
            ColumnType::TinyInt { .. }
            | ColumnType::SmallInt { .. }
            | ColumnType::Int { .. }
            | ColumnType::BigInt { .. } => "INTEGER".into(),
            ColumnType::Float | ColumnType::Double => "REAL".into(),
            ColumnType::Bool => "BOOLEAN".into(),
            ColumnType::VarChar(n) => format!("VARCHAR({n})"),
            ColumnType::Text => "TEXT".into(),
            ColumnType::Blob => "BLOB".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Time => "TIME".into(),
            ColumnType::DateTime => "DATETIME".into(),
            ColumnType::Decimal(p, s) => format!("DECIMAL_TEXT({p},{s})"),
            ColumnType::Json => "JSON_TEXT".into(),
            ColumnType::Uuid => "CHAR(36)".into(),
        }
    }

    /// Nothing: an `INTEGER` column that is the whole primary key is the
    /// rowid, which SQLite generates (as SQLAlchemy does, without
    /// `AUTOINCREMENT`: the largest key may be reused after it is deleted).
    fn auto_increment_sql(&self) -> &'static str {
        ""
    }

    fn create_table_suffix(&self) -> &'static str {
        ""
    }

    /// `ON CONFLICT (key) DO UPDATE SET c = excluded.c`.
    fn upsert_sql(
        &self,
        conflict: &[String],
        update: &[String],
        _auto_increment: Option<&str>,
    ) -> String {
        let set: Vec<String> = update
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        if set.is_empty() {
            format!(" ON CONFLICT ({}) DO NOTHING", conflict.join(", "))
        } else {
            format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                conflict.join(", "),
                set.join(", ")
            )
        }
    }

    /// SQLite has no row locks: a writing transaction holds the database
    /// (`BEGIN IMMEDIATE`), so a locking read needs no clause.
    fn like_escape_sql(&self) -> &'static str {
        " ESCAPE '\\'"
    }

    fn row_lock_sql(&self, _lock: orm_core::query::RowLock) -> String {
        String::new()
    }

    /// SQLite has no `ON UPDATE` for columns: `server_on_update` is left
    /// out of the DDL (use `on_update = expr`, set by the session, instead).
    fn on_update_clause(&self) -> bool {
        false
    }

    fn drop_foreign_key_sql(&self, table: &str, _name: &str) -> String {
        // Never called: `alter_foreign_keys` is false. Harmless if it is.
        format!("SELECT 1 FROM {table} WHERE 0")
    }

    fn alter_foreign_keys(&self) -> bool {
        false
    }

    fn update_batch(&self) -> UpdateBatch {
        self.update_batch
    }
}

/// What a declared column type says about how to read its stored values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declared {
    /// Read values as SQLite stores them.
    Plain,
    /// `BOOL`/`BOOLEAN`: integers 0 and 1 become booleans.
    Bool,
    /// `DATE`: ISO text becomes a date.
    Date,
    /// `DATETIME`/`TIMESTAMP`: ISO text becomes a date and time.
    DateTime,
    /// `TIME`: `[-]HH:MM:SS[.ffffff]` becomes a time.
    Time,
    /// `DECIMAL...`/`NUMERIC...`: text (or a number) becomes a decimal.
    Decimal,
}

impl Declared {
    /// Classifies a declared type (`None` for an expression column).
    pub(crate) fn of(decl: Option<&str>) -> Declared {
        let Some(decl) = decl else {
            return Declared::Plain;
        };
        // Called for every column of every query: no allocation.
        let base = decl.split('(').next().unwrap_or("").trim();
        const KINDS: [(&str, Declared); 9] = [
            ("BOOL", Declared::Bool),
            ("BOOLEAN", Declared::Bool),
            ("DATE", Declared::Date),
            ("DATETIME", Declared::DateTime),
            ("TIMESTAMP", Declared::DateTime),
            ("TIME", Declared::Time),
            ("DECIMAL", Declared::Decimal),
            ("DECIMAL_TEXT", Declared::Decimal),
            ("NUMERIC", Declared::Decimal),
        ];
        KINDS
            .iter()
            .find(|(name, _)| base.eq_ignore_ascii_case(name))
            .map_or(Declared::Plain, |(_, kind)| *kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_types() {
        let mut s = String::new();
        SqliteDialect::default().quote_ident("we\"ird", &mut s);
        assert_eq!(s, "\"we\"\"ird\"");
        assert_eq!(
            SqliteDialect::default().column_type_sql(ColumnType::Int { unsigned: true }),
            "INTEGER"
        );
        assert_eq!(
            SqliteDialect::default().column_type_sql(ColumnType::Decimal(10, 2)),
            "DECIMAL_TEXT(10,2)"
        );
        assert_eq!(Declared::of(Some("decimal_text(10,2)")), Declared::Decimal);
        assert_eq!(Declared::of(Some("DATETIME")), Declared::DateTime);
        assert_eq!(Declared::of(Some("VARCHAR(40)")), Declared::Plain);
        assert_eq!(Declared::of(None), Declared::Plain);
    }
}
