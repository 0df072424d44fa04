use orm::prelude::*;

#[path = "shared/library.rs"]
mod library;
use library::*;
fn main() {
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    let _ = s.query::<Author>().join(Author::BOOKS).filter(Shelf::ID.eq(1));
}
