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
//! rows without a match. A model may appear once per query; join a second
//! copy of a table under an alias ([`Aliased`],
//! `Node::PARENT.alias::<1>()`). Besides relationships, a join can follow an
//! explicit condition (`join_on`) or join a subquery (`join_subquery`), and
//! the query can select columns and aggregates of every joined source into
//! typed tuples (`select`):
//!
//! ```ignore
//! let per_user: Vec<(String, i64, Option<f64>)> = session.query::<User>()
//!     .outerjoin(User::POSTS)
//!     .select((User::NAME, count(Post::ID), avg(Post::SCORE)))
//!     .group_by(User::ID)
//!     .group_by(User::NAME)
//!     .order_by(User::ID.asc())
//!     .all()?;
//! ```

use std::borrow::Cow;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::backend::Dialect;
use crate::error::{Error, Result};
use crate::expr::{Cross, Expr, Filter, Order};
use crate::fast_hash::{FastHashMap, FastHashSet};
use crate::model::{Column, Model, TableDef};
use crate::relationship::{Many, One, RelKind};
use crate::select::{FromRow, OrderBy, SqlExpr};
use crate::session::{addr, AnyObj, JoinedMapper, Obj, Session};
use crate::source::{Aliased, Derived, DerivedTable, Joinable, Source};
use crate::value::{FromValue, Value};

/// Type-level position of a model in a joined query: the query's model.
pub struct Here;
/// Type-level position of a model in a joined query: further along.
pub struct There<I>(PhantomData<I>);

/// The models a joined query reads include `X` (at position `I`).
#[diagnostic::on_unimplemented(
    message = "`{X}` is not one of the models of this query",
    label = "a column of a model that is not joined",
    note = "join it first: `.join(Model::RELATIONSHIP)`, `.join_on::<Model, _>(condition)`, or under an alias `.join(Model::RELATIONSHIP.alias::<N>())`"
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

/// A relationship of `O` to `T` to join along (`Book::AUTHOR`,
/// `Author::BOOKS`; `Node::PARENT.alias::<1>()` joins the target under an
/// alias, `T` then being [`Aliased<Node, 1>`](Aliased)).
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

/// A relationship whose target is joined under the alias `N` (made by
/// `One::alias` / `Many::alias`).
pub struct AliasedRel<O, T, const N: u8> {
    index: usize,
    _marker: PhantomData<fn() -> (O, T)>,
}

impl<O, T, const N: u8> JoinRel<O, Aliased<T, N>> for AliasedRel<O, T, N> {
    fn index(&self) -> usize {
        self.index
    }
}

impl<O, T> One<O, T> {
    /// This relationship with its target joined under the alias
    /// `<table>_<N>` (a self-join: `Node::PARENT.alias::<1>()`); filter on it
    /// with `Aliased::<T, N>::col(...)`.
    pub fn alias<const N: u8>(self) -> AliasedRel<O, T, N> {
        AliasedRel {
            index: self.index,
            _marker: PhantomData,
        }
    }
}

impl<O, T> Many<O, T> {
    /// This relationship with its target joined under the alias
    /// `<table>_<N>` (`Node::CHILDREN.alias::<1>()`).
    pub fn alias<const N: u8>(self) -> AliasedRel<O, T, N> {
        AliasedRel {
            index: self.index,
            _marker: PhantomData,
        }
    }
}

/// A condition a query of the sources `Ms` can use (a filter or a join
/// condition): a [`Filter`] on one of its sources, or a [`Cross`]
/// comparison of columns of two of them.
#[diagnostic::on_unimplemented(
    message = "this condition uses a model that is not one of the sources of this query",
    label = "a condition on a model that is not joined",
    note = "join the model first (`.join(Model::RELATIONSHIP)`, `.join_on::<Model, _>(...)`)"
)]
pub trait Condition<Ms, I> {
    /// The expression, its columns qualified.
    fn into_qualified(self) -> Expr;
}

impl<Ms, X: Source, I> Condition<Ms, I> for Filter<X>
where
    Ms: Has<X, I>,
{
    fn into_qualified(self) -> Expr {
        Expr::Qualified {
            table: X::qualifier(),
            inner: Box::new(self.into_expr()),
        }
    }
}

impl<Ms, X, Y, IX, IY> Condition<Ms, (IX, IY)> for Cross<X, Y>
where
    Ms: Has<X, IX> + Has<Y, IY>,
{
    fn into_qualified(self) -> Expr {
        self.into_expr()
    }
}

