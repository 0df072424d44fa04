use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(auto_increment)]
    id: Option<i64>,
    #[orm(auto_increment)]
    other: Option<i64>,
}

fn main() {}
