//! The two tables of the benchmark, as ORM models, plus the plain structs
//! the raw side builds, and the generators both sides share.

use orm::prelude::*;

/// `users`: the ORM model.
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "users")]
pub struct User {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    #[orm(sql_type = "VARCHAR(64)")]
    pub name: String,
    #[orm(sql_type = "VARCHAR(128)")]
    pub email: Option<String>,
    pub age: i32,
    pub score: f64,
}

/// `posts`: the ORM model.
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "posts")]
pub struct Post {
    #[orm(primary_key, auto_increment)]
    pub id: Option<i64>,
    #[orm(references = User)]
    pub user_id: i64,
    #[orm(sql_type = "VARCHAR(200)")]
    pub title: String,
    #[orm(sql_type = "TEXT")]
    pub body: String,
}

/// The raw side's user struct (same fields; the id is known once inserted).
#[derive(Debug, Clone, PartialEq)]
pub struct RawUser {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub age: i32,
    pub score: f64,
}

/// The raw side's post struct.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPost {
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub body: String,
}

/// User `i` of the seed (and of W1's inserts): name `user{i}`, email NULL
/// when `i % 10 == 0`, age `18 + i % 60`, score `i * 0.5`.
pub fn seed_user(i: i64) -> User {
    User {
        id: None,
        name: format!("user{i}"),
        email: (i % 10 != 0).then(|| format!("user{i}@example.com")),
        age: 18 + (i % 60) as i32,
        score: i as f64 * 0.5,
    }
}

/// Post `j` of user number `u` in W5 (the user's id is filled in later).
pub fn graph_post(u: i64, j: i64) -> (String, String) {
    (
        format!("user{u} post {j}"),
        format!(
            "post {j} of user{u}: lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod"
        ),
    )
}

/// The ids W3 and W6 look up: `1 + k*7919 % n` for k in 0..count
/// (distinct while gcd(7919, n) = 1; n = min(N, 10,000)).
pub fn lookup_ids(count: usize, n: usize) -> Vec<i64> {
    let m = n.min(10_000) as i64;
    (0..count as i64).map(|k| 1 + (k * 7919) % m).collect()
}
