use orm::prelude::*;

#[derive(Debug, Clone, Model)]
struct Person {
    #[orm(primary_key)]
    id: i64,
}

#[derive(Debug, Clone, Model)]
struct Pet {
    #[orm(primary_key)]
    id: i64,
}

fn list(session: &orm::session::Session) {
    // A filter on Pet's columns cannot be used in a query of Person.
    let _ = session.query::<Person>().filter(Pet::ID.eq(1));
}

fn main() {}
