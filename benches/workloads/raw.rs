//! The raw side: the fastest honest code with the `mysql` crate alone.
//! Prepared statements kept by the caller and executed as `Statement`s (by
//! text, the driver scans the whole SQL for named parameters at every
//! execution: ~13 instructions a byte, 300,000 for a 1,000-row INSERT), multi-row
//! INSERTs with the generated ids taken from `LAST_INSERT_ID()` (consecutive
//! under `innodb_autoinc_lock_mode` 0/1; `RETURNING id` otherwise), multi-row
//! UPDATE and DELETE statements, and a `mysql::Pool` without reset or
//! health-check round trips for the short transactions.

use std::collections::HashMap;
use std::rc::Rc;

use mysql::prelude::Queryable;
use mysql::{
    Conn, Pool, PoolConstraints, PoolOpts, Statement, Transaction, TxOpts, Value as MyValue,
};

use crate::db::{tcp_opts, text};
use crate::models::{digest_report, graph_post, seed_user, Digest, RawPost, RawUser, ReportRow};

const SELECT_USERS: &str = "SELECT `id`, `name`, `email`, `age`, `score` FROM `users`";
const SELECT_USER: &str =
    "SELECT `id`, `name`, `email`, `age`, `score` FROM `users` WHERE `id` = ?";

/// The server's placeholder limit per prepared statement.
const MAX_PLACEHOLDERS: usize = 65_535;

type UserRow = (i64, String, Option<String>, i32, f64);

fn user_from_row((id, name, email, age, score): UserRow) -> RawUser {
    RawUser {
        id,
        name,
        email,
        age,
        score,
    }
}

/// `conn`'s prepared statements by SQL text. The workloads use fewer
/// distinct statements than the driver's cache holds (32), so the driver
/// never closes one kept here.
#[derive(Default)]
pub struct Prepared(HashMap<String, Statement>);

impl Prepared {
    fn get<Q: Queryable>(&mut self, q: &mut Q, sql: &str) -> Statement {
        if let Some(statement) = self.0.get(sql) {
            return statement.clone();
        }
        let statement = q.prep(sql).expect("raw prepare");
        self.0.insert(sql.to_owned(), statement.clone());
        statement
    }
}

pub struct Raw {
    pub conn: Conn,
    /// `conn`'s statements (the pool's connections use the driver's cache).
    prepared: Prepared,
    pub pool: Pool,
    /// Multi-row INSERTs get consecutive keys (`innodb_autoinc_lock_mode` < 2,
    /// `auto_increment_increment` = 1): take them from `LAST_INSERT_ID()`.
    consecutive: bool,
    /// Rows per multi-row statement (`BENCH_RAW_CHUNK`, default 1,000),
    /// capped by the placeholder limit. Measured at N = 10,000 (medians of 3):
    /// W1 took 37 ms in 1,000-row statements, 36 ms in 4,000, 42 ms in 2,000,
    /// 55 ms in one 10,000-row statement; 250 and 500 were no faster.
    chunk: usize,
}

impl Raw {
    pub fn connect(url: &str) -> Raw {
        let mut conn = Conn::new(tcp_opts(url)).expect("raw connection");
        let (mode, inc): (i64, i64) = conn
            .query_first("SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment")
            .expect("read autoinc settings")
            .expect("a row");
        // W6: no COM_RESET_CONNECTION on return (it would also throw away the
        // connection's prepared statements) and no ping at checkout: the
        // connection was just used. The same choices as the ORM's pool
        // (reset only when a transaction may be open; pre-ping off).
        let pool_opts = PoolOpts::default()
            .with_constraints(PoolConstraints::new(1, 5).expect("constraints"))
            .with_reset_connection(false)
            .with_check_health(false);
        let pool = Pool::new(tcp_opts(url).pool_opts(pool_opts)).expect("raw pool");
        let chunk = std::env::var("BENCH_RAW_CHUNK")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000);
        Raw {
            conn,
            prepared: Prepared::default(),
            pool,
            consecutive: mode < 2 && inc == 1,
            chunk,
        }
    }

    fn rows_per_statement(&self, per_row: usize) -> usize {
        (MAX_PLACEHOLDERS / per_row).min(self.chunk).max(1)
    }
}

