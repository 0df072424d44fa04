//! The tour: define models, create their tables, add objects, flush,
//! commit, query, update, delete.
//!
//! ```sh
//! cargo run --example quickstart        # embedded SQLite, nothing to install
//! DATABASE_URL=mysql://root@127.0.0.1:3306/test cargo run --example quickstart
//! ```
//!
//! `main` installs a `tracing-subscriber` that prints the ORM's spans as
//! they close (target `orm`, level DEBUG) to stderr: every statement with
//! its row count and duration, inside the session span that sent it. Part
//! of the output (timestamps cut):
//!
//! ```text
//! DEBUG flush{tables="qs_authors: 2 insert" inserts=2 updates=0 deletes=0}:statement{sql="INSERT INTO `qs_authors` (`name`, `email`) VALUES (?, ?), (?, ?) RETURNING `id`" params=4 url="mysql://root@127.0.0.1:3306/test" connection_id=2027 duration_ms=0.53 rows=2}: orm::statement: close time.busy=536µs time.idle=2.77µs
//! DEBUG flush{tables="qs_authors: 2 insert" inserts=2 updates=0 deletes=0}: orm::session: close time.busy=832µs time.idle=12.7µs
//! inserted authors 1 and 2
//! DEBUG commit:flush{tables="qs_books: 3 insert" inserts=3 updates=0 deletes=0}:statement{sql="INSERT INTO `qs_books` (`author_id`, `title`, `year`, `version`) VALUES (?, ?, ?, ?), (?, ?, ?, ?), (?, ?, ?, ?) RETURNING `id`" params=12 url="mysql://root@127.0.0.1:3306/test" connection_id=2027 duration_ms=0.351 rows=3}: orm::statement: close time.busy=359µs time.idle=3.2µs
//! DEBUG commit:flush{tables="qs_books: 3 insert" inserts=3 updates=0 deletes=0}: orm::session: close time.busy=412µs time.idle=7.10µs
//! DEBUG commit:statement{sql="COMMIT" params=0 url="mysql://root@127.0.0.1:3306/test" connection_id=2027 duration_ms=0.292 rows=0}: orm::statement: close time.busy=299µs time.idle=3.30µs
//! DEBUG commit: orm::session: close time.busy=784µs time.idle=1.99µs
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
    session.flush()?; // INSERT (the key from LAST_INSERT_ID or RETURNING), in the open transaction
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
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::prelude::*;
    // Show the ORM's spans (one per statement, flush, commit, ...) as they close.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_span_events(FmtSpan::CLOSE),
        )
        .with(Targets::new().with_target("orm", LevelFilter::DEBUG))
        .init();
    let url = database_url();
    if let Err(e) = run(&url) {
        eprintln!("quickstart failed: {e}");
        std::process::exit(1);
    }
}