/// What a joined select lists: a tuple of expressions of the query's
/// sources `Ms` (`(User::NAME, count(Post::ID))`).
#[diagnostic::on_unimplemented(
    message = "this select list uses a model that is not one of the sources of this query",
    note = "every column and aggregate must belong to the query's model or a joined one"
)]
pub trait JoinSelection<Ms, I> {
    /// The tuple each row decodes to.
    type Row: FromRow;
    /// Appends the select list, its columns qualified.
    fn render(&self, dialect: &dyn Dialect, sql: &mut String, params: &mut Vec<Value>);
}

macro_rules! join_selection {
    ($($name:ident $x:ident $i:ident : $idx:tt),+) => {
        impl<Ms, $($name: SqlExpr<$x>, $x, $i),+> JoinSelection<Ms, ($(($x, $i),)+)> for ($($name,)+)
        where
            $(Ms: Has<$x, $i>,)+
        {
            type Row = ($($name::Output,)+);
            fn render(&self, dialect: &dyn Dialect, sql: &mut String, params: &mut Vec<Value>) {
                $(
                    if $idx > 0 {
                        sql.push_str(", ");
                    }
                    self.$idx.render(true, dialect, sql, params);
                )+
            }
        }
    };
}
join_selection!(A XA IA: 0);
join_selection!(A XA IA: 0, B XB IB: 1);
join_selection!(A XA IA: 0, B XB IB: 1, C XC IC: 2);
join_selection!(A XA IA: 0, B XB IB: 1, C XC IC: 2, D XD ID: 3);
join_selection!(A XA IA: 0, B XB IB: 1, C XC IC: 2, D XD ID: 3, E XE IE: 4);
join_selection!(A XA IA: 0, B XB IB: 1, C XC IC: 2, D XD ID: 3, E XE IE: 4, F XF IF: 5);

/// What a join step brings into the query.
enum Target {
    /// A model's table, under an alias or not.
    Table {
        table: &'static TableDef,
        aliased: bool,
        mapper: JoinedMapper,
    },
    /// A subquery (`(SELECT ...) AS anon_1`).
    Subquery { sql: String, params: Vec<Value> },
}

/// How a join step's rows match.
enum On {
    /// Along relationship `index` of the source at position `owner`.
    Rel {
        owner: usize,
        owner_table: &'static TableDef,
        index: usize,
    },
    /// An explicit condition, already qualified.
    Cond(Expr),
}

struct Step {
    target: Target,
    /// The target's table name or alias.
    qualifier: Cow<'static, str>,
    on: On,
    outer: bool,
}

/// A query of model `M` joined to the sources `J` (see the module docs).
pub struct JoinQuery<'s, M: Model, J> {
    session: &'s Session,
    steps: Vec<Step>,
    filters: Vec<Expr>,
    order: Vec<OrderBy<()>>,
    limit: Option<u64>,
    offset: Option<u64>,
    lock: Option<crate::query::RowLock>,
    contains_eager: bool,
    _models: PhantomData<fn() -> (M, J)>,
}

