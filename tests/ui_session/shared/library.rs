//! The models the compile-fail cases share (an author's books; shelves are never joined).
#![allow(dead_code)]

use orm::prelude::*;

#[derive(Debug, Clone, Default, Model)]
pub struct Author {
    #[orm(primary_key)]
    pub id: i64,
    #[orm(one_to_many, key = "author_id")]
    pub books: ToMany<Book>,
}

#[derive(Debug, Clone, Default, Model)]
pub struct Book {
    #[orm(primary_key)]
    pub id: i64,
    #[orm(references = Author)]
    pub author_id: i64,
}

#[derive(Debug, Clone, Default, Model)]
pub struct Shelf {
    #[orm(primary_key)]
    pub id: i64,
}

