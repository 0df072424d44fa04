//! Typed filters and orderings built from a model's column handles.
//!
//! ```ignore
//! session.query::<User>()
//!     .filter(User::NAME.like("a%").and(User::AGE.ge(18)))
//!     .order_by(User::ID.desc())
//!     .all()?;
//! ```
//!
//! A [`Filter<M>`] only applies to queries of model `M`, and a comparison
//! only accepts values of the column's type: `User::NAME.eq(3)` does not
//! compile. Values are always bound as parameters.

use std::marker::PhantomData;
use std::ops::Not;

use crate::backend::Dialect;
use crate::model::Column;
use crate::value::{ToValue, Value};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => " = ",
            CmpOp::Ne => " <> ",
            CmpOp::Lt => " < ",
            CmpOp::Le => " <= ",
            CmpOp::Gt => " > ",
            CmpOp::Ge => " >= ",
        }
    }
}

/// An untyped boolean SQL expression over one table's columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `column op value` (`= NULL` is rendered `IS NULL`, `<> NULL` `IS NOT NULL`).
    Cmp {
        /// The column name.
        column: &'static str,
        /// The operator.
        op: CmpOp,
        /// The bound value.
        value: Value,
    },
    /// `column [NOT] IN (...)`; an empty list is false (true when negated).
    In {
        /// The column name.
        column: &'static str,
        /// The bound values.
        values: Vec<Value>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `column LIKE pattern`.
    Like {
        /// The column name.
        column: &'static str,
        /// The bound pattern.
        pattern: Value,
    },
    /// `column IS [NOT] NULL`.
    IsNull {
        /// The column name.
        column: &'static str,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// All of these (an empty list is true).
    And(Vec<Expr>),
    /// Any of these (an empty list is false).
    Or(Vec<Expr>),
    /// The negation.
    Not(Box<Expr>),
    /// `FUNC([DISTINCT] column) op value` (`HAVING COUNT(id) > ?`); no
    /// column means `*`.
    Aggregate {
        /// `COUNT`, `SUM`, `AVG`, `MIN` or `MAX`.
        func: &'static str,
        /// The column, or `None` for `*`.
        column: Option<&'static str>,
        /// `DISTINCT`.
        distinct: bool,
        /// The operator.
        op: CmpOp,
        /// The bound value.
        value: Value,
    },
    /// `column IN (subquery)`, the subquery's SQL already rendered.
    InSql {
        /// The column name.
        column: &'static str,
        /// The subquery.
        sql: String,
        /// Its parameters.
        params: Vec<Value>,
    },
    /// `EXISTS (subquery)`.
    Exists {
        /// The subquery.
        sql: String,
        /// Its parameters.
        params: Vec<Value>,
    },
    /// The inner expression with its columns qualified by `table`
    /// (`` `books`.`title` ``): filters of a query that joins several tables.
    Qualified {
        /// The table name, or the alias of the table.
        table: std::borrow::Cow<'static, str>,
        /// The expression over that table's columns.
        inner: Box<Expr>,
    },
    /// `a.x op b.y`: two columns compared, each qualified by its table or
    /// alias (join conditions, correlated subqueries).
    ColumnCmp {
        /// The left column's table or alias.
        left_table: std::borrow::Cow<'static, str>,
        /// The left column.
        left: &'static str,
        /// The operator.
        op: CmpOp,
        /// The right column's table or alias.
        right_table: std::borrow::Cow<'static, str>,
        /// The right column.
        right: &'static str,
    },
    /// `(c1, c2, ...) op (?, ?, ...)`: a row-value comparison (keyset pagination).
    RowCmp {
        /// The column names.
        columns: Vec<&'static str>,
        /// The operator.
        op: CmpOp,
        /// The bound values, one per column.
        values: Vec<Value>,
    },
}

impl Expr {
    /// Appends the SQL for this expression to `sql` and its values to `params`.
    pub fn render(&self, dialect: &dyn Dialect, sql: &mut String, params: &mut Vec<Value>) {
        self.render_in(None, dialect, sql, params)
    }

    /// `render`, with every column qualified by `table` when given.
    fn render_in(
        &self,
        table: Option<&str>,
        dialect: &dyn Dialect,
        sql: &mut String,
        params: &mut Vec<Value>,
    ) {
        let column_sql = |name: &str, sql: &mut String| {
            if let Some(t) = table {
                dialect.quote_ident(t, sql);
                sql.push('.');
            }
            dialect.quote_ident(name, sql);
        };
        match self {
            Expr::Cmp { column, op, value } => {
                column_sql(column, sql);
                match (op, value.is_null()) {
                    (CmpOp::Eq, true) => sql.push_str(" IS NULL"),
                    (CmpOp::Ne, true) => sql.push_str(" IS NOT NULL"),
                    _ => {
                        sql.push_str(op.sql());
                        sql.push('?');
                        params.push(value.clone());
                    }
                }
            }
            Expr::In {
                column,
                values,
                negated,
            } => {
                if values.is_empty() {
                    sql.push_str(if *negated { "1 = 1" } else { "1 = 0" });
                    return;
                }
                column_sql(column, sql);
                sql.push_str(if *negated { " NOT IN (" } else { " IN (" });
                push_placeholders(sql, values.len());
                sql.push(')');
                params.extend(values.iter().cloned());
            }
            Expr::Like { column, pattern } => {
                column_sql(column, sql);
                sql.push_str(" LIKE ?");
                sql.push_str(dialect.like_escape_sql());
                params.push(pattern.clone());
            }
            Expr::IsNull { column, negated } => {
                column_sql(column, sql);
                sql.push_str(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Expr::And(parts) => render_list(parts, " AND ", "1 = 1", table, dialect, sql, params),
            Expr::Or(parts) => render_list(parts, " OR ", "1 = 0", table, dialect, sql, params),
            Expr::Not(inner) => {
                sql.push_str("NOT (");
                inner.render_in(table, dialect, sql, params);
                sql.push(')');
            }
            Expr::Aggregate {
                func,
                column,
                distinct,
                op,
                value,
            } => {
                aggregate_sql(func, *distinct, *column, sql, column_sql);
                sql.push_str(op.sql());
                sql.push('?');
                params.push(value.clone());
            }
            Expr::InSql {
                column,
                sql: sub,
                params: sub_params,
            } => {
                column_sql(column, sql);
                sql.push_str(" IN (");
                sql.push_str(sub);
                sql.push(')');
                params.extend(sub_params.iter().cloned());
            }
            Expr::Exists {
                sql: sub,
                params: sub_params,
            } => {
                sql.push_str("EXISTS (");
                sql.push_str(sub);
                sql.push(')');
                params.extend(sub_params.iter().cloned());
            }
            Expr::Qualified { table: t, inner } => inner.render_in(Some(t), dialect, sql, params),
            Expr::ColumnCmp {
                left_table,
                left,
                op,
                right_table,
                right,
            } => {
                dialect.quote_ident(left_table, sql);
                sql.push('.');
                dialect.quote_ident(left, sql);
                sql.push_str(op.sql());
                dialect.quote_ident(right_table, sql);
                sql.push('.');
                dialect.quote_ident(right, sql);
            }
            Expr::RowCmp {
                columns,
                op,
                values,
            } => {
                sql.push('(');
                for (i, c) in columns.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    column_sql(c, sql);
                }
                sql.push(')');
                sql.push_str(op.sql());
                sql.push('(');
                push_placeholders(sql, values.len());
                sql.push(')');
                params.extend(values.iter().cloned());
            }
        }
    }

    /// Evaluates the expression against one object's values in memory
    /// (`value_of(column)`), as the database would; `None` when it cannot
    /// tell (values of kinds that do not compare, a column it does not know).
    /// Used by `Query::update` with [`Synchronize::Evaluate`](crate::query::Synchronize).
    pub fn evaluate(&self, value_of: &dyn Fn(&str) -> Option<Value>) -> Option<bool> {
        use std::cmp::Ordering;
        let cmp = |a: &Value, b: &Value| -> Option<Ordering> { compare_values(a, b) };
        match self {
            Expr::Cmp { column, op, value } => {
                let v = value_of(column)?;
                if value.is_null() {
                    return match op {
                        CmpOp::Eq => Some(v.is_null()),
                        CmpOp::Ne => Some(!v.is_null()),
                        _ => Some(false),
                    };
                }
                if v.is_null() {
                    return Some(false);
                }
                let o = cmp(&v, value)?;
                Some(match op {
                    CmpOp::Eq => o == Ordering::Equal,
                    CmpOp::Ne => o != Ordering::Equal,
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::Ge => o != Ordering::Less,
                })
            }
            Expr::In {
                column,
                values,
                negated,
            } => {
                let v = value_of(column)?;
                if v.is_null() {
                    return Some(false);
                }
                let mut found = false;
                for candidate in values {
                    if cmp(&v, candidate)? == Ordering::Equal {
                        found = true;
                    }
                }
                Some(found != *negated)
            }
            Expr::Like { column, pattern } => {
                let (Value::Text(v), Value::Text(p)) = (value_of(column)?, pattern.clone()) else {
                    return None;
                };
                Some(like_matches(&v.to_lowercase(), &p.to_lowercase()))
            }
            Expr::IsNull { column, negated } => Some(value_of(column)?.is_null() != *negated),
            Expr::And(parts) => {
                let mut all = true;
                for p in parts {
                    all &= p.evaluate(value_of)?;
                }
                Some(all)
            }
            Expr::Or(parts) => {
                let mut any = false;
                for p in parts {
                    any |= p.evaluate(value_of)?;
                }
                Some(any)
            }
            Expr::Not(inner) => inner.evaluate(value_of).map(|b| !b),
            Expr::Qualified { inner, .. } => inner.evaluate(value_of),
            Expr::RowCmp { .. }
            | Expr::ColumnCmp { .. }
            | Expr::Aggregate { .. }
            | Expr::InSql { .. }
            | Expr::Exists { .. } => None,
        }
    }
}

/// `EXISTS (subquery)`: a filter of model `M` true when the subquery
/// returns a row. The subquery is a [`Select`](crate::select::Select), or a
/// select correlated with `M` ([`Select::correlate`](crate::select::Select::correlate)):
/// `exists(s.select::<Post, _>((Post::ID,)).correlate(Post::USER_ID.eq_col(User::ID)))`.
pub fn exists<M, Q: crate::select::Subquery<M>>(subquery: Q) -> Filter<M> {
    let (sql, params) = subquery.into_sql();
    Filter::new(Expr::Exists { sql, params })
}

/// Orders two values as SQL would, across the integer, float and decimal
/// text spellings; `None` for kinds that do not compare.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    fn number(v: &Value) -> Option<f64> {
        match v {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) => Some(f64::from(*f)),
            Value::Double(d) => Some(*d),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Decimal(d) => d.parse().ok(),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::UInt(x), Value::UInt(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        _ => number(a)?.partial_cmp(&number(b)?),
    }
}

/// SQL `LIKE` with `%` and `_`, a backslash escaping the next character.
fn like_matches(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    // Each pattern element: a literal character, or a wildcard.
    let mut p: Vec<char> = Vec::new();
    let mut literal: Vec<bool> = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                p.push(chars.next().unwrap_or('\\'));
                literal.push(true);
            }
            c => {
                p.push(c);
                literal.push(false);
            }
        }
    }
    // dp[j]: pattern[..j] matches text[..i]
    let mut dp = vec![false; p.len() + 1];
    dp[0] = true;
    for j in 1..=p.len() {
        dp[j] = dp[j - 1] && p[j - 1] == '%' && !literal[j - 1];
    }
    for &c in &t {
        let mut next = vec![false; p.len() + 1];
        for j in 1..=p.len() {
            next[j] = match (p[j - 1], literal[j - 1]) {
                ('%', false) => next[j - 1] || dp[j],
                ('_', false) => dp[j - 1],
                (pc, _) => dp[j - 1] && pc == c,
            };
        }
        dp = next;
    }
    dp[p.len()]
}

