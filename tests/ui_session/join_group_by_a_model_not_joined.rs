use orm::prelude::*;

#[path = "shared/library.rs"]
mod library;
use library::*;

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
