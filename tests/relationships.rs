//! Relationships against a real MariaDB: one flush for a whole object graph
//! (foreign keys synced from generated keys), lazy and eager (`selectin`)
//! loading, `back_populates`, the save-update, delete and delete-orphan
//! cascades, setting children's keys NULL, self-referential trees,
//! one-to-one, rollback. Statement order and rows asserted, after
//! SQLAlchemy's test_unitofworkv2.py, test_cascade.py, test_lazy_relations.py,
//! test_selectin_relations.py and test_backref_mutations.py.

mod common;

use common::TestDb;
use orm::prelude::*;
use orm::session::SessionFactory;

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "authors")]
struct Author {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    name: String,
    #[orm(
        one_to_many,
        key = "author_id",
        back_populates = "author",
        cascade = "all, delete-orphan"
    )]
    books: ToMany<Book>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "books")]
struct Book {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Author)]
    author_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    title: String,
    #[orm(many_to_one, back_populates = "books")]
    author: ToOne<Author>,
    #[orm(one_to_many, key = "book_id", cascade = "all")]
    reviews: ToMany<Review>,
    #[orm(many_to_many, secondary = "book_tags", back_populates = "books")]
    tags: ToMany<Tag>,
    #[orm(one_to_many, key = "book_id", cascade = "all", passive_deletes)]
    notes: ToMany<Note>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "tags")]
struct Tag {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(unique, sql_type = "VARCHAR(32)")]
    label: String,
    #[orm(many_to_many, secondary = "book_tags", back_populates = "tags")]
    books: ToMany<Book>,
}

/// A member's favourite post, and a post's member: two rows that point at
/// each other, resolved by post_update.
#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "members")]
struct Member {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    name: String,
    #[orm(references = Post)]
    favorite_post_id: Option<i64>,
    #[orm(many_to_one, key = "favorite_post_id", post_update)]
    favorite: ToOne<Post>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "posts")]
struct Post {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Member)]
    member_id: Option<i64>,
    #[orm(many_to_one)]
    member: ToOne<Member>,
}

/// A book's notes: deleting a book trusts the database's ON DELETE CASCADE.
#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "notes")]
struct Note {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Book, on_delete = "cascade")]
    book_id: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "reviews")]
struct Review {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Book, on_delete = "cascade")]
    book_id: i64,
    stars: i32,
    #[orm(many_to_one)]
    book: ToOne<Book>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "publishers")]
struct Publisher {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    name: String,
    #[orm(one_to_many, key = "publisher_id", lazy = "raise")]
    titles: ToMany<Title>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "titles")]
struct Title {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Publisher, on_delete = "set null")]
    publisher_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "shelves")]
struct Shelf {
    #[orm(primary_key)]
    id: i64,
    #[orm(one_to_many, key = "shelf_id")]
    slots: ToMany<Slot>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "slots")]
struct Slot {
    #[orm(primary_key)]
    id: i64,
    #[orm(references = Shelf)]
    shelf_id: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "nodes")]
struct Node {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Node)]
    parent_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    label: String,
    #[orm(many_to_one, key = "parent_id", back_populates = "children")]
    parent: ToOne<Node>,
    #[orm(
        one_to_many,
        key = "parent_id",
        back_populates = "parent",
        cascade = "all"
    )]
    children: ToMany<Node>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "people")]
struct Person {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(32)")]
    name: String,
    #[orm(one_to_one, key = "person_id", back_populates = "person")]
    passport: ToOne<Passport>,
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "passports")]
struct Passport {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Person, unique)]
    person_id: Option<i64>,
    #[orm(sql_type = "VARCHAR(16)")]
    number: String,
    #[orm(many_to_one, back_populates = "passport")]
    person: ToOne<Person>,
}

struct Fixture {
    db: TestDb,
    engine: Engine,
    factory: SessionFactory,
}

fn setup(tag: &str) -> Fixture {
    let db = TestDb::new(tag);
    let engine = orm::create_engine(&db.url).expect("engine");
    orm::schema::create_all(
        &engine,
        &[
            Author::table(),
            Book::table(),
            Review::table(),
            Note::table(),
            Publisher::table(),
            Title::table(),
            Shelf::table(),
            Slot::table(),
            Node::table(),
            Person::table(),
            Passport::table(),
            Tag::table(),
            Member::table(),
            Post::table(),
        ],
    )
    .expect("create tables");
    let factory = SessionFactory::new(engine.clone());
    Fixture {
        db,
        engine,
        factory,
    }
}

fn author(name: &str) -> Author {
    Author {
        name: name.into(),
        ..Default::default()
    }
}

fn book(title: &str) -> Book {
    Book {
        title: title.into(),
        ..Default::default()
    }
}

/// The statements' first words, for order assertions.
fn verbs(statements: &[String]) -> Vec<String> {
    statements
        .iter()
        .map(|s| {
            let mut words = s.split_whitespace();
            let first = words.next().unwrap_or_default().to_string();
            match first.as_str() {
                "INSERT" | "DELETE" => {
                    let _ = words.next();
                    format!("{first} {}", words.next().unwrap_or_default())
                }
                "UPDATE" => format!("{first} {}", words.next().unwrap_or_default()),
                "SELECT" => {
                    let from = s.split(" FROM ").nth(1).unwrap_or_default();
                    format!(
                        "SELECT {}",
                        from.split_whitespace().next().unwrap_or_default()
                    )
                }
                _ => first,
            }
        })
        .collect()
}

