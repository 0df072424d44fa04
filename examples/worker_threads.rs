//! One engine, several threads, one session per thread: a loader thread
//! reads objects and sends plain values over a channel; worker threads
//! change them, `merge` them into their own sessions and commit; the main
//! thread checks the rows and that every connection went back to the pool.
//!
//! ```sh
//! cargo run --example worker_threads
//! ```
//!
//! `main` installs a `tracing-subscriber` showing the pool's events (target
//! `orm::pool`, DEBUG: connections opened, checkouts that had to wait and for
//! how long; INFO and WARN: invalidations, recycling, failed pings):
//!
//! ```text
//! DEBUG ThreadId(01) orm::pool: connected connection_id=2511
//! DEBUG ThreadId(05) orm::pool: connected connection_id=2512
//! DEBUG ThreadId(06) orm::pool: connected connection_id=2514
//! ```
//!
//! (With more workers than `pool_size + max_overflow`, checkouts that
//! waited appear as `checkout connection_id=... waited_ms=...`.)

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use orm::prelude::*;
use orm::session::SessionFactory;

/// A job whose `done` flag the workers set.
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "wt_jobs")]
pub struct Job {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    pub name: String,
    pub done: bool,
    pub worker: Option<String>,
    #[orm(version)]
    pub version: i64,
}

/// Runs the example against `url` with `workers` worker threads and `jobs` jobs.
pub fn run(url: &str, workers: usize, jobs: usize) -> orm::Result<()> {
    let engine = orm::create_engine(url)?;
    orm::schema::drop_all(&engine, &[Job::table()])?;
    orm::schema::create_all(&engine, &[Job::table()])?;
    let sessions = SessionFactory::new(engine.clone());
    sessions.begin(|s| {
        s.add_all((0..jobs).map(|i| Job {
            id: None,
            name: format!("job-{i}"),
            done: false,
            worker: None,
            version: 0,
        }))?;
        Ok(())
    })?;

    // The loader: its session and handles stay on its thread; plain values travel.
    let (tx, rx) = mpsc::channel::<Job>();
    let loader = {
        let sessions = sessions.clone();
        std::thread::spawn(move || -> orm::Result<()> {
            let session = sessions.session();
            for job in session.query::<Job>().filter(Job::DONE.eq(false)).all()? {
                if tx.send(job.value()?).is_err() {
                    break;
                }
            }
            session.close();
            Ok(())
        })
    };

    // The workers: each merges what it receives into its own session.
    let rx = Arc::new(Mutex::new(rx));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let sessions = sessions.clone();
            let rx = Arc::clone(&rx);
            std::thread::spawn(move || -> orm::Result<usize> {
                let mut handled = 0;
                loop {
                    let next = rx
                        .lock()
                        .map_err(|_| Error::invalid("a worker panicked"))?
                        .recv();
                    let Ok(mut job) = next else { break };
                    job.done = true;
                    job.worker = Some(format!("worker-{w}"));
                    sessions.begin(|s| s.merge(&job).map(|_| ()))?;
                    handled += 1;
                }
                Ok(handled)
            })
        })
        .collect();

    loader
        .join()
        .map_err(|_| Error::invalid("the loader panicked"))??;
    let mut handled = 0;
    for h in handles {
        handled += h
            .join()
            .map_err(|_| Error::invalid("a worker panicked"))??;
    }

    // Verify: every row done, each updated exactly once, nothing checked out.
    let check = sessions.session();
    let done = check
        .query::<Job>()
        .filter(Job::DONE.eq(true))
        .filter(Job::VERSION.eq(2))
        .count()?;
    check.close();
    let status = engine.status();
    println!("{handled} jobs handled by {workers} workers; {done} rows done; pool {status:?}");
    if handled != jobs || done != jobs as u64 || status.checked_out != 0 {
        return Err(Error::invalid(format!(
            "expected {jobs} jobs done and nothing checked out; got {handled} handled, {done} done, {status:?}"
        )));
    }
    orm::schema::drop_all(&engine, &[Job::table()])?;
    Ok(())
}

#[allow(dead_code)]
fn main() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    // The pool's events, with the thread that caused them.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_thread_ids(true),
        )
        .with(Targets::new().with_target("orm::pool", LevelFilter::DEBUG))
        .init();
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    if let Err(e) = run(&url, 4, 200) {
        eprintln!("worker_threads failed: {e}");
        std::process::exit(1);
    }
}