impl<'s, M: Model> crate::query::Query<'s, M> {
    /// Joins the model a relationship of `M` points at (`INNER JOIN`).
    /// Filters and orderings of the query so far are kept.
    pub fn join<T: Joinable, R: JoinRel<M, T>>(self, rel: R) -> JoinQuery<'s, M, (T,)> {
        JoinQuery::<M, ()>::start(self).join(rel)
    }

    /// Joins like [`join`](Self::join), keeping the rows without a match
    /// (`LEFT OUTER JOIN`).
    pub fn outerjoin<T: Joinable, R: JoinRel<M, T>>(self, rel: R) -> JoinQuery<'s, M, (T,)> {
        JoinQuery::<M, ()>::start(self).outerjoin(rel)
    }

    /// The query's objects each with a tuple of columns or expressions
    /// (a correlated `scalar_subquery()`, say): see [`JoinQuery::add_columns`].
    pub fn add_columns<S: JoinSelection<(M, ()), I>, I>(
        self,
        selection: S,
    ) -> EntitySelect<'s, M, (), S::Row> {
        JoinQuery::<M, ()>::start(self).add_columns(selection)
    }

    /// Joins `T` (a model, or an [`Aliased`] one) on an explicit condition
    /// (`INNER JOIN t ON ...`): `.join_on::<Address, _>(User::ID.eq_col(Address::USER_ID))`.
    pub fn join_on<T: Joinable, I>(
        self,
        on: impl Condition<(M, (T,)), I>,
    ) -> JoinQuery<'s, M, (T,)> {
        JoinQuery::<M, ()>::start(self).join_on::<T, I>(on)
    }

    /// Like [`join_on`](Self::join_on), keeping the rows without a match.
    pub fn outerjoin_on<T: Joinable, I>(
        self,
        on: impl Condition<(M, (T,)), I>,
    ) -> JoinQuery<'s, M, (T,)> {
        JoinQuery::<M, ()>::start(self).outerjoin_on::<T, I>(on)
    }

    /// Joins a subquery ([`Select::subquery`](crate::select::Select::subquery))
    /// on a condition over its columns (`sub.c::<0>()`).
    pub fn join_subquery<const N: u8, R: 'static, I>(
        self,
        subquery: DerivedTable<N, R>,
        on: impl Condition<(M, (Derived<N, R>,)), I>,
    ) -> JoinQuery<'s, M, (Derived<N, R>,)> {
        JoinQuery::<M, ()>::start(self).join_subquery(subquery, on)
    }

    /// Like [`join_subquery`](Self::join_subquery), keeping the rows without a match.
    pub fn outerjoin_subquery<const N: u8, R: 'static, I>(
        self,
        subquery: DerivedTable<N, R>,
        on: impl Condition<(M, (Derived<N, R>,)), I>,
    ) -> JoinQuery<'s, M, (Derived<N, R>,)> {
        JoinQuery::<M, ()>::start(self).outerjoin_subquery(subquery, on)
    }
}

impl<'s, M: Model, J> JoinQuery<'s, M, J> {
    fn start(query: crate::query::Query<'s, M>) -> JoinQuery<'s, M, ()> {
        let parts = query.into_parts();
        let table = M::table().name;
        JoinQuery {
            session: parts.session,
            steps: Vec::new(),
            filters: parts
                .filters
                .into_iter()
                .map(|f| Expr::Qualified {
                    table: Cow::Borrowed(table),
                    inner: Box::new(f),
                })
                .collect(),
            order: parts
                .order
                .into_iter()
                .map(|o| OrderBy::from(o).cast())
                .collect(),
            limit: parts.limit,
            offset: parts.offset,
            lock: parts.lock,
            contains_eager: false,
            _models: PhantomData,
        }
    }

    /// The qualifier of each source: the query's model, then each step's.
    fn qualifiers(&self) -> Vec<Cow<'static, str>> {
        std::iter::once(Cow::Borrowed(M::table().name))
            .chain(self.steps.iter().map(|s| s.qualifier.clone()))
            .collect()
    }

