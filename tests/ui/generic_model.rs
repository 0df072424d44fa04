use orm::Model;

#[derive(Clone, Model)]
struct User<T> {
    #[orm(primary_key)]
    id: T,
}

fn main() {}
