use super::*;
use crate::model::ColumnDef;
use crate::value::ColumnType;

/// Backtick quoting and MySQL's type names (the core's unit tests' dialect).
pub(crate) struct TestDialect;

impl Dialect for TestDialect {
    fn quote_ident(&self, name: &str, out: &mut String) {
        out.push('`');
        out.push_str(&name.replace('`', "``"));
        out.push('`');
    }
    fn column_type_sql(&self, t: ColumnType) -> String {
        let int = |name: &str, unsigned: bool| {
            format!("{name}{}", if unsigned { " UNSIGNED" } else { "" })
        };
        match t {
            ColumnType::TinyInt { unsigned } => int("TINYINT", unsigned),
            ColumnType::SmallInt { unsigned } => int("SMALLINT", unsigned),
            ColumnType::Int { unsigned } => int("INT", unsigned),
            ColumnType::BigInt { unsigned } => int("BIGINT", unsigned),
            ColumnType::Float => "FLOAT".into(),
            ColumnType::Double => "DOUBLE".into(),
            ColumnType::Bool => "BOOL".into(),
            ColumnType::VarChar(n) => format!("VARCHAR({n})"),
            ColumnType::Text => "TEXT".into(),
            ColumnType::Blob => "BLOB".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Time => "TIME(6)".into(),
            ColumnType::DateTime => "DATETIME(6)".into(),
            ColumnType::Decimal(p, s) => format!("DECIMAL({p}, {s})"),
            ColumnType::Json => "JSON".into(),
            ColumnType::Uuid => "CHAR(36)".into(),
        }
    }
    fn auto_increment_sql(&self) -> &'static str {
        "AUTO_INCREMENT"
    }
    fn create_table_suffix(&self) -> &'static str {
        "ENGINE=InnoDB"
    }
}

const fn col(name: &'static str, column_type: ColumnType, nullable: bool) -> ColumnDef {
    ColumnDef::new(name, name, column_type, nullable)
}

const BIGINT: ColumnType = ColumnType::BigInt { unsigned: false };

static USERS: TableDef = TableDef {
    name: "users",
    model: "User",
    columns: &[
        col("id", BIGINT, true),
        ColumnDef {
            sql_type: Some("VARCHAR(64)"),
            unique: true,
            ..col("name", ColumnType::VarChar(255), false)
        },
        ColumnDef {
            indexed: true,
            ..col("email", ColumnType::VarChar(255), true)
        },
        col("manager_id", BIGINT, true),
    ],
    primary_key: &[0],
    auto_increment: Some(0),
    version: None,
    foreign_keys: &[ForeignKeyDef {
        column: 3,
        target: || &USERS,
        on_delete: OnDelete::Restrict,
    }],
    relationships: &[],
};

static POSTS: TableDef = TableDef {
    name: "posts",
    model: "Post",
    columns: &[col("id", BIGINT, true), col("author_id", BIGINT, false)],
    primary_key: &[0],
    auto_increment: Some(0),
    version: None,
    foreign_keys: &[ForeignKeyDef {
        column: 1,
        target: || &USERS,
        on_delete: OnDelete::Restrict,
    }],
    relationships: &[],
};

static TAGGING: TableDef = TableDef {
    name: "tagging",
    model: "Tagging",
    columns: &[
        col("post_id", BIGINT, false),
        col("tag", ColumnType::VarChar(32), false),
    ],
    primary_key: &[0, 1],
    auto_increment: None,
    version: None,
    foreign_keys: &[ForeignKeyDef {
        column: 0,
        target: || &POSTS,
        on_delete: OnDelete::Restrict,
    }],
    relationships: &[],
};

// A cycle: a person's favourite pet and a pet's owner.
static PERSON: TableDef = TableDef {
    name: "person",
    model: "Person",
    columns: &[col("id", BIGINT, false), col("favourite_pet", BIGINT, true)],
    primary_key: &[0],
    auto_increment: None,
    version: None,
    foreign_keys: &[ForeignKeyDef {
        column: 1,
        target: || &PET,
        on_delete: OnDelete::Restrict,
    }],
    relationships: &[],
};

static PET: TableDef = TableDef {
    name: "pet",
    model: "Pet",
    columns: &[col("id", BIGINT, false), col("owner_id", BIGINT, false)],
    primary_key: &[0],
    auto_increment: None,
    version: None,
    foreign_keys: &[ForeignKeyDef {
        column: 1,
        target: || &PERSON,
        on_delete: OnDelete::Restrict,
    }],
    relationships: &[],
};

static OTHER_USERS: TableDef = TableDef {
    name: "USERS",
    model: "OtherUser",
    columns: &[col("id", BIGINT, false)],
    primary_key: &[0],
    auto_increment: None,
    version: None,
    foreign_keys: &[],
    relationships: &[],
};

fn names(tables: &[&TableDef]) -> Vec<&'static str> {
    tables.iter().map(|t| t.name).collect()
}