    fn push<Out>(mut self, step: Step) -> JoinQuery<'s, M, Out> {
        self.steps.push(step);
        JoinQuery {
            session: self.session,
            steps: self.steps,
            filters: self.filters,
            order: self.order,
            limit: self.limit,
            offset: self.offset,
            lock: self.lock,
            contains_eager: self.contains_eager,
            _models: PhantomData,
        }
    }

    fn table_step<T: Joinable>(on: On, outer: bool) -> Step {
        Step {
            target: Target::Table {
                table: T::table(),
                aliased: T::alias().is_some(),
                mapper: crate::session::map_joined::<T::Model>,
            },
            qualifier: T::qualifier(),
            on,
            outer,
        }
    }

    fn rel_step<O: Model, T: Joinable>(&self, index: usize, outer: bool) -> Step {
        let owner_name = O::table().name;
        let owner = self
            .qualifiers()
            .iter()
            .position(|q| q == owner_name)
            .unwrap_or(0);
        Self::table_step::<T>(
            On::Rel {
                owner,
                owner_table: O::table(),
                index,
            },
            outer,
        )
    }

    /// Joins along a relationship of any model of the query (`INNER JOIN`).
    pub fn join<O: Model, T: Joinable, I, R: JoinRel<O, T>>(
        self,
        rel: R,
    ) -> JoinQuery<'s, M, <J as Push<T>>::Out>
    where
        (M, J): Has<O, I>,
        J: Push<T>,
    {
        let step = self.rel_step::<O, T>(rel.index(), false);
        self.push(step)
    }

    /// Joins along a relationship of any model of the query (`LEFT OUTER JOIN`).
    pub fn outerjoin<O: Model, T: Joinable, I, R: JoinRel<O, T>>(
        self,
        rel: R,
    ) -> JoinQuery<'s, M, <J as Push<T>>::Out>
    where
        (M, J): Has<O, I>,
        J: Push<T>,
    {
        let step = self.rel_step::<O, T>(rel.index(), true);
        self.push(step)
    }

    /// Joins `T` (a model, or an [`Aliased`] one) on an explicit condition
    /// over it and the query's sources (`INNER JOIN`).
    pub fn join_on<T: Joinable, I>(
        self,
        on: impl Condition<(M, <J as Push<T>>::Out), I>,
    ) -> JoinQuery<'s, M, <J as Push<T>>::Out>
    where
        J: Push<T>,
    {
        self.push(Self::table_step::<T>(On::Cond(on.into_qualified()), false))
    }

    /// Like [`join_on`](Self::join_on) (`LEFT OUTER JOIN`).
    pub fn outerjoin_on<T: Joinable, I>(
        self,
        on: impl Condition<(M, <J as Push<T>>::Out), I>,
    ) -> JoinQuery<'s, M, <J as Push<T>>::Out>
    where
        J: Push<T>,
    {
        self.push(Self::table_step::<T>(On::Cond(on.into_qualified()), true))
    }

    fn subquery_step<const N: u8, R: 'static>(
        subquery: DerivedTable<N, R>,
        on: Expr,
        outer: bool,
    ) -> Step {
        Step {
            target: Target::Subquery {
                sql: subquery.sql,
                params: subquery.params,
            },
            qualifier: Derived::<N, R>::qualifier(),
            on: On::Cond(on),
            outer,
        }
    }

    /// Joins a subquery ([`Select::subquery`](crate::select::Select::subquery))
    /// on a condition over its columns (`INNER JOIN (SELECT ...) AS anon_N ON ...`).
    pub fn join_subquery<const N: u8, R: 'static, I>(
        self,
        subquery: DerivedTable<N, R>,
        on: impl Condition<(M, <J as Push<Derived<N, R>>>::Out), I>,
    ) -> JoinQuery<'s, M, <J as Push<Derived<N, R>>>::Out>
    where
        J: Push<Derived<N, R>>,
    {
        self.push(Self::subquery_step(subquery, on.into_qualified(), false))
    }

    /// Like [`join_subquery`](Self::join_subquery) (`LEFT OUTER JOIN`).
    pub fn outerjoin_subquery<const N: u8, R: 'static, I>(
        self,
        subquery: DerivedTable<N, R>,
        on: impl Condition<(M, <J as Push<Derived<N, R>>>::Out), I>,
    ) -> JoinQuery<'s, M, <J as Push<Derived<N, R>>>::Out>
    where
        J: Push<Derived<N, R>>,
    {
        self.push(Self::subquery_step(subquery, on.into_qualified(), true))
    }

    /// Adds a `WHERE` condition on any source of the query: a filter
    /// (`Author::NAME.like("Le%")`) or a comparison of two sources' columns
    /// (`Book::YEAR.gt_col(Author::BORN)`).
    pub fn filter<I>(mut self, condition: impl Condition<(M, J), I>) -> Self {
        self.filters.push(condition.into_qualified());
        self
    }

    /// Adds an ordering term on a column of any source of the query.
    pub fn order_by<X: Source, I>(mut self, order: Order<X>) -> Self
    where
        (M, J): Has<X, I>,
    {
        self.order.push(OrderBy::from(order).cast());
        self
    }

    /// At most `n` rows (of the joined result).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows (of the joined result).
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// Populates the joined relationships from the joined rows
    /// (SQLAlchemy's `contains_eager`): with a filter on the joined model,
    /// a collection holds only the matching children.
    pub fn contains_eager(mut self) -> Self {
        self.contains_eager = true;
        self
    }

    /// Selects columns and aggregates of the query's sources into typed
    /// tuples instead of loading objects: `.select((User::NAME, count(Post::ID)))`.
    pub fn select<S: JoinSelection<(M, J), I>, I>(
        self,
        selection: S,
    ) -> JoinSelect<'s, M, J, S::Row> {
        let dialect = self.session.engine().dialect();
        let mut sql = String::new();
        let mut params = Vec::new();
        selection.render(dialect, &mut sql, &mut params);
        JoinSelect {
            query: self,
            entity: false,
            selection: (sql, params),
            group: Vec::new(),
            having: Vec::new(),
            distinct: false,
            _row: PhantomData,
        }
    }

    /// Selects the query's objects together with columns and aggregates of
    /// its sources (SQLAlchemy's `query(User, func.count(Post.id))` /
    /// `add_columns`): each row gives the object, through the identity map,
    /// and the tuple. `.add_columns((count(Post::ID),)).group_by(User::ID)`.
    pub fn add_columns<S: JoinSelection<(M, J), I>, I>(
        self,
        selection: S,
    ) -> EntitySelect<'s, M, J, S::Row> {
        let mut inner = self.select(selection);
        inner.entity = true;
        EntitySelect { inner }
    }

    /// Appends ` FROM ... JOIN ... WHERE ...`.
    fn render_from(&self, sql: &mut String, params: &mut Vec<Value>) -> Result<()> {
        let dialect = self.session.engine().dialect();
        let primary = M::table();
        let qualifiers = self.qualifiers();
        for (i, q) in qualifiers.iter().enumerate() {
            if qualifiers[..i].contains(q) {
                return Err(Error::invalid(format!(
                    "`{q}` is joined twice in one query; join the second copy under an alias \
                     (`Model::RELATIONSHIP.alias::<1>()`, or `join_on::<Aliased<Model, 1>, _>(...)`)"
                )));
            }
        }
        let col = |t: &str, c: &str, sql: &mut String| {
            dialect.quote_ident(t, sql);
            sql.push('.');
            dialect.quote_ident(c, sql);
        };
        sql.push_str(" FROM ");
        dialect.quote_ident(primary.name, sql);
        for s in &self.steps {
            sql.push_str(if s.outer {
                " LEFT OUTER JOIN "
            } else {
                " INNER JOIN "
            });
            // The joined table (or the association table first, for a
            // many-to-many relationship).
            let target_sql = |sql: &mut String, params: &mut Vec<Value>| match &s.target {
                Target::Table { table, aliased, .. } => {
                    dialect.quote_ident(table.name, sql);
                    if *aliased {
                        sql.push_str(" AS ");
                        dialect.quote_ident(&s.qualifier, sql);
                    }
                }
                Target::Subquery {
                    sql: sub,
                    params: sub_params,
                } => {
                    sql.push('(');
                    sql.push_str(sub);
                    sql.push_str(") AS ");
                    dialect.quote_ident(&s.qualifier, sql);
                    params.extend(sub_params.iter().cloned());
                }
            };
            match &s.on {
                On::Cond(expr) => {
                    target_sql(sql, params);
                    sql.push_str(" ON ");
                    expr.render(dialect, sql, params);
                }
                On::Rel {
                    owner,
                    owner_table,
                    index,
                } => {
                    let Target::Table { table: target, .. } = &s.target else {
                        return Err(Error::invalid(
                            "internal error: a relationship join to a subquery",
                        ));
                    };
                    let owner_q = &qualifiers[*owner];
                    let t = &s.qualifier;
                    let rel = &owner_table.relationships[*index];
                    let owner_pk = owner_table.columns[owner_table.primary_key[0]].name;
                    let target_pk = target.columns[target.primary_key[0]].name;
                    let key = || {
                        rel.fk_column(owner_table)
                            .map(|i| rel.fk_table(owner_table).columns[i].name)
                            .ok_or_else(|| {
                                Error::invalid(format!(
                                    "relationship `{}` has no key column",
                                    rel.name
                                ))
                            })
                    };
                    match rel.kind {
                        RelKind::ManyToOne => {
                            target_sql(sql, params);
                            sql.push_str(" ON ");
                            col(t, target_pk, sql);
                            sql.push_str(" = ");
                            col(owner_q, key()?, sql);
                        }
                        RelKind::OneToMany | RelKind::OneToOne => {
                            target_sql(sql, params);
                            sql.push_str(" ON ");
                            col(t, key()?, sql);
                            sql.push_str(" = ");
                            col(owner_q, owner_pk, sql);
                        }
                        RelKind::ManyToMany => {
                            let sec = rel.secondary.as_ref().ok_or_else(|| {
                                Error::invalid(format!(
                                    "relationship `{}` has no association table",
                                    rel.name
                                ))
                            })?;
                            dialect.quote_ident(sec.table, sql);
                            sql.push_str(" ON ");
                            col(sec.table, sec.local, sql);
                            sql.push_str(" = ");
                            col(owner_q, owner_pk, sql);
                            sql.push_str(if s.outer {
                                " LEFT OUTER JOIN "
                            } else {
                                " INNER JOIN "
                            });
                            target_sql(sql, params);
                            sql.push_str(" ON ");
                            col(t, target_pk, sql);
                            sql.push_str(" = ");
                            col(sec.table, sec.remote, sql);
                        }
                    }
                }
            }
        }
        if !self.filters.is_empty() {
            sql.push_str(" WHERE ");
            Expr::And(self.filters.clone()).render(dialect, sql, params);
        }
        Ok(())
    }

    /// Appends ` ORDER BY ... LIMIT ? OFFSET ?` and the row lock.
    fn render_order_limit(&self, sql: &mut String, params: &mut Vec<Value>) {
        let dialect = self.session.engine().dialect();
        for (n, o) in self.order.iter().enumerate() {
            sql.push_str(if n == 0 { " ORDER BY " } else { ", " });
            o.render(true, dialect, sql);
        }
        crate::query::limit_offset_sql(self.limit, self.offset, sql, params);
        if let Some(lock) = self.lock {
            sql.push_str(&dialect.row_lock_sql(lock));
        }
    }

    /// The joined steps whose objects a `contains_eager` query loads:
    /// (step index, row position).
    fn loaded_steps(&self) -> Vec<(usize, usize)> {
        if !self.contains_eager {
            return Vec::new();
        }
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.target, Target::Table { .. }))
            .enumerate()
            .map(|(row, (k, _))| (k, row + 1))
            .collect()
    }

    /// The SQL and its parameters.
    pub fn sql(&self) -> Result<(String, Vec<Value>)> {
        let dialect = self.session.engine().dialect();
        let mut sql = String::from("SELECT ");
        let mut tables: Vec<(&'static TableDef, Cow<'static, str>)> =
            vec![(M::table(), Cow::Borrowed(M::table().name))];
        for (k, _) in self.loaded_steps() {
            if let Target::Table { table, .. } = &self.steps[k].target {
                tables.push((table, self.steps[k].qualifier.clone()));
            }
        }
        let mut first = true;
        for (t, q) in &tables {
            for c in t.columns {
                if !first {
                    sql.push_str(", ");
                }
                first = false;
                dialect.quote_ident(q, &mut sql);
                sql.push('.');
                dialect.quote_ident(c.name, &mut sql);
            }
        }
        let mut params = Vec::new();
        self.render_from(&mut sql, &mut params)?;
        self.render_order_limit(&mut sql, &mut params);
        Ok((sql, params))
    }

    /// The query's objects (each once), after autoflush.
    pub fn all(self) -> Result<Vec<Obj<M>>> {
        let (sql, params) = self.sql()?;
        if self.lock.is_some() {
            // Row locks are taken on the primary, in its transaction.
            self.session.use_primary(M::table())?;
        }
        self.session.autoflush()?;
        if !self.contains_eager {
            let objs = crate::session::load_rows_joined::<M>(self.session, &sql, &params, &[])?;
            return Ok(objs);
        }
        let loaded = self.loaded_steps();
        let joins: Vec<(usize, JoinedMapper)> = loaded
            .iter()
            .filter_map(|(k, _)| match &self.steps[*k].target {
                Target::Table { table, mapper, .. } => Some((table.columns.len(), *mapper)),
                Target::Subquery { .. } => None,
            })
            .collect();
        // Row position of each source (0: the query's model).
        let row_of = |source: usize| -> Option<usize> {
            if source == 0 {
                return Some(0);
            }
            loaded
                .iter()
                .find(|(k, _)| *k + 1 == source)
                .map(|(_, row)| *row)
        };
        let rows =
            crate::session::load_rows_joined_each::<M>(self.session, &sql, &params, &joins, None)?;
        // Collections from the joined rows: per step, owner → its children.
        for (k, row_pos) in &loaded {
            let On::Rel {
                owner,
                owner_table,
                index,
            } = &self.steps[*k].on
            else {
                continue;
            };
            let rel = &owner_table.relationships[*index];
            if rel.kind == RelKind::ManyToOne {
                continue;
            }
            let Some(owner_pos) = row_of(*owner) else {
                continue;
            };
            // Owners in first-seen order, each child once per owner: found
            // by address (a scan per row made a join of n rows cost n²).
            type Group = (Rc<dyn AnyObj>, Vec<Rc<dyn AnyObj>>);
            let mut grouped: Vec<Group> = Vec::new();
            let mut group_of: FastHashMap<*const (), usize> = FastHashMap::default();
            let mut pairs: FastHashSet<(*const (), *const ())> = FastHashSet::default();
            for row in &rows {
                let Some(owner) = &row[owner_pos] else {
                    continue;
                };
                let g = *group_of.entry(addr(owner)).or_insert_with(|| {
                    grouped.push((owner.clone(), Vec::new()));
                    grouped.len() - 1
                });
                if let Some(child) = &row[*row_pos] {
                    if pairs.insert((addr(owner), addr(child))) {
                        grouped[g].1.push(child.clone());
                    }
                }
            }
            for (owner, children) in grouped {
                crate::session::populate(&owner, *index, children);
            }
        }
        let mut out: Vec<Obj<M>> = Vec::new();
        let mut seen: FastHashSet<*const ()> = FastHashSet::default();
        for row in rows {
            if let Some(obj) = row.into_iter().next().flatten() {
                if !seen.insert(addr(&obj)) {
                    continue;
                }
                if let Some(typed) = crate::session::downcast_obj::<M>(obj) {
                    out.push(typed);
                }
            }
        }
        Ok(out)
    }
}

