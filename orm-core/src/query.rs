//! Queries on one model's table, made by [`crate::session::Session::query`].
//!
//! ```ignore
//! let adults = session.query::<User>()
//!     .filter(User::AGE.ge(18))
//!     .order_by(User::NAME.asc())
//!     .limit(10)
//!     .all()?;
//! ```
//!
//! Every query autoflushes first (unless inside `no_autoflush`), and its
//! rows go through the identity map: a row whose object is already in the
//! session returns that object, with its unflushed changes kept.

use crate::error::{Error, Result};
use crate::expr::{Assignment, CmpOp, Direction, Expr, Filter, Order};
use crate::model::Model;
use crate::session::{Obj, Session};
use crate::value::Value;

/// Which rows lock a SELECT takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// `FOR UPDATE`: exclusive, until the transaction ends.
    Update,
    /// `LOCK IN SHARE MODE` (`FOR SHARE`): others may read-lock too.
    Share,
}

/// What a locking SELECT does when a row is locked by another transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait (up to the server's lock wait timeout: a retryable error).
    Wait,
    /// Fail at once with a retryable error.
    NoWait,
    /// Leave the locked rows out.
    SkipLocked,
}

/// A SELECT's row lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLock {
    /// Exclusive or shared.
    pub mode: LockMode,
    /// What to do with rows locked elsewhere.
    pub wait: LockWait,
}

/// How a bulk `Query::update` keeps the objects already in the session
/// consistent with the rows it changed (SQLAlchemy's `synchronize_session`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronize {
    /// Evaluate the filter in memory against the objects of the model in
    /// the session and set the new values on those that match (no extra
    /// SQL). A filter that cannot be evaluated is an error: use `Fetch`.
    Evaluate,
    /// SELECT the keys of the matching rows first, then set the new values
    /// on the objects with those keys (one extra SELECT).
    Fetch,
    /// Expire every object of the model in the session: the next use reloads it.
    Expire,
}

/// A query under construction. Nothing is sent until a terminal method
/// (`all`, `first`, `one`, `one_or_none`, `count`, `exists`, `delete`).
pub struct Query<'s, M: Model> {
    session: &'s Session,
    filters: Vec<Expr>,
    order: Vec<Order<M>>,
    limit: Option<u64>,
    offset: Option<u64>,
    /// Relationship paths to load eagerly (`selectin`).
    eager: Vec<Vec<usize>>,
    /// Mark the loaded objects so that relationship access that would load raises.
    raise_lazy: bool,
    /// Many-to-one relationships loaded in the same SELECT (LEFT OUTER JOIN).
    joined: Vec<(
        usize,
        &'static crate::model::TableDef,
        crate::session::JoinedMapper,
    )>,
    /// `FOR UPDATE` / `FOR SHARE`.
    lock: Option<RowLock>,
    /// Rows per batch for `iter()`.
    batch: usize,
    /// `on_shard`: the one shard to run on (sharded sessions).
    shard: Option<crate::session::ShardId>,
}

impl<'s, M: Model> Query<'s, M> {
    pub(crate) fn new(session: &'s Session) -> Self {
        Query {
            session,
            filters: Vec::new(),
            order: Vec::new(),
            limit: None,
            offset: None,
            eager: Vec::new(),
            raise_lazy: false,
            joined: Vec::new(),
            lock: None,
            batch: 1000,
            shard: None,
        }
    }

    /// Locks the rows read, exclusively, until the transaction ends
    /// (`SELECT ... FOR UPDATE`). A lock wait timeout or deadlock is a
    /// retryable error ([`Error::is_retryable`]). On SQLite the writing
    /// transaction holds the whole database and no clause is sent.
    pub fn with_for_update(mut self) -> Self {
        self.lock = Some(RowLock {
            mode: LockMode::Update,
            wait: self.lock.map_or(LockWait::Wait, |l| l.wait),
        });
        self
    }

    /// Locks the rows read in share mode (`LOCK IN SHARE MODE`).
    pub fn for_share(mut self) -> Self {
        self.lock = Some(RowLock {
            mode: LockMode::Share,
            wait: self.lock.map_or(LockWait::Wait, |l| l.wait),
        });
        self
    }

