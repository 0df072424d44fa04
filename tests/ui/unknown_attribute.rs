use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key, autoincrement)]
    id: Option<i64>,
}

fn main() {}