impl<M: Model, J> JoinQuery<'_, M, J> {
    /// The first object (`LIMIT 1` on the joined rows), if any.
    pub fn first(mut self) -> Result<Option<Obj<M>>> {
        self.limit = Some(1);
        Ok(self.all()?.into_iter().next())
    }

    /// Exactly one object: [`Error::NoResultFound`] or
    /// [`Error::MultipleResultsFound`] otherwise (a one-to-many join that
    /// repeats one object is still one object).
    pub fn one(self) -> Result<Obj<M>> {
        crate::select::exactly_one(self.all()?, M::table().name)
    }

    /// At most one object: `None` without rows,
    /// [`Error::MultipleResultsFound`] with several.
    pub fn one_or_none(self) -> Result<Option<Obj<M>>> {
        let objs = self.all()?;
        if objs.is_empty() {
            return Ok(None);
        }
        crate::select::exactly_one(objs, M::table().name).map(Some)
    }
}

/// A typed select over a joined query's sources (made by
/// [`JoinQuery::select`]): each row decodes into the tuple `R`.
pub struct JoinSelect<'s, M: Model, J, R> {
    query: JoinQuery<'s, M, J>,
    /// Select the query's model's columns first (`add_columns`).
    entity: bool,
    selection: (String, Vec<Value>),
    group: Vec<(Cow<'static, str>, &'static str)>,
    having: Vec<Expr>,
    distinct: bool,
    _row: PhantomData<fn() -> R>,
}

