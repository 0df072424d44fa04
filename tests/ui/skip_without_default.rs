use orm::Model;

#[derive(Clone)]
struct Handle(u32);

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key)]
    id: i64,
    #[orm(skip)]
    handle: Handle,
}

fn main() {}
