//! Queries over several sources against a real MariaDB: typed selects of
//! columns and aggregates across joined models, joins on explicit
//! conditions, self-joins through aliases, correlated subqueries (EXISTS,
//! IN, scalar subqueries in the select list) and subqueries as join
//! targets. Each asserts the exact SQL and parameters and the rows the
//! database returned. Ported from SQLAlchemy's test/orm/test_joins.py
//! (`JoinTest`, `SelfReferentialTest`, `JoinFromSelectableTest`),
//! test_froms.py (`SelectFromTest`, `AddEntityEquivalenceTest`) and
//! test_query.py (`CorrelatedSubqueryTest`, `AggregateTest`).

mod common;

use common::TestDb;
use orm::expr::exists;
use orm::prelude::*;
use orm::select::{avg, count, count_all, max, sum};
use orm::session::SessionFactory;
use orm::source::Aliased;

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "users")]
struct User {
    #[orm(primary_key)]
    id: i64,
    #[orm(sql_type = "VARCHAR(32)")]
    name: String,
    #[orm(one_to_many, key = "user_id", back_populates = "user")]
    posts: ToMany<Post>,
    #[orm(one_to_many, key = "user_id", back_populates = "user")]
    addresses: ToMany<Address>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "posts")]
struct Post {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = User)]
    user_id: i64,
    score: i32,
    #[orm(many_to_one, key = "user_id", back_populates = "posts")]
    user: ToOne<User>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "addresses")]
struct Address {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = User)]
    user_id: i64,
    #[orm(sql_type = "VARCHAR(64)")]
    email: String,
    #[orm(many_to_one, key = "user_id", back_populates = "addresses")]
    user: ToOne<User>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "nodes")]
struct Node {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Node)]
    parent_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    name: String,
    #[orm(many_to_one, key = "parent_id", back_populates = "children")]
    parent: ToOne<Node>,
    #[orm(one_to_many, key = "parent_id", back_populates = "parent")]
    children: ToMany<Node>,
}

type Parent = Aliased<Node, 1>;
type Grandparent = Aliased<Node, 2>;

struct Fixture {
    db: TestDb,
    engine: Engine,
    factory: SessionFactory,
}

/// ed: 3 posts (scores 1, 5, 9), 1 address; wendy: 1 post (4), 2
/// addresses; fred: no posts, 1 address; jack: nothing.
/// Nodes: root ← n1 ← (n11, n12); root ← n2 ← n21 ← n211.
fn setup(tag: &str) -> Fixture {
    let db = TestDb::new(tag);
    let engine = orm::create_engine(&db.url).expect("engine");
    orm::schema::create_all(
        &engine,
        &[
            User::table(),
            Post::table(),
            Address::table(),
            Node::table(),
        ],
    )
    .unwrap();
    db.exec(
        "INSERT INTO users (id, name) VALUES (7, 'jack'), (8, 'ed'), (9, 'fred'), (10, 'wendy')",
    );
    db.exec(
        "INSERT INTO posts (id, user_id, score) VALUES (1, 8, 1), (2, 8, 5), (3, 8, 9), (4, 10, 4)",
    );
    db.exec(
        "INSERT INTO addresses (id, user_id, email) VALUES (1, 8, 'ed@wood.com'), \
         (2, 10, 'wendy@bettyboop.com'), (3, 10, 'wendy@lala.com'), (4, 9, 'fred@fred.com')",
    );
    db.exec(
        "INSERT INTO nodes (id, parent_id, name) VALUES (1, NULL, 'root'), (2, 1, 'n1'), \
         (3, 2, 'n11'), (4, 2, 'n12'), (5, 1, 'n2'), (6, 5, 'n21'), (7, 6, 'n211')",
    );
    let factory = SessionFactory::new(engine.clone());
    Fixture {
        db,
        engine,
        factory,
    }
}

fn names<M: Model>(objs: &[Obj<M>], name: impl Fn(&M) -> String) -> Vec<String> {
    objs.iter().map(|o| name(&o.read().unwrap())).collect()
}

