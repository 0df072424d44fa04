//! DDL from models: `CREATE TABLE` / `DROP TABLE` text, the order in which
//! to create tables, and [`create_all`] / [`drop_all`] to run it.
//!
//! ```
//! # use orm_core::backend::Dialect;
//! # use orm_core::model::{ColumnDef, TableDef};
//! # use orm_core::value::ColumnType;
//! # struct My;
//! # impl Dialect for My {
//! #     fn quote_ident(&self, n: &str, out: &mut String) { out.push('`'); out.push_str(n); out.push('`'); }
//! #     fn column_type_sql(&self, t: ColumnType) -> String { format!("{t:?}").to_uppercase() }
//! #     fn auto_increment_sql(&self) -> &'static str { "AUTO_INCREMENT" }
//! #     fn create_table_suffix(&self) -> &'static str { "" }
//! # }
//! static TAG: TableDef = TableDef {
//!     name: "tag",
//!     model: "Tag",
//!     columns: &[ColumnDef {
//!         name: "label",
//!         field: "label",
//!         column_type: ColumnType::Text,
//!         sql_type: Some("VARCHAR(32)"),
//!         nullable: false,
//!         unique: false,
//!         indexed: false,
//!         default: None,
//!         on_update: None,
//!         server_default: None,
//!         server_on_update: None,
//!     }],
//!     primary_key: &[0],
//!     auto_increment: None,
//!     version: None,
//!     foreign_keys: &[],
//!     relationships: &[],
//! };
//! let sql = orm_core::schema::create_table_sql(&My, &TAG);
//! assert_eq!(sql, ["CREATE TABLE `tag` (\n  `label` VARCHAR(32) NOT NULL,\n  PRIMARY KEY (`label`)\n)"]);
//! ```
//!
//! Names of the constraints and indexes follow SQLAlchemy's conventions:
//! `uq_<table>_<column>` (UNIQUE), `ix_<table>_<column>` (index),
//! `fk_<table>_<column>` (foreign key); a name longer than 64 characters
//! (MySQL's limit) is shortened with a hash suffix.
//!
//! A reference to another table points at that table's primary key, which
//! must then be a single column.
//!
//! # Cycles
//!
//! Tables are created parents first. References that form a cycle among
//! different tables (a user's favourite post, and a post's author) cannot be
//! ordered: those tables are created without the references that point
//! forward, and the missing foreign keys are added at the end with
//! `ALTER TABLE ... ADD CONSTRAINT`. [`drop_all`] drops those constraints
//! first. A table referring to itself needs nothing special.

use crate::backend::Dialect;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{ForeignKeyDef, OnDelete, TableDef};

fn quoted(dialect: &dyn Dialect, name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    dialect.quote_ident(name, &mut s);
    s
}

/// A constraint or index name, at most 64 characters.
fn constraint_name(prefix: &str, table: &str, column: &str) -> String {
    let name = format!("{prefix}_{table}_{column}");
    if name.len() <= 64 {
        return name;
    }
    // FNV-1a, stable across builds and platforms.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut cut = 55;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}", &name[..cut], hash as u32)
}

fn foreign_key_name(table: &TableDef, fk: &ForeignKeyDef) -> String {
    constraint_name("fk", table.name, table.columns[fk.column].name)
}

/// `FOREIGN KEY (col) REFERENCES parent (pk)`, without a leading CONSTRAINT.
fn foreign_key_clause(dialect: &dyn Dialect, table: &TableDef, fk: &ForeignKeyDef) -> String {
    let target = (fk.target)();
    let keys: Vec<String> = target
        .primary_key
        .iter()
        .map(|&i| quoted(dialect, target.columns[i].name))
        .collect();
    let on_delete = match fk.on_delete {
        OnDelete::Restrict => "",
        OnDelete::Cascade => " ON DELETE CASCADE",
        OnDelete::SetNull => " ON DELETE SET NULL",
    };
    format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){on_delete}",
        quoted(dialect, &foreign_key_name(table, fk)),
        quoted(dialect, table.columns[fk.column].name),
        quoted(dialect, target.name),
        keys.join(", ")
    )
}