    /// With a row lock: fail at once (retryable) instead of waiting for a
    /// row another transaction holds. Implies `with_for_update()` if no lock
    /// was asked for.
    pub fn nowait(mut self) -> Self {
        let mode = self.lock.map_or(LockMode::Update, |l| l.mode);
        self.lock = Some(RowLock {
            mode,
            wait: LockWait::NoWait,
        });
        self
    }

    /// With a row lock: leave out the rows other transactions hold (a work
    /// queue's "take the next free job"). Implies `with_for_update()`.
    pub fn skip_locked(mut self) -> Self {
        let mode = self.lock.map_or(LockMode::Update, |l| l.mode);
        self.lock = Some(RowLock {
            mode,
            wait: LockWait::SkipLocked,
        });
        self
    }

    /// Keyset pagination: the rows that come after `last` in this query's
    /// order (its `order_by` terms, then the primary key as tiebreaker), as
    /// one row-value comparison that an index can use, instead of an OFFSET
    /// that reads and skips. Every `order_by` term must go the same way, and
    /// every page (the first one too) should order by a unique set of
    /// columns (end with the key) so that pages neither skip nor repeat rows.
    pub fn after(mut self, last: &Obj<M>) -> Result<Self> {
        let (columns, direction) = self.keyset_columns()?;
        let values = {
            let value = last.read()?;
            let table = M::table();
            columns
                .iter()
                .map(|c| {
                    table
                        .column_index(c)
                        .map(|i| value.column_value(i))
                        .ok_or_else(|| Error::invalid(format!("after(): no column `{c}`")))
                })
                .collect::<Result<Vec<Value>>>()?
        };
        let op = match direction {
            Direction::Asc => CmpOp::Gt,
            Direction::Desc => CmpOp::Lt,
        };
        self.filters.push(Expr::RowCmp {
            columns: columns.clone(),
            op,
            values,
        });
        Ok(self)
    }

    /// The keyset: the order_by columns then the primary key, in one direction.
    fn keyset_columns(&mut self) -> Result<(Vec<&'static str>, Direction)> {
        let direction = self.order.first().map_or(Direction::Asc, |o| o.direction);
        if self.order.iter().any(|o| o.direction != direction) {
            return Err(Error::invalid(
                "keyset pagination (after(), iter()) needs every order_by term in one direction",
            ));
        }
        let table = M::table();
        let mut columns: Vec<&'static str> = self.order.iter().map(|o| o.column).collect();
        for &k in table.primary_key {
            let name = table.columns[k].name;
            if !columns.contains(&name) {
                columns.push(name);
                self.order.push(Order::new(name, direction));
            }
        }
        Ok((columns, direction))
    }

    /// Rows per batch for [`iter`](Self::iter) (default 1,000; SQLAlchemy's `yield_per`).
    pub fn yield_per(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// Iterates over every matching object without loading them all at
    /// once: batches of `yield_per` rows, each the next keyset page. Objects
    /// of a finished batch that the caller did not keep (and that have no
    /// unflushed change) leave the identity map, so memory stays flat
    /// however many rows there are.
    pub fn iter(mut self) -> Result<QueryIter<'s, M>> {
        if self.targets()?.iter().any(|(_, shard)| shard.is_some()) {
            return Err(Error::invalid(
                "iter() is not available in a sharded session; use all() (with limit/offset) per shard",
            ));
        }
        if self.limit.is_some() || self.offset.is_some() {
            return Err(Error::invalid(
                "iter() pages through the whole result by keyset; remove limit() and offset()",
            ));
        }
        self.keyset_columns()?;
        Ok(QueryIter {
            query: self,
            buffer: std::collections::VecDeque::new(),
            previous: Vec::new(),
            last: None,
            done: false,
        })
    }