#[test]
fn select_columns_and_aggregates_across_a_join() {
    let f = setup("j_agg");
    let s = f.factory.session();
    // Per-user post count and average score; users without posts keep
    // their row (outer join): count 0, average NULL.
    let q = s
        .query::<User>()
        .outerjoin(User::POSTS)
        .select((User::NAME, count(Post::ID), avg(Post::SCORE)))
        .group_by(User::ID)
        .group_by(User::NAME)
        .order_by(User::ID.asc());
    let (sql, params) = q.sql().unwrap();
    assert_eq!(
        sql,
        "SELECT `users`.`name`, COUNT(`posts`.`id`), AVG(`posts`.`score`) FROM `users` \
         LEFT OUTER JOIN `posts` ON `posts`.`user_id` = `users`.`id` \
         GROUP BY `users`.`id`, `users`.`name` ORDER BY `users`.`id` ASC"
    );
    assert!(params.is_empty());
    let rows: Vec<(String, i64, Option<f64>)> = q.all().unwrap();
    assert_eq!(
        rows,
        [
            ("jack".to_string(), 0, None),
            ("ed".to_string(), 3, Some(5.0)),
            ("fred".to_string(), 0, None),
            ("wendy".to_string(), 1, Some(4.0)),
        ]
    );
    // HAVING and ORDER BY an aggregate, a filter on the joined model.
    let q = s
        .query::<User>()
        .join(User::POSTS)
        .filter(Post::SCORE.gt(1))
        .select((User::NAME, sum(Post::SCORE), max(Post::SCORE)))
        .group_by(User::NAME)
        .having(count(Post::ID).ge(1))
        .order_by(sum(Post::SCORE).desc());
    let (sql, params) = q.sql().unwrap();
    assert_eq!(
        sql,
        "SELECT `users`.`name`, SUM(`posts`.`score`), MAX(`posts`.`score`) FROM `users` \
         INNER JOIN `posts` ON `posts`.`user_id` = `users`.`id` WHERE (`posts`.`score` > ?) \
         GROUP BY `users`.`name` HAVING (COUNT(`posts`.`id`) >= ?) \
         ORDER BY SUM(`posts`.`score`) DESC"
    );
    assert_eq!(params, [Value::Int(1), Value::Int(1)]);
    let rows: Vec<(String, Option<i32>, Option<i32>)> = q.all().unwrap();
    assert_eq!(
        rows,
        [
            ("ed".to_string(), Some(14), Some(9)),
            ("wendy".to_string(), Some(4), Some(4))
        ]
    );
    // Scalars and DISTINCT across a join (test_froms: distinct on a join).
    let with_mail: Vec<String> = s
        .query::<User>()
        .join(User::ADDRESSES)
        .filter(Address::EMAIL.like("%.com"))
        .select((User::NAME,))
        .distinct()
        .order_by(User::NAME.asc())
        .scalars()
        .unwrap();
    assert_eq!(with_mail, ["ed", "fred", "wendy"]);
    // Objects with columns (SQLAlchemy's query(User, func.count(Post.id))):
    // the objects come through the identity map.
    let ed = s.get::<User>(8).unwrap().unwrap();
    let q = s
        .query::<User>()
        .outerjoin(User::POSTS)
        .add_columns((count(Post::ID), max(Post::SCORE)))
        .group_by(User::ID)
        .order_by(User::ID.asc());
    assert_eq!(
        q.sql().unwrap().0,
        "SELECT `users`.`id`, `users`.`name`, COUNT(`posts`.`id`), MAX(`posts`.`score`) \
         FROM `users` LEFT OUTER JOIN `posts` ON `posts`.`user_id` = `users`.`id` \
         GROUP BY `users`.`id` ORDER BY `users`.`id` ASC"
    );
    let rows = q.all().unwrap();
    let got: Vec<(String, i64, Option<i32>)> = rows
        .iter()
        .map(|(u, (n, best))| (u.read().unwrap().name.clone(), *n, *best))
        .collect();
    let expect = [
        ("jack", 0, None),
        ("ed", 3, Some(9)),
        ("fred", 0, None),
        ("wendy", 1, Some(4)),
    ];
    assert_eq!(got, expect.map(|(a, b, c)| (a.to_string(), b, c)));
    assert!(rows[1].0.ptr_eq(&ed), "the identity map's object");
    let total: Option<i64> = s
        .query::<User>()
        .join(User::POSTS)
        .select((count_all::<User>(),))
        .scalar()
        .unwrap();
    assert_eq!(total, Some(4));
}

