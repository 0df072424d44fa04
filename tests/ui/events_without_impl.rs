use orm::Model;

// `#[orm(events)]` routes the flush's hooks to `ModelEvents`, which this
// struct does not implement.
#[derive(Clone, Model)]
#[orm(events)]
struct Task {
    #[orm(primary_key)]
    id: i64,
}

fn main() {}