#[test]
fn a_new_graph_is_one_flush_with_keys_synced() {
    let f = setup("rel_graph");
    let s = f.factory.session();
    let le_guin = s.add(author("Le Guin")).unwrap();
    let earthsea = s.add(book("Earthsea")).unwrap();
    le_guin.push(Author::BOOKS, &earthsea).unwrap();
    // A transient book joins through the save-update cascade.
    let lathe = Obj::new(book("The Lathe of Heaven"));
    le_guin.push(Author::BOOKS, &lathe).unwrap();
    assert!(s.contains(&lathe));
    let capture = f.engine.capture_statements();
    s.commit().unwrap();
    assert_eq!(
        verbs(&capture.take()),
        ["INSERT `authors`", "INSERT `books`", "COMMIT"]
    );
    let id: i64 = le_guin.key().unwrap();
    assert_eq!(
        f.db.rows("SELECT author_id, title FROM books ORDER BY id"),
        [
            [id.to_string(), "Earthsea".to_string()],
            [id.to_string(), "The Lathe of Heaven".to_string()]
        ]
    );
    // The synced key is in the object too, and the way back costs no SQL.
    assert_eq!(earthsea.read().unwrap().author_id, Some(id));
    let capture = f.engine.capture_statements();
    let back = earthsea.one(Book::AUTHOR).unwrap().unwrap();
    assert!(back.ptr_eq(&le_guin));
    assert!(capture
        .take()
        .iter()
        .all(|s| !s.starts_with("SELECT `id`, `name` FROM `authors`")));
}

#[test]
fn a_thousand_parents_with_ten_children_each_is_one_flush() {
    let f = setup("rel_bulk");
    let s = f.factory.session();
    let mut authors = Vec::new();
    for a in 0..1000 {
        let parent = s.add(author(&format!("a{a}"))).unwrap();
        for b in 0..10 {
            let child = Obj::new(book(&format!("a{a}b{b}")));
            parent.push(Author::BOOKS, &child).unwrap();
        }
        authors.push(parent);
    }
    let capture = f.engine.capture_statements();
    s.commit().unwrap();
    let sent = verbs(&capture.take());
    // 1,000 authors in one INSERT, 10,000 books in ten, COMMIT (the
    // transaction began implicitly with its first statement).
    assert_eq!(sent.len(), 1 + 10 + 1, "{sent:?}");
    assert_eq!(sent[0], "INSERT `authors`");
    assert!(sent[1..11].iter().all(|v| v == "INSERT `books`"));
    let mismatched = f.db.rows(
        "SELECT COUNT(*) FROM books b JOIN authors a ON a.id = b.author_id \
         WHERE b.title NOT LIKE CONCAT(a.name, 'b%')",
    );
    assert_eq!(mismatched, [["0"]]);
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM books"), [["10000"]]);
}

#[test]
fn lazy_loading_one_select_per_collection_none_for_a_known_parent() {
    let f = setup("rel_lazy");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a'), (2, 'b')");
    f.db.exec(
        "INSERT INTO books (id, author_id, title) VALUES (1, 1, 'x'), (2, 1, 'y'), (3, 2, 'z')",
    );
    let s = f.factory.session();
    let a = s.get::<Author>(1).unwrap().unwrap();
    let capture = f.engine.capture_statements();
    let books = a.many(Author::BOOKS).unwrap();
    assert_eq!(books.len(), 2);
    assert_eq!(verbs(&capture.take()), ["SELECT `books`"]);
    // Loaded: no more SQL; the parent is in the identity map: no SQL either.
    assert_eq!(a.many(Author::BOOKS).unwrap().len(), 2);
    assert!(books[0].one(Book::AUTHOR).unwrap().unwrap().ptr_eq(&a));
    assert!(capture.take().is_empty());
    // A parent not yet loaded: one SELECT by key.
    let z = s.get::<Book>(3).unwrap().unwrap();
    capture.take();
    let b = z.one(Book::AUTHOR).unwrap().unwrap();
    assert_eq!(b.read().unwrap().name, "b");
    assert_eq!(verbs(&capture.take()), ["SELECT `authors`"]);
}

#[test]
fn selectin_eager_loading_is_one_select_per_level() {
    let f = setup("rel_eager");
    for a in 1..=30 {
        f.db.exec(&format!(
            "INSERT INTO authors (id, name) VALUES ({a}, 'a{a}')"
        ));
        for b in 0..3 {
            let id = a * 10 + b;
            f.db.exec(&format!(
                "INSERT INTO books (id, author_id, title) VALUES ({id}, {a}, 't{id}')"
            ));
            f.db.exec(&format!(
                "INSERT INTO reviews (book_id, stars) VALUES ({id}, 5), ({id}, 4)"
            ));
        }
    }
    let s = f.factory.session();
    let capture = f.engine.capture_statements();
    let authors = s
        .query::<Author>()
        .load(Author::BOOKS.then(Book::REVIEWS))
        .all()
        .unwrap();
    assert_eq!(
        verbs(&capture.take()),
        ["SELECT `authors`", "SELECT `books`", "SELECT `reviews`"]
    );
    assert_eq!(authors.len(), 30);
    let mut reviews = 0;
    for a in &authors {
        let books = a.many(Author::BOOKS).unwrap();
        assert_eq!(books.len(), 3);
        for b in &books {
            assert_eq!(b.read().unwrap().author_id, a.read().unwrap().id);
            reviews += b.many(Book::REVIEWS).unwrap().len();
        }
    }
    assert_eq!(reviews, 180);
    assert!(capture.take().is_empty(), "everything was loaded eagerly");
    // Many-to-one eagerly: one SELECT for the parents not in the identity map.
    let s = f.factory.session();
    capture.take();
    let books = s.query::<Book>().load(Book::AUTHOR).all().unwrap();
    assert_eq!(
        verbs(&capture.take()),
        ["SELECT `books`", "SELECT `authors`"]
    );
    assert!(books.iter().all(|b| b.one(Book::AUTHOR).unwrap().is_some()));
    assert!(capture.take().is_empty());
}

