use orm::Model;

#[derive(Clone, Model)]
#[orm(name = "users")]
struct User {
    #[orm(primary_key)]
    id: i64,
}

fn main() {}
