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
    // Arithmetic needs a numeric column.
    let _ = Label::TEXT + 1;
    // The value computed must have the assigned column's type.
    let _ = Book::ID.set_expr(Label::ID + 1);
}