#[test]
fn back_populates_keeps_both_sides_in_sync_and_moves_children() {
    let f = setup("rel_backref");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a'), (2, 'b')");
    f.db.exec("INSERT INTO books (id, author_id, title) VALUES (1, 1, 'x')");
    let s = f.factory.session();
    let a = s.get::<Author>(1).unwrap().unwrap();
    let b = s.get::<Author>(2).unwrap().unwrap();
    let x = s.get::<Book>(1).unwrap().unwrap();
    assert_eq!(a.many(Author::BOOKS).unwrap().len(), 1);
    assert_eq!(b.many(Author::BOOKS).unwrap().len(), 0);
    x.set(Book::AUTHOR, Some(&b)).unwrap();
    assert_eq!(a.many(Author::BOOKS).unwrap().len(), 0);
    assert!(b.many(Author::BOOKS).unwrap()[0].ptr_eq(&x));
    assert!(x.one(Book::AUTHOR).unwrap().unwrap().ptr_eq(&b));
    s.commit().unwrap();
    assert_eq!(f.db.rows("SELECT author_id FROM books"), [["2"]]);
    // push() moves it back; the old collection (loaded) loses it.
    let s = f.factory.session();
    let a = s.get::<Author>(1).unwrap().unwrap();
    let b = s.get::<Author>(2).unwrap().unwrap();
    let x = s.get::<Book>(1).unwrap().unwrap();
    assert_eq!(b.many(Author::BOOKS).unwrap().len(), 1);
    a.push(Author::BOOKS, &x).unwrap();
    assert_eq!(b.many(Author::BOOKS).unwrap().len(), 0);
    assert!(x.one(Book::AUTHOR).unwrap().unwrap().ptr_eq(&a));
    s.commit().unwrap();
    assert_eq!(f.db.rows("SELECT author_id FROM books"), [["1"]]);
}

#[test]
fn delete_cascades_to_children_first_and_orphans_are_deleted() {
    let f = setup("rel_cascade");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a'), (2, 'b')");
    f.db.exec(
        "INSERT INTO books (id, author_id, title) VALUES (1, 1, 'x'), (2, 1, 'y'), (3, 2, 'z')",
    );
    f.db.exec("INSERT INTO reviews (id, book_id, stars) VALUES (1, 1, 5), (2, 2, 3), (3, 3, 1)");
    let s = f.factory.session();
    let a = s.get::<Author>(1).unwrap().unwrap();
    s.delete(&a).unwrap();
    let capture = f.engine.capture_statements();
    s.commit().unwrap();
    let sent = verbs(&capture.take());
    assert_eq!(
        sent,
        [
            "DELETE `reviews`",
            "DELETE `books`",
            "DELETE `authors`",
            "COMMIT"
        ],
        "children first"
    );
    assert_eq!(f.db.rows("SELECT id FROM books"), [["3"]]);
    assert_eq!(f.db.rows("SELECT id FROM reviews"), [["3"]]);
    // delete-orphan: removed from the collection, the book is deleted.
    let s = f.factory.session();
    let b = s.get::<Author>(2).unwrap().unwrap();
    let z = s.get::<Book>(3).unwrap().unwrap();
    b.remove(Author::BOOKS, &z).unwrap();
    assert!(s.is_deleted(&z));
    s.commit().unwrap();
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM books"), [["0"]]);
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM authors"), [["1"]]);
}

#[test]
fn without_delete_cascade_children_keys_become_null_or_the_flush_refuses() {
    let f = setup("rel_setnull");
    f.db.exec("INSERT INTO publishers (id, name) VALUES (1, 'p')");
    f.db.exec("INSERT INTO titles (id, publisher_id, name) VALUES (1, 1, 't1'), (2, 1, 't2')");
    let s = f.factory.session();
    let p = s.get::<Publisher>(1).unwrap().unwrap();
    // lazy = "raise": access without eager loading is refused, naming it.
    let err = p.many(Publisher::TITLES).unwrap_err();
    assert!(err.to_string().contains("Publisher.titles"), "{err}");
    let p = s
        .query::<Publisher>()
        .load(Publisher::TITLES)
        .one()
        .unwrap();
    assert_eq!(p.many(Publisher::TITLES).unwrap().len(), 2);
    s.delete(&p).unwrap();
    let capture = f.engine.capture_statements();
    s.commit().unwrap();
    assert_eq!(
        verbs(&capture.take()),
        ["UPDATE `titles`", "DELETE `publishers`", "COMMIT"]
    );
    assert_eq!(
        f.db.rows("SELECT publisher_id FROM titles ORDER BY id"),
        [["NULL"], ["NULL"]]
    );
    // A NOT NULL key: a clear error before any SQL, naming the relationship.
    f.db.exec("INSERT INTO shelves (id) VALUES (1)");
    f.db.exec("INSERT INTO slots (id, shelf_id) VALUES (1, 1)");
    let s = f.factory.session();
    let shelf = s.get::<Shelf>(1).unwrap().unwrap();
    s.delete(&shelf).unwrap();
    let capture = f.engine.capture_statements();
    let err = s.flush().unwrap_err();
    assert!(err.to_string().contains("Shelf.slots"), "{err}");
    assert!(err.to_string().contains("cannot be NULL"), "{err}");
    assert!(capture.take().is_empty(), "nothing sent");
    s.rollback().unwrap();
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM slots"), [["1"]]);
}

