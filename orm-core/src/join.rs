//! Queries that join tables along declared relationships, with filters and
//! ordering on any joined model's columns, typed: a column of a model that
//! is not in the query does not compile.
//!
//! ```ignore
//! let books = session.query::<Book>()
//!     .join(Book::AUTHOR)                       // INNER JOIN authors ON authors.id = books.author_id
//!     .filter(Author::NAME.like("Le%"))         // a column of a joined model
//!     .filter(Book::YEAR.ge(1968))
//!     .order_by(Author::NAME.asc())
//!     .contains_eager()                         // populate Book::AUTHOR from the joined rows
//!     .all()?;
//! ```
//!
//! The objects returned are the query's model, through the identity map,
//! each once even when a one-to-many join repeats it. `outerjoin` keeps the
//! rows without a match. A model may appear once per query.

use std::marker::PhantomData;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::expr::{Direction, Expr, Filter, Order};
use crate::model::{Model, TableDef};
use crate::relationship::{Many, One, RelKind};
use crate::session::{AnyObj, JoinedMapper, Obj, Session};
use crate::value::Value;

/// Type-level position of a model in a joined query: the query's model.
pub struct Here;
/// Type-level position of a model in a joined query: further along.
pub struct There<I>(PhantomData<I>);

/// The models a joined query reads include `X` (at position `I`).
#[diagnostic::on_unimplemented(
    message = "`{X}` is not one of the models of this query",
    label = "a filter or ordering on a model that is not joined",
    note = "join it first along a relationship: `.join(Model::RELATIONSHIP)`"
)]
pub trait Has<X, I> {}

impl<M, J> Has<M, Here> for (M, J) {}
impl<M, A> Has<A, There<Here>> for (M, (A,)) {}
impl<M, A, B> Has<A, There<Here>> for (M, (A, B)) {}
impl<M, A, B> Has<B, There<There<Here>>> for (M, (A, B)) {}
impl<M, A, B, C> Has<A, There<Here>> for (M, (A, B, C)) {}
impl<M, A, B, C> Has<B, There<There<Here>>> for (M, (A, B, C)) {}
impl<M, A, B, C> Has<C, There<There<There<Here>>>> for (M, (A, B, C)) {}

/// Adds one model to the set of a joined query (up to three joined).
pub trait Push<T> {
    /// The set with `T`.
    type Out;
}
impl<T> Push<T> for () {
    type Out = (T,);
}
impl<A, T> Push<T> for (A,) {
    type Out = (A, T);
}
impl<A, B, T> Push<T> for (A, B) {
    type Out = (A, B, T);
}

/// A relationship of `O` to `T` to join along (`Book::AUTHOR`, `Author::BOOKS`).
pub trait JoinRel<O, T> {
    /// Its index in `O`'s table.
    fn index(&self) -> usize;
}
impl<O, T> JoinRel<O, T> for One<O, T> {
    fn index(&self) -> usize {
        self.index
    }
}
impl<O, T> JoinRel<O, T> for Many<O, T> {
    fn index(&self) -> usize {
        self.index
    }
}

struct Step {
    owner: &'static TableDef,
    /// Position of the owner among the query's models (0: the query's model).
    owner_position: usize,
    index: usize,
    target: &'static TableDef,
    outer: bool,
    mapper: JoinedMapper,
}

/// A query of model `M` joined to the models `J` (see the module docs).
pub struct JoinQuery<'s, M: Model, J> {
    session: &'s Session,
    steps: Vec<Step>,
    filters: Vec<Expr>,
    order: Vec<(&'static str, &'static str, Direction)>,
    limit: Option<u64>,
    contains_eager: bool,
    _models: PhantomData<fn() -> (M, J)>,
}

impl<'s, M: Model> crate::query::Query<'s, M> {
    /// Joins the model a relationship of `M` points at (`INNER JOIN`).
    /// Filters and orderings of the query so far are kept.
    pub fn join<T: Model, R: JoinRel<M, T>>(self, rel: R) -> JoinQuery<'s, M, (T,)> {
        JoinQuery::<M, ()>::start(self).add::<M, T, (T,)>(0, rel.index(), false)
    }

    /// Joins like [`join`](Self::join), keeping the rows without a match
    /// (`LEFT OUTER JOIN`).
    pub fn outerjoin<T: Model, R: JoinRel<M, T>>(self, rel: R) -> JoinQuery<'s, M, (T,)> {
        JoinQuery::<M, ()>::start(self).add::<M, T, (T,)>(0, rel.index(), true)
    }
}

fn position_of(
    table: &'static TableDef,
    primary: &'static TableDef,
    steps: &[Step],
) -> Option<usize> {
    if std::ptr::eq(table, primary) {
        return Some(0);
    }
    steps
        .iter()
        .position(|s| std::ptr::eq(s.target, table))
        .map(|p| p + 1)
}

