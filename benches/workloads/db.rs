//! The database side of the harness: the private database, the admin
//! connection that seeds, verifies and reads the server's `Questions`
//! counter, and the fresh schema of each run. With `BENCH_URL=sqlite://...`
//! the database is an SQLite file instead (no server, no `Questions`).

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Value as MyValue};
use orm::prelude::*;

use crate::models::{Post, User};

/// `DATABASE_URL`, or the project's default.
pub fn base_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string())
}

/// `base` with its database (path) replaced by `db`, query string kept.
pub fn url_for_db(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let after_scheme = head.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = head[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(head.len());
    let mut url = format!("{}/{}", &head[..host_end], db);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// Options for a raw connection to `url`, always over TCP.
pub fn tcp_opts(url: &str) -> OptsBuilder {
    let opts = Opts::from_url(url).unwrap_or_else(|e| panic!("bad DATABASE_URL {url}: {e}"));
    OptsBuilder::from_opts(opts).prefer_socket(false)
}

/// The admin connection.
pub enum Admin {
    MySql(Conn),
    Sqlite(rusqlite::Connection),
}

/// `BENCH_URL` when it names an SQLite database: the file to use.
pub fn sqlite_path() -> Option<std::path::PathBuf> {
    let url = std::env::var("BENCH_URL").ok()?;
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    if path.is_empty() || path.starts_with(":memory:") {
        // The raw side and the admin connection need the same database.
        let name = format!("orm_bench_{}.db", std::process::id());
        return Some(std::env::temp_dir().join(name));
    }
    Some(std::path::PathBuf::from(path))
}

/// The private database `orm_bench_<pid>` (or SQLite file), dropped on drop.
pub struct BenchDb {
    pub name: String,
    pub url: String,
    pub admin: Admin,
    /// Server `Questions` increments caused by one `read_questions` call.
    questions_overhead: u64,
}

impl BenchDb {
    /// Whether this is the SQLite file.
    pub fn is_sqlite(&self) -> bool {
        matches!(self.admin, Admin::Sqlite(_))
    }

    /// The MySQL admin connection (MySQL only).
    fn my(&mut self) -> &mut Conn {
        match &mut self.admin {
            Admin::MySql(c) => c,
            Admin::Sqlite(_) => unreachable!("a MySQL-only admin call on SQLite"),
        }
    }

    pub fn create() -> BenchDb {
        if let Some(path) = sqlite_path() {
            remove_sqlite(&path);
            let conn = crate::raw_sqlite::open(&path);
            return BenchDb {
                name: path.display().to_string(),
                url: format!("sqlite://{}", path.display()),
                admin: Admin::Sqlite(conn),
                questions_overhead: 0,
            };
        }
        let base = base_url();
        let name = format!("orm_bench_{}", std::process::id());
        let mut admin = Conn::new(tcp_opts(&base)).unwrap_or_else(|e| {
            panic!("cannot connect to MariaDB at {base}: {e} (is the server running?)")
        });
        admin
            .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .expect("drop bench database");
        admin
            .query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .expect("create bench database");
        admin
            .query_drop(format!("USE `{name}`"))
            .expect("use bench database");
        let url = url_for_db(&base, &name);
        let mut db = BenchDb {
            name,
            url,
            admin: Admin::MySql(admin),
            questions_overhead: 0,
        };
        // Calibrate: two reads back to back; the difference is the cost of
        // one read (the SHOW statement itself). Take the minimum of a few
        // tries in case something else touched the server.
        let mut best = u64::MAX;
        for _ in 0..5 {
            let a = db.read_questions();
            let b = db.read_questions();
            best = best.min(b - a);
        }
        db.questions_overhead = best;
        db
    }

    /// The server-wide `Questions` counter (0 on SQLite, which has none).
    pub fn read_questions(&mut self) -> u64 {
        if self.is_sqlite() {
            return 0;
        }
        let row: Option<(String, u64)> = self
            .my()
            .query_first("SHOW GLOBAL STATUS LIKE 'Questions'")
            .expect("read Questions");
        row.expect("Questions row").1
    }

    /// Statements sent by others between two reads `before` and `after`.
    pub fn questions_between(&self, before: u64, after: u64) -> u64 {
        after.saturating_sub(before + self.questions_overhead)
    }

    pub fn exec(&mut self, sql: &str) {
        if let Admin::Sqlite(c) = &self.admin {
            c.execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            return;
        }
        self.my()
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// One integer from a query (`COUNT(*)`, `SUM(...)`); NULL as 0.
    pub fn scalar(&mut self, sql: &str) -> i64 {
        if let Admin::Sqlite(c) = &self.admin {
            let v: Option<i64> = c
                .query_row(sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            return v.unwrap_or(0);
        }
        let v: Option<Option<i64>> = self
            .my()
            .query_first(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        v.flatten().unwrap_or(0)
    }

    /// Empties both tables, keeping their definitions: TRUNCATE on MariaDB,
    /// which (unlike DROP, CREATE or ALTER) does not invalidate the prepared
    /// statements of either side.
    pub fn empty_tables(&mut self) {
        if self.is_sqlite() {
            self.exec("DELETE FROM `posts`; DELETE FROM `users`");
            return;
        }
        self.exec("SET FOREIGN_KEY_CHECKS = 0");
        self.exec("TRUNCATE TABLE `posts`");
        self.exec("TRUNCATE TABLE `users`");
        self.exec("SET FOREIGN_KEY_CHECKS = 1");
    }

    /// A fresh schema: both tables dropped and created by the ORM's DDL.
    pub fn fresh_schema(&mut self, engine: &Engine) {
        let tables = [User::table(), Post::table()];
        orm::schema::drop_all(engine, &tables).expect("drop tables");
        orm::schema::create_all(engine, &tables).expect("create tables");
    }

    /// Seeds users 1..=n with raw multi-row INSERTs (outside any timing).
    pub fn seed_users(&mut self, n: usize) {
        for start in (1..=n).step_by(2000) {
            let end = (start + 1999).min(n);
            let mut sql =
                String::from("INSERT INTO `users` (`id`, `name`, `email`, `age`, `score`) VALUES ");
            for i in start..=end {
                if i > start {
                    sql.push(',');
                }
                let u = crate::models::seed_user(i as i64);
                let email = match &u.email {
                    Some(e) => format!("'{e}'"),
                    None => "NULL".to_string(),
                };
                sql.push_str(&format!(
                    "({i},'{}',{email},{},{:?})",
                    u.name, u.age, u.score
                ));
            }
            self.exec(&sql);
        }
    }

    /// Seeds one post per user (user_id = i) for users 1..=n.
    pub fn seed_posts(&mut self, n: usize) {
        for start in (1..=n).step_by(2000) {
            let end = (start + 1999).min(n);
            let mut sql = String::from("INSERT INTO `posts` (`user_id`, `title`, `body`) VALUES ");
            for i in start..=end {
                if i > start {
                    sql.push(',');
                }
                sql.push_str(&format!("({i},'seed post {i}','seed body {i}')"));
            }
            self.exec(&sql);
        }
    }

    /// W8's seed: users `1..=users`, each with the 10 posts of W5 (post
    /// `10 * (u - 1) + j + 1` is post `j` of user `u`).
    pub fn seed_graph(&mut self, users: usize) {
        self.seed_users(users);
        let posts = users * 10;
        for start in (1..=posts).step_by(2000) {
            let end = (start + 1999).min(posts);
            let mut sql =
                String::from("INSERT INTO `posts` (`id`, `user_id`, `title`, `body`) VALUES ");
            for id in start..=end {
                if id > start {
                    sql.push(',');
                }
                let (u, j) = ((id as i64 - 1) / 10 + 1, (id as i64 - 1) % 10);
                let (title, body) = crate::models::graph_post(u, j);
                sql.push_str(&format!("({id},{u},'{title}','{body}')"));
            }
            self.exec(&sql);
        }
    }

    /// W9's seed: users `1..=n`, a `score` column on `posts`, and the posts
    /// of [`report_posts`](crate::models::report_posts).
    pub fn seed_report(&mut self, n: usize) {
        self.seed_users(n);
        self.exec("ALTER TABLE `posts` ADD COLUMN `score` INTEGER NOT NULL DEFAULT 0");
        let mut values = Vec::new();
        for i in 1..=n as i64 {
            for score in crate::models::report_posts(i) {
                values.push(format!("({i},'t','b',{score})"));
            }
        }
        for chunk in values.chunks(2000) {
            self.exec(&format!(
                "INSERT INTO `posts` (`user_id`, `title`, `body`, `score`) VALUES {}",
                chunk.join(",")
            ));
        }
    }

    /// Rows of `SELECT id, name FROM users ORDER BY id`.
    pub fn user_names(&mut self) -> Vec<(i64, String)> {
        if let Admin::Sqlite(c) = &self.admin {
            let mut stmt = c
                .prepare("SELECT \"id\", \"name\" FROM \"users\" ORDER BY \"id\"")
                .expect("read users");
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("read users");
            return rows.map(|r| r.expect("user row")).collect();
        }
        self.my()
            .query("SELECT `id`, `name` FROM `users` ORDER BY `id`")
            .expect("read users")
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        match &mut self.admin {
            Admin::MySql(c) => {
                let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
            }
            Admin::Sqlite(_) => remove_sqlite(std::path::Path::new(&self.name)),
        }
    }
}

/// Removes an SQLite file and its WAL files.
fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(p));
    }
}

/// A row's values into `mysql` values, for the raw side's parameters.
pub fn text(s: &str) -> MyValue {
    MyValue::Bytes(s.as_bytes().to_vec())
}
