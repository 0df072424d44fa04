use orm::Model;

#[derive(Clone, Model)]
#[orm(table = "")]
struct User {
    #[orm(primary_key, column = " ")]
    id: i64,
}

fn main() {}
