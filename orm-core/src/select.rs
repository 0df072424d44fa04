//! Selecting columns and aggregates into typed tuples: reports without
//! raw SQL strings.
//!
//! ```ignore
//! use orm::select::{avg, count};
//! let per_author: Vec<(Option<i64>, i64, Option<f64>)> = session
//!     .select::<Book, _>((Book::AUTHOR_ID, count(Book::ID), avg(Book::SCORE)))
//!     .filter(Book::YEAR.ge(1960))
//!     .group_by(Book::AUTHOR_ID)
//!     .having(count(Book::ID).gt(2))
//!     .all()?;
//! let titles: Vec<String> = session.select::<Book, _>((Book::TITLE,)).distinct().scalars()?;
//! let rows: Vec<(i64, String)> = session.query_tuples("SELECT id, title FROM book", &[])?;
//! ```
//!
//! Every expression is typed by its model and its Rust type, so the tuple
//! a query returns is known at compile time, and a column of another model
//! does not compile. Aggregates over no rows give `None` (`SUM`, `AVG`,
//! `MIN`, `MAX`) or 0 (`COUNT`).

use std::borrow::Cow;
use std::marker::PhantomData;

use crate::backend::Dialect;
use crate::error::{Error, Result};
use crate::expr::{
    aggregate_sql, ArithOp, CmpOp, Cross, Direction, Expr, ExprValue, Filter, Order,
};
use crate::model::{Column, Model};
use crate::row::Row;
use crate::session::Session;
use crate::source::{DerivedTable, Source, DERIVED_COLUMNS};
use crate::value::{FromValue, Value};

/// An expression of model `M` that yields values of type [`Self::Output`].
pub trait SqlExpr<M> {
    /// The Rust type of its values.
    type Output: FromValue;
    /// Appends its SQL; with `qualify`, every column is qualified by its
    /// table or alias (`` `book`.`title` ``), as a query of several sources needs.
    fn render(
        &self,
        qualify: bool,
        dialect: &dyn Dialect,
        sql: &mut String,
        params: &mut Vec<Value>,
    );
}

/// Appends `column`, qualified by `qualifier` when asked to.
fn column_sql(
    qualify: bool,
    qualifier: fn() -> Cow<'static, str>,
    column: &str,
    dialect: &dyn Dialect,
    sql: &mut String,
) {
    if qualify {
        dialect.quote_ident(&qualifier(), sql);
        sql.push('.');
    }
    dialect.quote_ident(column, sql);
}

impl<M: Source, T: FromValue> SqlExpr<M> for Column<M, T> {
    type Output = T;
    fn render(
        &self,
        qualify: bool,
        dialect: &dyn Dialect,
        sql: &mut String,
        _params: &mut Vec<Value>,
    ) {
        column_sql(qualify, M::qualifier, self.name, dialect, sql);
    }
}