#[test]
fn join_on_an_explicit_condition() {
    let f = setup("j_on");
    let s = f.factory.session();
    let q = s
        .query::<User>()
        .join_on::<Address, _>(User::ID.eq_col(Address::USER_ID))
        .filter(Address::EMAIL.like("wendy%"))
        .order_by(User::ID.asc());
    let (sql, params) = q.sql().unwrap();
    assert_eq!(
        sql,
        "SELECT `users`.`id`, `users`.`name` FROM `users` \
         INNER JOIN `addresses` ON `users`.`id` = `addresses`.`user_id` \
         WHERE (`addresses`.`email` LIKE ?) ORDER BY `users`.`id` ASC"
    );
    assert_eq!(params, [Value::Text("wendy%".into())]);
    let users = q.all().unwrap();
    // Through the identity map, each user once although two rows matched.
    assert_eq!(names(&users, |u| u.name.clone()), ["wendy"]);
    let again = s.get::<User>(10).unwrap().unwrap();
    assert!(again.ptr_eq(&users[0]));
    // one(): two joined rows of one user are one object; two users are not.
    let wendy = s
        .query::<User>()
        .join(User::ADDRESSES)
        .filter(Address::EMAIL.like("wendy%"))
        .one()
        .unwrap();
    assert!(wendy.ptr_eq(&users[0]));
    let err = s.query::<User>().join(User::ADDRESSES).one().unwrap_err();
    assert!(
        matches!(err, orm::Error::MultipleResultsFound { .. }),
        "{err:?}"
    );
    let none = s
        .query::<User>()
        .join(User::ADDRESSES)
        .filter(Address::EMAIL.eq("nobody"))
        .one_or_none()
        .unwrap();
    assert!(none.is_none());
    // Offset and row locks carry over from the query into the join.
    let q = s
        .query::<User>()
        .order_by(User::ID.asc())
        .limit(1)
        .offset(1)
        .with_for_update()
        .join(User::ADDRESSES);
    let (sql, params) = q.sql().unwrap();
    assert!(
        sql.ends_with("ORDER BY `users`.`id` ASC LIMIT ? OFFSET ? FOR UPDATE"),
        "{sql}"
    );
    assert_eq!(params, [Value::UInt(1), Value::UInt(1)]);
    // The joined rows are ed, fred, wendy, wendy: the second is fred.
    assert_eq!(names(&q.all().unwrap(), |u| u.name.clone()), ["fred"]);
    // An outer join on a condition with an IS NULL filter: users without
    // an address (test_joins: outerjoin + filter on None).
    let lonely = s
        .query::<User>()
        .outerjoin_on::<Address, _>(User::ID.eq_col(Address::USER_ID))
        .filter(Address::ID.is_null().or(Address::EMAIL.like("fred%")))
        .order_by(User::ID.asc())
        .all()
        .unwrap();
    assert_eq!(names(&lonely, |u| u.name.clone()), ["jack", "fred"]);
    // A comparison of two sources' columns as a filter: addresses whose id
    // is below their post's id (a condition beyond key equality).
    let rows: Vec<(i64, i64)> = s
        .query::<Address>()
        .join_on::<Post, _>(Address::USER_ID.eq_col(Post::USER_ID))
        .filter(Address::ID.lt_col(Post::ID))
        .select((Address::ID, Post::ID))
        .order_by(Address::ID.asc())
        .order_by(Post::ID.asc())
        .all()
        .unwrap();
    assert_eq!(rows, [(1, 2), (1, 3), (2, 4), (3, 4)]);
}

