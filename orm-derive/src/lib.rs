//! `#[derive(Model)]` for the `orm` crate.
//!
//! Use it through the facade (`use orm::Model;`), never directly: the
//! generated code refers to the runtime as `::orm::__private`.
//!
//! The macro works in three steps: `ast.rs` reads the struct and its
//! `#[orm(...)]` attributes (`attr.rs`) into a small description, `check.rs`
//! applies the rules across fields, and `expand.rs` generates the code. Every
//! mistake found on the way is collected (all of them are reported at once);
//! when there are any, the macro emits them plus stub impls (`fallback.rs`) so
//! that the user sees only the real diagnostics.

mod ast;
mod attr;
mod case;
mod check;
mod ctxt;
mod expand;
mod fallback;

use proc_macro::TokenStream;

/// Maps a struct with named fields to a table and implements `orm::Model`
/// for it.
///
/// ```ignore
/// use orm::Model;
///
/// #[derive(Debug, Clone, Model)]
/// #[orm(table = "users")]
/// pub struct User {
///     #[orm(primary_key, auto_increment)]
///     pub id: Option<i64>,
///     #[orm(unique, sql_type = "VARCHAR(64)")]
///     pub name: String,
///     #[orm(column = "mail")]
///     pub email: Option<String>,
///     #[orm(version)]
///     pub version: i32,
///     #[orm(skip)]
///     pub cached_score: u32,
/// }
///
/// // Typed column handles, one per persisted field:
/// let _ = User::NAME; // orm::Column<User, String>, column "name"
/// ```
///
/// (The examples here are not compiled; the same code is tested in the `orm`
/// crate's `tests/derive.rs`.)
///
/// # Struct attributes
///
/// - `#[orm(table = "name")]`: the table name. The default is the struct's
///   name in snake_case, not pluralised: `BlogPost` maps to `blog_post`,
///   `HTTPRequest` to `http_request`.
/// - `#[orm(crate = "path")]`: where the `orm` crate is, as serde's
///   `#[serde(crate = "...")]`. The generated code names the runtime
///   `::orm::__private` by default; a program that renamed the dependency
///   (`db = { package = "orm", ... }` in Cargo.toml) writes
///   `#[orm(crate = "::db")]`, and a crate that re-exports `orm` for its
///   users can point at the re-export (`#[orm(crate = "my_lib::orm")]`). The
///   path is resolved where the struct is defined.
/// - `#[orm(events)]`: the struct implements `orm::ModelEvents` (its
///   `before_insert`, `after_update`, `on_load`, ... methods), and the
///   session calls those methods. Without it the trait's methods are never
///   called; with it and no `impl ModelEvents`, the derive does not compile.
///
/// # Field attributes
///
/// Several may be written in one `#[orm(...)]`, or spread over several; each
/// may appear once per field.
///
/// - `primary_key`: the field is (part of) the primary key. Mark several fields
///   for a composite key; the key order is the field order. Every model needs
///   a primary key.
/// - `auto_increment`: the database generates the value on insert. The field
///   must be an `Option` of an integer type (`Option<i64>`, `Option<u32>`,
///   ...): it is `None` until the row is inserted. `auto_increment` **implies
///   `primary_key`** (writing both is fine). At most one field per model.
/// - `column = "name"`: the column name; the default is the field name (a raw
///   identifier `r#type` maps to `type`). Two fields may not map to the same
///   column (compared case-insensitively, as MySQL does).
/// - `version`: an optimistic-lock counter, bumped by every UPDATE; an UPDATE
///   that finds another version fails with `Error::StaleData`. The field must
///   be an integer type (not an `Option`), and not part of the key. At most
///   one per model.
/// - `references = Parent`: a foreign key to the primary key of another model
///   (any path to a type that implements `Model`, the model itself included).
/// - `sql_type = "VARCHAR(64)"`: the DDL type used by `create_all`, verbatim,
///   instead of the one derived from the field's Rust type.
/// - `unique`: a UNIQUE index on the column. `index`: a plain index.
/// - `skip`: the field is not persisted; it is set to `Default::default()` when
///   a row is loaded, so its type must implement `Default`. It cannot be
///   combined with any other attribute.
/// - `default = expr`: the value INSERTed when the field is `None` (the field
///   must be an `Option`; `expr` converts with `Into` to the type inside it,
///   so `default = "open"` fits an `Option<String>`). The expression is
///   evaluated at each INSERT (`default = next_code()` gives each row its
///   own), and the flush writes the value into the object.
/// - `on_update = expr`: sent with every UPDATE of the row that does not set
///   this column itself (converted with `Into` like `default`), and written
///   into the object. An object with no other change is not UPDATEd.
/// - `server_default = "SQL"`: `DEFAULT SQL` in the DDL. A `None` field is left
///   out of the INSERT so that the server fills it in; the value comes back in
///   the same statement with `RETURNING` (MariaDB 10.5+, SQLite), else the
///   object is expired and loads it at its next use. Not with `default`.
/// - `server_on_update = "SQL"`: `ON UPDATE SQL` in the DDL (MySQL, MariaDB;
///   SQLite has no such clause, so it is left out there). An UPDATE of the
///   row expires the object, so the server's value loads at next use. Not
///   with `on_update`.
///
/// # Field types
///
/// A persisted field's type must implement `orm::ToValue`, `orm::FromValue`
/// and `orm::SqlType`: the integers, `f32`, `f64`, `bool`, `String`,
/// `Vec<u8>`, the `orm::value` date types, `Option<T>` of any of those
/// (nullable column), and with crate features chrono, rust_decimal,
/// serde_json and uuid types. A field of another type is a compile error
/// pointing at the type.
///
/// # What is generated
///
/// - a `static` `TableDef` describing the table (`<User as Model>::table()`);
/// - `impl Model for User` (reading rows in column order, writing values,
///   getting and setting one column by index);
/// - one associated constant per persisted field, named after the field in
///   SCREAMING_SNAKE_CASE, with the struct's visibility:
///   `pub const NAME: orm::Column<User, String>`.
///
/// The struct must have named fields and no generic parameters, and must
/// implement `Clone` (a `Model` requirement).
#[proc_macro_derive(Model, attributes(orm))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input).into()
}