/// `column + value`, `column - value`, `column * value`: arithmetic on a
/// column, of the column's type (`User::AGE + 1`).
pub struct Arith<M, T> {
    qualifier: fn() -> Cow<'static, str>,
    column: &'static str,
    op: ArithOp,
    value: Value,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Arith<M, T> {
    /// (column, operator, operand).
    pub(crate) fn into_parts(self) -> (&'static str, ArithOp, Value) {
        (self.column, self.op, self.value)
    }
}

impl<M, T: FromValue> SqlExpr<M> for Arith<M, T> {
    type Output = T;
    fn render(
        &self,
        qualify: bool,
        dialect: &dyn Dialect,
        sql: &mut String,
        params: &mut Vec<Value>,
    ) {
        sql.push('(');
        column_sql(qualify, self.qualifier, self.column, dialect, sql);
        sql.push_str(self.op.sql());
        sql.push('?');
        sql.push(')');
        params.push(self.value.clone());
    }
}

macro_rules! arith {
    ($trait:ident, $method:ident, $op:expr) => {
        impl<M: Source, T: Numeric, V: ExprValue<T>> std::ops::$trait<V> for Column<M, T> {
            type Output = Arith<M, T>;
            fn $method(self, value: V) -> Arith<M, T> {
                Arith {
                    qualifier: M::qualifier,
                    column: self.name,
                    op: $op,
                    value: value.into_value(),
                    _marker: PhantomData,
                }
            }
        }
    };
}
arith!(Add, add, ArithOp::Add);
arith!(Sub, sub, ArithOp::Sub);
arith!(Mul, mul, ArithOp::Mul);

/// Numeric column types, for arithmetic.
pub trait Numeric {}
macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t {}
        impl Numeric for Option<$t> {}
    )*};
}
numeric!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// `COALESCE(column, default)`: the column's value, or `default` where it
/// is NULL; of the column's non-null type.
pub struct Coalesce<M, T> {
    qualifier: fn() -> Cow<'static, str>,
    column: &'static str,
    default: Value,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T: FromValue> SqlExpr<M> for Coalesce<M, T> {
    type Output = T;
    fn render(
        &self,
        qualify: bool,
        dialect: &dyn Dialect,
        sql: &mut String,
        params: &mut Vec<Value>,
    ) {
        sql.push_str("COALESCE(");
        column_sql(qualify, self.qualifier, self.column, dialect, sql);
        sql.push_str(", ?)");
        params.push(self.default.clone());
    }
}

/// `COALESCE(column, default)`.
pub fn coalesce<M: Source, T: Scalar>(
    column: Column<M, T>,
    default: impl ExprValue<T::Inner>,
) -> Coalesce<M, T::Inner> {
    Coalesce {
        qualifier: M::qualifier,
        column: column.name,
        default: default.into_value(),
        _marker: PhantomData,
    }
}

/// `CASE WHEN filter THEN value ... ELSE value END`, of type `T` (made by
/// [`case_when`]).
pub struct Case<M, T> {
    whens: Vec<(Expr, Value)>,
    otherwise: Option<Value>,
    _marker: PhantomData<fn() -> (M, T)>,
}

/// `CASE WHEN filter THEN value`: add more with `when`, close with
/// `otherwise` (without it, rows matching no branch give NULL, so `T`
/// should then be an `Option`).
pub fn case_when<M, T>(filter: Filter<M>, value: impl ExprValue<T>) -> Case<M, T> {
    Case {
        whens: vec![(filter.into_expr(), value.into_value())],
        otherwise: None,
        _marker: PhantomData,
    }
}

impl<M, T> Case<M, T> {
    /// Another `WHEN filter THEN value` branch.
    pub fn when(mut self, filter: Filter<M>, value: impl ExprValue<T>) -> Self {
        self.whens.push((filter.into_expr(), value.into_value()));
        self
    }

    /// `ELSE value`.
    pub fn otherwise(mut self, value: impl ExprValue<T>) -> Self {
        self.otherwise = Some(value.into_value());
        self
    }
}

impl<M: Source, T: FromValue> SqlExpr<M> for Case<M, T> {
    type Output = T;
    fn render(
        &self,
        qualify: bool,
        dialect: &dyn Dialect,
        sql: &mut String,
        params: &mut Vec<Value>,
    ) {
        sql.push_str("CASE");
        for (when, value) in &self.whens {
            sql.push_str(" WHEN ");
            if qualify {
                Expr::Qualified {
                    table: M::qualifier(),
                    inner: Box::new(when.clone()),
                }
                .render(dialect, sql, params);
            } else {
                when.render(dialect, sql, params);
            }
            sql.push_str(" THEN ?");
            params.push(value.clone());
        }
        if let Some(value) = &self.otherwise {
            sql.push_str(" ELSE ?");
            params.push(value.clone());
        }
        sql.push_str(" END");
    }
}

/// The type inside a nullable column type (`i64` for `Option<i64>` and `i64`).
pub trait Scalar {
    /// The non-null type.
    type Inner: FromValue;
}

impl<T: Scalar> Scalar for Option<T> {
    type Inner = T::Inner;
}

macro_rules! scalar {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            type Inner = $t;
        }
    )*};
}
scalar!(
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    f32,
    f64,
    bool,
    String,
    Vec<u8>
);
scalar!(
    crate::value::Date,
    crate::value::DateTime,
    crate::value::Time
);