    /// Streams every matching object through `each`, from ONE statement
    /// whose rows are read as the server sends them (SQLAlchemy's
    /// `yield_per` with `stream_results`): nothing is materialised. Rows
    /// the identity map already holds come back as its objects; the object
    /// of any other row enters the identity map only if `each` keeps it (a
    /// clone outlives the call) or changes it, so memory stays flat however
    /// many rows there are. Returns the number of rows.
    ///
    /// While it streams, the session's connection is busy: inside `each`
    /// the objects, the identity map, `add`, `delete` and writes work, but
    /// anything that sends SQL (a lazy load, a flush, another query) is an
    /// error. An error from `each` stops the stream and is returned. Use
    /// [`iter`](Self::iter) (keyset pages) to run SQL between rows.
    ///
    /// A model bound to another engine ([`SessionFactory::bind`](crate::session::SessionFactory::bind))
    /// streams on that engine's connection, which is lent the same way (no
    /// SQL to any engine of the session until the stream ends). In a sharded
    /// session the query must run on one shard (its query chooser's answer,
    /// or [`on_shard`](Self::on_shard)); a query over several shards is refused.
    pub fn for_each(self, mut each: impl FnMut(Obj<M>) -> Result<()>) -> Result<u64> {
        if !self.eager.is_empty() || !self.joined.is_empty() {
            return Err(Error::invalid(
                "for_each() streams one statement and cannot run eager loads (load(), \
                 load_joined()); use all() or iter() for them",
            ));
        }
        let (sql, params) = self.sql();
        if self.lock.is_some() {
            // Row locks are taken on the primary, in its transaction.
            self.session.use_primary(M::table())?;
        }
        let targets = self.targets()?;
        let (bind, shard) = match targets.as_slice() {
            [one] => *one,
            _ => {
                return Err(Error::invalid(
                    "for_each() streams one statement from one server, and this query runs on \
                     several shards; name one with on_shard(), or use all() or iter()",
                ))
            }
        };
        self.session.autoflush()?;
        crate::session::stream_rows::<M>(self.session, bind, shard, &sql, &params, &mut each)
    }

    /// Loads a many-to-one relationship in the same SELECT (SQLAlchemy's
    /// `joinedload`): `LEFT OUTER JOIN` to the target's table, whose rows
    /// go through the identity map, so that `obj.one(rel)` needs no SQL.
    pub fn load_joined<T: Model>(mut self, rel: crate::relationship::One<M, T>) -> Self {
        self.joined
            .push((rel.index, T::table(), crate::session::map_joined::<T>));
        self
    }

    /// Runs the query on this shard only, whatever the session's query
    /// chooser says (SQLAlchemy's `set_shard_id` execution option). An
    /// unknown shard, or a session that is not sharded, is an error when
    /// the query runs.
    pub fn on_shard(mut self, shard: impl Into<crate::session::ShardId>) -> Self {
        self.shard = Some(shard.into());
        self
    }

    /// The engines (and shards) the query runs on: one outside a sharded
    /// session; else `on_shard`'s, or the query chooser's, or every shard.
    fn targets(&self) -> Result<Vec<(usize, Option<u16>)>> {
        self.session
            .query_targets(M::table(), &self.filters, self.shard.as_ref())
    }

