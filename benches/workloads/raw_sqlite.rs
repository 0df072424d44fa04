//! The raw side on SQLite: the fastest honest code with `rusqlite` alone,
//! on a connection set up as the ORM's are (WAL, foreign keys, busy
//! timeout). Prepared statements from rusqlite's cache, one row per
//! INSERT/UPDATE (no round trips to save: a prepared single-row statement
//! is SQLite's idiom) with the key from `last_insert_rowid()`, one
//! connection for the short transactions (an embedded database needs no
//! pool), `BEGIN IMMEDIATE` for transactions that write.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use rusqlite::{params, Connection};

use crate::models::{digest_report, graph_post, seed_user, Digest, RawPost, RawUser, ReportRow};

const SELECT_USERS: &str = "SELECT \"id\", \"name\", \"email\", \"age\", \"score\" FROM \"users\"";
const SELECT_USER: &str =
    "SELECT \"id\", \"name\", \"email\", \"age\", \"score\" FROM \"users\" WHERE \"id\" = ?";
const INSERT_USER: &str =
    "INSERT INTO \"users\" (\"name\", \"email\", \"age\", \"score\") VALUES (?, ?, ?, ?)";

/// A connection set up like the ORM's.
pub fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open the SQLite bench file");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    conn.set_prepared_statement_cache_capacity(128);
    conn.execute_batch("PRAGMA foreign_keys = ON")
        .expect("foreign keys");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("WAL");
    assert_eq!(mode, "wal");
    conn
}

pub struct Raw {
    pub conn: Connection,
}

impl Raw {
    pub fn connect(path: &Path) -> Raw {
        Raw { conn: open(path) }
    }
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    Ok(RawUser {
        id: r.get(0)?,
        name: r.get(1)?,
        email: r.get(2)?,
        age: r.get(3)?,
        score: r.get(4)?,
    })
}

fn load_users(conn: &Connection) -> Vec<RawUser> {
    let mut stmt = conn.prepare_cached(SELECT_USERS).expect("prepare");
    let rows = stmt.query_map([], user_from_row).expect("raw SELECT");
    rows.map(|r| r.expect("user row")).collect()
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

fn insert_users(conn: &Connection, users: &mut [RawUser]) {
    let mut stmt = conn.prepare_cached(INSERT_USER).expect("prepare");
    for u in users {
        stmt.execute(params![u.name, u.email, u.age, u.score])
            .expect("raw INSERT");
        u.id = conn.last_insert_rowid();
    }
}

/// W1: N users inserted in one transaction; every struct gets its id.
pub fn w1_insert(raw: &mut Raw, n: usize) -> Vec<RawUser> {
    let mut users: Vec<RawUser> = (1..=n as i64).map(new_user).collect();
    raw.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    insert_users(&raw.conn, &mut users);
    raw.conn.execute_batch("COMMIT").expect("commit");
    users
}

/// W2: all users as structs.
pub fn w2_load(raw: &mut Raw) -> Vec<RawUser> {
    load_users(&raw.conn)
}

/// W3 cold: primary-key lookups, kept in a hand-written identity map.
pub fn w3_cold(
    raw: &mut Raw,
    ids: &[i64],
    cache: &mut HashMap<i64, Rc<RawUser>>,
) -> Vec<Rc<RawUser>> {
    let mut stmt = raw.conn.prepare_cached(SELECT_USER).expect("prepare");
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let u = Rc::new(stmt.query_row([id], user_from_row).expect("raw get"));
        cache.insert(id, u.clone());
        out.push(u);
    }
    out
}

/// W4: load all users, change each score, commit.
pub fn w4_update(raw: &mut Raw) -> usize {
    raw.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    let mut users = load_users(&raw.conn);
    for u in &mut users {
        u.score += 1.0;
    }
    {
        let mut stmt = raw
            .conn
            .prepare_cached("UPDATE \"users\" SET \"score\" = ? WHERE \"id\" = ?")
            .expect("prepare");
        for u in &users {
            let n = stmt.execute(params![u.score, u.id]).expect("raw UPDATE");
            assert_eq!(n, 1, "UPDATE matched no row");
        }
    }
    raw.conn.execute_batch("COMMIT").expect("commit");
    users.len()
}

