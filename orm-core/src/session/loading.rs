//! Loading rows into objects through the identity map.

use std::any::TypeId;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::model::{Key, Model};
use crate::row::Row;
use crate::sql_texts::SqlKey;
use crate::value::Value;

use super::identity_map::{Entry, Identity, IdentityMap};
use super::object::{addr, downcast, AnyObj, Obj, ObjCell, ObjState};
use super::persistence;
use super::transaction;
use super::Session;

/// `session.get`: identity map first (no SQL, no autoflush), else one SELECT.
pub(crate) fn get<M: Model>(session: &Session, key: Key) -> Result<Option<Obj<M>>> {
    let table = M::table();
    if key.values().len() != table.primary_key.len() {
        return Err(Error::invalid(format!(
            "`{}` has a primary key of {} column(s), but get() was given {} value(s)",
            table.model,
            table.primary_key.len(),
            key.values().len()
        )));
    }
    // The shards to try, in order (one `None` outside a sharded session).
    let binds = &session.inner.binds;
    let sharded: Vec<Option<u16>>;
    let shards: &[Option<u16>] = match &binds.rules {
        None => &[None],
        Some(rules) => {
            let ids = rules
                .for_key
                .as_ref()
                .map(|choose| choose(table, &key))
                .unwrap_or_default();
            sharded = binds.shard_indexes(ids)?.into_iter().map(Some).collect();
            &sharded
        }
    };
    for &shard in shards {
        let identity = Identity {
            model: TypeId::of::<M>(),
            key: key.clone(),
            shard,
        };
        let hit = session.state()?.map.get(&identity).cloned();
        if let Some(obj) = hit {
            if obj.meta().borrow().expired {
                return match load_expired(session, &obj) {
                    Ok(()) => Ok(downcast(obj)),
                    Err(Error::ObjectDeleted { .. }) => Ok(None),
                    Err(e) => Err(e),
                };
            }
            return Ok(downcast(obj));
        }
    }
    session.autoflush()?;
    for &shard in shards {
        let bind = binds.for_table(table.name, shard);
        let sql = binds
            .engine(bind)
            .sql_text(SqlKey::select_by_key(table), |dialect| {
                persistence::select_by_key_sql(dialect, table)
            });
        let mut found = load_rows_on::<M>(session, bind, shard, &sql, key.values())?;
        if let Some(obj) = found.pop() {
            return Ok(Some(obj));
        }
    }
    Ok(None)
}