impl<'s, M: Model, J> JoinQuery<'s, M, J> {
    fn start(query: crate::query::Query<'s, M>) -> JoinQuery<'s, M, ()> {
        let (session, filters, order, limit) = query.into_parts();
        let table = M::table().name;
        JoinQuery {
            session,
            steps: Vec::new(),
            filters: filters
                .into_iter()
                .map(|f| Expr::Qualified {
                    table,
                    inner: Box::new(f),
                })
                .collect(),
            order: order
                .into_iter()
                .map(|o| (table, o.column, o.direction))
                .collect(),
            limit,
            contains_eager: false,
            _models: PhantomData,
        }
    }

    fn add<O: Model, T: Model, Out>(
        mut self,
        owner_position: usize,
        index: usize,
        outer: bool,
    ) -> JoinQuery<'s, M, Out> {
        self.steps.push(Step {
            owner: O::table(),
            owner_position,
            index,
            target: T::table(),
            outer,
            mapper: crate::session::map_joined::<T>,
        });
        JoinQuery {
            session: self.session,
            steps: self.steps,
            filters: self.filters,
            order: self.order,
            limit: self.limit,
            contains_eager: self.contains_eager,
            _models: PhantomData,
        }
    }

    /// Joins along a relationship of any model of the query (`INNER JOIN`).
    pub fn join<O: Model, T: Model, I, R: JoinRel<O, T>>(
        self,
        rel: R,
    ) -> JoinQuery<'s, M, <J as Push<T>>::Out>
    where
        (M, J): Has<O, I>,
        J: Push<T>,
    {
        self.join_from::<O, T>(rel.index(), false)
    }

    /// Joins along a relationship of any model of the query (`LEFT OUTER JOIN`).
    pub fn outerjoin<O: Model, T: Model, I, R: JoinRel<O, T>>(
        self,
        rel: R,
    ) -> JoinQuery<'s, M, <J as Push<T>>::Out>
    where
        (M, J): Has<O, I>,
        J: Push<T>,
    {
        self.join_from::<O, T>(rel.index(), true)
    }

    fn join_from<O: Model, T: Model>(
        self,
        index: usize,
        outer: bool,
    ) -> JoinQuery<'s, M, <J as Push<T>>::Out>
    where
        J: Push<T>,
    {
        let position = position_of(O::table(), M::table(), &self.steps).unwrap_or(0);
        self.add::<O, T, <J as Push<T>>::Out>(position, index, outer)
    }

    /// Adds a filter on a column of any model of the query.
    pub fn filter<X: Model, I>(mut self, filter: Filter<X>) -> Self
    where
        (M, J): Has<X, I>,
    {
        self.filters.push(Expr::Qualified {
            table: X::table().name,
            inner: Box::new(filter.into_expr()),
        });
        self
    }

    /// Adds an ordering term on a column of any model of the query.
    pub fn order_by<X: Model, I>(mut self, order: Order<X>) -> Self
    where
        (M, J): Has<X, I>,
    {
        self.order
            .push((X::table().name, order.column, order.direction));
        self
    }

    /// At most `n` rows (of the joined result).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Populates the joined relationships from the joined rows
    /// (SQLAlchemy's `contains_eager`): with a filter on the joined model,
    /// a collection holds only the matching children.
    pub fn contains_eager(mut self) -> Self {
        self.contains_eager = true;
        self
    }

