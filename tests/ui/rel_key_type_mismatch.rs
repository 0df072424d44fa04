use orm::{Model, ToMany, ToOne};

#[derive(Clone, Model)]
struct Author {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(one_to_many, key = "author_name")]
    books: ToMany<Book>,
}

#[derive(Clone, Model)]
struct Book {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Author)]
    author_name: String,
    #[orm(many_to_one)]
    author: ToOne<Author>,
}

fn main() {}
