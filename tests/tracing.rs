//! What the engine tells the outside world: `tracing` spans and events
//! (captured by a subscriber of the test's own), `echo` to stderr (in a
//! child process), slow statements, and the `before_execute` /
//! `after_execute` engine events. Against a real MariaDB.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex, Once};

use common::{TempUser, TestDb};
use orm::prelude::*;
use orm::session::SessionFactory;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One span as the capture saw it: its fields as recorded so far.
#[derive(Debug, Clone)]
struct SpanRec {
    name: &'static str,
    target: String,
    level: Level,
    /// Index of the parent span in `Captured::spans`.
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
}

/// One event, with the index of the span it happened in.
#[derive(Debug, Clone)]
struct EventRec {
    level: Level,
    target: String,
    span: Option<usize>,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Captured {
    spans: Vec<SpanRec>,
    events: Vec<EventRec>,
    /// Live span ids (the registry reuses them) to indexes in `spans`.
    live: HashMap<u64, usize>,
}

impl Captured {
    fn spans_named(&self, name: &str) -> Vec<&SpanRec> {
        self.spans.iter().filter(|s| s.name == name).collect()
    }

    fn statement(&self, sql: &str) -> &SpanRec {
        self.spans
            .iter()
            .find(|s| s.name == "statement" && s.fields.get("sql").map(String::as_str) == Some(sql))
            .unwrap_or_else(|| panic!("no statement span for {sql}: {:#?}", self.spans))
    }

    fn events_with(&self, message: &str) -> Vec<&EventRec> {
        self.events
            .iter()
            .filter(|e| e.fields.get("message").map(String::as_str) == Some(message))
            .collect()
    }
}

struct FieldMap<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldMap<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

thread_local! {
    /// Where the capture layer records what happens on this thread, while `captured` runs.
    static STORE: RefCell<Option<Arc<Mutex<Captured>>>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's capture store, if one is set.
fn with_store(f: impl FnOnce(&mut Captured)) {
    if let Some(store) = STORE.with(|s| s.borrow().clone()) {
        f(&mut store.lock().unwrap());
    }
}

/// A layer that records every span and event of a thread that is inside
/// `captured` into its `Captured`.
///
/// It is installed once as the global default: one dispatcher for the
/// whole test process. (Scoped per-test dispatchers race in `tracing-core`
/// when tests run in parallel: one test's interest rebuild can overwrite
/// another's, and a callsite stays disabled for a while.)
struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        with_store(|c| {
            let mut fields = BTreeMap::new();
            attrs.record(&mut FieldMap(&mut fields));
            let parent_id = match attrs.parent() {
                Some(p) => Some(p.into_u64()),
                None if attrs.is_contextual() => ctx.current_span().id().map(Id::into_u64),
                None => None,
            };
            let parent = parent_id.and_then(|p| c.live.get(&p).copied());
            let meta = attrs.metadata();
            c.spans.push(SpanRec {
                name: meta.name(),
                target: meta.target().to_string(),
                level: *meta.level(),
                parent,
                fields,
            });
            let index = c.spans.len() - 1;
            c.live.insert(id.into_u64(), index);
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        with_store(|c| {
            if let Some(&i) = c.live.get(&id.into_u64()) {
                values.record(&mut FieldMap(&mut c.spans[i].fields));
            }
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let span_id = ctx.event_span(event).map(|s| s.id().into_u64());
        with_store(|c| {
            let mut fields = BTreeMap::new();
            event.record(&mut FieldMap(&mut fields));
            let span = span_id.and_then(|s| c.live.get(&s).copied());
            let meta = event.metadata();
            c.events.push(EventRec {
                level: *meta.level(),
                target: meta.target().to_string(),
                span,
                fields,
            });
        });
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        with_store(|c| {
            c.live.remove(&id.into_u64());
        });
    }
}

/// Runs `work` on this thread with the capture on and returns what it captured.
fn captured<T>(work: impl FnOnce() -> T) -> (T, Captured) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
            .expect("no other global subscriber in this test process");
    });
    let store = Arc::new(Mutex::new(Captured::default()));
    STORE.with(|s| *s.borrow_mut() = Some(Arc::clone(&store)));
    let out = work();
    STORE.with(|s| s.borrow_mut().take());
    let captured = std::mem::take(&mut *store.lock().unwrap());
    (out, captured)
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "tr_authors")]
struct Author {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "tr_books")]
struct Book {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(references = Author)]
    author_id: i64,
    title: String,
}

