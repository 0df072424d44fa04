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
    // The condition of join_on must use the joined model and the query's own.
    let _ = s
        .query::<Author>()
        .join_on::<Book, _>(Author::ID.eq_col(Shelf::ID));
}
