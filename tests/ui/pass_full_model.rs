//! Every attribute together compiles, and the generated items are usable.
#![deny(warnings, missing_docs)]

use orm::Model;

/// A team.
#[derive(Debug, Clone, Model)]
#[orm(table = "teams")]
pub struct Team {
    /// Key.
    #[orm(primary_key, auto_increment)]
    pub id: Option<u32>,
}

/// A user.
#[derive(Debug, Clone, Model)]
pub struct User {
    /// Key.
    #[orm(auto_increment)]
    pub id: Option<i64>,
    /// Name.
    #[orm(unique, sql_type = "VARCHAR(64)")]
    pub name: String,
    /// Mail.
    #[orm(column = "mail", index)]
    pub email: Option<String>,
    /// Team.
    #[orm(references = Team)]
    pub team_id: Option<u32>,
    /// Manager.
    #[orm(references = self::User)]
    pub manager_id: Option<i64>,
    /// Version.
    #[orm(version)]
    pub version: u64,
    /// Not stored.
    #[orm(skip)]
    pub scratch: Vec<String>,
    /// A keyword as a field name.
    pub r#type: String,
}

/// A join table with a composite key.
#[derive(Debug, Clone, Model)]
pub struct Membership {
    /// Key part.
    #[orm(primary_key, references = User)]
    pub user_id: i64,
    /// Key part.
    #[orm(primary_key, references = Team)]
    pub team_id: u32,
}

mod private {
    use orm::Model;

    #[derive(Clone, Model)]
    pub(crate) struct Hidden {
        #[orm(primary_key)]
        pub(crate) id: i64,
    }
}

fn main() {
    assert_eq!(User::table().primary_key, &[0]);
    assert_eq!(User::TYPE.name, "type");
    assert_eq!(Membership::table().primary_key, &[0, 1]);
    assert_eq!(private::Hidden::ID.index, 0);
    let _: orm::Column<User, Option<i64>> = User::MANAGER_ID;
}