#[test]
fn a_self_referential_tree_of_new_nodes_is_one_flush() {
    let f = setup("rel_tree");
    let s = f.factory.session();
    let root = s
        .add(Node {
            label: "root".into(),
            ..Default::default()
        })
        .unwrap();
    let mut parent = root.clone();
    for depth in 1..=4 {
        let child = Obj::new(Node {
            label: format!("d{depth}"),
            ..Default::default()
        });
        parent.push(Node::CHILDREN, &child).unwrap();
        let sibling = Obj::new(Node {
            label: format!("s{depth}"),
            ..Default::default()
        });
        sibling.set(Node::PARENT, Some(&parent)).unwrap();
        s.add(&sibling).unwrap();
        parent = child;
    }
    s.commit().unwrap();
    let rows = f.db.rows(
        "SELECT c.label, COALESCE(p.label, '-') FROM nodes c LEFT JOIN nodes p ON p.id = c.parent_id ORDER BY c.label",
    );
    let expected: Vec<[&str; 2]> = vec![
        ["d1", "root"],
        ["d2", "d1"],
        ["d3", "d2"],
        ["d4", "d3"],
        ["root", "-"],
        ["s1", "root"],
        ["s2", "d1"],
        ["s3", "d2"],
        ["s4", "d3"],
    ];
    assert_eq!(rows, expected);
    // Deleting the root cascades down the whole tree, leaves first.
    let s = f.factory.session();
    let root = s
        .query::<Node>()
        .filter(Node::LABEL.eq("root"))
        .one()
        .unwrap();
    s.delete(&root).unwrap();
    s.commit().unwrap();
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM nodes"), [["0"]]);
}

#[test]
fn one_to_one_replaces_and_syncs() {
    let f = setup("rel_one");
    let s = f.factory.session();
    let ann = s
        .add(Person {
            name: "ann".into(),
            ..Default::default()
        })
        .unwrap();
    let first = Obj::new(Passport {
        number: "P1".into(),
        ..Default::default()
    });
    ann.set(Person::PASSPORT, Some(&first)).unwrap();
    s.commit().unwrap();
    let id: i64 = ann.key().unwrap();
    assert_eq!(
        f.db.rows("SELECT person_id, number FROM passports"),
        [[id.to_string(), "P1".to_string()]]
    );
    let s = f.factory.session();
    let ann = s.get::<Person>(id).unwrap().unwrap();
    let old = ann.one(Person::PASSPORT).unwrap().unwrap();
    assert!(old.one(Passport::PERSON).unwrap().unwrap().ptr_eq(&ann));
    let second = Obj::new(Passport {
        number: "P2".into(),
        ..Default::default()
    });
    ann.set(Person::PASSPORT, Some(&second)).unwrap();
    s.commit().unwrap();
    assert_eq!(
        f.db.rows("SELECT COALESCE(person_id, 0), number FROM passports ORDER BY number"),
        [
            ["0".to_string(), "P1".to_string()],
            [id.to_string(), "P2".to_string()]
        ]
    );
}

#[test]
fn rollback_forgets_links_and_reloads() {
    let f = setup("rel_rollback");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a')");
    let s = f.factory.session();
    let a = s.get::<Author>(1).unwrap().unwrap();
    let x = Obj::new(book("x"));
    a.push(Author::BOOKS, &x).unwrap();
    s.flush().unwrap();
    assert_eq!(
        f.db.rows("SELECT COUNT(*) FROM books"),
        [["0"]],
        "not committed"
    );
    s.rollback().unwrap();
    assert_eq!(x.state(), ObjState::Transient);
    assert!(
        a.many(Author::BOOKS).unwrap().is_empty(),
        "reloaded after rollback"
    );
    s.commit().unwrap();
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM books"), [["0"]]);
}

#[test]
fn create_all_emits_on_delete_clauses() {
    let f = setup("rel_ddl");
    let reviews = f.db.rows("SHOW CREATE TABLE reviews")[0][1].clone();
    assert!(reviews.contains("ON DELETE CASCADE"), "{reviews}");
    let titles = f.db.rows("SHOW CREATE TABLE titles")[0][1].clone();
    assert!(titles.contains("ON DELETE SET NULL"), "{titles}");
    // The database cascades too: deleting a book row removes its reviews.
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a')");
    f.db.exec("INSERT INTO books (id, author_id, title) VALUES (1, 1, 'x')");
    f.db.exec("INSERT INTO reviews (book_id, stars) VALUES (1, 5)");
    f.db.exec("DELETE FROM books");
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM reviews"), [["0"]]);
}