/// W5: `users` users with 10 posts each, one transaction.
pub fn w5_graph(raw: &mut Raw, users: usize) -> (Vec<RawUser>, Vec<RawPost>) {
    let mut us: Vec<RawUser> = (1..=users as i64).map(new_user).collect();
    raw.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    insert_users(&raw.conn, &mut us);
    let mut posts = Vec::with_capacity(users * 10);
    {
        let mut stmt = raw
            .conn
            .prepare_cached(
                "INSERT INTO \"posts\" (\"user_id\", \"title\", \"body\") VALUES (?, ?, ?)",
            )
            .expect("prepare");
        for (k, u) in us.iter().enumerate() {
            for j in 0..10 {
                let (title, body) = graph_post(k as i64 + 1, j);
                stmt.execute(params![u.id, title, body])
                    .expect("raw INSERT");
                posts.push(RawPost {
                    id: raw.conn.last_insert_rowid(),
                    user_id: u.id,
                    title,
                    body,
                });
            }
        }
    }
    raw.conn.execute_batch("COMMIT").expect("commit");
    (us, posts)
}

/// W6: one short transaction per id.
pub fn w6_short(raw: &mut Raw, ids: &[i64]) {
    for &id in ids {
        raw.conn.execute_batch("BEGIN").expect("begin");
        let mut u = {
            let mut stmt = raw.conn.prepare_cached(SELECT_USER).expect("prepare");
            stmt.query_row([id], user_from_row).expect("raw get")
        };
        u.age += 1;
        let mut stmt = raw
            .conn
            .prepare_cached("UPDATE \"users\" SET \"age\" = ? WHERE \"id\" = ?")
            .expect("prepare");
        let n = stmt.execute(params![u.age, u.id]).expect("raw UPDATE");
        assert_eq!(n, 1, "UPDATE matched no row");
        raw.conn.execute_batch("COMMIT").expect("commit");
    }
}

/// W7: delete all posts, then load every user and delete them by key.
pub fn w7_delete(raw: &mut Raw) -> (u64, usize) {
    raw.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    let posts = raw
        .conn
        .execute("DELETE FROM \"posts\"", [])
        .expect("delete posts") as u64;
    let users = load_users(&raw.conn);
    for chunk in users.chunks(1000) {
        let mut sql = String::from("DELETE FROM \"users\" WHERE \"id\" IN (");
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
        let mut stmt = raw.conn.prepare_cached(&sql).expect("prepare");
        stmt.execute(rusqlite::params_from_iter(chunk.iter().map(|u| u.id)))
            .expect("raw DELETE");
    }
    raw.conn.execute_batch("COMMIT").expect("commit");
    (posts, users.len())
}

/// W8: all users and their posts: the users, then their posts by
/// `user_id IN (...)`, grouped under their users.
pub fn w8_eager(raw: &mut Raw) -> Vec<(RawUser, Vec<RawPost>)> {
    let users = load_users(&raw.conn);
    let mut index = HashMap::with_capacity(users.len());
    let mut out: Vec<(RawUser, Vec<RawPost>)> = Vec::with_capacity(users.len());
    for u in users {
        index.insert(u.id, out.len());
        out.push((u, Vec::new()));
    }
    let ids: Vec<i64> = out.iter().map(|(u, _)| u.id).collect();
    for chunk in ids.chunks(10_000) {
        let mut sql = String::from(
            "SELECT \"id\", \"user_id\", \"title\", \"body\" FROM \"posts\" WHERE \"user_id\" IN (",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
        let mut stmt = raw.conn.prepare_cached(&sql).expect("prepare");
        let mut rows = stmt
            .query(rusqlite::params_from_iter(chunk.iter()))
            .expect("raw SELECT posts");
        while let Some(r) = rows.next().expect("post row") {
            let post = RawPost {
                id: r.get(0).expect("id"),
                user_id: r.get(1).expect("user_id"),
                title: r.get(2).expect("title"),
                body: r.get(3).expect("body"),
            };
            if let Some(&k) = index.get(&post.user_id) {
                out[k].1.push(post);
            }
        }
    }
    out
}

/// W9: the report as one prepared statement, rows into tuples.
#[inline(never)]
pub fn w9_report(raw: &mut Raw) -> Digest {
    let sql = crate::raw::REPORT.replace('`', "\"");
    let mut stmt = raw.conn.prepare_cached(&sql).expect("prepare");
    let rows: Vec<ReportRow> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("raw report")
        .collect::<rusqlite::Result<_>>()
        .expect("report rows");
    digest_report(&rows)
}

/// W10: every user streamed from one statement, each row decoded into a
/// struct, folded and dropped.
#[inline(never)]
pub fn w10_stream(raw: &mut Raw) -> Digest {
    let mut d = Digest::default();
    let mut stmt = raw.conn.prepare_cached(SELECT_USERS).expect("prepare");
    let rows = stmt.query_map([], user_from_row).expect("raw stream");
    for u in rows {
        let u = u.expect("raw row");
        d.user(u.id, &u.name, u.email.as_deref(), u.age, u.score);
    }
    d
}