fn values_sql(head: &str, rows: usize, per_row: usize, tail: &str) -> String {
    let mut row = String::from("(");
    for i in 0..per_row {
        row.push_str(if i == 0 { "?" } else { ", ?" });
    }
    row.push(')');
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * (row.len() + 2));
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql.push_str(tail);
    sql
}

/// Multi-row INSERT of `rows` (each `per_row` values); returns the first
/// generated id of each statement's rows, in order, one per row.
#[allow(clippy::too_many_arguments)]
fn insert_rows(
    q: &mut Transaction<'_>,
    prepared: &mut Prepared,
    consecutive: bool,
    head: &str,
    per_row: usize,
    rows_per_stmt: usize,
    rows: usize,
    mut push: impl FnMut(usize, &mut Vec<MyValue>),
) -> Vec<i64> {
    let mut ids = Vec::with_capacity(rows);
    let mut start = 0;
    while start < rows {
        let end = (start + rows_per_stmt).min(rows);
        let mut params = Vec::with_capacity((end - start) * per_row);
        for r in start..end {
            push(r, &mut params);
        }
        if consecutive {
            let sql = values_sql(head, end - start, per_row, "");
            let statement = prepared.get(q, &sql);
            q.exec_drop(&statement, params).expect("raw INSERT");
            let first = q.last_insert_id().expect("LAST_INSERT_ID") as i64;
            ids.extend((0..(end - start) as i64).map(|k| first + k));
        } else {
            let sql = values_sql(head, end - start, per_row, " RETURNING `id`");
            let statement = prepared.get(q, &sql);
            let got: Vec<i64> = q.exec(&statement, params).expect("raw INSERT RETURNING");
            assert_eq!(got.len(), end - start, "RETURNING returned too few ids");
            ids.extend(got);
        }
        start = end;
    }
    ids
}

fn user_params(u: &RawUser, p: &mut Vec<MyValue>) {
    p.push(text(&u.name));
    p.push(match &u.email {
        Some(e) => text(e),
        None => MyValue::NULL,
    });
    p.push(MyValue::Int(u.age as i64));
    p.push(MyValue::Double(u.score));
}

fn new_user(i: i64) -> RawUser {
    let u = seed_user(i);
    RawUser {
        id: 0,
        name: u.name,
        email: u.email,
        age: u.age,
        score: u.score,
    }
}

/// W1 with the driver's bulk execute (`exec_batch`: MariaDB's
/// COM_STMT_BULK_EXECUTE, all rows of one single-row INSERT in one round
/// trip); the ids are taken as consecutive from the first one, which the
/// caller's verification checks row by row.
fn w1_insert_bulk(raw: &mut Raw, n: usize) -> Vec<RawUser> {
    let mut users: Vec<RawUser> = (1..=n as i64).map(new_user).collect();
    let mut tx = raw
        .conn
        .start_transaction(TxOpts::default())
        .expect("begin");
    tx.exec_batch(
        "INSERT INTO `users` (`name`, `email`, `age`, `score`) VALUES (?, ?, ?, ?)",
        users.iter().map(|u| {
            let mut p = Vec::with_capacity(4);
            user_params(u, &mut p);
            p
        }),
    )
    .expect("raw bulk INSERT");
    let first = tx.last_insert_id().expect("LAST_INSERT_ID") as i64;
    tx.commit().expect("commit");
    for (k, u) in users.iter_mut().enumerate() {
        u.id = first + k as i64;
    }
    users
}