#[test]
fn values_stay_plain_data_and_merge_ignores_relationship_fields() {
    let f = setup("rel_values");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a')");
    let s = f.factory.session();
    let a = s.get::<Author>(1).unwrap().unwrap();
    let plain: Author = a.value().unwrap();
    let handle = std::thread::spawn(move || plain.name.clone());
    assert_eq!(handle.join().unwrap(), "a");
    let mut changed = a.value().unwrap();
    changed.name = "b".into();
    s.merge(&changed).unwrap();
    s.commit().unwrap();
    assert_eq!(f.db.rows("SELECT name FROM authors"), [["b"]]);
}

fn tag(label: &str) -> Tag {
    Tag {
        label: label.into(),
        ..Default::default()
    }
}

fn links_in_db(f: &Fixture) -> Vec<[String; 2]> {
    f.db.rows(
        "SELECT b.title, t.label FROM book_tags bt JOIN books b ON b.id = bt.book_id \
         JOIN tags t ON t.id = bt.tag_id ORDER BY b.title, t.label",
    )
    .into_iter()
    .map(|r| [r[0].clone(), r[1].clone()])
    .collect()
}

#[test]
fn many_to_many_links_are_association_rows() {
    let f = setup("rel_m2m");
    let s = f.factory.session();
    let dune = s.add(book("Dune")).unwrap();
    let emma = s.add(book("Emma")).unwrap();
    let scifi = Obj::new(tag("scifi"));
    let classic = Obj::new(tag("classic"));
    dune.push(Book::TAGS, &scifi).unwrap();
    dune.push(Book::TAGS, &classic).unwrap();
    // The other side, with back_populates: the same link is written once.
    emma.push(Book::TAGS, &classic).unwrap();
    assert_eq!(classic.many(Tag::BOOKS).unwrap().len(), 2);
    classic.push(Tag::BOOKS, &emma).unwrap();
    let capture = f.engine.capture_statements();
    s.commit().unwrap();
    assert_eq!(
        verbs(&capture.take()),
        [
            "INSERT `books`",
            "INSERT `tags`",
            "INSERT `book_tags`",
            "COMMIT"
        ]
    );
    let expected = |pairs: &[(&str, &str)]| -> Vec<[String; 2]> {
        pairs
            .iter()
            .map(|(a, b)| [a.to_string(), b.to_string()])
            .collect()
    };
    assert_eq!(
        links_in_db(&f),
        expected(&[("Dune", "classic"), ("Dune", "scifi"), ("Emma", "classic")])
    );
    // Loading: lazily (one SELECT with the association table), eagerly
    // (the association rows, then the targets not yet in the session).
    let s = f.factory.session();
    let capture = f.engine.capture_statements();
    let books = s.query::<Book>().load(Book::TAGS).all().unwrap();
    assert_eq!(
        verbs(&capture.take()),
        ["SELECT `books`", "SELECT `book_tags`", "SELECT `tags`"]
    );
    let dune = books
        .iter()
        .find(|b| b.read().unwrap().title == "Dune")
        .unwrap();
    assert_eq!(dune.many(Book::TAGS).unwrap().len(), 2);
    let scifi = s
        .query::<Tag>()
        .filter(Tag::LABEL.eq("scifi"))
        .one()
        .unwrap();
    capture.take();
    assert_eq!(scifi.many(Tag::BOOKS).unwrap().len(), 1);
    assert_eq!(verbs(&capture.take()), ["SELECT `books`"]);
    // Removing a link deletes its row; deleting a book drops its rows (ON DELETE CASCADE).
    let classic = s
        .query::<Tag>()
        .filter(Tag::LABEL.eq("classic"))
        .one()
        .unwrap();
    dune.remove(Book::TAGS, &classic).unwrap();
    assert_eq!(classic.many(Tag::BOOKS).unwrap().len(), 1, "back_populates");
    s.commit().unwrap();
    assert_eq!(
        links_in_db(&f),
        expected(&[("Dune", "scifi"), ("Emma", "classic")])
    );
    let s = f.factory.session();
    let emma = s
        .query::<Book>()
        .filter(Book::TITLE.eq("Emma"))
        .one()
        .unwrap();
    s.delete(&emma).unwrap();
    s.commit().unwrap();
    assert_eq!(links_in_db(&f), expected(&[("Dune", "scifi")]));
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM tags"), [["2"]]);
}

#[test]
fn rows_that_point_at_each_other_use_post_update() {
    let f = setup("rel_post_update");
    let s = f.factory.session();
    let ann = s
        .add(Member {
            name: "ann".into(),
            ..Default::default()
        })
        .unwrap();
    let post = Obj::new(Post::default());
    post.set(Post::MEMBER, Some(&ann)).unwrap();
    ann.set(Member::FAVORITE, Some(&post)).unwrap();
    let capture = f.engine.capture_statements();
    s.commit().unwrap();
    assert_eq!(
        verbs(&capture.take()),
        [
            "INSERT `members`",
            "INSERT `posts`",
            "UPDATE `members`",
            "COMMIT"
        ]
    );
    let member: i64 = ann.key().unwrap();
    let post_id: i64 = post.key().unwrap();
    assert_eq!(
        f.db.rows("SELECT favorite_post_id FROM members"),
        [[post_id.to_string()]]
    );
    assert_eq!(
        f.db.rows("SELECT member_id FROM posts"),
        [[member.to_string()]]
    );
    // Deleting both: the post_update key is cleared first, then children first.
    let s = f.factory.session();
    let ann = s.get::<Member>(member).unwrap().unwrap();
    let post = s.get::<Post>(post_id).unwrap().unwrap();
    s.delete(&post).unwrap();
    s.delete(&ann).unwrap();
    let capture = f.engine.capture_statements();
    s.commit().unwrap();
    assert_eq!(
        verbs(&capture.take()),
        [
            "UPDATE `members`",
            "DELETE `posts`",
            "DELETE `members`",
            "COMMIT"
        ]
    );
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM members"), [["0"]]);
}