fn render_list(
    parts: &[Expr],
    joiner: &str,
    empty: &str,
    table: Option<&str>,
    dialect: &dyn Dialect,
    sql: &mut String,
    params: &mut Vec<Value>,
) {
    if parts.is_empty() {
        sql.push_str(empty);
        return;
    }
    sql.push('(');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            sql.push_str(joiner);
        }
        part.render_in(table, dialect, sql, params);
    }
    sql.push(')');
}

/// Appends `FUNC([DISTINCT] column)`, `*` without a column; `column_sql`
/// writes the column (qualified or not).
pub(crate) fn aggregate_sql(
    func: &str,
    distinct: bool,
    column: Option<&str>,
    sql: &mut String,
    column_sql: impl FnOnce(&str, &mut String),
) {
    sql.push_str(func);
    sql.push('(');
    if distinct {
        sql.push_str("DISTINCT ");
    }
    match column {
        Some(c) => column_sql(c, sql),
        None => sql.push('*'),
    }
    sql.push(')');
}

/// Appends `?, ?, ...` (`n` placeholders).
pub fn push_placeholders(sql: &mut String, n: usize) {
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('?');
    }
}

/// A filter on model `M`'s table. Combine with [`Filter::and`],
/// [`Filter::or`] and `!` (or [`Filter::not`]).
pub struct Filter<M> {
    expr: Expr,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Filter<M> {
    fn clone(&self) -> Self {
        Filter::new(self.expr.clone())
    }
}

impl<M> std::fmt::Debug for Filter<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.expr.fmt(f)
    }
}

