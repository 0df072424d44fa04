use orm::{Model, ToOne};

#[derive(Clone, Model)]
struct Author {
    #[orm(primary_key)]
    id: i64,
}

#[derive(Clone, Model)]
struct Book {
    #[orm(primary_key)]
    id: i64,
    author_id: i64,
    #[orm(many_to_one)]
    author: ToOne<Author>,
}

fn main() {}