#[test]
fn raise_lazy_per_query_refuses_what_was_not_loaded() {
    let f = setup("rel_raise");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a')");
    f.db.exec("INSERT INTO books (id, author_id, title) VALUES (1, 1, 'x')");
    let s = f.factory.session();
    let books = s.query::<Book>().raise_lazy().all().unwrap();
    let err = books[0].one(Book::AUTHOR).unwrap_err();
    assert!(err.to_string().contains("Book.author"), "{err}");
    assert!(books[0].many(Book::REVIEWS).is_err());
    // What the query loaded is there.
    let s = f.factory.session();
    let books = s
        .query::<Book>()
        .load(Book::AUTHOR)
        .raise_lazy()
        .all()
        .unwrap();
    assert_eq!(
        books[0]
            .one(Book::AUTHOR)
            .unwrap()
            .unwrap()
            .read()
            .unwrap()
            .name,
        "a"
    );
}

#[test]
fn expunge_cascades_to_loaded_children() {
    let f = setup("rel_expunge");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a')");
    f.db.exec("INSERT INTO books (id, author_id, title) VALUES (1, 1, 'x'), (2, 1, 'y')");
    let s = f.factory.session();
    let a = s.get::<Author>(1).unwrap().unwrap();
    let books = a.many(Author::BOOKS).unwrap();
    assert_eq!(s.identity_count().unwrap(), 3);
    s.expunge(&a).unwrap();
    assert_eq!(
        s.identity_count().unwrap(),
        0,
        "cascade = all includes expunge"
    );
    assert!(books.iter().all(|b| b.state() == ObjState::Detached));
}

#[test]
fn joined_eager_loading_is_one_select() {
    let f = setup("rel_joined");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a'), (2, 'b')");
    f.db.exec(
        "INSERT INTO books (id, author_id, title) VALUES (1, 2, 'x'), (2, 1, 'y'), (3, NULL, 'z'), (4, 2, 'w')",
    );
    let s = f.factory.session();
    let capture = f.engine.capture_statements();
    let books = s
        .query::<Book>()
        .filter(Book::ID.le(3))
        .order_by(Book::TITLE.desc())
        .load_joined(Book::AUTHOR)
        .all()
        .unwrap();
    let sent = capture.take();
    assert_eq!(verbs(&sent).len(), 1, "{sent:?}");
    assert!(sent[0].contains("LEFT OUTER JOIN"), "{sent:?}");
    let titles: Vec<String> = books
        .iter()
        .map(|b| b.read().unwrap().title.clone())
        .collect();
    assert_eq!(titles, ["z", "y", "x"]);
    let authors: Vec<Option<String>> = books
        .iter()
        .map(|b| {
            b.one(Book::AUTHOR)
                .unwrap()
                .map(|a| a.read().unwrap().name.clone())
        })
        .collect();
    assert_eq!(authors, [None, Some("a".into()), Some("b".into())]);
    assert!(capture.take().is_empty(), "the authors came with the books");
    assert_eq!(s.identity_count().unwrap(), 5);
}

#[test]
fn passive_deletes_load_nothing_and_trust_on_delete_cascade() {
    let f = setup("rel_passive");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a')");
    f.db.exec("INSERT INTO books (id, author_id, title) VALUES (1, 1, 'x')");
    f.db.exec("INSERT INTO notes (book_id) VALUES (1), (1), (1)");
    let s = f.factory.session();
    let x = s.get::<Book>(1).unwrap().unwrap();
    let capture = f.engine.capture_statements();
    s.delete(&x).unwrap();
    s.commit().unwrap();
    let sent = verbs(&capture.take());
    // The reviews (not passive) are loaded to be deleted; the notes are not.
    assert!(!sent.iter().any(|v| v == "SELECT `notes`"), "{sent:?}");
    assert!(sent.iter().any(|v| v == "SELECT `reviews`"), "{sent:?}");
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM notes"), [["0"]]);
}

#[test]
fn rollback_restores_collections_and_orphans() {
    let f = setup("rel_rollback_orphans");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'a')");
    f.db.exec("INSERT INTO books (id, author_id, title) VALUES (1, 1, 'x'), (2, 1, 'y')");
    let s = f.factory.session();
    let a = s.get::<Author>(1).unwrap().unwrap();
    let books = a.many(Author::BOOKS).unwrap();
    let x = books
        .iter()
        .find(|b| b.read().unwrap().title == "x")
        .unwrap()
        .clone();
    a.remove(Author::BOOKS, &x).unwrap(); // delete-orphan
    a.push(Author::BOOKS, &Obj::new(book("z"))).unwrap();
    s.flush().unwrap();
    assert_eq!(a.many(Author::BOOKS).unwrap().len(), 2);
    s.rollback().unwrap();
    assert_eq!(
        x.state(),
        ObjState::Persistent,
        "the orphan's DELETE was rolled back"
    );
    let mut titles: Vec<String> = a
        .many(Author::BOOKS)
        .unwrap()
        .iter()
        .map(|b| b.read().unwrap().title.clone())
        .collect();
    titles.sort();
    assert_eq!(titles, ["x", "y"], "reloaded as it was");
    s.commit().unwrap();
    assert_eq!(f.db.rows("SELECT COUNT(*) FROM books"), [["2"]]);
}

