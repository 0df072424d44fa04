use orm::Model;

// The generated code uses the given path, not `::orm`.
#[derive(Clone, Model)]
#[orm(crate = "nowhere")]
struct User {
    #[orm(primary_key)]
    id: i64,
}

fn main() {}