impl<'s, M: Model, J, R: FromRow> JoinSelect<'s, M, J, R> {
    /// Adds a `WHERE` condition on any source of the query.
    pub fn filter<I>(mut self, condition: impl Condition<(M, J), I>) -> Self {
        self.query.filters.push(condition.into_qualified());
        self
    }

    /// Adds a `GROUP BY` column of any source of the query.
    pub fn group_by<X: Source, T, I>(mut self, column: Column<X, T>) -> Self
    where
        (M, J): Has<X, I>,
    {
        self.group.push((X::qualifier(), column.name));
        self
    }

    /// Adds a `HAVING` condition (on an aggregate: `count(Post::ID).gt(2)`).
    pub fn having<I>(mut self, condition: impl Condition<(M, J), I>) -> Self {
        self.having.push(condition.into_qualified());
        self
    }

    /// Adds an `ORDER BY` term: a column or an aggregate of any source.
    pub fn order_by<X: Source, I>(mut self, order: impl Into<OrderBy<X>>) -> Self
    where
        (M, J): Has<X, I>,
    {
        self.query.order.push(order.into().cast());
        self
    }

    /// `SELECT DISTINCT`.
    pub fn distinct(mut self) -> Self {
        self.distinct = true;
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.query.limit = Some(n);
        self
    }

