//! What a query reads rows from, and the name that qualifies its columns:
//! a model's table, an alias of it (a self-join: SQLAlchemy's `aliased()`),
//! or a subquery in the FROM list (SQLAlchemy's `.subquery()`).
//!
//! ```ignore
//! type Parent = Aliased<Node, 1>;                    // `node` AS `node_1`
//! let children = session.query::<Node>()
//!     .join(Node::PARENT.alias::<1>())               // JOIN node AS node_1 ON node_1.id = node.parent_id
//!     .filter(Parent::col(Node::NAME).eq("root"))
//!     .all()?;
//! ```
//!
//! Each source is its own type, so the compiler checks that every column a
//! query uses belongs to one of the sources the query reads.

use std::borrow::Cow;
use std::marker::PhantomData;

use crate::model::{Column, Model, TableDef};

/// A FROM-list entry: its columns are qualified by [`Source::qualifier`].
pub trait Source: 'static {
    /// The name that qualifies its columns: the table name, or the alias.
    fn qualifier() -> Cow<'static, str>;
}

impl<M: Model> Source for M {
    fn qualifier() -> Cow<'static, str> {
        Cow::Borrowed(M::table().name)
    }
}

/// A source a query can join: a model's table, or an alias of one.
pub trait Joinable: Source {
    /// The model whose rows it holds.
    type Model: Model;
    /// The alias it is joined under, if any (`node_1`).
    fn alias() -> Option<Cow<'static, str>>;
    /// Its table.
    fn table() -> &'static TableDef {
        <Self::Model as Model>::table()
    }
}

impl<M: Model> Joinable for M {
    type Model = M;
    fn alias() -> Option<Cow<'static, str>> {
        None
    }
}

/// Model `M`'s table under the alias `<table>_<N>` (`node_1`): a second
/// copy of a table in one query (self-joins, or one table joined along two
/// relationships). `N` tells the copies apart; each is its own type, so a
/// filter on the alias and a filter on the table are not confused.
pub struct Aliased<M, const N: u8>(PhantomData<fn() -> M>);

impl<M: Model, const N: u8> Aliased<M, N> {
    /// `column` of the alias (`node_1.name`).
    pub const fn col<T>(column: Column<M, T>) -> Column<Aliased<M, N>, T> {
        Column::new(column.index, column.name)
    }
}

impl<M: Model, const N: u8> Source for Aliased<M, N> {
    fn qualifier() -> Cow<'static, str> {
        Cow::Owned(format!("{}_{}", M::table().name, N))
    }
}

impl<M: Model, const N: u8> Joinable for Aliased<M, N> {
    type Model = M;
    fn alias() -> Option<Cow<'static, str>> {
        Some(Self::qualifier())
    }
}

/// A subquery in a FROM list, named `anon_<N>`, whose rows are the tuple
/// `R`; made by [`Select::subquery`](crate::select::Select::subquery), its
/// columns are `c0`, `c1`, ... ([`DerivedTable::c`]).
pub struct Derived<const N: u8, R>(PhantomData<fn() -> R>);

impl<const N: u8, R: 'static> Source for Derived<N, R> {
    fn qualifier() -> Cow<'static, str> {
        Cow::Owned(format!("anon_{N}"))
    }
}

/// The names of a subquery's columns, by position.
pub(crate) const DERIVED_COLUMNS: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];

/// A subquery ready to be joined ([`JoinQuery::join_subquery`](crate::join::JoinQuery::join_subquery)):
/// its SQL, with each selected expression named `c0`, `c1`, ...
pub struct DerivedTable<const N: u8, R> {
    pub(crate) sql: String,
    pub(crate) params: Vec<crate::value::Value>,
    _row: PhantomData<fn() -> R>,
}

impl<const N: u8, R> DerivedTable<N, R> {
    pub(crate) fn new(sql: String, params: Vec<crate::value::Value>) -> Self {
        DerivedTable {
            sql,
            params,
            _row: PhantomData,
        }
    }

    /// Column `K` of the subquery's rows (`anon_1.c0`), typed as the
    /// subquery selected it.
    pub fn c<const K: usize>(&self) -> Column<Derived<N, R>, <R as Nth<K>>::Output>
    where
        R: Nth<K>,
    {
        Column::new(K, DERIVED_COLUMNS[K])
    }
}

/// Element `K` of a tuple type.
pub trait Nth<const K: usize> {
    /// Its type.
    type Output;
}

macro_rules! nth {
    ($($k:literal => $t:ident in ($($all:ident),+);)+) => {$(
        impl<$($all),+> Nth<$k> for ($($all,)+) {
            type Output = $t;
        }
    )+};
}
nth! {
    0 => A in (A);
    0 => A in (A, B);
    1 => B in (A, B);
    0 => A in (A, B, C);
    1 => B in (A, B, C);
    2 => C in (A, B, C);
    0 => A in (A, B, C, D);
    1 => B in (A, B, C, D);
    2 => C in (A, B, C, D);
    3 => D in (A, B, C, D);
    0 => A in (A, B, C, D, E);
    1 => B in (A, B, C, D, E);
    2 => C in (A, B, C, D, E);
    3 => D in (A, B, C, D, E);
    4 => E in (A, B, C, D, E);
    0 => A in (A, B, C, D, E, F);
    1 => B in (A, B, C, D, E, F);
    2 => C in (A, B, C, D, E, F);
    3 => D in (A, B, C, D, E, F);
    4 => E in (A, B, C, D, E, F);
    5 => F in (A, B, C, D, E, F);
}