impl<M> Filter<M> {
    fn new(expr: Expr) -> Self {
        Filter {
            expr,
            _model: PhantomData,
        }
    }

    /// A filter of model `M` from an expression over its table (used by
    /// the select builder's aggregates).
    pub(crate) fn from_expr(expr: Expr) -> Self {
        Filter::new(expr)
    }

    /// Both this and `other`.
    pub fn and(self, other: Filter<M>) -> Filter<M> {
        match self.expr {
            Expr::And(mut parts) => {
                parts.push(other.expr);
                Filter::new(Expr::And(parts))
            }
            e => Filter::new(Expr::And(vec![e, other.expr])),
        }
    }

    /// This or `other`.
    pub fn or(self, other: Filter<M>) -> Filter<M> {
        match self.expr {
            Expr::Or(mut parts) => {
                parts.push(other.expr);
                Filter::new(Expr::Or(parts))
            }
            e => Filter::new(Expr::Or(vec![e, other.expr])),
        }
    }

    /// The untyped expression.
    pub fn into_expr(self) -> Expr {
        self.expr
    }

    /// The untyped expression, borrowed.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

impl<M> Not for Filter<M> {
    type Output = Filter<M>;
    fn not(self) -> Filter<M> {
        Filter::new(Expr::Not(Box::new(self.expr)))
    }
}

/// All of `filters` (true when empty).
pub fn and_all<M>(filters: impl IntoIterator<Item = Filter<M>>) -> Filter<M> {
    Filter::new(Expr::And(filters.into_iter().map(|f| f.expr).collect()))
}

/// Any of `filters` (false when empty).
pub fn or_any<M>(filters: impl IntoIterator<Item = Filter<M>>) -> Filter<M> {
    Filter::new(Expr::Or(filters.into_iter().map(|f| f.expr).collect()))
}

/// A value that may be compared with a column whose field type is `T`:
/// `T` itself, `&str` for text columns, and the inner type for `Option` columns.
pub trait ExprValue<T> {
    /// The value to bind.
    fn into_value(self) -> Value;
}

impl<T: ToValue> ExprValue<T> for T {
    fn into_value(self) -> Value {
        self.to_value()
    }
}

impl<T: ToValue> ExprValue<Option<T>> for T {
    fn into_value(self) -> Value {
        self.to_value()
    }
}

impl ExprValue<String> for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ExprValue<Option<String>> for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ExprValue<String> for &String {
    fn into_value(self) -> Value {
        Value::Text(self.clone())
    }
}

impl ExprValue<Option<String>> for &String {
    fn into_value(self) -> Value {
        Value::Text(self.clone())
    }
}

/// Field types whose columns support `LIKE`.
pub trait TextColumn {}
impl TextColumn for String {}
impl TextColumn for Option<String> {}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl Direction {
    /// ` ASC` or ` DESC`, as appended after a column in `ORDER BY`.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Direction::Asc => " ASC",
            Direction::Desc => " DESC",
        }
    }
}

