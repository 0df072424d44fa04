//! How MySQL/MariaDB spell SQL.

use orm_core::backend::Dialect;
use orm_core::value::ColumnType;

/// The MySQL/MariaDB dialect: backtick identifiers, InnoDB and utf8mb4 tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct MySqlDialect;

fn int(name: &str, unsigned: bool) -> String {
    if unsigned {
        format!("{name} UNSIGNED")
    } else {
        name.to_string()
    }
}

impl Dialect for MySqlDialect {
    fn quote_ident(&self, name: &str, out: &mut String) {
        out.reserve(name.len() + 2);
        out.push('`');
        for c in name.chars() {
            if c == '`' {
                out.push('`');
            }
            out.push(c);
        }
        out.push('`');
    }

    fn column_type_sql(&self, column_type: ColumnType) -> String {
        match column_type {
            ColumnType::TinyInt { unsigned } => int("TINYINT", unsigned),
            ColumnType::SmallInt { unsigned } => int("SMALLINT", unsigned),
            ColumnType::Int { unsigned } => int("INT", unsigned),
            ColumnType::BigInt { unsigned } => int("BIGINT", unsigned),
            ColumnType::Float => "FLOAT".into(),
            ColumnType::Double => "DOUBLE".into(),
            ColumnType::Bool => "BOOL".into(),
            ColumnType::VarChar(n) => format!("VARCHAR({n})"),
            ColumnType::Text => "LONGTEXT".into(),
            ColumnType::Blob => "LONGBLOB".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Time => "TIME(6)".into(),
            ColumnType::DateTime => "DATETIME(6)".into(),
            ColumnType::Decimal(p, s) => format!("DECIMAL({p},{s})"),
            ColumnType::Json => "JSON".into(),
            ColumnType::Uuid => "CHAR(36)".into(),
        }
    }

    fn auto_increment_sql(&self) -> &'static str {
        "AUTO_INCREMENT"
    }

    fn create_table_suffix(&self) -> &'static str {
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_types() {
        let mut s = String::new();
        MySqlDialect.quote_ident("we`ird", &mut s);
        assert_eq!(s, "`we``ird`");
        assert_eq!(
            MySqlDialect.column_type_sql(ColumnType::Int { unsigned: true }),
            "INT UNSIGNED"
        );
        assert_eq!(
            MySqlDialect.column_type_sql(ColumnType::Decimal(10, 2)),
            "DECIMAL(10,2)"
        );
        assert_eq!(
            MySqlDialect.column_type_sql(ColumnType::VarChar(40)),
            "VARCHAR(40)"
        );
        assert_eq!(
            MySqlDialect.column_type_sql(ColumnType::DateTime),
            "DATETIME(6)"
        );
    }
}
