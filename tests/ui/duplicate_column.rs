use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key)]
    id: i64,
    name: String,
    #[orm(column = "NAME")]
    display_name: String,
}

fn main() {}