/// An `ORDER BY` term for model `M`.
pub struct Order<M> {
    /// The column name.
    pub column: &'static str,
    /// The direction.
    pub direction: Direction,
    _model: PhantomData<fn() -> M>,
}

impl<M> Order<M> {
    /// An ordering term on column `column`.
    pub(crate) fn new(column: &'static str, direction: Direction) -> Self {
        Order {
            column,
            direction,
            _model: PhantomData,
        }
    }
}

impl<M> Clone for Order<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Order<M> {}

/// `column = value` (or `column = other op value`) in a bulk
/// `Query::update`, made by `Column::set` or `Column::set_expr`.
pub struct Assignment<M> {
    /// The column's index in the table.
    pub index: usize,
    /// The column name.
    pub column: &'static str,
    /// The new value, or the operand of `arith`.
    pub value: Value,
    /// `Some((source column, operator))`: the new value is
    /// `source operator value` (`SET age = age - ?`), computed by the server.
    pub arith: Option<(&'static str, ArithOp)>,
    _model: PhantomData<fn() -> M>,
}

/// An arithmetic operator of `Column + value` expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
}

impl ArithOp {
    /// ` + `, ` - ` or ` * `.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            ArithOp::Add => " + ",
            ArithOp::Sub => " - ",
            ArithOp::Mul => " * ",
        }
    }

    /// `a op b` computed in memory as the database would for integers and
    /// floats; `None` for other kinds or on overflow (the caller then
    /// cannot know the value the server computed).
    pub(crate) fn apply(self, a: &Value, b: &Value) -> Option<Value> {
        fn float(v: &Value) -> Option<f64> {
            match v {
                Value::Int(i) => Some(*i as f64),
                Value::UInt(u) => Some(*u as f64),
                Value::Float(f) => Some(f64::from(*f)),
                Value::Double(d) => Some(*d),
                _ => None,
            }
        }
        let int = |x: i64, y: i64| match self {
            ArithOp::Add => x.checked_add(y),
            ArithOp::Sub => x.checked_sub(y),
            ArithOp::Mul => x.checked_mul(y),
        };
        match (a, b) {
            (Value::Null, _) | (_, Value::Null) => Some(Value::Null),
            (Value::Int(x), Value::Int(y)) => int(*x, *y).map(Value::Int),
            (Value::UInt(x), Value::Int(y)) => int(i64::try_from(*x).ok()?, *y).map(Value::Int),
            (Value::Int(x), Value::UInt(y)) => int(*x, i64::try_from(*y).ok()?).map(Value::Int),
            _ => {
                let (x, y) = (float(a)?, float(b)?);
                Some(Value::Double(match self {
                    ArithOp::Add => x + y,
                    ArithOp::Sub => x - y,
                    ArithOp::Mul => x * y,
                }))
            }
        }
    }
}

