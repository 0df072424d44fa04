use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key = true)]
    id: i64,
}

fn main() {}
