//! Queries beyond filters and ordering, against a real MariaDB: row locks
//! (FOR UPDATE, NOWAIT, SKIP LOCKED, share mode), keyset pagination,
//! streaming with a flat identity map, and bulk UPDATEs that keep the
//! session's objects consistent (SQLAlchemy's synchronize_session).

mod common;

use common::TestDb;
use orm::prelude::*;
use orm::query::Synchronize;
use orm::session::SessionFactory;

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "jobs")]
struct Job {
    #[orm(primary_key)]
    id: i64,
    #[orm(sql_type = "VARCHAR(32)")]
    state: String,
    priority: i32,
}

fn setup(tag: &str, rows: i64) -> (TestDb, Engine, SessionFactory) {
    let db = TestDb::new(tag);
    let engine = orm::create_engine(&db.url).expect("engine");
    orm::schema::create_all(&engine, &[Job::table()]).unwrap();
    if rows > 0 {
        let values: Vec<String> = (1..=rows)
            .map(|i| format!("({i}, 'new', {})", i % 7))
            .collect();
        for chunk in values.chunks(1000) {
            db.exec(&format!(
                "INSERT INTO jobs (id, state, priority) VALUES {}",
                chunk.join(", ")
            ));
        }
    }
    let factory = SessionFactory::new(engine.clone());
    (db, engine, factory)
}

#[test]
fn row_locks_nowait_and_skip_locked() {
    let (_db, engine, factory) = setup("q_locks", 3);
    let a = factory.session();
    let capture = engine.capture_statements();
    let first = a
        .query::<Job>()
        .filter(Job::ID.eq(1))
        .with_for_update()
        .one()
        .unwrap();
    assert!(capture.take()[0].ends_with("FOR UPDATE"));
    let b = factory.session();
    let err = b
        .query::<Job>()
        .filter(Job::ID.eq(1))
        .with_for_update()
        .nowait()
        .one()
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    b.rollback().unwrap();
    // A work queue: take the next free job.
    let c = factory.session();
    let free = c
        .query::<Job>()
        .order_by(Job::ID.asc())
        .skip_locked()
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(free.read().unwrap().id, 2);
    // Share locks do not block each other.
    let d = factory.session();
    let shared = d
        .query::<Job>()
        .filter(Job::ID.eq(3))
        .for_share()
        .one()
        .unwrap();
    assert_eq!(shared.read().unwrap().id, 3);
    drop(first);
    a.rollback().unwrap();
}

#[test]
fn keyset_pagination_pages_in_order_without_offset() {
    let (_db, engine, factory) = setup("q_keyset", 25);
    let s = factory.session();
    let mut seen = Vec::new();
    let mut last: Option<Obj<Job>> = None;
    let capture = engine.capture_statements();
    loop {
        // Every page in the same total order: priority, then the key.
        let mut q = s
            .query::<Job>()
            .order_by(Job::PRIORITY.desc())
            .order_by(Job::ID.desc())
            .limit(10);
        if let Some(l) = &last {
            q = q.after(l).unwrap();
        }
        let page = q.all().unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|j| {
            let j = j.read().unwrap();
            (j.priority, j.id)
        }));
        last = page.last().cloned();
    }
    let sent = capture.take();
    assert!(sent.iter().all(|q| !q.contains("OFFSET")), "{sent:?}");
    assert!(
        sent.iter()
            .any(|q| q.contains("(`priority`, `id`) < (?, ?)")),
        "{sent:?}"
    );
    let mut expected: Vec<(i32, i64)> = (1..=25).map(|i| ((i % 7) as i32, i)).collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected);
    let mixed = s
        .query::<Job>()
        .order_by(Job::PRIORITY.desc())
        .order_by(Job::ID.asc())
        .after(&last.unwrap());
    assert!(mixed.is_err(), "one direction only");
}

