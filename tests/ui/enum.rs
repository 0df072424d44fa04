use orm::Model;

#[derive(Clone, Model)]
enum User {
    Admin,
    Guest,
}

fn main() {}