/// An aggregate over a column (`COUNT`, `SUM`, `AVG`, `MIN`, `MAX`).
pub struct Aggregate<M, T> {
    qualifier: fn() -> Cow<'static, str>,
    func: &'static str,
    column: Option<&'static str>,
    distinct: bool,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Aggregate<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, T> Copy for Aggregate<M, T> {}

impl<M, T: FromValue> SqlExpr<M> for Aggregate<M, T> {
    type Output = T;
    fn render(
        &self,
        qualify: bool,
        dialect: &dyn Dialect,
        sql: &mut String,
        _params: &mut Vec<Value>,
    ) {
        aggregate_sql(self.func, self.distinct, self.column, sql, |c, sql| {
            column_sql(qualify, self.qualifier, c, dialect, sql)
        });
    }
}

impl<M: Source, T> Aggregate<M, T> {
    fn new(func: &'static str, column: Option<&'static str>, distinct: bool) -> Self {
        Aggregate {
            qualifier: M::qualifier,
            func,
            column,
            distinct,
            _marker: PhantomData,
        }
    }

    fn cmp(self, op: CmpOp, value: Value) -> Filter<M> {
        Filter::from_expr(Expr::Aggregate {
            func: self.func,
            column: self.column,
            distinct: self.distinct,
            op,
            value,
        })
    }

    /// `aggregate = value`, for `having`.
    pub fn eq(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Eq, value.into_value())
    }
    /// `aggregate > value`, for `having`.
    pub fn gt(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Gt, value.into_value())
    }
    /// `aggregate >= value`, for `having`.
    pub fn ge(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Ge, value.into_value())
    }
    /// `aggregate < value`, for `having`.
    pub fn lt(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Lt, value.into_value())
    }
    /// `aggregate <= value`, for `having`.
    pub fn le(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Le, value.into_value())
    }

    /// `ORDER BY aggregate ASC`.
    pub fn asc(self) -> OrderBy<M> {
        self.order(Direction::Asc)
    }

    /// `ORDER BY aggregate DESC`.
    pub fn desc(self) -> OrderBy<M> {
        self.order(Direction::Desc)
    }

    fn order(self, direction: Direction) -> OrderBy<M> {
        OrderBy {
            term: OrderTerm::Aggregate {
                qualifier: self.qualifier,
                func: self.func,
                column: self.column,
                distinct: self.distinct,
            },
            direction,
            _model: PhantomData,
        }
    }
}

/// What an `ORDER BY` term sorts by.
#[derive(Clone, Copy)]
enum OrderTerm {
    Column {
        qualifier: fn() -> Cow<'static, str>,
        column: &'static str,
    },
    Aggregate {
        qualifier: fn() -> Cow<'static, str>,
        func: &'static str,
        column: Option<&'static str>,
        distinct: bool,
    },
}

/// An `ORDER BY` term of a select: a column (from [`Order`], i.e.
/// `Book::TITLE.asc()`) or an aggregate (`count(Book::ID).desc()`).
pub struct OrderBy<M> {
    term: OrderTerm,
    direction: Direction,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for OrderBy<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for OrderBy<M> {}

impl<M: Source> From<Order<M>> for OrderBy<M> {
    fn from(order: Order<M>) -> Self {
        OrderBy {
            term: OrderTerm::Column {
                qualifier: M::qualifier,
                column: order.column,
            },
            direction: order.direction,
            _model: PhantomData,
        }
    }
}

impl<M> OrderBy<M> {
    /// The same term, typed for another source set (joined queries keep
    /// their terms untyped once checked).
    pub(crate) fn cast<N>(self) -> OrderBy<N> {
        OrderBy {
            term: self.term,
            direction: self.direction,
            _model: PhantomData,
        }
    }

