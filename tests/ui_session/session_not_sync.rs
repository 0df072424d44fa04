use orm::session::Session;

fn share<T: Sync>(_: &T) {}

fn shared(engine: orm::Engine) {
    let session = Session::new(engine);
    // Not even a shared reference may be used from two threads.
    share(&session);
}

fn main() {}
