//! The two tables of the benchmark, as ORM models, plus the plain structs
//! the raw side builds, and the generators both sides share.

use orm::prelude::*;

/// `users`: the ORM model. Deleting a user deletes its posts (the ORM's
/// `delete` cascade, W7); adding posts to `posts` adds them (W5).
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
    #[orm(one_to_many, key = "user_id", back_populates = "user", cascade = "all")]
    pub posts: ToMany<Post>,
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
    #[orm(many_to_one, back_populates = "posts")]
    pub user: ToOne<User>,
}

/// W9's view of the same tables: the report reads users and the posts'
/// `score` column (added by W9's seed; the other workloads' `Post` does not
/// map it).
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "users")]
pub struct ReportUser {
    #[orm(primary_key)]
    pub id: i64,
    #[orm(sql_type = "VARCHAR(64)")]
    pub name: String,
    #[orm(one_to_many, key = "user_id")]
    pub posts: ToMany<ScoredPost>,
}

/// W9's posts, with their score.
#[derive(Debug, Clone, PartialEq, Model)]
#[orm(table = "posts")]
pub struct ScoredPost {
    #[orm(primary_key)]
    pub id: i64,
    #[orm(references = ReportUser)]
    pub user_id: i64,
    pub score: i32,
}

/// W9's seed: user `i` has `i % 4` posts; post `k` of user `i` scores
/// `(7i + 13k) % 100`.
pub fn report_posts(i: i64) -> impl Iterator<Item = i32> {
    (0..i % 4).map(move |k| ((7 * i + 13 * k) % 100) as i32)
}

/// One row of W9's report.
pub type ReportRow = (i64, String, i64, Option<f64>);

/// Adds W9 report rows to a digest (the average rounded to 1e-3: MariaDB's
/// `AVG` of integers is a DECIMAL with 4 decimals).
pub fn digest_report<'a>(rows: impl IntoIterator<Item = &'a ReportRow>) -> Digest {
    let mut d = Digest::default();
    for (id, name, posts, avg) in rows {
        let avg = avg.map_or(i64::MIN, |a| (a * 1e3).round() as i64);
        d.fold(&[
            &id.to_le_bytes(),
            name.as_bytes(),
            &posts.to_le_bytes(),
            &avg.to_le_bytes(),
        ]);
    }
    d
}

/// The report W9 must produce over users `1..=n`.
pub fn expected_report(n: usize) -> Digest {
    let rows: Vec<ReportRow> = (1..=n as i64)
        .map(|i| {
            let scores: Vec<i32> = report_posts(i).collect();
            let avg = (!scores.is_empty())
                .then(|| scores.iter().map(|&s| f64::from(s)).sum::<f64>() / scores.len() as f64);
            (i, seed_user(i).name, scores.len() as i64, avg)
        })
        .collect();
    digest_report(&rows)
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
        posts: ToMany::default(),
    }
}

/// An order-independent digest of loaded users (and posts): both sides fold
/// what they loaded into it inside the timed region, so that the objects can
/// be released there too and the result is still checked afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    pub count: usize,
    pub sum: u64,
}

impl Digest {
    pub(crate) fn fold(&mut self, parts: &[&[u8]]) {
        // FNV-1a over the parts, with a separator between them.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for part in parts {
            for b in part.iter().chain(&[0xff]) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        self.count += 1;
        self.sum = self.sum.wrapping_add(h);
    }

    /// Adds one user row.
    pub fn user(&mut self, id: i64, name: &str, email: Option<&str>, age: i32, score: f64) {
        let email = email.map_or(&b"\\N"[..], str::as_bytes);
        self.fold(&[
            &id.to_le_bytes(),
            name.as_bytes(),
            email,
            &age.to_le_bytes(),
            &score.to_bits().to_le_bytes(),
        ]);
    }

    /// Adds one post row.
    pub fn post(&mut self, id: i64, user_id: i64, title: &str, body: &str) {
        self.fold(&[
            &id.to_le_bytes(),
            &user_id.to_le_bytes(),
            title.as_bytes(),
            body.as_bytes(),
        ]);
    }

    /// The digest of the seeded users `1..=n` (ids `1..=n`).
    pub fn seeded_users(n: usize) -> Digest {
        let mut d = Digest::default();
        for i in 1..=n as i64 {
            let u = seed_user(i);
            d.user(i, &u.name, u.email.as_deref(), u.age, u.score);
        }
        d
    }

    /// The digest of the seeded graph: users `1..=users` and their posts
    /// (see `BenchDb::seed_graph`: post `10 * (u - 1) + j + 1` is post `j` of user `u`).
    pub fn seeded_graph(users: usize) -> Digest {
        let mut d = Digest::seeded_users(users);
        for u in 1..=users as i64 {
            for j in 0..10 {
                let (title, body) = graph_post(u, j);
                d.post(10 * (u - 1) + j + 1, u, &title, &body);
            }
        }
        d
    }

    /// Combines two digests.
    pub fn and(self, other: Digest) -> Digest {
        Digest {
            count: self.count + other.count,
            sum: self.sum.wrapping_add(other.sum),
        }
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