#[test]
fn self_joins_through_aliases() {
    let f = setup("j_alias");
    let s = f.factory.session();
    // Children of n1: a relationship joined under an alias.
    let q = s
        .query::<Node>()
        .join(Node::PARENT.alias::<1>())
        .filter(Parent::col(Node::NAME).eq("n1"))
        .order_by(Node::ID.asc());
    let (sql, _) = q.sql().unwrap();
    assert_eq!(
        sql,
        "SELECT `nodes`.`id`, `nodes`.`parent_id`, `nodes`.`name` FROM `nodes` \
         INNER JOIN `nodes` AS `nodes_1` ON `nodes_1`.`id` = `nodes`.`parent_id` \
         WHERE (`nodes_1`.`name` = ?) ORDER BY `nodes`.`id` ASC"
    );
    let children = q.all().unwrap();
    assert_eq!(names(&children, |n| n.name.clone()), ["n11", "n12"]);
    // Two aliases, from the alias on explicit conditions: grandchildren of
    // root, with their parent's name (SelfReferentialTest.test_join_parent_child
    // and test_multiple_explicit_entities_one).
    let q = s
        .query::<Node>()
        .join_on::<Parent, _>(Node::PARENT_ID.eq_col(Parent::col(Node::ID)))
        .join_on::<Grandparent, _>(Parent::col(Node::PARENT_ID).eq_col(Grandparent::col(Node::ID)))
        .filter(Grandparent::col(Node::NAME).eq("root"))
        .select((Node::NAME, Parent::col(Node::NAME)))
        .order_by(Node::ID.asc());
    let (sql, _) = q.sql().unwrap();
    assert_eq!(
        sql,
        "SELECT `nodes`.`name`, `nodes_1`.`name` FROM `nodes` \
         INNER JOIN `nodes` AS `nodes_1` ON `nodes`.`parent_id` = `nodes_1`.`id` \
         INNER JOIN `nodes` AS `nodes_2` ON `nodes_1`.`parent_id` = `nodes_2`.`id` \
         WHERE (`nodes_2`.`name` = ?) ORDER BY `nodes`.`id` ASC"
    );
    let pairs: Vec<(String, String)> = q.all().unwrap();
    let expect = [("n11", "n1"), ("n12", "n1"), ("n21", "n2")];
    assert_eq!(pairs, expect.map(|(a, b)| (a.to_string(), b.to_string())));
    // Children counted per parent by a self-join, leaves excluded.
    let per_parent: Vec<(String, i64)> = s
        .query::<Node>()
        .join(Node::CHILDREN.alias::<1>())
        .select((Node::NAME, count(Parent::col(Node::ID))))
        .group_by(Node::NAME)
        .order_by(Node::NAME.asc())
        .all()
        .unwrap();
    let expect = [("n1", 2), ("n2", 1), ("n21", 1), ("root", 2)];
    assert_eq!(per_parent, expect.map(|(a, b)| (a.to_string(), b)));
    // Joining the same table twice without an alias is refused before SQL.
    let err = s.query::<Node>().join(Node::PARENT).sql().unwrap_err();
    assert!(err.to_string().contains("alias"), "{err}");
}

