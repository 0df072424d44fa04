use orm::prelude::*;

#[path = "shared/library.rs"]
mod library;
use library::*;

fn main() {
    use orm::expr::exists;
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    // A subquery correlated with Author cannot filter a query of Shelf.
    let _ = s.query::<Shelf>().filter(exists(
        s.select::<Book, _>((Book::ID,)).correlate(Book::AUTHOR_ID.eq_col(Author::ID)),
    ));
}
