use orm::Model;

#[derive(Clone)]
struct Address {
    street: String,
}

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key)]
    id: i64,
    address: Address,
}

fn main() {}
