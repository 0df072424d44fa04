use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key)]
    id: i64,
    #[orm(version)]
    version: Option<i32>,
}

fn main() {}
