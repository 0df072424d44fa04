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
    // Arithmetic needs a numeric column.
    let _ = Label::TEXT + 1;
    // The value computed must have the assigned column's type.
    let _ = Book::ID.set_expr(Label::ID + 1);
}
