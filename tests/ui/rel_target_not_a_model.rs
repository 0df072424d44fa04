use orm::{Model, ToOne};

struct NotAModel;

#[derive(Clone, Model)]
struct Book {
    #[orm(primary_key)]
    id: i64,
    author_id: i64,
    #[orm(many_to_one, key = "author_id")]
    author: ToOne<NotAModel>,
}

fn main() {}