    /// The SQL and its parameters.
    pub fn sql(&self) -> Result<(String, Vec<Value>)> {
        let dialect = self.session.engine().dialect();
        let primary = M::table();
        let mut seen: Vec<&'static str> = vec![primary.name];
        for s in &self.steps {
            if seen.contains(&s.target.name) {
                return Err(Error::invalid(format!(
                    "table `{}` is joined twice in one query; joining a model twice is not supported",
                    s.target.name
                )));
            }
            seen.push(s.target.name);
        }
        let col = |t: &str, c: &str, sql: &mut String| {
            dialect.quote_ident(t, sql);
            sql.push('.');
            dialect.quote_ident(c, sql);
        };
        let mut sql = String::from("SELECT ");
        let mut tables: Vec<&'static TableDef> = vec![primary];
        if self.contains_eager {
            tables.extend(self.steps.iter().map(|s| s.target));
        }
        let mut first = true;
        for t in &tables {
            for c in t.columns {
                if !first {
                    sql.push_str(", ");
                }
                first = false;
                col(t.name, c.name, &mut sql);
            }
        }
        sql.push_str(" FROM ");
        dialect.quote_ident(primary.name, &mut sql);
        for s in &self.steps {
            let rel = &s.owner.relationships[s.index];
            let join = if s.outer {
                " LEFT OUTER JOIN "
            } else {
                " INNER JOIN "
            };
            let owner_pk = s.owner.columns[s.owner.primary_key[0]].name;
            let target_pk = s.target.columns[s.target.primary_key[0]].name;
            let key = || {
                rel.fk_column(s.owner)
                    .map(|i| rel.fk_table(s.owner).columns[i].name)
                    .ok_or_else(|| {
                        Error::invalid(format!("relationship `{}` has no key column", rel.name))
                    })
            };
            match rel.kind {
                RelKind::ManyToOne => {
                    sql.push_str(join);
                    dialect.quote_ident(s.target.name, &mut sql);
                    sql.push_str(" ON ");
                    col(s.target.name, target_pk, &mut sql);
                    sql.push_str(" = ");
                    col(s.owner.name, key()?, &mut sql);
                }
                RelKind::OneToMany | RelKind::OneToOne => {
                    sql.push_str(join);
                    dialect.quote_ident(s.target.name, &mut sql);
                    sql.push_str(" ON ");
                    col(s.target.name, key()?, &mut sql);
                    sql.push_str(" = ");
                    col(s.owner.name, owner_pk, &mut sql);
                }
                RelKind::ManyToMany => {
                    let sec = rel.secondary.as_ref().ok_or_else(|| {
                        Error::invalid(format!(
                            "relationship `{}` has no association table",
                            rel.name
                        ))
                    })?;
                    sql.push_str(join);
                    dialect.quote_ident(sec.table, &mut sql);
                    sql.push_str(" ON ");
                    col(sec.table, sec.local, &mut sql);
                    sql.push_str(" = ");
                    col(s.owner.name, owner_pk, &mut sql);
                    sql.push_str(join);
                    dialect.quote_ident(s.target.name, &mut sql);
                    sql.push_str(" ON ");
                    col(s.target.name, target_pk, &mut sql);
                    sql.push_str(" = ");
                    col(sec.table, sec.remote, &mut sql);
                }
            }
        }
        let mut params = Vec::new();
        if !self.filters.is_empty() {
            sql.push_str(" WHERE ");
            Expr::And(self.filters.clone()).render(dialect, &mut sql, &mut params);
        }
        for (n, (t, c, d)) in self.order.iter().enumerate() {
            sql.push_str(if n == 0 { " ORDER BY " } else { ", " });
            col(t, c, &mut sql);
            sql.push_str(d.sql());
        }
        if let Some(l) = self.limit {
            sql.push_str(" LIMIT ?");
            params.push(Value::UInt(l));
        }
        Ok((sql, params))
    }

    /// The query's objects (each once), after autoflush.
    pub fn all(self) -> Result<Vec<Obj<M>>> {
        let (sql, params) = self.sql()?;
        self.session.autoflush()?;
        if !self.contains_eager {
            let objs = crate::session::load_rows_joined::<M>(self.session, &sql, &params, &[])?;
            return Ok(objs);
        }
        let joins: Vec<(usize, JoinedMapper)> = self
            .steps
            .iter()
            .map(|s| (s.target.columns.len(), s.mapper))
            .collect();
        let rows = crate::session::load_rows_joined_each::<M>(self.session, &sql, &params, &joins)?;
        // Collections from the joined rows: per step, owner → its children.
        for (k, step) in self.steps.iter().enumerate() {
            let rel = &step.owner.relationships[step.index];
            type Group = (Rc<dyn AnyObj>, Vec<Rc<dyn AnyObj>>);
            let mut grouped: Vec<Group> = Vec::new();
            for row in &rows {
                let Some(owner) = row[step.owner_position].clone() else {
                    continue;
                };
                let group = match grouped.iter().position(|(o, _)| Rc::ptr_eq(o, &owner)) {
                    Some(i) => &mut grouped[i].1,
                    None => {
                        grouped.push((owner, Vec::new()));
                        &mut grouped.last_mut().expect("just pushed").1
                    }
                };
                if let Some(child) = &row[k + 1] {
                    if !group.iter().any(|c| Rc::ptr_eq(c, child)) {
                        group.push(child.clone());
                    }
                }
            }
            if rel.kind != RelKind::ManyToOne {
                for (owner, children) in grouped {
                    crate::session::populate(&owner, step.index, children);
                }
            }
        }
        let mut out: Vec<Obj<M>> = Vec::new();
        for row in rows {
            if let Some(obj) = row.into_iter().next().flatten() {
                if let Some(typed) = crate::session::downcast_obj::<M>(obj) {
                    if !out.iter().any(|o| o.ptr_eq(&typed)) {
                        out.push(typed);
                    }
                }
            }
        }
        Ok(out)
    }
}
