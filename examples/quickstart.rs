//! The tour: define models, create their tables, add objects, flush,
//! commit, query, update, delete.
//!
//! ```sh
//! cargo run --example quickstart        # embedded SQLite, nothing to install
//! DATABASE_URL=mysql://root@127.0.0.1:3306/test cargo run --example quickstart
//! ```

use orm::prelude::*;
use orm::session::SessionFactory;

/// An author. `id` is `None` until the row is inserted.
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "qs_authors")]
pub struct Author {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    #[orm(unique, sql_type = "VARCHAR(100)")]
    pub name: String,
    pub email: Option<String>,
}

/// A book, which references its author.
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "qs_books")]
pub struct Book {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    #[orm(references = Author, index)]
    pub author_id: i64,
    pub title: String,
    pub year: i32,
    /// Optimistic lock: bumped on every UPDATE.
    #[orm(version)]
    pub version: i64,
}

/// Runs the tour against `url`; prints what it does.
pub fn run(url: &str) -> orm::Result<()> {
    let engine = orm::create_engine(url)?;
    println!("engine: {engine:?}"); // the password, if any, is masked
    let tables = [Author::table(), Book::table()];
    orm::schema::drop_all(&engine, &tables)?;
    orm::schema::create_all(&engine, &tables)?;

    let sessions = SessionFactory::new(engine.clone());
    let session = sessions.session();

    // Add objects: pending until the flush INSERTs them.
    let le_guin = session.add(Author {
        id: None,
        name: "Ursula K. Le Guin".into(),
        email: None,
    })?;
    let herbert = session.add(Author {
        id: None,
        name: "Frank Herbert".into(),
        email: None,
    })?;
    session.flush()?; // INSERT ... RETURNING id, in the open transaction
    let le_guin_id = le_guin
        .read()?
        .id
        .expect("a flushed author has its generated id");
    let herbert_id = herbert
        .read()?
        .id
        .expect("a flushed author has its generated id");
    println!("inserted authors {le_guin_id} and {herbert_id}");

    for (title, year) in [
        ("A Wizard of Earthsea", 1968),
        ("The Left Hand of Darkness", 1969),
    ] {
        session.add(Book {
            id: None,
            author_id: le_guin_id,
            title: title.into(),
            year,
            version: 0,
        })?;
    }
    session.add(Book {
        id: None,
        author_id: herbert_id,
        title: "Dune".into(),
        year: 1965,
        version: 0,
    })?;
    session.commit()?; // flush + COMMIT; the connection goes back to the pool

    // Query: typed filters, ordering; rows go through the identity map.
    let sixties = session
        .query::<Book>()
        .filter(Book::YEAR.ge(1966).and(Book::AUTHOR_ID.eq(le_guin_id)))
        .order_by(Book::YEAR.asc())
        .all()?;
    for book in &sixties {
        let b = book.read()?;
        println!("{} ({})", b.title, b.year);
    }

    // Update: change the object; the flush sends only the changed column.
    herbert.write()?.email = Some("frank@arrakis.example".into());
    let dune = session
        .query::<Book>()
        .filter(Book::TITLE.eq("Dune"))
        .one()?;
    dune.write()?.year = 1966;
    session.commit()?;
    println!("Dune is now at version {}", dune.read()?.version);

    // Delete: children before parents, in one flush.
    for book in session
        .query::<Book>()
        .filter(Book::AUTHOR_ID.eq(herbert_id))
        .all()?
    {
        session.delete(&book)?;
    }
    session.delete(&herbert)?;
    session.commit()?;

    let remaining = session.query::<Author>().count()?;
    println!("{remaining} author(s) left; pool: {:?}", engine.status());
    session.close();
    orm::schema::drop_all(&engine, &tables)?;
    Ok(())
}

/// `DATABASE_URL` when it is set; otherwise an embedded in-memory SQLite
/// database, so that the tour runs on any machine with a Rust toolchain.
pub fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            println!("using DATABASE_URL");
            url
        }
        _ => {
            println!("DATABASE_URL is not set: using an embedded in-memory SQLite database");
            "sqlite::memory:".into()
        }
    }
}

#[allow(dead_code)]
fn main() {
    let url = database_url();
    if let Err(e) = run(&url) {
        eprintln!("quickstart failed: {e}");
        std::process::exit(1);
    }
}
