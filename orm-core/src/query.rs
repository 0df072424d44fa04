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
use crate::expr::{Direction, Expr, Filter, Order};
use crate::model::Model;
use crate::session::{Obj, Session};
use crate::value::Value;

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
        for path in &self.eager {
            let mut level: Vec<_> = objs.iter().map(|o| o.erased()).collect();
            for (depth, &index) in path.iter().enumerate() {
                let mut next = self.session.load_eager(&level, index)?;
                if depth + 1 == path.len() {
                    break; // the last level needs no de-duplicated list
                }
                let mut seen = std::collections::HashSet::new();
                next.retain(|o| seen.insert(std::rc::Rc::as_ptr(o) as *const ()));
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
        let dialect = self.session.engine().dialect();
        let mut sql = crate::session::select_sql(dialect, M::table());
        let mut params = Vec::new();
        self.where_clause(&mut sql, &mut params);
        for (n, o) in self.order.iter().enumerate() {
            sql.push_str(if n == 0 { " ORDER BY " } else { ", " });
            dialect.quote_ident(o.column, &mut sql);
            sql.push_str(match o.direction {
                Direction::Asc => " ASC",
                Direction::Desc => " DESC",
            });
        }
        match (limit, self.offset) {
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
        (sql, params)
    }

    /// Every matching object.
    pub fn all(self) -> Result<Vec<Obj<M>>> {
        let (sql, params) = self.select(self.limit);
        let objs = self.session.query_sql(&sql, &params)?;
        self.run_eager(&objs)?;
        Ok(objs)
    }

    /// The first matching object, if any (sends `LIMIT 1`).
    pub fn first(self) -> Result<Option<Obj<M>>> {
        let (sql, params) = self.select(Some(1));
        let objs = self.session.query_sql(&sql, &params)?;
        self.run_eager(&objs)?;
        Ok(objs.into_iter().next())
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
        let (sql, params) = self.select(limit);
        let mut rows = self.session.query_sql::<M>(&sql, &params)?;
        self.run_eager(&rows)?;
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

    /// Runs a query of one value and returns it.
    fn scalar(&self, sql: &str, params: &[Value]) -> Result<Value> {
        let rows = self.session.query_rows(sql, params)?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_values().into_iter().next())
            .unwrap_or(Value::Null))
    }

    /// How many rows match (`SELECT COUNT(*)`; limit and offset apply).
    pub fn count(self) -> Result<u64> {
        let (from_where, mut params) = self.table_and_filter();
        let sql = if self.limit.is_some() || self.offset.is_some() {
            params.push(Value::UInt(self.limit.unwrap_or(u64::MAX)));
            params.push(Value::UInt(self.offset.unwrap_or(0)));
            format!("SELECT COUNT(*) FROM (SELECT 1{from_where} LIMIT ? OFFSET ?) AS `__c`")
        } else {
            format!("SELECT COUNT(*){from_where}")
        };
        let value = self.scalar(&sql, &params)?;
        crate::model::decode_column::<u64>(M::table(), 0, value).map_err(|_| {
            Error::invalid(format!(
                "COUNT(*) on `{}` did not return a number",
                M::table().name
            ))
        })
    }

    /// Whether any row matches (`SELECT EXISTS(...)`).
    pub fn exists(self) -> Result<bool> {
        let (from_where, params) = self.table_and_filter();
        let value = self.scalar(&format!("SELECT EXISTS(SELECT 1{from_where})"), &params)?;
        Ok(matches!(
            value,
            Value::Int(1) | Value::UInt(1) | Value::Bool(true)
        ))
    }

    /// Bulk `DELETE FROM t WHERE ...` in the session's transaction, without
    /// loading objects (SQLAlchemy's `query.delete()`). Objects of this
    /// model already in the session are expired, so one whose row was
    /// deleted reports [`Error::ObjectDeleted`] at its next use. Returns the
    /// number of rows deleted. Limit and offset are not allowed.
    pub fn delete(self) -> Result<u64> {
        if self.limit.is_some() || self.offset.is_some() || !self.order.is_empty() {
            return Err(Error::invalid(
                "query.delete() takes filters only; remove limit, offset and order_by",
            ));
        }
        let (from_where, params) = self.table_and_filter();
        let sql = format!("DELETE{from_where}");
        let outcome = self.session.execute(&sql, &params)?;
        self.session.expire_model::<M>()?;
        Ok(outcome.affected_rows)
    }
}
