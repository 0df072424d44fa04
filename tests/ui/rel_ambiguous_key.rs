use orm::{Model, ToOne};

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key)]
    id: i64,
}

#[derive(Clone, Model)]
struct Message {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = User)]
    sender_id: i64,
    #[orm(references = User)]
    recipient_id: i64,
    #[orm(many_to_one)]
    sender: ToOne<User>,
}

fn main() {}
