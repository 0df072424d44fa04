use orm::prelude::*;

#[derive(Debug, Clone, Default, Model)]
struct Author {
    #[orm(primary_key)]
    id: i64,
    #[orm(one_to_many, key = "author_id")]
    books: ToMany<Book>,
}

#[derive(Debug, Clone, Default, Model)]
struct Book {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Author)]
    author_id: i64,
}

#[derive(Debug, Clone, Default, Model)]
struct Shelf {
    #[orm(primary_key)]
    id: i64,
}


fn main() {
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    // GROUP BY a column of a model that is not joined.
    let _ = s
        .query::<Author>()
        .join(Author::BOOKS)
        .select((Author::ID,))
        .group_by(Shelf::ID);
}
