use orm::prelude::*;

#[derive(Debug, Clone, Model)]
struct Job {
    #[orm(primary_key)]
    id: i64,
}

#[derive(Debug, Clone, Model)]
struct Other {
    #[orm(primary_key)]
    id: i64,
}

fn main() {
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    let _ = s.select::<Job, _>((Job::ID, Other::ID));
}
