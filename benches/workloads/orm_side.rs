//! The ORM side: the same workloads through the Session.

use orm::prelude::*;
use orm::session::SessionFactory;

use crate::models::{graph_post, seed_user, Post, User};

fn ok<T>(r: orm::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("ORM workload failed: {e}"))
}

/// W1: N users added and committed in one transaction.
pub fn w1_insert(f: &SessionFactory, n: usize) -> Vec<Obj<User>> {
    let s = f.session();
    let mut objs = Vec::with_capacity(n);
    for i in 1..=n as i64 {
        objs.push(ok(s.add(seed_user(i))));
    }
    ok(s.commit());
    s.close();
    objs
}

/// W2: all users as objects. The session stays open (closing it rolls
/// back, which expires every object) until the caller has checked them.
pub fn w2_load(f: &SessionFactory) -> (Session, Vec<Obj<User>>) {
    let s = f.session();
    let users = ok(s.query::<User>().all());
    (s, users)
}

/// W3: lookups by key; the caller runs it cold, then warm, on one session.
pub fn w3_get(s: &Session, ids: &[i64]) -> Vec<Obj<User>> {
    ids.iter()
        .map(|&id| ok(s.get::<User>(id)).expect("user exists"))
        .collect()
}

/// W4: load all users, change each score, commit.
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

/// W5: users with 10 posts each: add users, flush, add posts, commit.
pub fn w5_graph(f: &SessionFactory, users: usize) -> (Vec<Obj<User>>, Vec<Obj<Post>>) {
    let s = f.session();
    let us: Vec<Obj<User>> = (1..=users as i64)
        .map(|i| ok(s.add(seed_user(i))))
        .collect();
    ok(s.flush());
    let mut posts = Vec::with_capacity(users * 10);
    for (k, u) in us.iter().enumerate() {
        let user_id = ok(u.read()).id.expect("flushed user has an id");
        for j in 0..10 {
            let (title, body) = graph_post(k as i64 + 1, j);
            posts.push(ok(s.add(Post {
                id: None,
                user_id,
                title,
                body,
            })));
        }
    }
    ok(s.commit());
    s.close();
    (us, posts)
}

/// W6: one session and transaction per id.
pub fn w6_short(f: &SessionFactory, ids: &[i64]) {
    for &id in ids {
        let s = f.session();
        let u = ok(s.get::<User>(id)).expect("user exists");
        ok(u.write()).age += 1;
        ok(s.commit());
    }
}

/// W7: bulk-delete posts, then load every user and delete each object.
pub fn w7_delete(f: &SessionFactory) -> (u64, usize) {
    let s = f.session();
    let posts = ok(s.query::<Post>().delete());
    let users = ok(s.query::<User>().all());
    for u in &users {
        ok(s.delete(u));
    }
    ok(s.commit());
    s.close();
    (posts, users.len())
}