    pub(crate) fn render(&self, qualify: bool, dialect: &dyn Dialect, sql: &mut String) {
        match self.term {
            OrderTerm::Column { qualifier, column } => {
                column_sql(qualify, qualifier, column, dialect, sql)
            }
            OrderTerm::Aggregate {
                qualifier,
                func,
                column,
                distinct,
            } => aggregate_sql(func, distinct, column, sql, |c, sql| {
                column_sql(qualify, qualifier, c, dialect, sql)
            }),
        }
        sql.push_str(self.direction.sql());
    }
}

/// `COUNT(*)`.
pub fn count_all<M: Source>() -> Aggregate<M, i64> {
    Aggregate::new("COUNT", None, false)
}

/// `COUNT(column)`: the rows where it is not NULL.
pub fn count<M: Source, T>(column: Column<M, T>) -> Aggregate<M, i64> {
    Aggregate::new("COUNT", Some(column.name), false)
}

/// `COUNT(DISTINCT column)`.
pub fn count_distinct<M: Source, T>(column: Column<M, T>) -> Aggregate<M, i64> {
    Aggregate::new("COUNT", Some(column.name), true)
}

/// `SUM(column)`: `None` over no rows.
pub fn sum<M: Source, T: Scalar>(column: Column<M, T>) -> Aggregate<M, Option<T::Inner>> {
    Aggregate::new("SUM", Some(column.name), false)
}

/// `AVG(column)`: `None` over no rows.
pub fn avg<M: Source, T>(column: Column<M, T>) -> Aggregate<M, Option<f64>> {
    Aggregate::new("AVG", Some(column.name), false)
}

/// `MIN(column)`: `None` over no rows.
pub fn min<M: Source, T: Scalar>(column: Column<M, T>) -> Aggregate<M, Option<T::Inner>> {
    Aggregate::new("MIN", Some(column.name), false)
}

/// `MAX(column)`: `None` over no rows.
pub fn max<M: Source, T: Scalar>(column: Column<M, T>) -> Aggregate<M, Option<T::Inner>> {
    Aggregate::new("MAX", Some(column.name), false)
}

/// The one element of `rows`: [`Error::NoResultFound`] without any,
/// [`Error::MultipleResultsFound`] with several (of `table`'s query).
pub(crate) fn exactly_one<T>(mut rows: Vec<T>, table: &'static str) -> Result<T> {
    match rows.len() {
        1 => Ok(rows.remove(0)),
        0 => Err(Error::NoResultFound { table }),
        _ => Err(Error::MultipleResultsFound { table }),
    }
}

/// A row decoded into a tuple of Rust values.
pub trait FromRow: Sized {
    /// How many columns it takes.
    const WIDTH: usize;

    /// Decodes the values of one row (in select order).
    fn from_values(values: Vec<Value>) -> Result<Self>;