/// Runs a SELECT of `M`'s columns and maps each row through the identity map.
pub(crate) fn load_rows<M: Model>(
    session: &Session,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Obj<M>>> {
    // Inside a relationship load of a sharded session: the owner's shard.
    let shard = session.inner.load_shard.get();
    let bind = session.inner.binds.for_table(M::table().name, shard);
    load_rows_on(session, bind, shard, sql, params)
}

/// [`load_rows`] on engine `bind`; the objects are on `shard` (part of their identity).
pub(crate) fn load_rows_on<M: Model>(
    session: &Session,
    bind: super::binds::BindIdx,
    shard: Option<u16>,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Obj<M>>> {
    let mut st = session.state()?;
    let weak = Rc::downgrade(&session.inner);
    let table = M::table();
    let on_load = super::events::listens::<M>(session, super::ModelEvent::OnLoad);
    // Run again from the start if its replica died under it.
    let (out, loaded) = session.with_reader(&mut st, bind, |map, conn| {
        let mut loaded: Vec<Obj<M>> = Vec::new();
        let mut out = Vec::new();
        let objects = map.model_mut(TypeId::of::<M>(), shard);
        // The backend refills one `Row` per result set; a new object takes
        // its values out of it. A row whose object is already loaded (and
        // not expired) is not decoded at all: the in-memory state wins.
        let mut each = |row: &mut Row| -> Result<()> {
            let key = row_key(table.primary_key, row)?;
            let hash = objects.hash(&key);
            let place = match objects.entry(hash, &key) {
                Entry::Found(existing) => {
                    let refreshed = refresh_if_expired(existing, row)?;
                    if let Some(obj) = downcast::<M>(existing.clone()) {
                        if refreshed && on_load {
                            loaded.push(obj.clone());
                        }
                        out.push(obj);
                    }
                    return Ok(());
                }
                Entry::Vacant(place) => place,
            };
            let value = M::from_row_taking(row)?;
            let cell = ObjCell::loaded(value, weak.clone(), key, shard);
            place.insert(cell.clone());
            if on_load {
                loaded.push(Obj::from_cell(cell.clone()));
            }
            out.push(Obj::from_cell(cell));
            Ok(())
        };
        conn.query_each(sql, params, &mut each)?;
        Ok((out, loaded))
    })?;
    drop(st);
    for obj in &loaded {
        super::events::fire(super::ModelEvent::OnLoad, session, obj)?;
    }
    // The list grew by doubling (the row count is not known up front);
    // the caller keeps it as long as the objects, so without the slack
    // (a short list's few slots are not worth a reallocation: a `get`'s
    // one object sits in a list of 4).
    let mut out = out;
    if out.capacity() > 16 && out.capacity() - out.len() > out.len() / 8 {
        out.shrink_to_fit();
    }
    Ok(out)
}

/// Streams one SELECT of `M`'s columns (`Query::for_each`): the rows are
/// read from the server as they arrive, never all held at once. Each row
/// becomes an object (the identity map's own when it holds the row
/// already) handed to `each`; an object the caller did not keep, with no
/// unflushed change, leaves the session right after. The connection is
/// lent to the stream: the session works meanwhile (identity map, `add`,
/// writes), but SQL waits until the stream ends. Returns the row count.
///
/// The rows come from engine `bind` (a bound model's engine, or a shard's)
/// and the objects are on `shard`. On the default engine the stream reads
/// from a replica while the session has not written; on another engine it
/// borrows that engine's transaction connection.
pub(crate) fn stream_rows<M: Model>(
    session: &Session,
    bind: super::binds::BindIdx,
    shard: Option<u16>,
    sql: &str,
    params: &[Value],
    each: &mut dyn FnMut(Obj<M>) -> Result<()>,
) -> Result<u64> {
    // The read connection: a replica's while the session has not written.
    let (conn, origin) = {
        let mut st = session.state()?;
        if bind == 0 {
            session.prepare_read(&mut st)?;
        } else {
            session.connection(&mut st, bind)?;
        }
        let read = if bind == 0 { st.tx.read.take() } else { None };
        let (conn, origin) = match read {
            Some(read) => (read.conn, LentFrom::Replica(read.index)),
            None => {
                let position = st
                    .tx
                    .conns
                    .iter()
                    .position(|(b, _)| *b == bind)
                    .ok_or_else(|| Error::invalid("the session lost its connection"))?;
                let (_, conn) = st.tx.conns.remove(position);
                (conn, LentFrom::Transaction { bind, position })
            }
        };
        st.tx.lent = true;
        (conn, origin)
    };
    let replica = matches!(origin, LentFrom::Replica(_));
    // The connection goes back to the transaction whatever happens; if the
    // transaction ended meanwhile (rollback() or close() in the loop), it is
    // dropped instead: rolled back and returned to the pool.
    struct Lent<'a> {
        session: &'a Session,
        conn: Option<crate::engine::PooledConnection>,
        origin: LentFrom,
    }
    impl Drop for Lent<'_> {
        fn drop(&mut self) {
            if let Ok(mut st) = self.session.state() {
                if st.tx.lent {
                    st.tx.lent = false;
                    match (self.origin, self.conn.take()) {
                        (LentFrom::Replica(index), Some(conn)) => {
                            st.tx.read = Some(super::routing::ReplicaRead { conn, index })
                        }
                        // Back in its place: the list's order is the commit order.
                        (LentFrom::Transaction { bind, position }, Some(conn)) => {
                            let position = position.min(st.tx.conns.len());
                            st.tx.conns.insert(position, (bind, conn));
                        }
                        (_, None) => {}
                    }
                }
            }
        }
    }
    let mut lent = Lent {
        session,
        conn: Some(conn),
        origin,
    };
    let weak = Rc::downgrade(&session.inner);
    let table = M::table();
    let on_load = super::events::listens::<M>(session, super::ModelEvent::OnLoad);
    let mut rows = 0u64;
    let model = TypeId::of::<M>();
    // Whether the identity map may hold objects of `M`, and the map's
    // `opened()` count when that was last asked: while the count stands,
    // no object can have entered, so an empty map (the usual stream) costs
    // no lookup per row.
    let mut may_hold: Option<(u64, bool)> = None;
    // The cell of the last row's object when nobody kept it: the next new
    // row's object is built in it, one allocation for the whole stream
    // instead of one per row. No handle on it is left, so no one can tell.
    let mut spare: Option<Rc<ObjCell<M>>> = None;
    // The backend refills one `Row` (see `load_rows`).
    let mut per_row = |row: &mut Row| -> Result<()> {
        let key = row_key(table.primary_key, row)?;
        let existing = {
            let st = session.state_ref()?;
            if !st.tx.lent {
                return Err(Error::invalid(
                    "the session's transaction ended while for_each() was streaming \
                     (rollback() or close() inside the loop); the rest of the rows are not read",
                ));
            }
            // With none of the model's objects loaded (the usual stream),
            // the key need not be looked up.
            let opened = st.map.opened();
            let holds = match may_hold {
                Some((at, holds)) if at == opened => holds,
                _ => {
                    let holds = st.map.model(model, shard).is_some_and(|m| !m.is_empty());
                    may_hold = Some((opened, holds));
                    holds
                }
            };
            match holds {
                false => None,
                true => match st
                    .map
                    .model(model, shard)
                    .and_then(|m| m.get(&key))
                    .cloned()
                {
                    Some(obj) => {
                        let refreshed = refresh_if_expired(&obj, row)?;
                        Some((obj, refreshed))
                    }
                    None => None,
                },
            }
        };
        rows += 1;
        if let Some((obj, refreshed)) = existing {
            // The identity map's own object: handed out, and let go of
            // afterwards like iter()'s batches if nobody keeps it.
            let obj = downcast::<M>(obj)
                .ok_or_else(|| Error::invalid("internal error: identity map type"))?;
            if refreshed && on_load {
                super::events::fire(super::ModelEvent::OnLoad, session, &obj)?;
            }
            let erased = obj.erased();
            each(obj)?;
            return session.release_if_unused(erased);
        }
        // A row new to the session: the object enters the identity map only
        // if the caller keeps it or changes it (no SQL runs during the
        // stream, so no flush can have recorded it). An object never kept
        // costs no map insert and removal.
        let value = M::from_row_taking(row)?;
        // `Rc::get_mut` is the check that no handle on the spare is left.
        let cell = match spare.take() {
            Some(mut cell) => match Rc::get_mut(&mut cell) {
                Some(unshared) => {
                    unshared.refill(value, weak.clone(), key, shard);
                    cell
                }
                None => ObjCell::loaded(value, weak.clone(), key, shard),
            },
            None => ObjCell::loaded(value, weak.clone(), key, shard),
        };
        let obj = Obj::from_cell(cell.clone());
        if on_load {
            super::events::fire(super::ModelEvent::OnLoad, session, &obj)?;
        }
        each(obj)?;
        let keep = Rc::strong_count(&cell) > 1 || !cell.meta.borrow().is_idle();
        if keep {
            let key = cell.meta.borrow().key.clone();
            if let Some(key) = key {
                let mut st = session.state()?;
                let objects = st.map.model_mut(model, shard);
                let hash = objects.hash(&key);
                if let Entry::Vacant(place) = objects.entry(hash, &key) {
                    place.insert(cell);
                }
            }
        } else {
            spare = Some(cell);
        }
        Ok(())
    };
    let result = match lent.conn.as_mut() {
        Some(conn) => conn.query_each(sql, params, &mut per_row),
        None => Err(Error::invalid("the session lost its connection")),
    };
    drop(lent);
    match result {
        Ok(()) => {
            if replica {
                session.count_replica_read();
            }
            Ok(rows)
        }
        Err(e) => {
            let mut st = session.state()?;
            Err(session.note_error(&mut st, e))
        }
    }
}