    /// A sharded query: each shard's rows (the limit pushed down as
    /// `limit + offset`, no offset), merged by the ordering (each shard's
    /// rows being sorted already, a stable sort of their concatenation is
    /// the merge; ties keep shard order), then offset and limit applied.
    fn fetch_sharded(
        &self,
        limit: Option<u64>,
        targets: Vec<(usize, Option<u16>)>,
    ) -> Result<Vec<Obj<M>>> {
        if !self.joined.is_empty() || !self.eager.is_empty() {
            return Err(Error::invalid(
                "load_joined() and load() are not available on a query over several shards; \
                 load related objects with their own queries (or use on_shard())",
            ));
        }
        let pushed = limit.map(|l| l.saturating_add(self.offset.unwrap_or(0)));
        let (sql, params) = self.select_with(pushed, None);
        self.session.autoflush()?;
        let mut all: Vec<Obj<M>> = Vec::new();
        for (bind, shard) in targets {
            all.extend(crate::session::load_rows_on::<M>(
                self.session,
                bind,
                shard,
                &sql,
                &params,
            )?);
        }
        if !self.order.is_empty() {
            let table = M::table();
            let columns: Vec<(usize, Direction)> = self
                .order
                .iter()
                .filter_map(|o| table.column_index(o.column).map(|i| (i, o.direction)))
                .collect();
            let mut keyed: Vec<(Vec<Value>, Obj<M>)> = Vec::with_capacity(all.len());
            for obj in all {
                let values = {
                    let value = obj.read()?;
                    columns
                        .iter()
                        .map(|(i, _)| value.column_value(*i))
                        .collect()
                };
                keyed.push((values, obj));
            }
            keyed.sort_by(|(a, _), (b, _)| {
                for (n, (_, direction)) in columns.iter().enumerate() {
                    let ord = order_values(&a[n], &b[n]);
                    let ord = match direction {
                        Direction::Asc => ord,
                        Direction::Desc => ord.reverse(),
                    };
                    if ord != std::cmp::Ordering::Equal {
                        return ord;
                    }
                }
                std::cmp::Ordering::Equal
            });
            all = keyed.into_iter().map(|(_, o)| o).collect();
        }
        let skip = usize::try_from(self.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let take = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(all.into_iter().skip(skip).take(take).collect())
    }

    /// Runs the query (with its joined loads), then its eager loads.
    fn fetch(&self, limit: Option<u64>) -> Result<Vec<Obj<M>>> {
        let targets = self.targets()?;
        if targets.iter().any(|(_, shard)| shard.is_some()) {
            if targets.len() > 1 {
                return self.fetch_sharded(limit, targets);
            }
            if !self.joined.is_empty() || !self.eager.is_empty() {
                return Err(Error::invalid(
                    "load_joined() and load() are not available in a sharded session yet; load \
                     related objects with their own queries",
                ));
            }
            let (sql, params) = self.select(limit);
            self.session.autoflush()?;
            let (bind, shard) = targets[0];
            let objs = crate::session::load_rows_on::<M>(self.session, bind, shard, &sql, &params)?;
            self.run_eager(&objs)?;
            return Ok(objs);
        }
        if self.lock.is_some() {
            // Row locks are taken on the primary, in its transaction.
            self.session.use_primary(M::table())?;
        }
        let (inner, params) = self.select(limit);
        let objs = if self.joined.is_empty() {
            self.session.query_sql(&inner, &params)?
        } else {
            let sql = self.joined_sql(&inner)?;
            let joins: Vec<(usize, crate::session::JoinedMapper)> = self
                .joined
                .iter()
                .map(|(_, t, mapper)| (t.columns.len(), *mapper))
                .collect();
            self.session.autoflush()?;
            crate::session::load_rows_joined::<M>(self.session, &sql, &params, &joins)?
        };
        self.run_eager(&objs)?;
        Ok(objs)
    }

    /// `SELECT m.*, j0.*, ... FROM (<the query>) m LEFT OUTER JOIN target j0 ON ...`.
    fn joined_sql(&self, inner: &str) -> Result<String> {
        let dialect = self.session.engine().dialect();
        let table = M::table();
        let mut sql = String::from("SELECT ");
        for (n, c) in table.columns.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            sql.push_str("m.");
            dialect.quote_ident(c.name, &mut sql);
        }
        for (j, (_, target, _)) in self.joined.iter().enumerate() {
            for c in target.columns {
                sql.push_str(&format!(", j{j}."));
                dialect.quote_ident(c.name, &mut sql);
            }
        }
        sql.push_str(" FROM (");
        sql.push_str(inner);
        sql.push_str(") m");
        for (j, (index, target, _)) in self.joined.iter().enumerate() {
            let rel = &table.relationships[*index];
            let fk = rel.fk_column(table).ok_or_else(|| {
                Error::invalid(format!(
                    "load_joined: relationship `{}.{}` has no key column",
                    table.model, rel.name
                ))
            })?;
            sql.push_str(" LEFT OUTER JOIN ");
            dialect.quote_ident(target.name, &mut sql);
            sql.push_str(&format!(" j{j} ON j{j}."));
            dialect.quote_ident(target.columns[target.primary_key[0]].name, &mut sql);
            sql.push_str(" = m.");
            dialect.quote_ident(table.columns[fk].name, &mut sql);
        }
        for (n, o) in self.order.iter().enumerate() {
            sql.push_str(if n == 0 { " ORDER BY m." } else { ", m." });
            dialect.quote_ident(o.column, &mut sql);
            sql.push_str(o.direction.sql());
        }
        Ok(sql)
    }

    /// Makes every relationship of the objects this query returns refuse
    /// to load on access (SQLAlchemy's `raiseload("*")`): what the code
    /// needs must come from `.load(...)`. An error names the relationship.
    pub fn raise_lazy(mut self) -> Self {
        self.raise_lazy = true;
        self
    }

