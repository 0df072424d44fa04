use orm::prelude::*;
use orm::session::Obj;

#[derive(Debug, Clone, Model)]
struct Thing {
    #[orm(primary_key)]
    id: i64,
}

fn move_handle(obj: Obj<Thing>) {
    // A handle belongs to its session's thread: send `obj.value()?` instead.
    std::thread::spawn(move || drop(obj));
}

fn main() {}