impl<M, T> Column<M, T> {
    /// `SET column = value` for a bulk `Query::update`; the value has the
    /// column's type.
    pub fn set(self, value: impl ExprValue<T>) -> Assignment<M> {
        Assignment {
            index: self.index,
            column: self.name,
            value: value.into_value(),
            arith: None,
            _model: PhantomData,
        }
    }

    /// `SET column = other op value` for a bulk `Query::update`, computed
    /// by the server from each row's own value: `User::AGE.set_expr(User::AGE - 10)`.
    /// With `Synchronize::Evaluate` the session computes the same in memory
    /// for its objects (integers and floats).
    pub fn set_expr(self, expr: crate::select::Arith<M, T>) -> Assignment<M> {
        let (source, op, value) = expr.into_parts();
        Assignment {
            index: self.index,
            column: self.name,
            value,
            arith: Some((source, op)),
            _model: PhantomData,
        }
    }

    fn cmp(self, op: CmpOp, value: Value) -> Filter<M> {
        Filter::new(Expr::Cmp {
            column: self.name,
            op,
            value,
        })
    }

    /// `column = value` (`IS NULL` when the value is `None`).
    pub fn eq(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Eq, value.into_value())
    }

    /// `column <> value` (`IS NOT NULL` when the value is `None`).
    pub fn ne(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Ne, value.into_value())
    }

    /// `column < value`.
    pub fn lt(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Lt, value.into_value())
    }

    /// `column <= value`.
    pub fn le(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Le, value.into_value())
    }

    /// `column > value`.
    pub fn gt(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Gt, value.into_value())
    }

    /// `column >= value`.
    pub fn ge(self, value: impl ExprValue<T>) -> Filter<M> {
        self.cmp(CmpOp::Ge, value.into_value())
    }

    /// `low <= column AND column <= high` (SQL's `BETWEEN`).
    pub fn between(self, low: impl ExprValue<T>, high: impl ExprValue<T>) -> Filter<M> {
        Filter::new(Expr::And(vec![
            Expr::Cmp {
                column: self.name,
                op: CmpOp::Ge,
                value: low.into_value(),
            },
            Expr::Cmp {
                column: self.name,
                op: CmpOp::Le,
                value: high.into_value(),
            },
        ]))
    }

    /// `column IN (SELECT ...)`: a subquery of one column of a compatible
    /// type (`Book::AUTHOR_ID.in_select(s.select::<Author, _>((Author::ID,)).filter(...))`),
    /// possibly correlated with `M` ([`Select::correlate`](crate::select::Select::correlate)).
    pub fn in_select<Q: crate::select::Subquery<M>>(self, subquery: Q) -> Filter<M>
    where
        Q::Row: crate::select::OneColumn,
        <Q::Row as crate::select::OneColumn>::Value:
            crate::relationship::KeyField<<T as crate::select::Scalar>::Inner>,
        T: crate::select::Scalar,
    {
        let (sql, params) = subquery.into_sql();
        Filter::new(Expr::InSql {
            column: self.name,
            sql,
            params,
        })
    }

    /// `column IN (values...)`; an empty list matches nothing.
    pub fn in_<V: ExprValue<T>>(self, values: impl IntoIterator<Item = V>) -> Filter<M> {
        Filter::new(Expr::In {
            column: self.name,
            values: values.into_iter().map(ExprValue::into_value).collect(),
            negated: false,
        })
    }

    /// `column NOT IN (values...)`; an empty list matches everything.
    pub fn not_in<V: ExprValue<T>>(self, values: impl IntoIterator<Item = V>) -> Filter<M> {
        Filter::new(Expr::In {
            column: self.name,
            values: values.into_iter().map(ExprValue::into_value).collect(),
            negated: true,
        })
    }

    /// `ORDER BY column ASC`.
    pub fn asc(self) -> Order<M> {
        Order {
            column: self.name,
            direction: Direction::Asc,
            _model: PhantomData,
        }
    }

    /// `ORDER BY column DESC`.
    pub fn desc(self) -> Order<M> {
        Order {
            column: self.name,
            direction: Direction::Desc,
            _model: PhantomData,
        }
    }
}