#[test]
fn statement_spans_carry_sql_counts_rows_and_the_masked_url_never_the_password() {
    let db = TestDb::new("tr_stmt");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))");
    let password = "Tr4ce-s3cret";
    let user = TempUser::new("trace", password);
    let url = format!(
        "mysql://{}:{password}@127.0.0.1:3306/{}",
        user.name, db.name
    );
    let engine = orm::create_engine(&url).unwrap();
    let insert = "INSERT INTO t (id, name) VALUES (?, ?), (?, ?)";
    let select = "SELECT id, name FROM t WHERE id >= ? ORDER BY id";
    let ((), c) = captured(|| {
        let mut conn = engine.connect().unwrap();
        let out = conn
            .execute(
                insert,
                &[
                    Value::Int(1),
                    Value::Text("ann".into()),
                    Value::Int(2),
                    Value::Text("bob".into()),
                ],
            )
            .unwrap();
        assert_eq!(out.affected_rows, 2);
        let rows = conn.query_rows(select, &[Value::Int(0)]).unwrap();
        assert_eq!(rows.len(), 2);
        conn.execute_text("SELECT nonsense FROM nowhere")
            .unwrap_err();
    });

    let ins = c.statement(insert);
    assert_eq!(
        (ins.target.as_str(), ins.level),
        ("orm::statement", Level::DEBUG)
    );
    assert_eq!(ins.fields["params"], "4");
    assert_eq!(ins.fields["rows"], "2", "rows affected");
    let masked = format!("mysql://{}:***@127.0.0.1:3306/{}", user.name, db.name);
    assert_eq!(ins.fields["url"], masked);
    assert!(ins.fields.contains_key("duration_ms") && ins.fields.contains_key("connection_id"));
    assert!(
        !ins.fields.contains_key("param_values"),
        "parameter values are not recorded unless asked for: {ins:?}"
    );
    let sel = c.statement(select);
    assert_eq!(sel.fields["params"], "1");
    assert_eq!(sel.fields["rows"], "2", "rows returned");
    let bad = c.statement("SELECT nonsense FROM nowhere");
    assert!(bad.fields["error"].contains("nowhere"), "{bad:?}");
    assert!(!bad.fields.contains_key("rows"));

    // Nothing captured anywhere (span names, fields, events) shows the password,
    // nor do the parameter values appear.
    let everything = format!("{c:?}");
    assert!(!everything.contains(password), "{everything}");
    assert!(!everything.contains("bob"), "{everything}");
    drop(user);
}

#[test]
fn parameter_values_are_recorded_only_when_opted_in() {
    let db = TestDb::new("tr_params");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))");
    let sql = "INSERT INTO t (id, name) VALUES (?, ?)";
    for (options, expected) in [("", None), ("trace_params=true", Some(r#"(7, "zed")"#))] {
        let engine = orm::create_engine(&db.url_with(options)).unwrap();
        let ((), c) = captured(|| {
            let mut conn = engine.connect().unwrap();
            conn.begin().unwrap();
            conn.execute(sql, &[Value::Int(7), Value::Text("zed".into())])
                .unwrap();
            conn.rollback().unwrap();
        });
        let span = c.statement(sql);
        assert_eq!(
            span.fields.get("param_values").map(String::as_str),
            expected,
            "{options}: {span:?}"
        );
        // ROLLBACK has a span too, with no parameters (begin() sends
        // nothing: the INSERT opened the transaction).
        assert_eq!(c.statement("ROLLBACK").fields["params"], "0");
    }
}

#[test]
fn a_killed_connection_is_invalidated_with_a_warning() {
    let db = TestDb::new("tr_kill");
    let engine = orm::create_engine(&db.url_with("pool_size=1")).unwrap();
    let mut conn = engine.connect().unwrap();
    let id = conn.connection_id();
    conn.query_rows("SELECT 1", &[]).unwrap();
    db.kill(id);
    // (A read here would be resent on a fresh connection; DO is not.)
    let (err, c) = captured(|| conn.execute_text("DO 2").unwrap_err());
    assert!(err.is_connection_lost(), "{err:?}");
    let invalidated = c.events_with("invalidated");
    let event = invalidated
        .iter()
        .find(|e| e.fields.get("connection_id") == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("no invalidated event for {id}: {:#?}", c.events));
    assert_eq!(event.level, Level::WARN);
    assert_eq!(event.target, "orm::pool");
    assert_eq!(event.fields["reason"], "connection lost");
    assert!(event.fields.contains_key("error"), "{event:?}");
    // The statement that found out carries the error too.
    assert!(c.statement("DO 2").fields.contains_key("error"));
    // The pool-wide invalidation that follows is information, not a warning.
    let pool_wide = c
        .events
        .iter()
        .find(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.starts_with("pool invalidated"))
        })
        .expect("a pool invalidated event");
    assert_eq!(pool_wide.level, Level::INFO);
}