/// Where a streaming query's connection was borrowed from.
#[derive(Clone, Copy)]
enum LentFrom {
    /// The replica read of this index.
    Replica(usize),
    /// The transaction's connection to engine `bind`, at `position` in its list.
    Transaction {
        bind: super::binds::BindIdx,
        position: usize,
    },
}

fn row_key(pk: &[usize], row: &Row) -> Result<Key> {
    let values = row.values();
    match pk {
        // The usual key: one column, no iterator.
        [i] if *i < values.len() => Ok(Key::one(values[*i].clone())),
        _ if pk.iter().all(|&i| i < values.len()) => {
            Ok(Key::from_values(pk.iter().map(|&i| values[i].clone())))
        }
        _ => Err(Error::invalid(
            "the query did not return the model's key columns; select every column of the model, in field order",
        )),
    }
}

/// Whether the object was expired and took the row's values.
fn refresh_if_expired(obj: &Rc<dyn AnyObj>, row: &mut Row) -> Result<bool> {
    if !obj.meta().borrow().expired {
        // SQLAlchemy keeps the in-memory object, pending changes included.
        return Ok(false);
    }
    obj.load_row(row.take_all())?;
    let mut meta = obj.meta().borrow_mut();
    meta.expired = false;
    meta.snapshot = None;
    Ok(true)
}