/// W1: N users inserted in one transaction; every struct gets its id.
#[inline(never)]
pub fn w1_insert(raw: &mut Raw, n: usize) -> Vec<RawUser> {
    if std::env::var("BENCH_RAW_INSERT").is_ok_and(|v| v == "bulk") {
        return w1_insert_bulk(raw, n);
    }
    let mut users: Vec<RawUser> = (1..=n as i64).map(new_user).collect();
    let per_stmt = raw.rows_per_statement(4);
    let consecutive = raw.consecutive;
    let mut tx = raw
        .conn
        .start_transaction(TxOpts::default())
        .expect("begin");
    let ids = insert_rows(
        &mut tx,
        &mut raw.prepared,
        consecutive,
        "INSERT INTO `users` (`name`, `email`, `age`, `score`) VALUES ",
        4,
        per_stmt,
        users.len(),
        |r, p| user_params(&users[r], p),
    );
    tx.commit().expect("commit");
    for (u, id) in users.iter_mut().zip(ids) {
        u.id = id;
    }
    users
}

/// W2: all users as structs.
#[inline(never)]
pub fn w2_load(raw: &mut Raw) -> Vec<RawUser> {
    raw.conn
        .exec_map(SELECT_USERS, (), user_from_row)
        .expect("raw SELECT")
}

/// W3 cold: primary-key lookups, kept in a hand-written identity map.
#[inline(never)]
pub fn w3_cold(
    raw: &mut Raw,
    ids: &[i64],
    cache: &mut HashMap<i64, Rc<RawUser>>,
) -> Vec<Rc<RawUser>> {
    let mut out = Vec::with_capacity(ids.len());
    let statement = raw.prepared.get(&mut raw.conn, SELECT_USER);
    for &id in ids {
        let row: UserRow = raw
            .conn
            .exec_first(&statement, (id,))
            .expect("raw get")
            .expect("user exists");
        let u = Rc::new(user_from_row(row));
        cache.insert(id, u.clone());
        out.push(u);
    }
    out
}

/// W3 warm: the same lookups from the map.
#[inline(never)]
pub fn w3_warm(ids: &[i64], cache: &HashMap<i64, Rc<RawUser>>) -> Vec<Rc<RawUser>> {
    ids.iter()
        .map(|id| cache.get(id).cloned().expect("cached"))
        .collect()
}

/// Multi-row UPDATE of one column from a derived table of (id, value) rows.
fn update_scores<Q: Queryable>(
    q: &mut Q,
    prepared: &mut Prepared,
    users: &[RawUser],
    per_stmt: usize,
    affected: impl Fn(&Q) -> u64,
) {
    for chunk in users.chunks(per_stmt) {
        let mut sql = String::with_capacity(128 + chunk.len() * 10);
        sql.push_str("UPDATE `users` JOIN (SELECT ? AS `k`, ? AS `s`");
        for r in 1..chunk.len() {
            sql.push_str(if r == 1 {
                " UNION ALL VALUES (?, ?)"
            } else {
                ", (?, ?)"
            });
        }
        sql.push_str(") AS `b` ON `users`.`id` = `b`.`k` SET `users`.`score` = `b`.`s`");
        let mut params = Vec::with_capacity(chunk.len() * 2);
        for u in chunk {
            params.push(MyValue::Int(u.id));
            params.push(MyValue::Double(u.score));
        }
        let statement = prepared.get(q, &sql);
        q.exec_drop(&statement, params).expect("raw UPDATE");
        assert_eq!(
            affected(q),
            chunk.len() as u64,
            "UPDATE matched too few rows"
        );
    }
}

/// W4: load all users, change each score, commit.
#[inline(never)]
pub fn w4_update(raw: &mut Raw) -> usize {
    let per_stmt = raw.rows_per_statement(2);
    let mut tx = raw
        .conn
        .start_transaction(TxOpts::default())
        .expect("begin");
    let mut users: Vec<RawUser> = tx.exec_map(SELECT_USERS, (), user_from_row).expect("load");
    for u in &mut users {
        u.score += 1.0;
    }
    update_scores(&mut tx, &mut raw.prepared, &users, per_stmt, |t| {
        t.affected_rows()
    });
    tx.commit().expect("commit");
    users.len()
}