#[test]
fn joins_along_relationships_filter_and_order_on_joined_models() {
    let f = setup("rel_joins");
    f.db.exec("INSERT INTO authors (id, name) VALUES (1, 'ann'), (2, 'bob')");
    f.db.exec(
        "INSERT INTO books (id, author_id, title) VALUES (1, 1, 'x'), (2, 2, 'y'), (3, 2, 'z'), (4, NULL, 'w')",
    );
    f.db.exec("INSERT INTO reviews (id, book_id, stars) VALUES (1, 1, 5), (2, 2, 3), (3, 3, 4)");
    f.db.exec("INSERT INTO tags (id, label) VALUES (1, 'scifi'), (2, 'poetry')");
    f.db.exec("INSERT INTO book_tags (book_id, tag_id) VALUES (1, 1), (3, 1), (3, 2)");
    let s = f.factory.session();
    let q = s
        .query::<Book>()
        .join(Book::AUTHOR)
        .filter(Author::NAME.eq("bob"))
        .order_by(Book::TITLE.desc());
    let (sql, params) = q.sql().unwrap();
    assert_eq!(
        sql,
        "SELECT `books`.`id`, `books`.`author_id`, `books`.`title` FROM `books` \
         INNER JOIN `authors` ON `authors`.`id` = `books`.`author_id` \
         WHERE (`authors`.`name` = ?) ORDER BY `books`.`title` DESC"
    );
    assert_eq!(params, [Value::Text("bob".into())]);
    let titles = |objs: Vec<Obj<Book>>| -> Vec<String> {
        objs.iter()
            .map(|b| b.read().unwrap().title.clone())
            .collect()
    };
    assert_eq!(titles(q.all().unwrap()), ["z", "y"]);
    // Two joins deep, from the joined model.
    let reviews = s
        .query::<Review>()
        .join(Review::BOOK)
        .join(Book::AUTHOR)
        .filter(Author::NAME.eq("ann"))
        .all()
        .unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].read().unwrap().stars, 5);
    // Many-to-many through the association table; each book once.
    let scifi = s
        .query::<Book>()
        .join(Book::TAGS)
        .filter(Tag::LABEL.eq("scifi"))
        .order_by(Book::ID.asc())
        .all()
        .unwrap();
    assert_eq!(titles(scifi), ["x", "z"]);
    // contains_eager: the collection holds the joined (filtered) children.
    let s = f.factory.session();
    let capture = f.engine.capture_statements();
    let authors = s
        .query::<Author>()
        .outerjoin(Author::BOOKS)
        .filter(Author::ID.le(2))
        .order_by(Author::ID.asc())
        .contains_eager()
        .all()
        .unwrap();
    assert_eq!(verbs(&capture.take()), ["SELECT `authors`"]);
    assert_eq!(authors.len(), 2);
    assert_eq!(titles(authors[1].many(Author::BOOKS).unwrap()).len(), 2);
    assert!(capture.take().is_empty(), "populated from the join");
}