    /// The SQL and its parameters.
    pub fn sql(&self) -> Result<(String, Vec<Value>)> {
        let dialect = self.query.session.engine().dialect();
        let mut sql = String::from(if self.distinct {
            "SELECT DISTINCT "
        } else {
            "SELECT "
        });
        if self.entity {
            let table = M::table();
            for c in table.columns {
                dialect.quote_ident(table.name, &mut sql);
                sql.push('.');
                dialect.quote_ident(c.name, &mut sql);
                sql.push_str(", ");
            }
        }
        sql.push_str(&self.selection.0);
        let mut params = self.selection.1.clone();
        self.query.render_from(&mut sql, &mut params)?;
        for (n, (t, c)) in self.group.iter().enumerate() {
            sql.push_str(if n == 0 { " GROUP BY " } else { ", " });
            dialect.quote_ident(t, &mut sql);
            sql.push('.');
            dialect.quote_ident(c, &mut sql);
        }
        if !self.having.is_empty() {
            sql.push_str(" HAVING ");
            Expr::And(self.having.clone()).render(dialect, &mut sql, &mut params);
        }
        self.query.render_order_limit(&mut sql, &mut params);
        Ok((sql, params))
    }

    /// Every row, decoded (after autoflush), from model `M`'s engine.
    pub fn all(self) -> Result<Vec<R>> {
        if self.query.session.is_sharded() {
            return Err(Error::invalid(
                "selects across joins are not available in a sharded session yet; \
                 select from one model (session.select), which runs on every shard",
            ));
        }
        let (sql, params) = self.sql()?;
        if self.query.lock.is_some() {
            // Row locks are taken on the primary, in its transaction.
            self.query.session.use_primary(M::table())?;
        }
        let session = self.query.session;
        session.query_decoded_on(session.bind_of(M::table()), &sql, &params)
    }

