use orm::Model;

#[derive(Clone, Model)]
struct User;

fn main() {}
