use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key)]
    #[orm(primary_key)]
    id: i64,
    #[orm(column = "a", column = "b")]
    name: String,
}

fn main() {}
