use orm::session::Session;

fn move_to_thread(engine: orm::Engine) {
    let session = Session::new(engine);
    // A session belongs to one thread.
    std::thread::spawn(move || drop(session));
}

fn main() {}
