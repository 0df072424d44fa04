use orm::Model;

#[derive(Clone, Model)]
struct User(i64, String);

fn main() {}
