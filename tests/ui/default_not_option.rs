use orm::Model;

#[derive(Clone, Model)]
struct Task {
    #[orm(primary_key)]
    id: i64,
    // `default` needs an `Option` field: `None` is "not set".
    #[orm(default = 3)]
    priority: i32,
    #[orm(default = 1, server_default = "1")]
    weight: Option<i32>,
    #[orm(on_update = 5, server_on_update = "CURRENT_TIMESTAMP")]
    stamp: i64,
}

fn main() {}