    /// Decodes one row (values in select order), taking the values it
    /// keeps out of `row` (left `Value::Null`), so that the backend can
    /// refill the same row for the next one: a query decodes each row as it
    /// arrives, with no list of rows in between. The default moves the
    /// row's values into [`from_values`](Self::from_values); the tuples
    /// take them in place.
    fn take_from_row(row: &mut Row) -> Result<Self> {
        Self::from_values(row.take_all().into_values())
    }
}

/// A one-column row, for subqueries (`column IN (SELECT one column ...)`).
pub trait OneColumn {
    /// The column's type.
    type Value;
}

impl<A> OneColumn for (A,) {
    type Value = A;
}

/// What a typed select lists: a tuple of expressions of model `M`.
pub trait Selection<M> {
    /// The tuple each row decodes to.
    type Row: FromRow;
    /// Appends the select list (each expression named `c0`, `c1`, ...
    /// with `named`, as a subquery in a FROM list needs).
    fn render(&self, named: bool, dialect: &dyn Dialect, sql: &mut String, params: &mut Vec<Value>);
}

/// Takes value `index` of a row of a select list `width` wide out of `row`.
fn decode<T: FromValue>(row: &mut Row, index: usize, width: usize) -> Result<T> {
    if index >= row.len() {
        return Err(Error::invalid(format!(
            "the row has fewer columns than the select list ({width} expected, {} in the row); \
             select as many columns as the tuple has fields",
            row.len()
        )));
    }
    T::from_value(row.take(index)).map_err(|source| Error::Decode {
        table: "(select)",
        column: "(expression)",
        source,
    })
}

macro_rules! tuples {
    ($n:expr; $($name:ident : $i:tt),+) => {
        impl<$($name: FromValue),+> FromRow for ($($name,)+) {
            const WIDTH: usize = $n;
            fn from_values(values: Vec<Value>) -> Result<Self> {
                Self::take_from_row(&mut Row::new(values))
            }

            fn take_from_row(row: &mut Row) -> Result<Self> {
                Ok(($(decode::<$name>(row, $i, $n)?,)+))
            }
        }

        impl<M, $($name: SqlExpr<M>),+> Selection<M> for ($($name,)+) {
            type Row = ($($name::Output,)+);
            fn render(&self, named: bool, dialect: &dyn Dialect, sql: &mut String, params: &mut Vec<Value>) {
                $(
                    if $i > 0 {
                        sql.push_str(", ");
                    }
                    self.$i.render(false, dialect, sql, params);
                    if named {
                        sql.push_str(" AS ");
                        dialect.quote_ident(DERIVED_COLUMNS[$i], sql);
                    }
                )+
            }
        }
    };
}
tuples!(1; A: 0);
tuples!(2; A: 0, B: 1);
tuples!(3; A: 0, B: 1, C: 2);
tuples!(4; A: 0, B: 1, C: 2, D: 3);
tuples!(5; A: 0, B: 1, C: 2, D: 3, E: 4);
tuples!(6; A: 0, B: 1, C: 2, D: 3, E: 4, F: 5);

/// A typed SELECT of expressions of model `M` (see the module docs). Made
/// by `Session::select`; nothing is sent until `all`, `first`, `one`,
/// `scalar` or `scalars`.
pub struct Select<'s, M: Model, S: Selection<M>> {
    session: &'s Session,
    selection: S,
    filters: Vec<Expr>,
    group: Vec<&'static str>,
    having: Vec<Expr>,
    order: Vec<OrderBy<M>>,
    distinct: bool,
    limit: Option<u64>,
}

impl<'s, M: Model, S: Selection<M>> Select<'s, M, S> {
    pub(crate) fn new(session: &'s Session, selection: S) -> Self {
        Select {
            session,
            selection,
            filters: Vec::new(),
            group: Vec::new(),
            having: Vec::new(),
            order: Vec::new(),
            distinct: false,
            limit: None,
        }
    }

