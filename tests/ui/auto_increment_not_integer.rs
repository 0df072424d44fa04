use orm::Model;

#[derive(Clone, Model)]
struct User {
    #[orm(auto_increment)]
    id: Option<String>,
}

fn main() {}
