use orm::prelude::*;

#[derive(Debug, Clone, Model)]
struct Person {
    #[orm(primary_key)]
    id: i64,
    name: String,
}

fn main() {
    // A String column cannot be compared with an integer.
    let _ = Person::NAME.eq(3);
}
