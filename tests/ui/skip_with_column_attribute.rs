use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key)]
    id: i64,
    #[orm(skip, column = "cache", unique)]
    cache: Vec<String>,
}

fn main() {}