/// W5: `users` users with 10 posts each, one transaction.
#[inline(never)]
pub fn w5_graph(raw: &mut Raw, users: usize) -> (Vec<RawUser>, Vec<RawPost>) {
    let consecutive = raw.consecutive;
    let mut us: Vec<RawUser> = (1..=users as i64).map(new_user).collect();
    let user_stmt = raw.rows_per_statement(4);
    let post_stmt = raw.rows_per_statement(3);
    let mut tx = raw
        .conn
        .start_transaction(TxOpts::default())
        .expect("begin");
    let ids = insert_rows(
        &mut tx,
        &mut raw.prepared,
        consecutive,
        "INSERT INTO `users` (`name`, `email`, `age`, `score`) VALUES ",
        4,
        user_stmt,
        us.len(),
        |r, p| user_params(&us[r], p),
    );
    for (u, id) in us.iter_mut().zip(ids) {
        u.id = id;
    }
    let mut posts = Vec::with_capacity(users * 10);
    for (k, u) in us.iter().enumerate() {
        for j in 0..10 {
            let (title, body) = graph_post(k as i64 + 1, j);
            posts.push(RawPost {
                id: 0,
                user_id: u.id,
                title,
                body,
            });
        }
    }
    let ids = insert_rows(
        &mut tx,
        &mut raw.prepared,
        consecutive,
        "INSERT INTO `posts` (`user_id`, `title`, `body`) VALUES ",
        3,
        post_stmt,
        posts.len(),
        |r, p| {
            let post = &posts[r];
            p.push(MyValue::Int(post.user_id));
            p.push(text(&post.title));
            p.push(text(&post.body));
        },
    );
    tx.commit().expect("commit");
    for (p, id) in posts.iter_mut().zip(ids) {
        p.id = id;
    }
    (us, posts)
}

/// W6: one short transaction per id, each on a connection from the pool.
#[inline(never)]
pub fn w6_short(raw: &mut Raw, ids: &[i64]) {
    for &id in ids {
        let mut conn = raw.pool.get_conn().expect("pool checkout");
        let mut tx = conn.start_transaction(TxOpts::default()).expect("begin");
        let row: UserRow = tx
            .exec_first(SELECT_USER, (id,))
            .expect("raw get")
            .expect("user exists");
        let mut u = user_from_row(row);
        u.age += 1;
        tx.exec_drop("UPDATE `users` SET `age` = ? WHERE `id` = ?", (u.age, u.id))
            .expect("raw UPDATE");
        assert_eq!(tx.affected_rows(), 1, "UPDATE matched no row");
        tx.commit().expect("commit");
    }
}

/// W7: delete all posts, then load every user and delete them by key.
#[inline(never)]
pub fn w7_delete(raw: &mut Raw) -> (u64, usize) {
    let per_stmt = raw.rows_per_statement(1);
    let mut tx = raw
        .conn
        .start_transaction(TxOpts::default())
        .expect("begin");
    tx.exec_drop("DELETE FROM `posts`", ())
        .expect("delete posts");
    let posts = tx.affected_rows();
    let users: Vec<RawUser> = tx.exec_map(SELECT_USERS, (), user_from_row).expect("load");
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    if let Some((first, last)) = one_run(&ids) {
        // Consecutive keys: one range, which the server reads in one pass
        // (40 ms against 52 ms for ten 1,000-key IN lists, 10,000 rows).
        let statement = raw
            .prepared
            .get(&mut tx, "DELETE FROM `users` WHERE `id` BETWEEN ? AND ?");
        tx.exec_drop(&statement, (first, last)).expect("raw DELETE");
        assert_eq!(tx.affected_rows(), users.len() as u64, "DELETE missed rows");
        tx.commit().expect("commit");
        return (posts, users.len());
    }
    for chunk in users.chunks(per_stmt) {
        let sql = values_sql("DELETE FROM `users` WHERE `id` IN ", 1, chunk.len(), "");
        let params: Vec<MyValue> = chunk.iter().map(|u| MyValue::Int(u.id)).collect();
        let statement = raw.prepared.get(&mut tx, &sql);
        tx.exec_drop(&statement, params).expect("raw DELETE");
    }
    tx.commit().expect("commit");
    (posts, users.len())
}

