use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key, auto_increment)]
    id: i64,
}

fn main() {}