impl<M, T: TextColumn> Column<M, T> {
    /// `column LIKE pattern` (`%` and `_` are wildcards, a backslash
    /// escapes them; MySQL's rules, on SQLite too).
    pub fn like(self, pattern: &str) -> Filter<M> {
        Filter::new(Expr::Like {
            column: self.name,
            pattern: Value::Text(pattern.to_owned()),
        })
    }

    /// `column LIKE 'text%'`, `text` taken literally (its `%`, `_` and
    /// backslashes escaped): SQLAlchemy's `startswith`.
    pub fn starts_with(self, text: &str) -> Filter<M> {
        self.like(&format!("{}%", escape_like(text)))
    }

    /// `column LIKE '%text'`, `text` taken literally: SQLAlchemy's `endswith`.
    pub fn ends_with(self, text: &str) -> Filter<M> {
        self.like(&format!("%{}", escape_like(text)))
    }

    /// `column LIKE '%text%'`, `text` taken literally: SQLAlchemy's `contains`.
    pub fn contains(self, text: &str) -> Filter<M> {
        self.like(&format!("%{}%", escape_like(text)))
    }
}

impl<M, T> Column<M, T> {
    /// `column IS NULL` (also for a column declared NOT NULL, which is NULL
    /// in the rows an outer join adds without a match).
    pub fn is_null(self) -> Filter<M> {
        Filter::new(Expr::IsNull {
            column: self.name,
            negated: false,
        })
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(self) -> Filter<M> {
        Filter::new(Expr::IsNull {
            column: self.name,
            negated: true,
        })
    }
}

/// A condition over two sources, `X` and `Y`: a column of each compared
/// (`Post::USER_ID.eq_col(User::ID)`), both qualified by their table or
/// alias. For join conditions (`JoinQuery::join_on`), filters of a joined
/// query, and correlated subqueries (`Select::correlate`).
pub struct Cross<X, Y> {
    expr: Expr,
    _sources: PhantomData<fn() -> (X, Y)>,
}

impl<X, Y> Clone for Cross<X, Y> {
    fn clone(&self) -> Self {
        Cross {
            expr: self.expr.clone(),
            _sources: PhantomData,
        }
    }
}

impl<X, Y> std::fmt::Debug for Cross<X, Y> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.expr.fmt(f)
    }
}

