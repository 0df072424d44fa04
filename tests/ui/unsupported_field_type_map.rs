use std::collections::HashMap;

use orm::Model;

// One error on the field's type, naming the traits to implement.
#[derive(Clone, Model)]
struct Settings {
    #[orm(primary_key)]
    id: i64,
    values: HashMap<String, i32>,
}

fn main() {}