/// Reloads an expired object (autoflush first). A missing row removes the
/// object from the session and is `ObjectDeleted`.
pub(crate) fn load_expired(session: &Session, obj: &Rc<dyn AnyObj>) -> Result<()> {
    session.autoflush()?;
    if !obj.meta().borrow().expired {
        return Ok(()); // the autoflush may have loaded it
    }
    let table = obj.table();
    let key = obj
        .meta()
        .borrow()
        .key
        .clone()
        .ok_or(Error::DetachedInstance { table: table.name })?;
    let shard = obj.meta().borrow().shard();
    let bind = session.inner.binds.for_table(table.name, shard);
    let sql = session
        .inner
        .binds
        .engine(bind)
        .sql_text(SqlKey::select_by_key(table), |dialect| {
            persistence::select_by_key_sql(dialect, table)
        });
    let mut st = session.state()?;
    let found = session.with_reader(&mut st, bind, |_, conn| {
        let mut found: Option<Row> = None;
        conn.query(&sql, key.values(), &mut |row| {
            found = Some(row);
            Ok(())
        })?;
        Ok(found)
    })?;
    match found {
        Some(row) => {
            obj.load_row(row)?;
            {
                let mut meta = obj.meta().borrow_mut();
                meta.expired = false;
                meta.snapshot = None;
            }
            drop(st);
            if obj.listens(session, super::ModelEvent::OnLoad) {
                obj.clone().fire(super::ModelEvent::OnLoad, session)?;
            }
            Ok(())
        }
        None => {
            remove_deleted(&mut st.map, obj);
            Err(Error::ObjectDeleted {
                table: table.name,
                key: key.to_string(),
            })
        }
    }
}

fn remove_deleted(map: &mut IdentityMap, obj: &Rc<dyn AnyObj>) {
    if let Some(identity) = transaction::identity_of(obj) {
        map.remove(&identity);
    }
    obj.meta().borrow_mut().release(ObjState::Detached);
}

/// Maps the values of one model's columns in a joined row through the
/// identity map (`None` when the outer join found no row: every key column
/// NULL). Used by joined eager loading.
pub(crate) type JoinedMapper = fn(
    &mut IdentityMap,
    &std::rc::Weak<super::SessionInner>,
    Vec<Value>,
) -> Result<Option<Rc<dyn AnyObj>>>;

