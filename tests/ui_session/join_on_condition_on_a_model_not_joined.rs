use orm::prelude::*;

#[path = "shared/library.rs"]
mod library;
use library::*;

fn main() {
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    // The condition of join_on must use the joined model and the query's own.
    let _ = s
        .query::<Author>()
        .join_on::<Book, _>(Author::ID.eq_col(Shelf::ID));
}
