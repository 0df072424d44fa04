use orm::Model;

// Every bad attribute is reported, not only the first.
#[derive(Clone, Model)]
#[orm(tabel = "users")]
struct User {
    #[orm(primary_key, auto_incremnt)]
    id: Option<i64>,
    #[orm(colum = "n")]
    name: String,
    #[orm(version)]
    version: String,
}

fn main() {}
