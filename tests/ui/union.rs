use orm::Model;

#[derive(Clone, Copy, Model)]
union User {
    id: i64,
    flags: u64,
}

fn main() {}