    /// The first row, if any.
    pub fn first(mut self) -> Result<Option<R>> {
        self.query.limit = Some(1);
        Ok(self.all()?.into_iter().next())
    }

    /// Exactly one row: [`Error::NoResultFound`] or
    /// [`Error::MultipleResultsFound`] otherwise.
    pub fn one(mut self) -> Result<R> {
        self.query.limit = Some(2);
        crate::select::exactly_one(self.all()?, M::table().name)
    }
}

impl<M: Model, J, A: FromValue> JoinSelect<'_, M, J, (A,)> {
    /// The first column of the first row (`None` without rows).
    pub fn scalar(self) -> Result<Option<A>> {
        Ok(self.first()?.map(|(a,)| a))
    }

    /// The first column of every row.
    pub fn scalars(self) -> Result<Vec<A>> {
        Ok(self.all()?.into_iter().map(|(a,)| a).collect())
    }
}

/// A joined query's objects each with a tuple of columns and aggregates
/// (made by [`JoinQuery::add_columns`]).
pub struct EntitySelect<'s, M: Model, J, R> {
    inner: JoinSelect<'s, M, J, R>,
}

impl<'s, M: Model, J, R: FromRow> EntitySelect<'s, M, J, R> {
    /// Adds a `WHERE` condition on any source of the query.
    pub fn filter<I>(self, condition: impl Condition<(M, J), I>) -> Self {
        EntitySelect {
            inner: self.inner.filter(condition),
        }
    }

    /// Adds a `GROUP BY` column of any source of the query (group by the
    /// model's key to count per object).
    pub fn group_by<X: Source, T, I>(self, column: Column<X, T>) -> Self
    where
        (M, J): Has<X, I>,
    {
        EntitySelect {
            inner: self.inner.group_by(column),
        }
    }

    /// Adds a `HAVING` condition.
    pub fn having<I>(self, condition: impl Condition<(M, J), I>) -> Self {
        EntitySelect {
            inner: self.inner.having(condition),
        }
    }

    /// Adds an `ORDER BY` term: a column or an aggregate of any source.
    pub fn order_by<X: Source, I>(self, order: impl Into<OrderBy<X>>) -> Self
    where
        (M, J): Has<X, I>,
    {
        EntitySelect {
            inner: self.inner.order_by(order),
        }
    }

    /// At most `n` rows.
    pub fn limit(self, n: u64) -> Self {
        EntitySelect {
            inner: self.inner.limit(n),
        }
    }

    /// The SQL and its parameters.
    pub fn sql(&self) -> Result<(String, Vec<Value>)> {
        self.inner.sql()
    }

    /// Every row: the object (through the identity map) and the tuple,
    /// after autoflush.
    pub fn all(self) -> Result<Vec<(Obj<M>, R)>> {
        let (sql, params) = self.inner.sql()?;
        let session = self.inner.query.session;
        session.autoflush()?;
        let mut extra = Vec::new();
        let rows = crate::session::load_rows_joined_each::<M>(
            session,
            &sql,
            &params,
            &[],
            Some(&mut extra),
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (objs, values) in rows.into_iter().zip(extra) {
            let obj = objs
                .into_iter()
                .next()
                .flatten()
                .and_then(crate::session::downcast_obj::<M>)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "a row of the query has no `{}` key",
                        M::table().name
                    ))
                })?;
            out.push((obj, R::from_values(values)?));
        }
        Ok(out)
    }
}