/// The statements that create `table`: its `CREATE TABLE` (columns, NOT
/// NULL, auto-increment, `DEFAULT` and `ON UPDATE` (where the dialect has
/// it) of `server_default`/`server_on_update` columns, primary key, UNIQUE constraints and foreign keys),
/// then one `CREATE INDEX` per `#[orm(index)]` column.
pub fn create_table_sql(dialect: &dyn Dialect, table: &TableDef) -> Vec<String> {
    create_table_with(dialect, table, &|_| true)
}

fn create_table_with(
    dialect: &dyn Dialect,
    table: &TableDef,
    inline_fk: &dyn Fn(&ForeignKeyDef) -> bool,
) -> Vec<String> {
    let name = quoted(dialect, table.name);
    let mut lines = Vec::new();
    for (i, c) in table.columns.iter().enumerate() {
        let mut line = format!("  {} ", quoted(dialect, c.name));
        match c.sql_type {
            Some(explicit) => line.push_str(explicit),
            None => line.push_str(&dialect.column_type_sql(c.column_type)),
        }
        if !c.nullable || table.is_key_column(i) {
            line.push_str(" NOT NULL");
        }
        if table.auto_increment == Some(i) && !dialect.auto_increment_sql().is_empty() {
            line.push(' ');
            line.push_str(dialect.auto_increment_sql());
        }
        if let Some(default) = c.server_default {
            line.push_str(" DEFAULT ");
            line.push_str(default);
        }
        if let (Some(on_update), true) = (c.server_on_update, dialect.on_update_clause()) {
            line.push_str(" ON UPDATE ");
            line.push_str(on_update);
        }
        lines.push(line);
    }
    if !table.primary_key.is_empty() {
        let keys: Vec<String> = table
            .primary_key
            .iter()
            .map(|&i| quoted(dialect, table.columns[i].name))
            .collect();
        lines.push(format!("  PRIMARY KEY ({})", keys.join(", ")));
    }
    for c in table.columns.iter().filter(|c| c.unique) {
        lines.push(format!(
            "  CONSTRAINT {} UNIQUE ({})",
            quoted(dialect, &constraint_name("uq", table.name, c.name)),
            quoted(dialect, c.name)
        ));
    }
    for fk in table.foreign_keys.iter().filter(|fk| inline_fk(fk)) {
        lines.push(format!("  {}", foreign_key_clause(dialect, table, fk)));
    }
    let mut create = format!("CREATE TABLE {name} (\n{}\n)", lines.join(",\n"));
    let suffix = dialect.create_table_suffix();
    if !suffix.is_empty() {
        create.push(' ');
        create.push_str(suffix);
    }
    let mut out = vec![create];
    for c in table.columns.iter().filter(|c| c.indexed) {
        out.push(format!(
            "CREATE INDEX {} ON {name} ({})",
            quoted(dialect, &constraint_name("ix", table.name, c.name)),
            quoted(dialect, c.name)
        ));
    }
    out
}

/// The association tables of the many-to-many relationships of `tables`
/// (each once): (table, owner, local column, target, remote column).
type Association = (
    &'static str,
    &'static TableDef,
    &'static str,
    &'static TableDef,
    &'static str,
);

