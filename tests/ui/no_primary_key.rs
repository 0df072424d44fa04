use orm::Model;

#[derive(Clone, Model)]
struct User {
    id: i64,
    name: String,
}

fn main() {}
