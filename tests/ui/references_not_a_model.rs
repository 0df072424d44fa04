use orm::Model;

#[derive(Clone)]
struct Team {
    id: i64,
}

#[derive(Clone, Model)]
struct User {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Team)]
    team_id: i64,
}

fn main() {}
