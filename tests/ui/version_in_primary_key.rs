use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key, version)]
    id: i64,
}

fn main() {}