    /// Adds a `WHERE` filter; several are ANDed.
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.filters.push(filter.into_expr());
        self
    }

    /// Adds a `GROUP BY` column.
    pub fn group_by<T>(mut self, column: Column<M, T>) -> Self {
        self.group.push(column.name);
        self
    }

    /// Adds a `HAVING` condition (on an aggregate: `count(Book::ID).gt(2)`).
    pub fn having(mut self, filter: Filter<M>) -> Self {
        self.having.push(filter.into_expr());
        self
    }

    /// Adds an `ORDER BY` term: a column (`Book::TITLE.asc()`) or an
    /// aggregate (`count(Book::ID).desc()`).
    pub fn order_by(mut self, order: impl Into<OrderBy<M>>) -> Self {
        self.order.push(order.into());
        self
    }

    /// Correlates this select with the enclosing query's source `Y`
    /// (SQLAlchemy's correlated subquery): `on` compares a column of `M`
    /// with a column of `Y`, which the database takes from the enclosing
    /// query's current row. Use the result in [`exists`](crate::expr::exists),
    /// [`Column::in_select`] or, for one column, as a value of the enclosing
    /// select ([`Correlated::scalar_subquery`]).
    pub fn correlate<Y: Source>(mut self, on: Cross<M, Y>) -> Correlated<'s, M, S, Y> {
        self.filters.push(on.into_expr());
        Correlated {
            select: self,
            _outer: PhantomData,
        }
    }

    /// This select as a subquery in a FROM list, named `anon_<N>`, its
    /// expressions named `c0`, `c1`, ... (SQLAlchemy's `.subquery()`); join
    /// it with [`JoinQuery::join_subquery`](crate::join::JoinQuery::join_subquery)
    /// and read its columns with [`DerivedTable::c`].
    pub fn subquery<const N: u8>(self) -> DerivedTable<N, S::Row> {
        let (sql, params) = self.render_sql(true);
        DerivedTable::new(sql, params)
    }

    /// `SELECT DISTINCT`.
    pub fn distinct(mut self) -> Self {
        self.distinct = true;
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// The SQL and its parameters.
    pub fn sql(&self) -> (String, Vec<Value>) {
        self.render_sql(false)
    }

    fn render_sql(&self, named: bool) -> (String, Vec<Value>) {
        let dialect = self.session.engine().dialect();
        let mut sql = String::from(if self.distinct {
            "SELECT DISTINCT "
        } else {
            "SELECT "
        });
        let mut params = Vec::new();
        self.selection.render(named, dialect, &mut sql, &mut params);
        sql.push_str(" FROM ");
        dialect.quote_ident(M::table().name, &mut sql);
        if !self.filters.is_empty() {
            sql.push_str(" WHERE ");
            Expr::And(self.filters.clone()).render(dialect, &mut sql, &mut params);
        }
        for (n, g) in self.group.iter().enumerate() {
            sql.push_str(if n == 0 { " GROUP BY " } else { ", " });
            dialect.quote_ident(g, &mut sql);
        }
        if !self.having.is_empty() {
            sql.push_str(" HAVING ");
            Expr::And(self.having.clone()).render(dialect, &mut sql, &mut params);
        }
        for (n, o) in self.order.iter().enumerate() {
            sql.push_str(if n == 0 { " ORDER BY " } else { ", " });
            o.render(false, dialect, &mut sql);
        }
        if let Some(l) = self.limit {
            sql.push_str(" LIMIT ?");
            params.push(Value::UInt(l));
        }
        (sql, params)
    }

    /// Every row, decoded (after autoflush).
    ///
    /// Runs on model `M`'s engine. In a sharded session it runs on every
    /// shard (or those the query chooser picks from the filters) and
    /// returns the rows of each shard one after the other: aggregates are
    /// per shard (a `count` gives one row per shard, to be added up), and
    /// limit and ordering apply within each shard.
    pub fn all(self) -> Result<Vec<S::Row>> {
        let (sql, params) = self.sql();
        let mut out = Vec::new();
        for (bind, _) in self
            .session
            .query_targets(M::table(), &self.filters, None)?
        {
            out.extend(
                self.session
                    .query_decoded_on::<S::Row>(bind, &sql, &params)?,
            );
        }
        Ok(out)
    }

    /// The first row, if any.
    pub fn first(mut self) -> Result<Option<S::Row>> {
        self.limit = Some(1);
        Ok(self.all()?.into_iter().next())
    }

    /// Exactly one row: [`Error::NoResultFound`] or
    /// [`Error::MultipleResultsFound`] otherwise.
    pub fn one(mut self) -> Result<S::Row> {
        self.limit = Some(2);
        exactly_one(self.all()?, M::table().name)
    }
}

impl<M: Model, A: SqlExpr<M>> Select<'_, M, (A,)> {
    /// The first column of the first row (`None` without rows).
    pub fn scalar(self) -> Result<Option<A::Output>> {
        Ok(self.first()?.map(|(a,)| a))
    }

    /// The first column of every row.
    pub fn scalars(self) -> Result<Vec<A::Output>> {
        Ok(self.all()?.into_iter().map(|(a,)| a).collect())
    }
}

