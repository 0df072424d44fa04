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


#[derive(Debug, Clone, Default, Model)]
struct Label {
    #[orm(primary_key)]
    id: i64,
    text: String,
}

fn main() {
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    // Columns compared with each other must have the same type.
    let _ = s
        .query::<Author>()
        .join(Author::BOOKS)
        .filter(Book::ID.eq_col(Label::TEXT));
}
