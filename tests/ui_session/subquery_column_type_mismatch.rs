use orm::prelude::*;

#[path = "shared/library.rs"]
mod library;
use library::*;

fn main() {
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    // The subquery's second column is an i64 count: it does not compare
    // with text.
    let sub = s
        .select::<Book, _>((Book::AUTHOR_ID, orm::select::count(Book::ID)))
        .group_by(Book::AUTHOR_ID)
        .subquery::<1>();
    let (author_id, n) = (sub.c::<0>(), sub.c::<1>());
    let _ = s
        .query::<Author>()
        .join_subquery(sub, Author::ID.eq_col(author_id))
        .filter(n.eq("many"));
}
