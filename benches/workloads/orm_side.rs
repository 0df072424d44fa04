//! The ORM side: the same workloads through the Session. Every function is
//! the whole unit of work as a user pays for it: the session's end (commit,
//! close or drop) and the release of the objects happen inside it; what the
//! caller verifies afterwards is returned as plain data.

use orm::prelude::*;
use orm::session::SessionFactory;

use orm::select::{avg, count};

use crate::models::{
    digest_report, graph_post, seed_user, Digest, Post, ReportRow, ReportUser, ScoredPost, User,
};

fn ok<T>(r: orm::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("ORM workload failed: {e}"))
}

fn key_i64<M: Model>(o: &Obj<M>) -> i64 {
    let key = o.identity().expect("object has a key");
    match key.values().first() {
        Some(Value::Int(i)) => *i,
        Some(Value::UInt(u)) => *u as i64,
        other => panic!("unexpected key value {other:?}"),
    }
}

fn digest_user(d: &mut Digest, u: &User) {
    d.user(
        u.id.expect("loaded user has an id"),
        &u.name,
        u.email.as_deref(),
        u.age,
        u.score,
    );
}

/// W1: N users added and committed in one transaction; returns their ids.
#[inline(never)]
pub fn w1_insert(f: &SessionFactory, n: usize) -> Vec<i64> {
    let s = f.session();
    let mut objs = Vec::with_capacity(n);
    for i in 1..=n as i64 {
        objs.push(ok(s.add(seed_user(i))));
    }
    ok(s.commit());
    s.close();
    objs.iter().map(key_i64).collect()
}

/// W2: all users as objects, read, then the session closed and the objects released.
#[inline(never)]
pub fn w2_load(f: &SessionFactory) -> Digest {
    let s = f.session();
    let users = ok(s.query::<User>().all());
    let mut d = Digest::default();
    for u in &users {
        let user = ok(u.read());
        digest_user(&mut d, &user);
    }
    s.close();
    drop(users);
    d
}

/// W3: lookups by key on `s` (run cold, then warm, on one session).
#[inline(never)]
pub fn w3_get(s: &Session, ids: &[i64]) -> Vec<Obj<User>> {
    ids.iter()
        .map(|&id| ok(s.get::<User>(id)).expect("user exists"))
        .collect()
}

/// W3 cold as a whole: a new session, the lookups, the session's end.
#[inline(never)]
pub fn w3_cold(f: &SessionFactory, ids: &[i64]) -> Digest {
    let s = f.session();
    let users = w3_get(&s, ids);
    let mut d = Digest::default();
    for u in &users {
        let user = ok(u.read());
        digest_user(&mut d, &user);
    }
    s.close();
    drop(users);
    d
}

/// W4: load all users, change each score, commit.
#[inline(never)]
pub fn w4_update(f: &SessionFactory) -> usize {
    let s = f.session();
    let users = ok(s.query::<User>().all());
    for u in &users {
        ok(u.write()).score += 1.0;
    }
    ok(s.commit());
    s.close();
    users.len()
}

/// W5: users with 10 posts each, as relationship code is written: each
/// post pushed onto its user's `posts` (the save-update cascade adds it,
/// the flush fills in `user_id`), one commit. Returns the ids.
#[inline(never)]
pub fn w5_graph(f: &SessionFactory, users: usize) -> (Vec<i64>, Vec<i64>) {
    let s = f.session();
    let mut us = Vec::with_capacity(users);
    let mut posts = Vec::with_capacity(users * 10);
    for i in 1..=users as i64 {
        let u = ok(s.add(seed_user(i)));
        for j in 0..10 {
            let (title, body) = graph_post(i, j);
            let p = Obj::new(Post {
                id: None,
                user_id: 0,
                title,
                body,
                user: ToOne::default(),
            });
            ok(u.push(User::POSTS, &p));
            posts.push(p);
        }
        us.push(u);
    }
    ok(s.commit());
    s.close();
    (
        us.iter().map(key_i64).collect(),
        posts.iter().map(key_i64).collect(),
    )
}

/// W6: one session and transaction per id.
#[inline(never)]
pub fn w6_short(f: &SessionFactory, ids: &[i64]) {
    for &id in ids {
        let s = f.session();
        let u = ok(s.get::<User>(id)).expect("user exists");
        ok(u.write()).age += 1;
        ok(s.commit());
    }
}

/// W7: load every user with its posts and delete the users; the `delete`
/// cascade deletes the posts (children first). Returns (posts, users).
#[inline(never)]
pub fn w7_delete(f: &SessionFactory) -> (u64, usize) {
    let s = f.session();
    let users = ok(s.query::<User>().load(User::POSTS).all());
    let mut posts = 0;
    for u in &users {
        posts += ok(u.many(User::POSTS)).len() as u64;
        ok(s.delete(u));
    }
    ok(s.commit());
    s.close();
    (posts, users.len())
}

/// W8: 1,000 users and their posts, eagerly (`selectin`: 2 statements),
/// read, then released.
#[inline(never)]
pub fn w8_eager(f: &SessionFactory) -> Digest {
    let s = f.session();
    let users = ok(s.query::<User>().load(User::POSTS).all());
    let mut d = Digest::default();
    for u in &users {
        {
            let user = ok(u.read());
            digest_user(&mut d, &user);
        }
        for p in ok(u.many(User::POSTS)) {
            let p = ok(p.read());
            d.post(p.id.expect("post id"), p.user_id, &p.title, &p.body);
        }
    }
    s.close();
    drop(users);
    d
}

/// W9: the per-user report (post count and average score, users without
/// posts included), one typed select over a join, no objects.
#[inline(never)]
pub fn w9_report(f: &SessionFactory) -> Digest {
    let s = f.session();
    let rows: Vec<ReportRow> = ok(s
        .query::<ReportUser>()
        .outerjoin(ReportUser::POSTS)
        .select((
            ReportUser::ID,
            ReportUser::NAME,
            count(ScoredPost::ID),
            avg(ScoredPost::SCORE),
        ))
        .group_by(ReportUser::ID)
        .group_by(ReportUser::NAME)
        .order_by(ReportUser::ID.asc())
        .all());
    s.close();
    digest_report(&rows)
}

/// W10: every user streamed from one statement (`for_each`), each object
/// folded into the digest and dropped.
#[inline(never)]
pub fn w10_stream(f: &SessionFactory) -> Digest {
    let s = f.session();
    let mut d = Digest::default();
    ok(s.query::<User>().for_each(|u| {
        digest_user(&mut d, &*u.read()?);
        Ok(())
    }));
    s.close();
    d
}