#[test]
fn iter_streams_with_a_flat_identity_map() {
    let (_db, engine, factory) = setup("q_iter", 5000);
    let s = factory.session();
    let capture = engine.capture_statements();
    let mut n = 0;
    let mut max_held = 0;
    let mut kept = Vec::new();
    for job in s.query::<Job>().yield_per(500).iter().unwrap() {
        let job = job.unwrap();
        n += 1;
        if n % 1000 == 0 {
            kept.push(job.clone()); // what the caller keeps stays
        }
        max_held = max_held.max(s.identity_count().unwrap());
    }
    assert_eq!(n, 5000);
    assert!(max_held <= 500 + 10, "identity map peaked at {max_held}");
    let selects = capture
        .take()
        .iter()
        .filter(|q| q.starts_with("SELECT"))
        .count();
    assert_eq!(selects, 11, "ten full pages and one empty");
    assert!(kept.iter().all(|j| s.contains(j)));
    assert_eq!(kept[4].read().unwrap().id, 5000);
}

#[test]
fn for_each_streams_one_statement_with_a_flat_identity_map() {
    let (db, engine, factory) = setup("q_stream", 20_000);
    let s = factory.session();
    // An object loaded before the stream comes back as itself.
    let seven = s.get::<Job>(7).unwrap().unwrap();
    let capture = engine.capture_statements();
    let (mut max_held, mut kept, mut same) = (0, Vec::new(), false);
    let rows = s
        .query::<Job>()
        .order_by(Job::ID.asc())
        .for_each(|job| {
            max_held = max_held.max(s.identity_count()?);
            same |= job.ptr_eq(&seven);
            let id = job.read()?.id;
            if id % 5000 == 0 {
                kept.push(job.clone()); // what the caller keeps stays
            }
            if id % 1000 == 1 {
                job.write()?.state = "seen".into(); // a change stays to be flushed
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(rows, 20_000);
    assert_eq!(
        capture.take(),
        ["SELECT `id`, `state`, `priority` FROM `jobs` ORDER BY `id` ASC"],
        "one statement"
    );
    assert!(same, "the identity map's object was handed out");
    // The map held the object being handed out plus what was kept or changed.
    assert!(
        max_held <= 1 + 4 + 20 + 1,
        "identity map peaked at {max_held}"
    );
    assert_eq!(s.identity_count().unwrap(), 1 + 4 + 20);
    assert!(kept.iter().all(|j| s.contains(j)));
    // A row nobody kept lends its object's allocation to the next row's
    // object; what was kept is untouched by that.
    let kept_ids: Vec<i64> = kept.iter().map(|j| j.read().unwrap().id).collect();
    assert_eq!(kept_ids, [5000, 10000, 15000, 20000]);
    s.commit().unwrap();
    assert_eq!(
        db.rows("SELECT COUNT(*) FROM jobs WHERE state = 'seen'"),
        [["20"]]
    );
}

/// A stream that starts with none of its model's objects in the session
/// skips the identity-map lookup per row; an object that enters the map
/// during the stream (merge_no_load needs no SQL) is still the one a later
/// row of its key hands out (SQLAlchemy: the identity map's object wins
/// over the row, without populate_existing).
#[test]
fn an_object_entering_the_identity_map_during_a_stream_is_the_one_its_row_hands_out() {
    let (_db, _engine, factory) = setup("q_stream_merge", 100);
    let s = factory.session();
    assert_eq!(s.identity_count().unwrap(), 0);
    let mut merged = None;
    let mut handed = None;
    let rows = s
        .query::<Job>()
        .order_by(Job::ID.asc())
        .for_each(|job| {
            let id = job.read()?.id;
            if id == 10 {
                merged = Some(s.merge_no_load(&Job {
                    id: 50,
                    state: "merged".into(),
                    priority: 7,
                })?);
            }
            if id == 50 {
                handed = Some(job.clone());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(rows, 100);
    let (merged, handed) = (merged.unwrap(), handed.unwrap());
    assert!(
        handed.ptr_eq(&merged),
        "row 50 handed out the merged object"
    );
    assert_eq!(handed.read().unwrap().state, "merged");
}

#[test]
fn for_each_refuses_sql_inside_the_loop_and_the_session_carries_on() {
    let (db, _engine, factory) = setup("q_stream_busy", 100);
    let s = factory.session();
    let mut inner_error = None;
    let err = s
        .query::<Job>()
        .for_each(|job| {
            // A query inside the loop cannot run on the busy connection.
            match s.query::<Job>().filter(Job::ID.eq(1)).all() {
                Ok(_) => Ok(()),
                Err(e) => {
                    inner_error = Some(e.to_string());
                    // Adding objects does not need the connection.
                    s.add(Job {
                        id: 1000 + job.read()?.id,
                        state: "copy".into(),
                        priority: 0,
                    })?;
                    Err(orm::Error::invalid("stop"))
                }
            }
        })
        .unwrap_err();
    assert!(err.to_string().contains("stop"), "{err}");
    assert!(
        inner_error.as_deref().unwrap_or("").contains("for_each"),
        "{inner_error:?}"
    );
    // The stream stopped at the first row; the session is usable and its
    // transaction intact: the added object is flushed with the commit.
    assert_eq!(
        s.query::<Job>().count().unwrap(),
        101,
        "autoflushed the copy"
    );
    s.commit().unwrap();
    assert_eq!(
        db.rows("SELECT COUNT(*) FROM jobs WHERE state = 'copy'"),
        [["1"]]
    );
    // rollback() inside the loop ends the transaction: the stream stops.
    let s = factory.session();
    let mut seen = 0;
    let err = s
        .query::<Job>()
        .for_each(|job| {
            seen += 1;
            job.write()?.state = "lost".into();
            s.rollback()
        })
        .unwrap_err();
    assert_eq!(seen, 1);
    assert!(err.to_string().contains("ended while"), "{err}");
    s.commit().unwrap();
    assert_eq!(
        db.rows("SELECT COUNT(*) FROM jobs WHERE state = 'lost'"),
        [["0"]]
    );
}

/// test_update_delete_where.py: UpdateDeleteTest.test_delete,
/// test_delete_rollback, test_delete_with_bindparams (evaluate / fetch /
/// expire), checked against the rows.
#[test]
fn bulk_delete_synchronize_rules() {
    for sync in [
        Synchronize::Evaluate,
        Synchronize::Fetch,
        Synchronize::Expire,
    ] {
        let (db, engine, factory) = setup("q_delete", 6);
        let s = factory.session();
        let jobs = s.query::<Job>().order_by(Job::ID.asc()).all().unwrap();
        let capture = engine.capture_statements();
        let deleted = s
            .query::<Job>()
            .filter(Job::PRIORITY.le(3).and(Job::ID.ne(1)))
            .delete(sync)
            .unwrap();
        assert_eq!(deleted, 2, "{sync:?}: jobs 2 and 3");
        let sent = capture.take();
        assert_eq!(
            sent.iter().filter(|q| q.starts_with("SELECT")).count(),
            usize::from(sync == Synchronize::Fetch),
            "{sync:?}: {sent:?}"
        );
        assert_eq!(
            db.rows("SELECT COUNT(*) FROM jobs"),
            [["6"]],
            "not committed"
        );
        match sync {
            Synchronize::Expire => {
                // Expired: the deleted ones say so at next use, the others reload.
                assert!(matches!(
                    jobs[1].read().unwrap_err(),
                    orm::Error::ObjectDeleted { .. }
                ));
                assert_eq!(jobs[3].read().unwrap().priority, 4);
            }
            _ => {
                // As if flushed: out of the session at once, no SQL to find out.
                assert_eq!(jobs[1].state(), ObjState::Deleted);
                assert_eq!(jobs[3].state(), ObjState::Persistent);
                assert_eq!(jobs[3].read().unwrap().priority, 4, "untouched");
                assert!(capture.take().is_empty());
                // Out of the identity map: get() asks the database, which
                // no longer has it.
                assert!(s.get::<Job>(2).unwrap().is_none());
            }
        }
        let left: Vec<i64> = s
            .query::<Job>()
            .order_by(Job::ID.asc())
            .all()
            .unwrap()
            .iter()
            .map(|j| j.read().unwrap().id)
            .collect();
        assert_eq!(left, [1, 4, 5, 6], "{sync:?}");
        // Rollback brings the rows and (evaluate/fetch) the objects back.
        s.rollback().unwrap();
        assert_eq!(db.rows("SELECT COUNT(*) FROM jobs"), [["6"]]);
        if sync != Synchronize::Expire {
            assert!(s.contains(&jobs[1]), "{sync:?}: restored by rollback");
            assert_eq!(jobs[1].read().unwrap().id, 2);
        }
        // And commit makes it stick: the objects end detached.
        s.query::<Job>()
            .filter(Job::ID.eq(2))
            .delete(Synchronize::Evaluate)
            .unwrap();
        s.commit().unwrap();
        assert_eq!(jobs[1].state(), ObjState::Detached, "{sync:?}");
        assert_eq!(db.rows("SELECT COUNT(*) FROM jobs WHERE id = 2"), [["0"]]);
    }
}

/// test_update_delete_where.py: test_update (`age = age - 10`),
/// test_update_changes_resets_dirty, test_update_fetch_returning,
/// test_evaluate_invalid (an unevaluable filter fails before any SQL).
#[test]
fn bulk_update_with_expressions() {
    let (db, engine, factory) = setup("q_update_expr", 6);
    let s = factory.session();
    let jobs = s.query::<Job>().order_by(Job::ID.asc()).all().unwrap();
    // An unflushed change to another column of a matched object.
    jobs[3].write().unwrap().state = "mine".into();
    let capture = engine.capture_statements();
    let n = s
        .query::<Job>()
        .filter(Job::PRIORITY.ge(3))
        .update(
            [
                Job::PRIORITY.set_expr(Job::PRIORITY * 10),
                Job::STATE.set("big"),
            ],
            Synchronize::Evaluate,
        )
        .unwrap();
    assert_eq!(n, 4, "jobs 3, 4, 5, 6");
    let sent = capture.take();
    assert_eq!(sent.len(), 2, "autoflush, then the UPDATE: {sent:?}");
    assert_eq!(
        sent[1],
        "UPDATE `jobs` SET `priority` = `priority` * ?, `state` = ? WHERE `priority` >= ?"
    );
    let values: Vec<(i32, String)> = jobs
        .iter()
        .map(|j| {
            let j = j.read().unwrap();
            (j.priority, j.state.clone())
        })
        .collect();
    let expect = [
        (1, "new"),
        (2, "new"),
        (30, "big"),
        (40, "big"),
        (50, "big"),
        (60, "big"),
    ];
    assert_eq!(values, expect.map(|(p, st)| (p, st.to_string())));
    assert!(capture.take().is_empty(), "computed in memory, no reload");
    // Nothing left to flush: the objects hold what the rows hold.
    s.commit().unwrap();
    assert!(
        capture.take().iter().all(|q| !q.starts_with("UPDATE")),
        "no second UPDATE"
    );
    assert_eq!(
        db.rows("SELECT priority, state FROM jobs ORDER BY id"),
        [
            ["1", "new"],
            ["2", "new"],
            ["30", "big"],
            ["40", "big"],
            ["50", "big"],
            ["60", "big"]
        ]
    );
    // Fetch with a server-computed value: the matched objects are expired
    // and load the server's value.
    let s = factory.session();
    let jobs = s.query::<Job>().order_by(Job::ID.asc()).all().unwrap();
    s.query::<Job>()
        .filter(Job::PRIORITY.gt(40))
        .update(
            [Job::PRIORITY.set_expr(Job::PRIORITY - 45)],
            Synchronize::Fetch,
        )
        .unwrap();
    assert!(jobs[4].is_expired() && jobs[5].is_expired());
    assert!(!jobs[3].is_expired(), "not matched, not touched");
    assert_eq!(jobs[4].read().unwrap().priority, 5);
    assert_eq!(jobs[5].read().unwrap().priority, 15);
    s.commit().unwrap();
    // A filter the session cannot evaluate is refused before any SQL.
    let s = factory.session();
    let _jobs = s.query::<Job>().all().unwrap();
    let capture = engine.capture_statements();
    let err = s
        .query::<Job>()
        .filter(Job::ID.in_select(s.select::<Job, _>((Job::ID,)).filter(Job::PRIORITY.eq(1))))
        .update([Job::STATE.set("x")], Synchronize::Evaluate)
        .unwrap_err();
    assert!(err.to_string().contains("Synchronize::Fetch"), "{err}");
    assert!(capture.take().is_empty(), "no SQL");
    assert_eq!(
        db.rows("SELECT COUNT(*) FROM jobs WHERE state = 'x'"),
        [["0"]]
    );
}

/// test_query.py OperatorTest: startswith / endswith / contains take
/// their text literally (autoescape), on both backends, and the in-memory
/// evaluation of a bulk update agrees with the database.
#[test]
fn text_matching_takes_wildcards_literally_on_both_backends() {
    for backend in [common::Backend::MySql, common::Backend::Sqlite] {
        let db = TestDb::on(backend, "q_like");
        let engine = orm::create_engine(&db.url).expect("engine");
        orm::schema::create_all(&engine, &[Job::table()]).unwrap();
        let factory = SessionFactory::new(engine.clone());
        let s = factory.session();
        for (id, state) in [
            (1, "50%_off"),
            (2, "500 off"),
            (3, "a_b"),
            (4, "axb"),
            (5, "c:\\tmp"),
        ] {
            s.add(Job {
                id,
                state: state.into(),
                priority: 0,
            })
            .unwrap();
        }
        s.commit().unwrap();
        let ids = |f: orm::expr::Filter<Job>| -> Vec<i64> {
            s.query::<Job>()
                .filter(f)
                .order_by(Job::ID.asc())
                .all()
                .unwrap()
                .iter()
                .map(|j| j.read().unwrap().id)
                .collect()
        };
        assert_eq!(ids(Job::STATE.starts_with("50%")), [1], "{backend:?}");
        assert_eq!(
            ids(Job::STATE.like("50%")),
            [1, 2],
            "{backend:?}: a wildcard"
        );
        assert_eq!(ids(Job::STATE.contains("_")), [1, 3], "{backend:?}");
        assert_eq!(ids(Job::STATE.like("a_b")), [3, 4], "{backend:?}");
        assert_eq!(ids(Job::STATE.ends_with(":\\tmp")), [5], "{backend:?}");
        let capture = engine.capture_statements();
        let _ = ids(Job::STATE.contains("%"));
        let sent = capture.take();
        let escape = if backend == common::Backend::Sqlite {
            " ESCAPE '\\'"
        } else {
            ""
        };
        assert!(
            sent[0].ends_with(&format!("LIKE ?{escape} ORDER BY {}", db.sql("`id` ASC"))),
            "{sent:?}"
        );
        // Evaluate agrees with the database on escaped patterns.
        let all = s.query::<Job>().order_by(Job::ID.asc()).all().unwrap();
        s.query::<Job>()
            .filter(Job::STATE.contains("_"))
            .update([Job::PRIORITY.set(9)], Synchronize::Evaluate)
            .unwrap();
        let evaluated: Vec<i32> = all.iter().map(|j| j.read().unwrap().priority).collect();
        s.commit().unwrap();
        let stored: Vec<i32> = s
            .query::<Job>()
            .order_by(Job::ID.asc())
            .all()
            .unwrap()
            .iter()
            .map(|j| j.read().unwrap().priority)
            .collect();
        assert_eq!(evaluated, [9, 0, 9, 0, 0], "{backend:?}");
        assert_eq!(stored, evaluated, "{backend:?}");
    }
}

#[test]
fn bulk_update_keeps_session_objects_consistent() {
    for sync in [
        Synchronize::Evaluate,
        Synchronize::Fetch,
        Synchronize::Expire,
    ] {
        let (db, _engine, factory) = setup("q_update", 6);
        let s = factory.session();
        let jobs = s.query::<Job>().order_by(Job::ID.asc()).all().unwrap();
        // An unflushed change to another column survives the bulk UPDATE.
        jobs[0].write().unwrap().priority = 99;
        let n = s
            .query::<Job>()
            .filter(Job::ID.le(3))
            .update([Job::STATE.set("done")], sync)
            .unwrap();
        assert_eq!(n, 3, "{sync:?}");
        let states: Vec<String> = jobs
            .iter()
            .map(|j| j.read().unwrap().state.clone())
            .collect();
        assert_eq!(
            states,
            ["done", "done", "done", "new", "new", "new"],
            "{sync:?}"
        );
        s.commit().unwrap();
        assert_eq!(
            db.rows("SELECT state, priority FROM jobs WHERE id = 1"),
            [["done", "99"]],
            "{sync:?}"
        );
        assert_eq!(
            db.rows("SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
            [["3"]],
            "{sync:?}"
        );
    }
}

#[test]
fn typed_selects_with_aggregates_group_by_and_having() {
    use orm::select::{avg, count, count_all, max, sum};
    let (_db, engine, factory) = setup("q_select", 30);
    let s = factory.session();
    let q = s
        .select::<Job, _>((
            Job::PRIORITY,
            count(Job::ID),
            max(Job::ID),
            sum(Job::PRIORITY),
        ))
        .filter(Job::ID.le(28))
        .group_by(Job::PRIORITY)
        .having(count(Job::ID).gt(3))
        .order_by(Job::PRIORITY.asc());
    let (sql, params) = q.sql();
    assert_eq!(
        sql,
        "SELECT `priority`, COUNT(`id`), MAX(`id`), SUM(`priority`) FROM `jobs` WHERE (`id` <= ?) \
         GROUP BY `priority` HAVING (COUNT(`id`) > ?) ORDER BY `priority` ASC"
    );
    assert_eq!(params, [Value::Int(28), Value::Int(3)]);
    let rows: Vec<(i32, i64, Option<i64>, Option<i32>)> = q.all().unwrap();
    // ids 1..=28, priority = id % 7: four of each priority 0..=6.
    let expected: Vec<(i32, i64, Option<i64>, Option<i32>)> = (0..7)
        .map(|p| {
            let ids: Vec<i64> = (1..=28).filter(|i| i % 7 == p as i64).collect();
            (
                p,
                ids.len() as i64,
                ids.iter().max().copied(),
                Some(p * ids.len() as i32),
            )
        })
        .collect();
    assert_eq!(rows, expected);
    let total: Option<i64> = s.select::<Job, _>((count_all::<Job>(),)).scalar().unwrap();
    assert_eq!(total, Some(30));
    let mean: Option<f64> = s
        .select::<Job, _>((avg(Job::PRIORITY),))
        .filter(Job::ID.gt(100))
        .scalar()
        .unwrap()
        .flatten();
    assert_eq!(mean, None, "AVG over no rows is NULL");
    let capture = engine.capture_statements();
    let states: Vec<String> = s
        .select::<Job, _>((Job::STATE,))
        .distinct()
        .scalars()
        .unwrap();
    assert_eq!(states, ["new"]);
    assert_eq!(capture.take(), ["SELECT DISTINCT `state` FROM `jobs`"]);
    let raw: Vec<(i64, String)> = s
        .query_tuples(
            "SELECT id, state FROM jobs WHERE id < ? ORDER BY id",
            &[Value::Int(3)],
        )
        .unwrap();
    assert_eq!(raw, [(1, "new".to_string()), (2, "new".to_string())]);
    let err = s
        .query_tuples::<(i64, String, i64)>("SELECT id, state FROM jobs", &[])
        .unwrap_err();
    assert!(err.to_string().contains("fewer columns"), "{err}");
}

#[derive(Debug, Clone, Default, PartialEq, Model)]
#[orm(table = "counters")]
struct Counter {
    #[orm(primary_key, auto_increment)]
    id: Option<i64>,
    #[orm(unique, sql_type = "VARCHAR(32)")]
    name: String,
    hits: i64,
}

#[test]
fn upsert_inserts_or_updates_and_returns_the_row() {
    let (db, engine, factory) = setup("q_upsert", 0);
    orm::schema::create_all(&engine, &[Counter::table()]).unwrap();
    let s = factory.session();
    let first = s
        .upsert(&Counter {
            id: None,
            name: "home".into(),
            hits: 1,
        })
        .unwrap();
    let id: i64 = first.key().unwrap();
    // Same unique name, no key: updates that row and returns its object.
    let again = s
        .upsert(&Counter {
            id: None,
            name: "home".into(),
            hits: 5,
        })
        .unwrap();
    assert!(again.ptr_eq(&first));
    assert_eq!(
        again.read().unwrap().hits,
        5,
        "reloaded as the database holds it"
    );
    // By key, several at once.
    let capture = engine.capture_statements();
    let both = s
        .upsert_all(&[
            Counter {
                id: Some(id),
                name: "home".into(),
                hits: 7,
            },
            Counter {
                id: Some(id + 10),
                name: "about".into(),
                hits: 1,
            },
        ])
        .unwrap();
    let sent = capture.take();
    assert!(sent[0].contains("ON DUPLICATE KEY UPDATE"), "{sent:?}");
    assert_eq!(both.len(), 2);
    assert!(both[0].ptr_eq(&first));
    s.commit().unwrap();
    assert_eq!(
        db.rows("SELECT name, hits FROM counters ORDER BY id"),
        [["home", "7"], ["about", "1"]]
    );
}

#[test]
fn subqueries_between_and_exists() {
    use orm::expr::exists;
    let (_db, _engine, factory) = setup("q_subquery", 20);
    let s = factory.session();
    let low: Vec<i64> = s
        .query::<Job>()
        .filter(
            Job::ID.in_select(
                s.select::<Job, _>((Job::ID,))
                    .filter(Job::PRIORITY.between(1, 2)),
            ),
        )
        .order_by(Job::ID.asc())
        .all()
        .unwrap()
        .iter()
        .map(|j| j.read().unwrap().id)
        .collect();
    let expected: Vec<i64> = (1..=20).filter(|i| (1..=2).contains(&(i % 7))).collect();
    assert_eq!(low, expected);
    let any = s
        .query::<Job>()
        .filter(exists(
            s.select::<Job, _>((Job::ID,)).filter(Job::PRIORITY.eq(6)),
        ))
        .count()
        .unwrap();
    assert_eq!(any, 20);
    let none = s
        .query::<Job>()
        .filter(exists(
            s.select::<Job, _>((Job::ID,)).filter(Job::PRIORITY.eq(60)),
        ))
        .count()
        .unwrap();
    assert_eq!(none, 0);
}

#[test]
fn upsert_and_locks_on_sqlite() {
    let db = TestDb::sqlite("q_sqlite");
    let engine = orm::create_engine(&db.url).unwrap();
    orm::schema::create_all(&engine, &[Counter::table(), Job::table()]).unwrap();
    let s = SessionFactory::new(engine.clone()).session();
    let a = s
        .upsert(&Counter {
            id: None,
            name: "home".into(),
            hits: 1,
        })
        .unwrap();
    let b = s
        .upsert(&Counter {
            id: None,
            name: "home".into(),
            hits: 3,
        })
        .unwrap();
    assert!(a.ptr_eq(&b));
    assert_eq!(b.read().unwrap().hits, 3);
    s.add(Job {
        id: 1,
        state: "new".into(),
        priority: 1,
    })
    .unwrap();
    // No row locks on SQLite: the clause is left out, the query works.
    let capture = engine.capture_statements();
    let job = s.query::<Job>().with_for_update().nowait().one().unwrap();
    assert!(capture.take().iter().all(|q| !q.contains("FOR UPDATE")));
    assert_eq!(job.read().unwrap().id, 1);
    s.commit().unwrap();
    assert_eq!(db.rows("SELECT name, hits FROM counters"), [["home", "3"]]);
}

#[test]
fn arithmetic_and_coalesce_in_selects_bind_their_values() {
    use orm::select::coalesce;
    let (_db, _engine, factory) = setup("q_arith", 3);
    let s = factory.session();
    let q = s
        .select::<Job, _>((Job::ID, Job::PRIORITY + 10, Job::ID * 2))
        .order_by(Job::ID.asc());
    let (sql, params) = q.sql();
    assert_eq!(
        sql,
        "SELECT `id`, (`priority` + ?), (`id` * ?) FROM `jobs` ORDER BY `id` ASC"
    );
    assert_eq!(params, [Value::Int(10), Value::Int(2)]);
    let rows: Vec<(i64, i32, i64)> = q.all().unwrap();
    assert_eq!(rows, [(1, 11, 2), (2, 12, 4), (3, 13, 6)]);
    let states: Vec<String> = s
        .select::<Job, _>((coalesce(Job::STATE, "none"),))
        .scalars()
        .unwrap();
    assert_eq!(states, ["new", "new", "new"]);
}

#[test]
fn case_expressions_bind_their_values() {
    use orm::select::case_when;
    let (_db, _engine, factory) = setup("q_case", 4);
    let s = factory.session();
    let q = s
        .select::<Job, _>((
            Job::ID,
            case_when(Job::PRIORITY.ge(3), "high")
                .when(Job::PRIORITY.ge(2), "mid")
                .otherwise("low"),
        ))
        .order_by(Job::ID.asc());
    let (sql, params) = q.sql();
    assert_eq!(
        sql,
        "SELECT `id`, CASE WHEN `priority` >= ? THEN ? WHEN `priority` >= ? THEN ? ELSE ? END \
         FROM `jobs` ORDER BY `id` ASC"
    );
    assert_eq!(params.len(), 5);
    let rows: Vec<(i64, String)> = q.all().unwrap();
    let labels: Vec<&str> = rows.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(labels, ["low", "mid", "high", "high"]);
}
