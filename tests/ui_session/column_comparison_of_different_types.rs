use orm::prelude::*;

#[path = "shared/library.rs"]
mod library;
use library::*;

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
