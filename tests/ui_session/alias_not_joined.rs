use orm::prelude::*;

#[derive(Debug, Clone, Default, Model)]
struct Node {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Node)]
    parent_id: Option<i64>,
    #[orm(many_to_one, key = "parent_id")]
    parent: ToOne<Node>,
}

fn main() {
    use orm::source::Aliased;
    let engine = orm::create_engine("sqlite::memory:").unwrap();
    let s = SessionFactory::new(engine).session();
    // Only alias 1 is joined: a filter on alias 2 does not compile.
    let _ = s
        .query::<Node>()
        .join(Node::PARENT.alias::<1>())
        .filter(Aliased::<Node, 2>::col(Node::ID).eq(1));
}