#[test]
fn a_failed_pre_ping_is_a_warning_and_connects_are_debug() {
    let db = TestDb::new("tr_ping");
    let engine =
        orm::create_engine(&db.url_with("pool_size=1&pool_pre_ping=true&pool_pre_ping_idle=0"))
            .unwrap();
    let (old, c) = captured(|| {
        let mut conn = engine.connect().unwrap();
        conn.query_rows("SELECT 1", &[]).unwrap();
        conn.connection_id()
    });
    let connected = c.events_with("connected");
    assert_eq!(connected.len(), 1, "{:#?}", c.events);
    assert_eq!(connected[0].level, Level::DEBUG);
    assert_eq!(connected[0].fields["connection_id"], old.to_string());
    db.kill(old);
    let (new, c) = captured(|| {
        let conn = engine
            .connect()
            .expect("pre-ping replaces the killed connection");
        conn.connection_id()
    });
    assert_ne!(new, old);
    let ping = c.events_with("pre-ping failed");
    assert_eq!(ping.len(), 1, "{:#?}", c.events);
    assert_eq!(ping[0].level, Level::WARN);
    assert_eq!(ping[0].fields["connection_id"], old.to_string());
    let invalidated = c.events_with("invalidated");
    assert!(
        invalidated
            .iter()
            .any(|e| e.level == Level::WARN && e.fields["connection_id"] == old.to_string()),
        "{:#?}",
        c.events
    );
    assert_eq!(
        c.events_with("connected")[0].fields["connection_id"],
        new.to_string()
    );
}

#[test]
fn slow_statements_are_warnings() {
    let db = TestDb::new("tr_slow");
    let engine = orm::create_engine(&db.url_with("slow_statement_ms=100")).unwrap();
    let ((), c) = captured(|| {
        let mut conn = engine.connect().unwrap();
        conn.query_rows("SELECT SLEEP(0.2)", &[]).unwrap();
    });
    let slow = c.events_with("slow statement");
    let event = slow
        .iter()
        .find(|e| e.fields.get("sql").map(String::as_str) == Some("SELECT SLEEP(0.2)"))
        .unwrap_or_else(|| panic!("no slow-statement event: {:#?}", c.events));
    assert_eq!(
        (event.level, event.target.as_str()),
        (Level::WARN, "orm::statement")
    );
    assert_eq!(event.fields["threshold_ms"], "100");
    let ms: f64 = event.fields["duration_ms"].parse().unwrap();
    assert!(ms >= 200.0, "SLEEP(0.2) took {ms} ms?");
    // Raised inside the statement's own span.
    let span = &c.spans[event.span.expect("inside a span")];
    assert_eq!(span.name, "statement");

    // Without a threshold there is no such event.
    let engine = orm::create_engine(&db.url).unwrap();
    let ((), c) = captured(|| {
        let mut conn = engine.connect().unwrap();
        conn.query_rows("SELECT SLEEP(0.2)", &[]).unwrap();
    });
    assert!(
        c.events_with("slow statement").is_empty(),
        "{:#?}",
        c.events
    );
}