#[test]
fn correlated_subqueries() {
    let f = setup("j_corr");
    let s = f.factory.session();
    // Users with a post scored above 4 (EXISTS, correlated).
    let q = s.query::<User>().filter(exists(
        s.select::<Post, _>((Post::ID,))
            .filter(Post::SCORE.gt(4))
            .correlate(Post::USER_ID.eq_col(User::ID)),
    ));
    let (sql, params) = q.sql();
    assert_eq!(
        sql,
        "SELECT `id`, `name` FROM `users` WHERE EXISTS (SELECT `id` FROM `posts` \
         WHERE (`score` > ? AND `posts`.`user_id` = `users`.`id`))"
    );
    assert_eq!(params, [Value::Int(4)]);
    assert_eq!(names(&q.all().unwrap(), |u| u.name.clone()), ["ed"]);
    // NOT EXISTS: users without posts.
    let idle = s
        .query::<User>()
        .filter(!exists(
            s.select::<Post, _>((Post::ID,))
                .correlate(Post::USER_ID.eq_col(User::ID)),
        ))
        .order_by(User::ID.asc())
        .all()
        .unwrap();
    assert_eq!(names(&idle, |u| u.name.clone()), ["jack", "fred"]);
    // A scalar subquery in the select list: each user's post count and
    // best score, computed per row.
    let rows: Vec<(String, Option<i64>, Option<i32>)> = s
        .select::<User, _>((
            User::NAME,
            s.select::<Post, _>((count(Post::ID),))
                .correlate(Post::USER_ID.eq_col(User::ID))
                .scalar_subquery(),
            s.select::<Post, _>((max(Post::SCORE),))
                .correlate(Post::USER_ID.eq_col(User::ID))
                .scalar_subquery(),
        ))
        .order_by(User::ID.asc())
        .all()
        .unwrap();
    assert_eq!(
        rows,
        [
            ("jack".to_string(), Some(0), None),
            ("ed".to_string(), Some(3), Some(9)),
            ("fred".to_string(), Some(0), None),
            ("wendy".to_string(), Some(1), Some(4)),
        ]
    );
    // A correlated scalar subquery beside each object.
    let with_counts = s
        .query::<User>()
        .add_columns((s
            .select::<Post, _>((count(Post::ID),))
            .correlate(Post::USER_ID.eq_col(User::ID))
            .scalar_subquery(),))
        .order_by(User::ID.asc())
        .all()
        .unwrap();
    let counts: Vec<(i64, Option<i64>)> = with_counts
        .iter()
        .map(|(u, (n,))| (u.read().unwrap().id, *n))
        .collect();
    assert_eq!(
        counts,
        [(7, Some(0)), (8, Some(3)), (9, Some(0)), (10, Some(1))]
    );
    // Correlated IN inside a joined query: addresses of users whose best
    // post beats 4.
    let emails: Vec<String> = s
        .query::<Address>()
        .join(Address::USER)
        .filter(
            User::ID.in_select(
                s.select::<Post, _>((Post::USER_ID,))
                    .filter(Post::SCORE.gt(4))
                    .correlate(Post::USER_ID.eq_col(User::ID)),
            ),
        )
        .select((Address::EMAIL,))
        .scalars()
        .unwrap();
    assert_eq!(emails, ["ed@wood.com"]);
}

#[test]
fn subquery_as_a_join_target() {
    let f = setup("j_subq");
    let s = f.factory.session();
    // SQLAlchemy: subq = select(Post.user_id, func.count(Post.id)).group_by(...).subquery();
    // select(User.name, subq.c.count).join(subq, User.id == subq.c.user_id)
    let sub = s
        .select::<Post, _>((Post::USER_ID, count(Post::ID)))
        .filter(Post::SCORE.ge(2))
        .group_by(Post::USER_ID)
        .subquery::<1>();
    let (user_id, posts) = (sub.c::<0>(), sub.c::<1>());
    let q = s
        .query::<User>()
        .join_subquery(sub, User::ID.eq_col(user_id))
        .filter(posts.ge(1))
        .select((User::NAME, posts))
        .order_by(posts.desc());
    let (sql, params) = q.sql().unwrap();
    assert_eq!(
        sql,
        "SELECT `users`.`name`, `anon_1`.`c1` FROM `users` INNER JOIN \
         (SELECT `user_id` AS `c0`, COUNT(`id`) AS `c1` FROM `posts` WHERE (`score` >= ?) \
         GROUP BY `user_id`) AS `anon_1` ON `users`.`id` = `anon_1`.`c0` \
         WHERE (`anon_1`.`c1` >= ?) ORDER BY `anon_1`.`c1` DESC"
    );
    assert_eq!(params, [Value::Int(2), Value::Int(1)]);
    let rows: Vec<(String, i64)> = q.all().unwrap();
    assert_eq!(rows, [("ed".to_string(), 2), ("wendy".to_string(), 1)]);
    // Loading objects through a subquery join: users with at least two
    // addresses, through the identity map.
    let sub = s
        .select::<Address, _>((Address::USER_ID, count(Address::ID)))
        .group_by(Address::USER_ID)
        .subquery::<2>();
    let (user_id, n) = (sub.c::<0>(), sub.c::<1>());
    let users = s
        .query::<User>()
        .join_subquery(sub, User::ID.eq_col(user_id))
        .filter(n.ge(2))
        .all()
        .unwrap();
    assert_eq!(names(&users, |u| u.name.clone()), ["wendy"]);
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM users"), [["4"]]);
    let _ = &f.engine;
}