/// [`JoinedMapper`] for model `T`.
pub(crate) fn map_joined<T: Model>(
    map: &mut IdentityMap,
    weak: &std::rc::Weak<super::SessionInner>,
    values: Vec<Value>,
) -> Result<Option<Rc<dyn AnyObj>>> {
    let table = T::table();
    if table.primary_key.iter().any(|&i| values[i].is_null()) {
        return Ok(None);
    }
    let mut row = Row::new(values);
    let key = row_key(table.primary_key, &row)?;
    // Joined loads are not shard-aware: the joined rows are taken as unsharded.
    let objects = map.model_mut(TypeId::of::<T>(), None);
    let hash = objects.hash(&key);
    let place = match objects.entry(hash, &key) {
        Entry::Found(existing) => {
            refresh_if_expired(existing, &mut row)?;
            return Ok(Some(existing.clone()));
        }
        Entry::Vacant(place) => place,
    };
    let value = T::from_row_taking(&mut row)?;
    let cell: Rc<dyn AnyObj> = ObjCell::loaded(value, weak.clone(), key, None);
    place.insert(cell.clone());
    Ok(Some(cell))
}

/// Runs a SELECT whose rows are `M`'s columns followed by the columns of
/// each joined model (`joins`: its column count and mapper), mapping every
/// part through the identity map. Returns the `M` objects in row order,
/// each once.
pub(crate) fn load_rows_joined<M: Model>(
    session: &Session,
    sql: &str,
    params: &[Value],
    joins: &[(usize, JoinedMapper)],
) -> Result<Vec<Obj<M>>> {
    let mut seen = crate::fast_hash::FastHashSet::default();
    Ok(
        load_rows_joined_each::<M>(session, sql, params, joins, None)?
            .into_iter()
            .filter_map(|row| row.into_iter().next().flatten())
            .filter(|obj| seen.insert(addr(obj)))
            .filter_map(downcast::<M>)
            .collect(),
    )
}

/// The objects of one joined row: the query's model first, then each join
/// (`None` where an outer join found nothing).
pub(crate) type JoinedRow = Vec<Option<Rc<dyn AnyObj>>>;

/// Like [`load_rows_joined`], returning for every row the object of each
/// part (the query's model first, then each join; `None` where an outer join
/// found nothing). Used by `JoinQuery::contains_eager`. With `extra`, the
/// values after the joined models' columns are kept too, one list per row
/// (`JoinQuery::add_columns`).
pub(crate) fn load_rows_joined_each<M: Model>(
    session: &Session,
    sql: &str,
    params: &[Value],
    joins: &[(usize, JoinedMapper)],
    mut extra: Option<&mut Vec<Vec<Value>>>,
) -> Result<Vec<JoinedRow>> {
    let mut st = session.state()?;
    let weak = Rc::downgrade(&session.inner);
    let width = M::table().columns.len();
    if session.inner.binds.is_sharded() {
        return Err(Error::invalid(
            "joined loading (join(), load_joined(), contains_eager()) is not available in a \
             sharded session yet; query each model on its own",
        ));
    }
    let bind = session.bind_of(M::table());
    // Run again from the start if its replica died under it.
    session.with_reader(&mut st, bind, |map, conn| {
        let mut out = Vec::new();
        if let Some(extra) = extra.as_mut() {
            extra.clear();
        }
        let mut each = |row: Row| -> Result<()> {
            let mut values = row.into_values();
            let mut rest = values.split_off(width.min(values.len()));
            let mut objs = Vec::with_capacity(joins.len() + 1);
            objs.push(map_joined::<M>(map, &weak, values)?);
            for (columns, mapper) in joins {
                let tail = rest.split_off((*columns).min(rest.len()));
                objs.push(mapper(map, &weak, std::mem::replace(&mut rest, tail))?);
            }
            if let Some(extra) = extra.as_mut() {
                extra.push(rest);
            }
            out.push(objs);
            Ok(())
        };
        conn.query(sql, params, &mut each)?;
        Ok(out)
    })
}