#[test]
fn session_spans_show_rows_per_table_and_enclose_their_statements() {
    let db = TestDb::new("tr_flush");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[Author::table(), Book::table()]).unwrap();
    let sessions = SessionFactory::new(engine.clone());
    let session = sessions.session();
    let ((), c) = captured(|| {
        let ann = session
            .add(Author {
                id: None,
                name: "ann".into(),
            })
            .unwrap();
        session
            .add(Author {
                id: None,
                name: "bob".into(),
            })
            .unwrap();
        session.flush().unwrap();
        let ann_id = ann.read().unwrap().id.unwrap();
        for title in ["a", "b", "c"] {
            session
                .add(Book {
                    id: None,
                    author_id: ann_id,
                    title: title.into(),
                })
                .unwrap();
        }
        ann.write().unwrap().name = "anna".into();
        session.commit().unwrap();
        let nested = session.begin_nested().unwrap();
        nested.rollback().unwrap();
        session.rollback().unwrap();
    });

    let flushes = c.spans_named("flush");
    assert_eq!(flushes.len(), 2, "{flushes:#?}");
    assert_eq!(flushes[0].fields["tables"], "tr_authors: 2 insert");
    assert_eq!(flushes[0].fields["inserts"], "2");
    assert_eq!(
        flushes[1].fields["tables"],
        "tr_authors: 1 update; tr_books: 3 insert"
    );
    assert_eq!(
        (
            flushes[1].fields["inserts"].as_str(),
            flushes[1].fields["updates"].as_str(),
            flushes[1].fields["deletes"].as_str()
        ),
        ("3", "1", "0")
    );
    assert_eq!(flushes[0].target, "orm::session");
    // The second flush ran inside commit(); its statements inside the flush.
    let commit = flushes[1].parent.map(|i| c.spans[i].name);
    assert_eq!(commit, Some("commit"));
    let book_insert = c
        .spans
        .iter()
        .find(|s| s.name == "statement" && s.fields["sql"].starts_with("INSERT INTO `tr_books`"))
        .expect("the books' INSERT");
    assert_eq!(book_insert.parent.map(|i| c.spans[i].name), Some("flush"));
    assert_eq!(book_insert.fields["rows"], "3");
    let commit_stmt = c.statement("COMMIT");
    assert_eq!(commit_stmt.parent.map(|i| c.spans[i].name), Some("commit"));
    // Savepoints and rollback.
    let ops: Vec<&str> = c
        .spans_named("savepoint")
        .iter()
        .map(|s| s.fields["op"].as_str())
        .collect();
    assert_eq!(ops, ["begin", "rollback"]);
    let savepoint = c
        .spans
        .iter()
        .find(|s| s.name == "statement" && s.fields["sql"].starts_with("SAVEPOINT"))
        .expect("SAVEPOINT sent");
    assert_eq!(savepoint.parent.map(|i| c.spans[i].name), Some("savepoint"));
    let rollback = c.statement("ROLLBACK");
    assert_eq!(rollback.parent.map(|i| c.spans[i].name), Some("rollback"));
}

