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
    use orm::expr::exists;
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    // A subquery correlated with Author cannot filter a query of Shelf.
    let _ = s.query::<Shelf>().filter(exists(
        s.select::<Book, _>((Book::ID,)).correlate(Book::AUTHOR_ID.eq_col(Author::ID)),
    ));
}
