use orm::Model;

#[derive(Clone, Model)]
#[orm(primary_key)]
struct User {
    #[orm(primary_key)]
    id: i64,
}

fn main() {}