#[test]
fn before_and_after_execute_see_every_statement_and_before_can_refuse() {
    let db = TestDb::new("tr_hooks");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (before, after) = (Arc::clone(&seen), Arc::clone(&seen));
    let engine = orm::builder(&db.url)
        .unwrap()
        .before_execute(move |s| {
            before
                .lock()
                .unwrap()
                .push(format!("before {} {:?}", s.sql, s.params));
            if s.sql.starts_with("DROP") {
                return Err(Error::invalid("DROP is not allowed here"));
            }
            Ok(())
        })
        .after_execute(move |s, out| {
            after.lock().unwrap().push(format!(
                "after {} rows={:?} error={}",
                s.sql,
                out.rows,
                out.error.is_some()
            ));
        })
        .build()
        .unwrap();
    let capture = engine.capture_statements();
    let mut conn = engine.connect().unwrap();
    conn.execute(
        "INSERT INTO t VALUES (?), (?)",
        &[Value::Int(1), Value::Int(2)],
    )
    .unwrap();
    assert_eq!(conn.query_rows("SELECT id FROM t", &[]).unwrap().len(), 2);
    conn.execute_text("SELECT * FROM missing").unwrap_err();
    let before_drop = engine.stats().statements;
    let err = conn.execute_text("DROP TABLE t").unwrap_err();
    assert!(err.to_string().contains("DROP is not allowed"), "{err}");
    assert_eq!(
        engine.stats().statements,
        before_drop,
        "the refused statement is not counted"
    );
    drop(conn);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "before INSERT INTO t VALUES (?), (?) [Int(1), Int(2)]",
            "after INSERT INTO t VALUES (?), (?) rows=Some(2) error=false",
            "before SELECT id FROM t []",
            "after SELECT id FROM t rows=Some(2) error=false",
            "before SELECT * FROM missing []",
            "after SELECT * FROM missing rows=None error=true",
            "before DROP TABLE t []",
            // The pool's reset on return is a statement like any other.
            "before ROLLBACK []",
            "after ROLLBACK rows=Some(0) error=false",
        ]
    );
    assert!(!capture.take().iter().any(|s| s.starts_with("DROP")));
    // The table is still there; the INSERT, never committed (autocommit
    // is off: plain connections commit as they go), was rolled back.
    assert_eq!(
        db.rows("SELECT COUNT(*) FROM t"),
        [["0"]],
        "the table is still there"
    );
}

/// Runs the `echo_child` test in a child process with `ORM_ECHO_URL` set
/// and returns its standard error.
fn run_echo_child(url: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([
            "echo_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ORM_ECHO_URL", url)
        .output()
        .expect("run the test binary as a child");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The quickstart-like flow whose echo the parent test reads. Run by
/// `echo_prints_statements_and_with_debug_their_parameters`, not alone.
#[test]
#[ignore = "run in a child process by echo_prints_statements_and_with_debug_their_parameters"]
fn echo_child() {
    let url = std::env::var("ORM_ECHO_URL").expect("ORM_ECHO_URL is set by the parent test");
    let engine = orm::create_engine(&url).unwrap();
    orm::schema::create_all(&engine, &[Author::table()]).unwrap();
    let session = SessionFactory::new(engine.clone()).session();
    session
        .add(Author {
            id: None,
            name: "ann".into(),
        })
        .unwrap();
    session.commit().unwrap();
    let found = session
        .query::<Author>()
        .filter(Author::NAME.eq("ann".to_string()))
        .all()
        .unwrap();
    assert_eq!(found.len(), 1);
    session.commit().unwrap();
}

#[test]
fn echo_prints_statements_and_with_debug_their_parameters() {
    let db = TestDb::new("tr_echo");
    let lines = |stderr: &str| -> Vec<String> {
        stderr
            .lines()
            .filter(|l| l.starts_with("[orm] "))
            .map(str::to_string)
            .collect()
    };
    let position = |lines: &[String], prefix: &str| -> usize {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {lines:#?}"))
    };

    let plain = lines(&run_echo_child(&db.url_with("echo=true")));
    let create = position(&plain, "[orm] CREATE TABLE `tr_authors`");
    let insert = position(&plain, "[orm] INSERT INTO `tr_authors`");
    let commit = position(&plain, "[orm] COMMIT");
    let select = position(&plain, "[orm] SELECT ");
    assert!(
        create < insert && insert < commit && commit < select,
        "{plain:#?}"
    );
    assert!(
        !plain.iter().any(|l| l.contains("[parameters")),
        "{plain:#?}"
    );

    db.exec("DROP TABLE tr_authors");
    let debug = lines(&run_echo_child(&db.url_with("echo=debug")));
    let insert = position(&debug, "[orm] INSERT INTO `tr_authors`");
    assert_eq!(
        debug[insert + 1],
        r#"[orm] [parameters: ("ann")]"#,
        "{debug:#?}"
    );
    let select = position(&debug, "[orm] SELECT ");
    assert_eq!(
        debug[select + 1],
        r#"[orm] [parameters: ("ann")]"#,
        "{debug:#?}"
    );
    // Statements without parameters get no parameter line.
    let commit = position(&debug, "[orm] COMMIT");
    assert!(!debug[commit + 1].contains("[parameters"), "{debug:#?}");
}