fn associations(tables: &[&'static TableDef]) -> Vec<Association> {
    let mut out: Vec<Association> = Vec::new();
    for t in tables {
        for rel in t.relationships {
            if let Some(sec) = &rel.secondary {
                if !out.iter().any(|a| a.0 == sec.table) {
                    out.push((sec.table, *t, sec.local, (rel.target)(), sec.remote));
                }
            }
        }
    }
    out
}

/// `CREATE TABLE` of a many-to-many association table: both keys NOT NULL,
/// the pair the primary key, each a foreign key with `ON DELETE CASCADE`.
fn association_sql(dialect: &dyn Dialect, a: &Association) -> String {
    let (name, owner, local, target, remote) = *a;
    let key_type = |t: &TableDef| {
        let c = &t.columns[t.primary_key[0]];
        c.sql_type
            .map(str::to_string)
            .unwrap_or_else(|| dialect.column_type_sql(c.column_type))
    };
    let fk = |column: &str, t: &TableDef| {
        format!(
            "  CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE CASCADE",
            quoted(dialect, &constraint_name("fk", name, column)),
            quoted(dialect, column),
            quoted(dialect, t.name),
            quoted(dialect, t.columns[t.primary_key[0]].name)
        )
    };
    let mut sql = format!(
        "CREATE TABLE {} (\n  {} {} NOT NULL,\n  {} {} NOT NULL,\n  PRIMARY KEY ({}, {}),\n{},\n{}\n)",
        quoted(dialect, name),
        quoted(dialect, local),
        key_type(owner),
        quoted(dialect, remote),
        key_type(target),
        quoted(dialect, local),
        quoted(dialect, remote),
        fk(local, owner),
        fk(remote, target)
    );
    let suffix = dialect.create_table_suffix();
    if !suffix.is_empty() {
        sql.push(' ');
        sql.push_str(suffix);
    }
    sql
}

/// `DROP TABLE IF EXISTS` for `table`.
pub fn drop_table_sql(dialect: &dyn Dialect, table: &TableDef) -> String {
    format!("DROP TABLE IF EXISTS {}", quoted(dialect, table.name))
}

/// The order in which to create `tables`: every table after the tables it
/// refers to (references to tables outside `tables` are taken to exist).
/// The order of `tables` is kept where the references allow; a table listed
/// twice appears once. When references form a cycle among different tables,
/// the cycle is broken at its first table in the given order, whose
/// references forward are then added after all tables exist (see the module
/// docs).
///
/// Fails when two different models use the same table name.
pub fn creation_order(tables: &[&'static TableDef]) -> Result<Vec<&'static TableDef>> {
    let mut unique: Vec<&'static TableDef> = Vec::with_capacity(tables.len());
    for &t in tables {
        if let Some(other) = unique.iter().find(|u| u.name.eq_ignore_ascii_case(t.name)) {
            if !std::ptr::eq(*other, t) {
                return Err(Error::invalid(format!(
                    "models `{}` and `{}` both use the table name `{}`; give one of them #[orm(table = \"...\")]",
                    other.model, t.model, t.name
                )));
            }
            continue;
        }
        unique.push(t);
    }
    let position = |t: &TableDef| unique.iter().position(|u| std::ptr::eq(*u, t));
    // deps[i]: the other tables of the set that table i refers to.
    let deps: Vec<Vec<usize>> = unique
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut d: Vec<usize> = t
                .foreign_keys
                .iter()
                .filter_map(|fk| position((fk.target)()))
                .filter(|&j| j != i)
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    let mut done = vec![false; unique.len()];
    let mut order = Vec::with_capacity(unique.len());
    while order.len() < unique.len() {
        let ready = (0..unique.len()).find(|&i| !done[i] && deps[i].iter().all(|&j| done[j]));
        let next = ready.unwrap_or_else(|| {
            // Stuck: break the cycle at its first table in the given order.
            (0..unique.len())
                .find(|&i| !done[i] && on_cycle(i, &deps, &done))
                .expect("a set with no ready table has a cycle")
        });
        done[next] = true;
        order.push(unique[next]);
    }
    Ok(order)
}

/// Whether `start` reaches itself through references among tables not yet created.
fn on_cycle(start: usize, deps: &[Vec<usize>], done: &[bool]) -> bool {
    let mut seen = vec![false; deps.len()];
    let mut stack: Vec<usize> = deps[start].iter().copied().filter(|&j| !done[j]).collect();
    while let Some(i) = stack.pop() {
        if i == start {
            return true;
        }
        if !std::mem::replace(&mut seen[i], true) {
            stack.extend(deps[i].iter().copied().filter(|&j| !done[j]));
        }
    }
    false
}

/// The foreign keys that must wait until all tables exist: those pointing
/// at a table created later in `order`.
fn deferred(order: &[&'static TableDef]) -> Vec<(&'static TableDef, &'static ForeignKeyDef)> {
    let pos = |t: &TableDef| order.iter().position(|o| std::ptr::eq(*o, t));
    let mut out = Vec::new();
    for (i, t) in order.iter().enumerate() {
        for fk in t.foreign_keys {
            if pos((fk.target)()).is_some_and(|j| j > i) {
                out.push((*t, fk));
            }
        }
    }
    out
}

/// Every statement [`create_all`] runs, in order: the tables parents first,
/// their indexes, then the foreign keys of reference cycles.
pub fn create_all_sql(dialect: &dyn Dialect, tables: &[&'static TableDef]) -> Result<Vec<String>> {
    let order = creation_order(tables)?;
    let later = if dialect.alter_foreign_keys() {
        deferred(&order)
    } else {
        Vec::new()
    };
    let is_later = |t: &TableDef, fk: &ForeignKeyDef| {
        later
            .iter()
            .any(|(lt, lfk)| std::ptr::eq(*lt, t) && std::ptr::eq(*lfk, fk))
    };
    let mut out = Vec::new();
    for t in &order {
        out.extend(create_table_with(dialect, t, &|fk| !is_later(t, fk)));
    }
    for (t, fk) in &later {
        out.push(format!(
            "ALTER TABLE {} ADD {}",
            quoted(dialect, t.name),
            foreign_key_clause(dialect, t, fk)
        ));
    }
    for a in associations(tables) {
        out.push(association_sql(dialect, &a));
    }
    Ok(out)
}

/// Every statement [`drop_all`] runs, in order: the foreign keys of
/// reference cycles, then the tables children first (`DROP TABLE IF EXISTS`).
pub fn drop_all_sql(dialect: &dyn Dialect, tables: &[&'static TableDef]) -> Result<Vec<String>> {
    let order = creation_order(tables)?;
    let later = if dialect.alter_foreign_keys() {
        deferred(&order)
    } else {
        Vec::new()
    };
    let mut out: Vec<String> = later
        .iter()
        .map(|(t, fk)| {
            dialect.drop_foreign_key_sql(
                &quoted(dialect, t.name),
                &quoted(dialect, &foreign_key_name(t, fk)),
            )
        })
        .collect();
    for a in associations(tables) {
        out.push(format!("DROP TABLE IF EXISTS {}", quoted(dialect, a.0)));
    }
    out.extend(order.iter().rev().map(|t| drop_table_sql(dialect, t)));
    Ok(out)
}

/// Creates the tables of `tables` (`&[User::table(), Post::table()]`), in
/// dependency order, on one connection of `engine`. The tables must not
/// exist yet; MySQL commits DDL at once, so a failure leaves the tables
/// created before it.
pub fn create_all(engine: &Engine, tables: &[&'static TableDef]) -> Result<()> {
    run(engine, create_all_sql(engine.dialect(), tables)?)
}

/// Drops the tables of `tables` that exist, children first. When their
/// references form a cycle, the tables of the cycle must exist (their
/// foreign keys are dropped first).
pub fn drop_all(engine: &Engine, tables: &[&'static TableDef]) -> Result<()> {
    run(engine, drop_all_sql(engine.dialect(), tables)?)
}

fn run(engine: &Engine, statements: Vec<String>) -> Result<()> {
    let mut conn = engine.connect()?;
    for sql in &statements {
        conn.execute_text(sql)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
