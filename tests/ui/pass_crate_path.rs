// `#[orm(crate = "...")]`: the generated code reaches the runtime through the
// given path, here a module that re-exports `orm` under another name (as a
// user who renamed the dependency in Cargo.toml would write "db").
mod some_module {
    pub use orm as reexport;
}

use some_module::reexport::Model;

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(crate = "some_module::reexport", table = "renamed")]
struct User {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(crate = "crate::some_module::reexport")]
struct Absolute {
    #[orm(primary_key)]
    id: i64,
}

fn main() {
    assert_eq!(User::table().name, "renamed");
    assert_eq!(User::NAME.name, "name");
    let user = User { id: Some(3), name: "ann".into() };
    assert_eq!(user.column_value(0), some_module::reexport::Value::Int(3));
    assert_eq!(Absolute::table().name, "absolute");
}