/// A collection of more members than the membership index's threshold
/// (16): each object once whatever is pushed twice, order kept through
/// removals and re-additions, and the database written from what the
/// collections hold (after SQLAlchemy's test_collection.py list semantics
/// and test_backref_mutations.py: adding a member twice is one member).
#[test]
fn large_collections_keep_each_member_once_and_write_what_they_hold() {
    let f = setup("rel_large");
    let s = f.factory.session();
    let author = s.add(author("Many")).unwrap();
    let books: Vec<Obj<Book>> = (0..40)
        .map(|i| Obj::new(book(&format!("b{i:02}"))))
        .collect();
    for b in &books {
        author.push(Author::BOOKS, b).unwrap();
    }
    // Pushed again: still one member each.
    author.push(Author::BOOKS, &books[3]).unwrap();
    author.push(Author::BOOKS, &books[30]).unwrap();
    let titles = |objs: Vec<Obj<Book>>| -> Vec<String> {
        objs.iter()
            .map(|b| b.read().unwrap().title.clone())
            .collect()
    };
    assert_eq!(author.many(Author::BOOKS).unwrap().len(), 40);
    // Removed (pending, delete-orphan: expunged), then b05 pushed again:
    // it comes back at the end, once.
    author.remove(Author::BOOKS, &books[5]).unwrap();
    author.remove(Author::BOOKS, &books[25]).unwrap();
    author.remove(Author::BOOKS, &books[25]).unwrap();
    author.push(Author::BOOKS, &books[5]).unwrap();
    author.push(Author::BOOKS, &books[5]).unwrap();
    let held = titles(author.many(Author::BOOKS).unwrap());
    let mut expected: Vec<String> = (0..40)
        .filter(|&i| i != 5 && i != 25)
        .map(|i| format!("b{i:02}"))
        .collect();
    expected.push("b05".into());
    assert_eq!(held, expected);

    // Many-to-many from one tag: 40 books, some linked twice, one link
    // broken and made again before the flush, one broken for good.
    let tag_obj = s.add(tag("bulk")).unwrap();
    for b in &books {
        tag_obj.push(Tag::BOOKS, b).unwrap();
    }
    tag_obj.push(Tag::BOOKS, &books[7]).unwrap();
    books[7].push(Book::TAGS, &tag_obj).unwrap();
    tag_obj.remove(Tag::BOOKS, &books[10]).unwrap();
    tag_obj.push(Tag::BOOKS, &books[10]).unwrap();
    tag_obj.remove(Tag::BOOKS, &books[11]).unwrap();
    assert_eq!(tag_obj.many(Tag::BOOKS).unwrap().len(), 39);
    s.commit().unwrap();

    let in_db = f.db.rows(
        "SELECT b.title FROM books b JOIN authors a ON a.id = b.author_id \
         WHERE a.name = 'Many' ORDER BY b.title",
    );
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(
        in_db.into_iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        sorted,
        "b25 is not the author's (removed), b05 is, once"
    );
    // The titles linked to the tag in the database, and those expected:
    // books `0..end` but b11.
    let linked = || -> Vec<String> {
        f.db.rows(
            "SELECT b.title FROM book_tags bt JOIN books b ON b.id = bt.book_id \
             JOIN tags t ON t.id = bt.tag_id WHERE t.label = 'bulk' ORDER BY b.title",
        )
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
    };
    let all_but_b11 = |end: usize| -> Vec<String> {
        (0..end)
            .filter(|&i| i != 11)
            .map(|i| format!("b{i:02}"))
            .collect()
    };
    // b25, expunged as the author's orphan, came back through the tag's
    // save-update cascade: written, without an author, and linked.
    let orphans =
        f.db.rows("SELECT title FROM books WHERE author_id IS NULL ORDER BY title");
    assert_eq!(orphans, vec![vec!["b25".to_string()]]);
    assert_eq!(linked(), all_but_b11(40));

    // On persistent objects: 20 links broken, 5 made again, in one flush.
    for b in &books[20..40] {
        tag_obj.remove(Tag::BOOKS, b).unwrap();
    }
    for b in &books[20..25] {
        tag_obj.push(Tag::BOOKS, b).unwrap();
    }
    s.commit().unwrap();
    assert_eq!(linked(), all_but_b11(25));
}

/// Many keys go to the server as ranges where they run consecutively
/// (`id BETWEEN ? AND ?`), the rest as an `IN` list: the eager loads and
/// the DELETEs must still match exactly the rows of the objects concerned,
/// never a row in a gap between two runs.
#[test]
fn runs_of_keys_load_and_delete_exactly_their_rows() {
    let f = setup("rel_key_runs");
    let s = f.factory.session();
    // Authors 1..=60, each with one book (book ids 1..=60 too).
    for i in 1..=60 {
        let a = s.add(author(&format!("a{i:02}"))).unwrap();
        a.push(Author::BOOKS, &Obj::new(book(&format!("b{i:02}"))))
            .unwrap();
    }
    s.commit().unwrap();

    // Load every author but 21, 41..=44 and 60 with their books: runs
    // 1..=20, 22..=40, 45..=59 and no stragglers.
    let s = f.factory.session();
    let skipped = |i: i64| i == 21 || (41..=44).contains(&i) || i == 60;
    let wanted: Vec<i64> = (1..=60).filter(|&i| !skipped(i)).collect();
    let capture = f.engine.capture_statements();
    let authors = s
        .query::<Author>()
        .filter(Author::ID.in_(wanted.clone()))
        .load(Author::BOOKS.then(Book::REVIEWS))
        .all()
        .unwrap();
    let sent = capture.take();
    let books_select = sent
        .iter()
        .find(|s| s.contains("FROM `books`"))
        .expect("the books' SELECT");
    assert_eq!(
        books_select.matches("BETWEEN").count(),
        3,
        "three runs, three ranges: {books_select}"
    );
    assert_eq!(authors.len(), wanted.len());
    for a in &authors {
        let name = a.read().unwrap().name.clone();
        let books = a.many(Author::BOOKS).unwrap();
        let titles: Vec<String> = books
            .iter()
            .map(|b| b.read().unwrap().title.clone())
            .collect();
        assert_eq!(titles, [name.replacen('a', "b", 1)], "{name}'s books");
    }

    // Delete those authors (their books go with them, by the cascade; the
    // books' reviews are loaded, so no lazy load autoflushes in between):
    // two DELETEs of ranges, and only those rows go.
    for a in &authors {
        s.delete(a).unwrap();
    }
    let capture = f.engine.capture_statements();
    s.commit().unwrap();
    let deletes: Vec<String> = capture
        .take()
        .into_iter()
        .filter(|s| s.starts_with("DELETE"))
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(
        deletes.iter().all(|d| d.matches("BETWEEN").count() == 3),
        "{deletes:?}"
    );
    let left =
        |sql: &str| -> Vec<String> { f.db.rows(sql).into_iter().map(|r| r[0].clone()).collect() };
    assert_eq!(
        left("SELECT name FROM authors ORDER BY id"),
        ["a21", "a41", "a42", "a43", "a44", "a60"]
    );
    assert_eq!(
        left("SELECT title FROM books ORDER BY id"),
        ["b21", "b41", "b42", "b43", "b44", "b60"]
    );
}