const SELECT_POSTS_OF: &str =
    "SELECT `id`, `user_id`, `title`, `body` FROM `posts` WHERE `user_id`";

/// `(first, last)` when `ids` are consecutive ascending integers (keys
/// loaded from an auto-increment table in key order usually are).
fn one_run(ids: &[i64]) -> Option<(i64, i64)> {
    let (first, last) = (*ids.first()?, *ids.last()?);
    ids.windows(2)
        .all(|w| w[1] == w[0] + 1)
        .then_some((first, last))
}

/// W8: all users and their posts: the same two queries as the ORM's
/// `selectin` load (the users, then their posts by `user_id IN (...)`),
/// the posts grouped under their users.
#[inline(never)]
pub fn w8_eager(raw: &mut Raw) -> Vec<(RawUser, Vec<RawPost>)> {
    let users: Vec<RawUser> = raw
        .conn
        .exec_map(SELECT_USERS, (), user_from_row)
        .expect("raw SELECT users");
    let mut index = HashMap::with_capacity(users.len());
    let mut out: Vec<(RawUser, Vec<RawPost>)> = Vec::with_capacity(users.len());
    let mut ids = Vec::with_capacity(users.len());
    for u in users {
        index.insert(u.id, out.len());
        ids.push(u.id);
        out.push((u, Vec::new()));
    }
    // Consecutive keys: one range (as the ORM's selectin sends them);
    // otherwise IN lists.
    let statements: Vec<(String, Vec<MyValue>)> = match one_run(&ids) {
        Some((first, last)) => vec![(
            format!("{SELECT_POSTS_OF} BETWEEN ? AND ?"),
            vec![MyValue::Int(first), MyValue::Int(last)],
        )],
        None => ids
            .chunks(MAX_PLACEHOLDERS)
            .map(|chunk| {
                let head = format!("{SELECT_POSTS_OF} IN ");
                let params = chunk.iter().map(|&id| MyValue::Int(id)).collect();
                (values_sql(&head, 1, chunk.len(), ""), params)
            })
            .collect(),
    };
    for (sql, params) in statements {
        let statement = raw.prepared.get(&mut raw.conn, &sql);
        raw.conn
            .exec_fold(
                &statement,
                params,
                (),
                |(), (id, user_id, title, body): (i64, i64, String, String)| {
                    if let Some(&k) = index.get(&user_id) {
                        out[k].1.push(RawPost {
                            id,
                            user_id,
                            title,
                            body,
                        });
                    }
                },
            )
            .expect("raw SELECT posts");
    }
    out
}

/// W9's report query.
pub const REPORT: &str = "SELECT u.`id`, u.`name`, COUNT(p.`id`), AVG(p.`score`) FROM `users` u \
     LEFT OUTER JOIN `posts` p ON p.`user_id` = u.`id` GROUP BY u.`id`, u.`name` ORDER BY u.`id`";

/// W9: the report as one prepared statement, rows into tuples.
#[inline(never)]
pub fn w9_report(raw: &mut Raw) -> Digest {
    let rows: Vec<ReportRow> = raw.conn.exec(REPORT, ()).expect("raw report");
    digest_report(&rows)
}

/// W10: every user streamed from one result set, each row decoded into a
/// struct, folded and dropped.
#[inline(never)]
pub fn w10_stream(raw: &mut Raw) -> Digest {
    let mut d = Digest::default();
    let result = raw.conn.exec_iter(SELECT_USERS, ()).expect("raw stream");
    for row in result {
        let row: UserRow = mysql::from_row(row.expect("raw row"));
        let u = user_from_row(row);
        d.user(u.id, &u.name, u.email.as_deref(), u.age, u.score);
    }
    d
}
