use orm::prelude::*;

#[path = "shared/library.rs"]
mod library;
use library::*;

fn main() {
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    // Shelf is not joined: its column cannot be selected.
    let _ = s
        .query::<Author>()
        .join(Author::BOOKS)
        .select((Author::ID, orm::select::count(Shelf::ID)));
}