#[test]
fn create_table_has_every_clause() {
    let sql = create_table_sql(&TestDialect, &USERS);
    assert_eq!(
        sql,
        [
            "CREATE TABLE `users` (\n  \
             `id` BIGINT NOT NULL AUTO_INCREMENT,\n  \
             `name` VARCHAR(64) NOT NULL,\n  \
             `email` VARCHAR(255),\n  \
             `manager_id` BIGINT,\n  \
             PRIMARY KEY (`id`),\n  \
             CONSTRAINT `uq_users_name` UNIQUE (`name`),\n  \
             CONSTRAINT `fk_users_manager_id` FOREIGN KEY (`manager_id`) REFERENCES `users` (`id`)\n\
             ) ENGINE=InnoDB",
            "CREATE INDEX `ix_users_email` ON `users` (`email`)",
        ]
    );
}

#[test]
fn composite_primary_key() {
    let sql = create_table_sql(&TestDialect, &TAGGING);
    assert_eq!(sql.len(), 1);
    assert!(
        sql[0].contains("  PRIMARY KEY (`post_id`, `tag`),\n"),
        "{}",
        sql[0]
    );
    assert!(
        sql[0].contains("FOREIGN KEY (`post_id`) REFERENCES `posts` (`id`)"),
        "{}",
        sql[0]
    );
    assert!(!sql[0].contains("AUTO_INCREMENT"), "{}", sql[0]);
}

#[test]
fn drop_table() {
    assert_eq!(
        drop_table_sql(&TestDialect, &POSTS),
        "DROP TABLE IF EXISTS `posts`"
    );
}

#[test]
fn parents_come_first_and_input_order_is_kept() {
    let order = creation_order(&[&TAGGING, &POSTS, &USERS]).unwrap();
    assert_eq!(names(&order), ["users", "posts", "tagging"]);
    let order = creation_order(&[&USERS, &TAGGING, &POSTS, &USERS]).unwrap();
    assert_eq!(names(&order), ["users", "posts", "tagging"]);
    // A reference to a table outside the set does not constrain the order.
    let order = creation_order(&[&TAGGING, &POSTS]).unwrap();
    assert_eq!(names(&order), ["posts", "tagging"]);
    assert!(creation_order(&[]).unwrap().is_empty());
}

#[test]
fn one_name_for_two_models_is_an_error() {
    let e = creation_order(&[&USERS, &OTHER_USERS]).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("`User`") && msg.contains("`OtherUser`"),
        "{msg}"
    );
}

#[test]
fn cycles_add_the_forward_references_last() {
    let order = creation_order(&[&PET, &USERS, &PERSON]).unwrap();
    assert_eq!(names(&order), ["users", "pet", "person"]);
    let sql = create_all_sql(&TestDialect, &[&PET, &PERSON]).unwrap();
    assert_eq!(sql.len(), 3);
    assert!(
        sql[0].starts_with("CREATE TABLE `pet`") && !sql[0].contains("FOREIGN KEY"),
        "{}",
        sql[0]
    );
    assert!(sql[1].contains("REFERENCES `pet` (`id`)"), "{}", sql[1]);
    assert_eq!(
        sql[2],
        "ALTER TABLE `pet` ADD CONSTRAINT `fk_pet_owner_id` FOREIGN KEY (`owner_id`) REFERENCES `person` (`id`)"
    );
    let drop = drop_all_sql(&TestDialect, &[&PET, &PERSON]).unwrap();
    assert_eq!(
        drop,
        [
            "ALTER TABLE `pet` DROP FOREIGN KEY `fk_pet_owner_id`",
            "DROP TABLE IF EXISTS `person`",
            "DROP TABLE IF EXISTS `pet`",
        ]
    );
}

#[test]
fn create_all_and_drop_all_sql_without_cycles() {
    let sql = create_all_sql(&TestDialect, &[&TAGGING, &POSTS, &USERS]).unwrap();
    let firsts: Vec<&str> = sql.iter().map(|s| s.lines().next().unwrap()).collect();
    assert_eq!(
        firsts,
        [
            "CREATE TABLE `users` (",
            "CREATE INDEX `ix_users_email` ON `users` (`email`)",
            "CREATE TABLE `posts` (",
            "CREATE TABLE `tagging` (",
        ]
    );
    let drop = drop_all_sql(&TestDialect, &[&TAGGING, &POSTS, &USERS]).unwrap();
    assert_eq!(
        drop,
        [
            "DROP TABLE IF EXISTS `tagging`",
            "DROP TABLE IF EXISTS `posts`",
            "DROP TABLE IF EXISTS `users`",
        ]
    );
}

#[test]
fn long_names_are_shortened_stably() {
    let long = "a".repeat(60);
    let name = constraint_name("ix", &long, "column");
    assert_eq!(name.len(), 64);
    assert_eq!(name, constraint_name("ix", &long, "column"));
    assert_ne!(name, constraint_name("ix", &long, "column2"));
    assert_eq!(constraint_name("ix", "t", "c"), "ix_t_c");
}