    /// The session, filters, ordering and limit (for `join`).
    pub(crate) fn into_parts(self) -> QueryParts<'s, M> {
        QueryParts {
            session: self.session,
            filters: self.filters,
            order: self.order,
            limit: self.limit,
            offset: self.offset,
            lock: self.lock,
        }
    }

    /// Loads a relationship of the results eagerly (SQLAlchemy's
    /// `selectinload`): after the query, one `SELECT ... WHERE key IN (...)`
    /// per relationship per batch of 500 keys, whatever the number of
    /// results, instead of one SELECT per object on access. Nested paths:
    /// `.load(Author::BOOKS.then(Book::REVIEWS))`.
    pub fn load(mut self, path: impl crate::relationship::Eager<M>) -> Self {
        self.eager.push(path.path());
        self
    }

    fn run_eager(&self, objs: &[Obj<M>]) -> Result<()> {
        if self.raise_lazy {
            for o in objs {
                o.erased().meta().borrow_mut().raise_lazy = true;
            }
        }
        for path in &self.eager {
            let mut level: Vec<_> = objs.iter().map(|o| o.erased()).collect();
            for (depth, &index) in path.iter().enumerate() {
                let mut next = self.session.load_eager(&level, index)?;
                if depth + 1 == path.len() {
                    break; // the last level needs no de-duplicated list
                }
                let mut seen = crate::fast_hash::FastHashSet::default();
                next.retain(|o| seen.insert(crate::session::addr(o)));
                level = next;
            }
        }
        Ok(())
    }

    /// Adds a filter; several filters are ANDed.
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.filters.push(filter.into_expr());
        self
    }

    /// Adds an ordering term.
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.order.push(order);
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    fn where_clause(&self, sql: &mut String, params: &mut Vec<Value>) {
        if self.filters.is_empty() {
            return;
        }
        sql.push_str(" WHERE ");
        let dialect = self.session.engine().dialect();
        match self.filters.as_slice() {
            [one] => one.render(dialect, sql, params),
            many => Expr::And(many.to_vec()).render(dialect, sql, params),
        }
    }

    fn select(&self, limit: Option<u64>) -> (String, Vec<Value>) {
        self.select_with(limit, self.offset)
    }

    /// The SELECT with this limit and offset.
    fn select_with(&self, limit: Option<u64>, offset: Option<u64>) -> (String, Vec<Value>) {
        let dialect = self.session.engine().dialect();
        let mut sql = crate::session::select_sql(dialect, M::table());
        let mut params = Vec::new();
        self.where_clause(&mut sql, &mut params);
        for (n, o) in self.order.iter().enumerate() {
            sql.push_str(if n == 0 { " ORDER BY " } else { ", " });
            dialect.quote_ident(o.column, &mut sql);
            sql.push_str(o.direction.sql());
        }
        let lock = self
            .lock
            .map(|l| dialect.row_lock_sql(l))
            .unwrap_or_default();
        limit_offset_sql(limit, offset, &mut sql, &mut params);
        sql.push_str(&lock);
        (sql, params)
    }

    /// The SQL `all()` sends, and its parameters.
    pub fn sql(&self) -> (String, Vec<Value>) {
        self.select(self.limit)
    }

    /// Every matching object.
    pub fn all(self) -> Result<Vec<Obj<M>>> {
        self.fetch(self.limit)
    }

    /// The first matching object, if any (sends `LIMIT 1`).
    pub fn first(self) -> Result<Option<Obj<M>>> {
        Ok(self.fetch(Some(1))?.into_iter().next())
    }

    /// Exactly one object: [`Error::NoResultFound`] when none matches,
    /// [`Error::MultipleResultsFound`] when several do.
    pub fn one(self) -> Result<Obj<M>> {
        self.one_or_none()?.ok_or(Error::NoResultFound {
            table: M::table().name,
        })
    }

    /// One object or none: [`Error::MultipleResultsFound`] when several match.
    pub fn one_or_none(self) -> Result<Option<Obj<M>>> {
        let limit = Some(self.limit.map_or(2, |l| l.min(2)));
        let mut rows = self.fetch(limit)?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(rows.pop()),
            _ => Err(Error::MultipleResultsFound {
                table: M::table().name,
            }),
        }
    }

    /// ` FROM t WHERE ...` and its parameters.
    fn table_and_filter(&self) -> (String, Vec<Value>) {
        let mut sql = String::from(" FROM ");
        self.session
            .engine()
            .dialect()
            .quote_ident(M::table().name, &mut sql);
        let mut params = Vec::new();
        self.where_clause(&mut sql, &mut params);
        (sql, params)
    }

    /// Runs a query of one value on each engine (shard) the query targets.
    fn scalars(&self, sql: &str, params: &[Value]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for (bind, _) in self.targets()? {
            let rows = self.session.query_rows_on(bind, sql, params)?;
            out.push(
                rows.into_iter()
                    .next()
                    .and_then(|r| r.into_values().into_iter().next())
                    .unwrap_or(Value::Null),
            );
        }
        Ok(out)
    }

    /// How many rows match (`SELECT COUNT(*)`; limit and offset apply). In
    /// a sharded session: the sum of every targeted shard's count (limit and
    /// offset are then refused).
    pub fn count(self) -> Result<u64> {
        if self.targets()?.len() > 1 && (self.limit.is_some() || self.offset.is_some()) {
            return Err(Error::invalid(
                "count() with limit or offset over several shards cannot be summed; \
                 count on one shard (on_shard) or without limit/offset",
            ));
        }
        let (from_where, mut params) = self.table_and_filter();
        let sql = if self.limit.is_some() || self.offset.is_some() {
            params.push(Value::UInt(self.limit.unwrap_or(u64::MAX)));
            params.push(Value::UInt(self.offset.unwrap_or(0)));
            format!("SELECT COUNT(*) FROM (SELECT 1{from_where} LIMIT ? OFFSET ?) AS `__c`")
        } else {
            format!("SELECT COUNT(*){from_where}")
        };
        let mut total = 0u64;
        for value in self.scalars(&sql, &params)? {
            total += crate::model::decode_column::<u64>(M::table(), 0, value).map_err(|_| {
                Error::invalid(format!(
                    "COUNT(*) on `{}` did not return a number",
                    M::table().name
                ))
            })?;
        }
        Ok(total)
    }

    /// Whether any row matches (`SELECT EXISTS(...)`).
    pub fn exists(self) -> Result<bool> {
        let (from_where, params) = self.table_and_filter();
        let values = self.scalars(&format!("SELECT EXISTS(SELECT 1{from_where})"), &params)?;
        Ok(values
            .iter()
            .any(|v| matches!(v, Value::Int(1) | Value::UInt(1) | Value::Bool(true))))
    }

    /// Deletes every matching row with one `DELETE` (no ORM cascades) and
    /// returns how many the database deleted. `sync` keeps the session's
    /// objects consistent (SQLAlchemy's `synchronize_session`): with
    /// `Evaluate` or `Fetch` the objects of the deleted rows become deleted
    /// as if flushed (out of the identity map; a rollback brings them back,
    /// a commit detaches them); with `Expire` every object of the model is
    /// expired, and one whose row is gone raises `ObjectDeleted` at next use.
    pub fn delete(self, sync: Synchronize) -> Result<u64> {
        if self.limit.is_some() || self.offset.is_some() || !self.order.is_empty() {
            return Err(Error::invalid(
                "query.delete() takes filters only; remove limit, offset and order_by",
            ));
        }
        let targets = self.synchronized_objects(sync, "delete")?;
        let (from_where, params) = self.table_and_filter();
        let sql = format!("DELETE{from_where}");
        let mut deleted = 0;
        for (bind, _) in self.targets()? {
            deleted += self.session.execute_on(bind, &sql, &params)?.affected_rows;
        }
        match targets {
            None => self.session.expire_model::<M>()?,
            Some(objs) => self.session.bulk_deleted(objs)?,
        }
        Ok(deleted)
    }

    /// The session's objects a bulk statement with this query's filters
    /// touches, decided before it runs (`None` with `Synchronize::Expire`).
    /// Evaluation needs the objects' current values: expired objects are
    /// skipped (they reload anyway), and an assignment computed from a
    /// column (`set_expr`) must be computable in memory.
    fn synchronized_objects(&self, sync: Synchronize, verb: &str) -> Result<Option<Vec<Obj<M>>>> {
        let table = M::table();
        match sync {
            Synchronize::Expire => Ok(None),
            Synchronize::Evaluate => {
                self.session.autoflush()?;
                let filter = Expr::And(self.filters.clone());
                let mut hits = Vec::new();
                for obj in self.session.objects_of::<M>()? {
                    if obj.is_expired() {
                        continue;
                    }
                    let matched = {
                        let value = obj.read()?;
                        filter.evaluate(&|c| table.column_index(c).map(|i| value.column_value(i)))
                    };
                    match matched {
                        Some(true) => hits.push(obj),
                        Some(false) => {}
                        None => {
                            return Err(Error::invalid(format!(
                            "query.{verb}(Synchronize::Evaluate): the filter cannot be evaluated \
                                 in memory (values of kinds that do not compare, or a subquery); \
                                 use Synchronize::Fetch"
                        )))
                        }
                    }
                }
                Ok(Some(hits))
            }
            Synchronize::Fetch => {
                let dialect = self.session.engine().dialect();
                let mut sql = String::from("SELECT ");
                for (n, &k) in table.primary_key.iter().enumerate() {
                    if n > 0 {
                        sql.push_str(", ");
                    }
                    dialect.quote_ident(table.columns[k].name, &mut sql);
                }
                let (from_where, params) = self.table_and_filter();
                sql.push_str(&from_where);
                // Part of the bulk write: read on the primary, in its
                // transaction, not from a replica that may lag.
                self.session.use_primary(M::table())?;
                let mut hits = Vec::new();
                for (bind, shard) in self.targets()? {
                    for row in self.session.query_rows_on(bind, &sql, &params)? {
                        let key = crate::model::Key::new(row.into_values());
                        if let Some(obj) = self.session.identity_lookup_on::<M>(key, shard)? {
                            hits.push(obj);
                        }
                    }
                }
                Ok(Some(hits))
            }
        }
    }

    /// Updates every matching row with one `UPDATE` and returns how many
    /// the database matched. `assignments` are `Column::set(value)` or
    /// `Column::set_expr(Column + value)`. `sync` keeps the session's
    /// objects consistent (SQLAlchemy's `synchronize_session`): `Evaluate`
    /// finds the matching objects by evaluating the filter in memory and
    /// sets the new values on them; `Fetch` SELECTs the matching keys first
    /// (and, for values the server computes, expires those objects);
    /// `Expire` expires every object of the model. An unflushed change to
    /// another column survives.
    pub fn update(
        self,
        assignments: impl IntoIterator<Item = Assignment<M>>,
        sync: Synchronize,
    ) -> Result<u64> {
        if self.limit.is_some() || self.offset.is_some() || !self.order.is_empty() {
            return Err(Error::invalid(
                "query.update() takes filters only; remove limit, offset and order_by",
            ));
        }
        let assignments: Vec<Assignment<M>> = assignments.into_iter().collect();
        if assignments.is_empty() {
            return Ok(0);
        }
        let dialect = self.session.engine().dialect();
        let table = M::table();
        let targets = self.synchronized_objects(sync, "update")?;
        let mut sql = String::from("UPDATE ");
        dialect.quote_ident(table.name, &mut sql);
        sql.push_str(" SET ");
        let mut params = Vec::new();
        for (n, a) in assignments.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            dialect.quote_ident(a.column, &mut sql);
            sql.push_str(" = ");
            if let Some((source, op)) = a.arith {
                dialect.quote_ident(source, &mut sql);
                sql.push_str(op.sql());
            }
            sql.push('?');
            params.push(a.value.clone());
        }
        let mut where_params = Vec::new();
        self.where_clause(&mut sql, &mut where_params);
        params.extend(where_params);
        // In-memory values, computed before any SQL as MySQL does:
        // assignments in order, each seeing the ones before it. A value that
        // cannot be computed refuses the statement.
        type Computed<M> = Vec<(Obj<M>, Vec<(usize, Value)>)>;
        let computed: Option<Computed<M>> = match (&targets, sync) {
            (Some(objs), Synchronize::Evaluate) => {
                let mut out = Vec::with_capacity(objs.len());
                for obj in objs {
                    let before = obj.read()?.to_values();
                    let mut changes: Vec<(usize, Value)> = Vec::new();
                    for a in &assignments {
                        let value = match a.arith {
                            None => a.value.clone(),
                            Some((source, op)) => {
                                let index = table.column_index(source);
                                let current = changes
                                    .iter()
                                    .rev()
                                    .find(|(i, _)| Some(*i) == index)
                                    .map(|(_, v)| v.clone())
                                    .or_else(|| index.and_then(|i| before.get(i).cloned()));
                                current
                                    .and_then(|v| op.apply(&v, &a.value))
                                    .ok_or_else(|| {
                                        Error::invalid(format!(
                                        "query.update(Synchronize::Evaluate): `{} = {}{}?` cannot \
                                         be computed in memory for every matching object (not a \
                                         number, or it overflows); use Synchronize::Fetch",
                                        a.column,
                                        source,
                                        op.sql()
                                    ))
                                    })?
                            }
                        };
                        changes.push((a.index, value));
                    }
                    out.push((obj.clone(), changes));
                }
                Some(out)
            }
            _ => None,
        };
        let mut matched = 0;
        for (bind, _) in self.targets()? {
            matched += self.session.execute_on(bind, &sql, &params)?.affected_rows;
        }
        match (targets, computed) {
            (None, _) => self.session.expire_model::<M>()?,
            (Some(_), Some(computed)) => {
                for (obj, changes) in computed {
                    crate::session::set_committed(&obj, &changes)?;
                }
            }
            (Some(objs), None) => {
                let server_computed = assignments.iter().any(|a| a.arith.is_some());
                for obj in objs {
                    if server_computed {
                        // Fetch without RETURNING: what the server computed
                        // loads at next use.
                        self.session.expire(&obj)?;
                    } else {
                        let changes: Vec<(usize, Value)> = assignments
                            .iter()
                            .map(|a| (a.index, a.value.clone()))
                            .collect();
                        crate::session::set_committed(&obj, &changes)?;
                    }
                }
            }
        }
        Ok(matched)
    }
}

