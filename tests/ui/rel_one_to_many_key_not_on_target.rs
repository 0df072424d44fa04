use orm::{Model, ToMany};

#[derive(Clone, Model)]
struct Author {
    #[orm(primary_key)]
    id: i64,
    #[orm(one_to_many, key = "writer_id")]
    books: ToMany<Book>,
}

#[derive(Clone, Model)]
struct Book {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Author)]
    author_id: i64,
}

fn main() {}