impl<X, Y> Cross<X, Y> {
    /// Both this and `other`.
    pub fn and(self, other: Cross<X, Y>) -> Cross<X, Y> {
        let expr = match self.expr {
            Expr::And(mut parts) => {
                parts.push(other.expr);
                Expr::And(parts)
            }
            e => Expr::And(vec![e, other.expr]),
        };
        Cross {
            expr,
            _sources: PhantomData,
        }
    }

    /// The untyped expression (columns already qualified).
    pub fn into_expr(self) -> Expr {
        self.expr
    }

    /// The untyped expression, borrowed.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

macro_rules! column_cmp {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)+) => {
        impl<M: crate::source::Source, T: crate::select::Scalar> Column<M, T> {
            fn cross<N: crate::source::Source, U>(self, op: CmpOp, other: Column<N, U>) -> Cross<M, N> {
                Cross {
                    expr: Expr::ColumnCmp {
                        left_table: M::qualifier(),
                        left: self.name,
                        op,
                        right_table: N::qualifier(),
                        right: other.name,
                    },
                    _sources: PhantomData,
                }
            }
            $(
                $(#[$doc])*
                pub fn $name<N: crate::source::Source, U>(self, other: Column<N, U>) -> Cross<M, N>
                where
                    U: crate::select::Scalar<Inner = T::Inner>,
                {
                    self.cross($op, other)
                }
            )+
        }
    };
}
column_cmp! {
    /// `column = other` (columns of the same type, nullable or not; of any
    /// two sources: `Post::USER_ID.eq_col(User::ID)`).
    eq_col => CmpOp::Eq;
    /// `column <> other`.
    ne_col => CmpOp::Ne;
    /// `column < other`.
    lt_col => CmpOp::Lt;
    /// `column <= other`.
    le_col => CmpOp::Le;
    /// `column > other`.
    gt_col => CmpOp::Gt;
    /// `column >= other`.
    ge_col => CmpOp::Ge;
}

/// `text` with the `LIKE` wildcards and the escape character escaped.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