/// Orders two column values for merging shards' results: NULL first (as
/// MySQL/MariaDB sort it ascending), numbers by value, text and bytes by
/// their bytes (a case-insensitive collation may order text differently on
/// the server), values of kinds that do not compare as equal.
fn order_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => crate::expr::compare_values(a, b).unwrap_or(Ordering::Equal),
    }
}

/// The iterator of [`Query::iter`]: keyset pages of `yield_per` rows.
pub struct QueryIter<'s, M: Model> {
    query: Query<'s, M>,
    buffer: std::collections::VecDeque<Obj<M>>,
    /// The objects of the batch being handed out.
    previous: Vec<Obj<M>>,
    last: Option<Obj<M>>,
    done: bool,
}

impl<M: Model> QueryIter<'_, M> {
    fn next_batch(&mut self) -> Result<()> {
        // Objects of the finished batch the caller did not keep leave the session.
        let finished = std::mem::take(&mut self.previous);
        self.query.session.release_unused(finished)?;
        let (sql, params) = {
            let mut page = Query {
                session: self.query.session,
                filters: self.query.filters.clone(),
                order: self.query.order.clone(),
                limit: Some(self.query.batch as u64),
                offset: None,
                eager: Vec::new(),
                raise_lazy: false,
                joined: Vec::new(),
                lock: self.query.lock,
                batch: self.query.batch,
                shard: None,
            };
            if let Some(last) = &self.last {
                page = page.after(last)?;
            }
            page.select(page.limit)
        };
        if self.query.lock.is_some() {
            self.query.session.use_primary(M::table())?;
        }
        let objs = self.query.session.query_sql::<M>(&sql, &params)?;
        self.query.run_eager(&objs)?;
        if objs.len() < self.query.batch {
            self.done = true;
        }
        self.last = objs.last().cloned();
        self.previous = objs.clone();
        self.buffer.extend(objs);
        Ok(())
    }
}

impl<M: Model> Iterator for QueryIter<'_, M> {
    type Item = Result<Obj<M>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            if let Err(e) = self.next_batch() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}

/// What a [`Query`] carries into a joined query.
pub(crate) struct QueryParts<'s, M> {
    pub session: &'s Session,
    pub filters: Vec<Expr>,
    pub order: Vec<Order<M>>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub lock: Option<RowLock>,
}

/// Appends ` LIMIT ? OFFSET ?` (either part when given).
pub(crate) fn limit_offset_sql(
    limit: Option<u64>,
    offset: Option<u64>,
    sql: &mut String,
    params: &mut Vec<Value>,
) {
    match (limit, offset) {
        (Some(l), Some(o)) => {
            sql.push_str(" LIMIT ? OFFSET ?");
            params.push(Value::UInt(l));
            params.push(Value::UInt(o));
        }
        (Some(l), None) => {
            sql.push_str(" LIMIT ?");
            params.push(Value::UInt(l));
        }
        (None, Some(o)) => {
            // MySQL has no OFFSET without LIMIT: use the largest limit.
            sql.push_str(" LIMIT 18446744073709551615 OFFSET ?");
            params.push(Value::UInt(o));
        }
        (None, None) => {}
    }
}
