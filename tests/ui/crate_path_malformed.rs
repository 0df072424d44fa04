use orm::Model;

#[derive(Clone, Model)]
#[orm(crate = "not a path!")]
struct User {
    #[orm(primary_key)]
    id: i64,
}

fn main() {}