/// A subquery usable in a filter of the enclosing query's source `Outer`:
/// a plain [`Select`] (any enclosing query), or a [`Correlated`] one (only
/// inside a query of the source it is correlated with).
pub trait Subquery<Outer> {
    /// The tuple of each of its rows.
    type Row;
    /// Its SQL and parameters.
    fn into_sql(self) -> (String, Vec<Value>);
}

impl<M: Model, S: Selection<M>, Outer> Subquery<Outer> for Select<'_, M, S> {
    type Row = S::Row;
    fn into_sql(self) -> (String, Vec<Value>) {
        self.sql()
    }
}

/// A [`Select`] correlated with the enclosing query's source `Y` (made by
/// [`Select::correlate`]).
pub struct Correlated<'s, M: Model, S: Selection<M>, Y> {
    select: Select<'s, M, S>,
    _outer: PhantomData<fn() -> Y>,
}

impl<'s, M: Model, S: Selection<M>, Y: Source> Correlated<'s, M, S, Y> {
    /// Another correlation condition (ANDed).
    pub fn correlate(mut self, on: Cross<M, Y>) -> Self {
        self.select.filters.push(on.into_expr());
        self
    }

    /// Adds a filter on the subquery's own model (ANDed).
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.select.filters.push(filter.into_expr());
        self
    }

    /// The SQL and its parameters.
    pub fn sql(&self) -> (String, Vec<Value>) {
        self.select.sql()
    }
}

impl<M: Model, A: SqlExpr<M>, Y: Source> Correlated<'_, M, (A,), Y> {
    /// The subquery as one value of each row of the enclosing select
    /// (SQLAlchemy's `scalar_subquery()`): `(SELECT COUNT(post.id) FROM post
    /// WHERE post.user_id = user.id)`. Its type is an `Option` of the
    /// column's, since a subquery without rows gives NULL.
    pub fn scalar_subquery(self) -> ScalarSubquery<Y, Option<<A::Output as Scalar>::Inner>>
    where
        A::Output: Scalar,
    {
        let (sql, params) = self.select.sql();
        ScalarSubquery {
            sql,
            params,
            _marker: PhantomData,
        }
    }
}

impl<M: Model, S: Selection<M>, Y> Subquery<Y> for Correlated<'_, M, S, Y> {
    type Row = S::Row;
    fn into_sql(self) -> (String, Vec<Value>) {
        self.select.sql()
    }
}

/// A one-column subquery as a value of each row of the enclosing select, of
/// type `T` (made by [`Correlated::scalar_subquery`]).
pub struct ScalarSubquery<Y, T> {
    sql: String,
    params: Vec<Value>,
    _marker: PhantomData<fn() -> (Y, T)>,
}

impl<Y, T: FromValue> SqlExpr<Y> for ScalarSubquery<Y, T> {
    type Output = T;
    fn render(
        &self,
        _qualify: bool,
        _dialect: &dyn Dialect,
        sql: &mut String,
        params: &mut Vec<Value>,
    ) {
        sql.push('(');
        sql.push_str(&self.sql);
        sql.push(')');
        params.extend(self.params.iter().cloned());
    }
}

impl Session {
    /// A typed SELECT of columns and aggregates of model `M`:
    /// `session.select::<Book, _>((Book::AUTHOR_ID, count(Book::ID)))`.
    pub fn select<M: Model, S: Selection<M>>(&self, selection: S) -> Select<'_, M, S> {
        Select::new(self, selection)
    }

    /// Runs raw SQL (after autoflush) and decodes each row into the tuple
    /// `R` (`(i64, String)`); a row narrower than the tuple, or a value that
    /// does not fit, is an error.
    pub fn query_tuples<R: FromRow>(&self, sql: &str, params: &[Value]) -> Result<Vec<R>> {
        self.query_decoded_on(0, sql, params)
    }
}
