use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key)]
    id: i64,
    #[orm(version)]
    version: i32,
    #[orm(version)]
    revision: i32,
}

fn main() {}
