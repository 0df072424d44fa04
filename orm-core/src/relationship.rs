//! Relationships between models: what `#[derive(Model)]` records about
//! them ([`RelationshipDef`]), the field types that declare them
//! ([`ToOne`], [`ToMany`]) and the typed handles used to reach related
//! objects ([`One`], [`Many`]).
//!
//! ```ignore
//! #[derive(Debug, Clone, Default, Model)]
//! struct Author {
//!     #[orm(primary_key, auto_increment)]
//!     id: Option<i64>,
//!     name: String,
//!     #[orm(one_to_many, key = "author_id", back_populates = "author", cascade = "all, delete-orphan")]
//!     books: ToMany<Book>,
//! }
//!
//! #[derive(Debug, Clone, Default, Model)]
//! struct Book {
//!     #[orm(primary_key, auto_increment)]
//!     id: Option<i64>,
//!     #[orm(references = Author)]
//!     author_id: Option<i64>,
//!     title: String,
//!     #[orm(many_to_one, back_populates = "books")]
//!     author: ToOne<Author>,
//! }
//!
//! let author = s.add(Author { name: "Le Guin".into(), ..Default::default() })?;
//! let book = s.add(Book { title: "Earthsea".into(), ..Default::default() })?;
//! author.push(Author::BOOKS, &book)?;      // or book.set(Book::AUTHOR, Some(&author))?
//! s.commit()?;                             // one flush: the author's INSERT, then the book's with its key
//! let authors = s.query::<Author>().load(Author::BOOKS).all()?;  // 2 SELECTs for any number of authors
//! ```
//!
//! The relationship fields of a model value hold nothing: a value stays
//! plain `Clone + Send` data. The live links belong to the objects' handles
//! (see `Obj::one`, `Obj::many`, `Obj::set`, `Obj::push`, `Obj::remove`).

use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;

use crate::model::TableDef;

/// What kind of relationship a field declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    /// This model holds the foreign key (`Book.author`): at most one target.
    ManyToOne,
    /// The target holds the foreign key (`Author.books`): a collection.
    OneToMany,
    /// The target holds the foreign key, at most one target row (`User.profile`).
    OneToOne,
    /// Rows of both models are linked through an association table
    /// ([`RelationshipDef::secondary`]), SQLAlchemy's `secondary`.
    ManyToMany,
}

/// The association table of a many-to-many relationship. `create_all`
/// creates it (both keys NOT NULL, the pair the primary key, each a foreign
/// key with `ON DELETE CASCADE`).
#[derive(Debug)]
pub struct Secondary {
    /// The table's name.
    pub table: &'static str,
    /// Its column holding this model's key.
    pub local: &'static str,
    /// Its column holding the target's key.
    pub remote: &'static str,
}

/// SQLAlchemy's cascades, per relationship (`cascade = "all, delete-orphan"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cascade(u8);

impl Cascade {
    /// Adding (or merging) the parent adds the related objects. On by default.
    pub const SAVE_UPDATE: Cascade = Cascade(1);
    /// `merge` follows the relationship. On by default.
    pub const MERGE: Cascade = Cascade(2);
    /// Deleting the parent deletes the related objects.
    pub const DELETE: Cascade = Cascade(4);
    /// A child removed from its parent's collection is deleted.
    pub const DELETE_ORPHAN: Cascade = Cascade(8);
    /// Expunging the parent expunges the related objects.
    pub const EXPUNGE: Cascade = Cascade(16);
    /// No cascade at all (`cascade = "none"`).
    pub const NONE: Cascade = Cascade(0);
    /// SQLAlchemy's default: `save-update, merge`.
    pub const DEFAULT: Cascade = Cascade(1 | 2);
    /// `all`: `save-update, merge, delete, expunge` (not `delete-orphan`).
    pub const ALL: Cascade = Cascade(1 | 2 | 4 | 16);

    /// The union of two sets.
    pub const fn with(self, other: Cascade) -> Cascade {
        Cascade(self.0 | other.0)
    }

    /// Whether every cascade of `other` is in this set.
    pub const fn contains(self, other: Cascade) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits, for generated code.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// From bits, for generated code.
    pub const fn from_bits(bits: u8) -> Cascade {
        Cascade(bits & 31)
    }

    /// Parses SQLAlchemy's spelling: a comma-separated list of `all`,
    /// `none`, `save-update`, `merge`, `delete`, `delete-orphan`,
    /// `expunge` (`refresh-expire` is accepted and ignored).
    pub fn parse(text: &str) -> Result<Cascade, String> {
        let mut out = Cascade::NONE;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            out = out.with(match word {
                "all" => Cascade::ALL,
                "none" => Cascade::NONE,
                "save-update" => Cascade::SAVE_UPDATE,
                "merge" => Cascade::MERGE,
                "delete" => Cascade::DELETE,
                "delete-orphan" => Cascade::DELETE_ORPHAN,
                "expunge" => Cascade::EXPUNGE,
                "refresh-expire" => Cascade::NONE,
                other => {
                    return Err(format!(
                        "unknown cascade `{other}`; expected a comma-separated list of: all, none, \
                         save-update, merge, delete, delete-orphan, expunge"
                    ))
                }
            });
        }
        Ok(out)
    }
}

/// How a relationship loads when first accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lazy {
    /// One SELECT on first access (the default).
    Select,
    /// An access that would load is an error naming the relationship (the
    /// N+1 guard): load it eagerly with `Query::load` instead.
    Raise,
}

/// One relationship of a model, as the derive records it.
#[derive(Debug)]
pub struct RelationshipDef {
    /// The field name.
    pub name: &'static str,
    /// Which side holds the foreign key, and how many targets.
    pub kind: RelKind,
    /// The target model's table.
    pub target: fn() -> &'static TableDef,
    /// The target model's type.
    pub target_type: fn() -> TypeId,
    /// The foreign-key field: on this model for [`RelKind::ManyToOne`], on
    /// the target otherwise. It refers to the other side's primary key,
    /// which must be a single column.
    pub key: &'static str,
    /// The relationship on the target that mirrors this one, kept in sync in
    /// memory (SQLAlchemy's `back_populates`).
    pub back_populates: Option<&'static str>,
    /// The cascades.
    pub cascade: Cascade,
    /// Trust the database's `ON DELETE` to deal with the related rows:
    /// deleting the parent loads nothing.
    pub passive_deletes: bool,
    /// How it loads on access.
    pub lazy: Lazy,
    /// Loads rows of the target model through a session's identity map
    /// (`loader::<Target>`, generated).
    pub load: Loader,
    /// The association table of a many-to-many relationship.
    pub secondary: Option<Secondary>,
    /// Many-to-one only: the foreign key is set by a second UPDATE after
    /// both rows are INSERTed (SQLAlchemy's `post_update`), which resolves
    /// two rows that point at each other.
    pub post_update: bool,
}

/// Loads rows of one model through a session's identity map: see [`loader`].
pub type Loader =
    fn(&crate::session::Session, &str, &[crate::value::Value]) -> crate::Result<LoadedRows>;

/// Objects loaded by a [`Loader`], type-erased. Opaque.
pub struct LoadedRows(pub(crate) Vec<std::rc::Rc<dyn crate::session::AnyObj>>);

/// The [`Loader`] of model `T`, for generated code.
pub fn loader<T: crate::model::Model>(
    session: &crate::session::Session,
    sql: &str,
    params: &[crate::value::Value],
) -> crate::Result<LoadedRows> {
    crate::session::load_erased::<T>(session, sql, params)
}

impl RelationshipDef {
    /// The table that holds the foreign key.
    pub fn fk_table(&self, owner: &'static TableDef) -> &'static TableDef {
        match self.kind {
            RelKind::ManyToOne | RelKind::ManyToMany => owner,
            RelKind::OneToMany | RelKind::OneToOne => (self.target)(),
        }
    }

    /// The foreign-key column's index in [`fk_table`](Self::fk_table).
    pub fn fk_column(&self, owner: &'static TableDef) -> Option<usize> {
        let table = self.fk_table(owner);
        table.columns.iter().position(|c| c.field == self.key)
    }

    /// Whether the target is a collection.
    pub fn is_collection(&self) -> bool {
        matches!(self.kind, RelKind::OneToMany | RelKind::ManyToMany)
    }
}

/// The field type of a to-one relationship (many-to-one, one-to-one). It
/// holds nothing: the related object is reached through the handle
/// (`obj.one(Model::FIELD)`).
pub struct ToOne<T>(PhantomData<fn() -> T>);

/// The field type of a one-to-many relationship. It holds nothing: the
/// related objects are reached through the handle (`obj.many(Model::FIELD)`).
pub struct ToMany<T>(PhantomData<fn() -> T>);

macro_rules! marker {
    ($name:ident) => {
        impl<T> Default for $name<T> {
            fn default() -> Self {
                $name(PhantomData)
            }
        }
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<T> Copy for $name<T> {}
        impl<T> PartialEq for $name<T> {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }
        impl<T> Eq for $name<T> {}
        impl<T> std::hash::Hash for $name<T> {
            fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
        }
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}
marker!(ToOne);
marker!(ToMany);

/// A typed handle on a to-one relationship of `M` targeting `T`
/// (`Book::AUTHOR`), generated by the derive.
pub struct One<M, T> {
    /// The relationship's index in [`TableDef::relationships`].
    pub index: usize,
    _marker: PhantomData<fn() -> (M, T)>,
}

/// A typed handle on a collection relationship of `M` targeting `T`
/// (`Author::BOOKS`), generated by the derive.
pub struct Many<M, T> {
    /// The relationship's index in [`TableDef::relationships`].
    pub index: usize,
    _marker: PhantomData<fn() -> (M, T)>,
}

macro_rules! handle {
    ($name:ident) => {
        impl<M, T> $name<M, T> {
            /// Used by generated code.
            pub const fn new(index: usize) -> Self {
                $name {
                    index,
                    _marker: PhantomData,
                }
            }
        }
        impl<M, T> Clone for $name<M, T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<M, T> Copy for $name<M, T> {}
        impl<M, T> fmt::Debug for $name<M, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.index)
            }
        }
    };
}
handle!(One);
handle!(Many);

/// A relationship path to load eagerly with `Query::load`: a handle
/// (`Author::BOOKS`) or a chain of them (`Author::BOOKS.then(Book::REVIEWS)`).
pub trait Eager<M> {
    /// The relationship indices, one per level.
    fn path(&self) -> Vec<usize>;
}

/// A chain of relationships from model `M`, made by `then`.
pub struct Path<M> {
    indices: Vec<usize>,
    _marker: PhantomData<fn() -> M>,
}

impl<M> Eager<M> for Path<M> {
    fn path(&self) -> Vec<usize> {
        self.indices.clone()
    }
}

impl<M, T> Eager<M> for One<M, T> {
    fn path(&self) -> Vec<usize> {
        vec![self.index]
    }
}

impl<M, T> Eager<M> for Many<M, T> {
    fn path(&self) -> Vec<usize> {
        vec![self.index]
    }
}

macro_rules! then {
    ($name:ident) => {
        impl<M, T> $name<M, T> {
            /// Continues the eager-loading path from the target model.
            pub fn then(self, next: impl Eager<T>) -> Path<M> {
                let mut indices = vec![self.index];
                indices.extend(next.path());
                Path {
                    indices,
                    _marker: PhantomData,
                }
            }
        }
    };
}
then!(One);
then!(Many);

/// The Rust type of a model's (single-column) primary key, with `Option`
/// removed: what a foreign key to it must hold. Implemented by the derive.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no single-column primary key, so no relationship can refer to it",
    note = "relationships join on one key column; give the model a single primary key field"
)]
pub trait HasKey {
    /// The key's type (`i64` for `id: Option<i64>`).
    type Key;
}

/// A foreign-key field type that can hold a key of type `K`: `K` itself or
/// `Option<K>`. Used by the derive to check key types at compile time.
#[diagnostic::on_unimplemented(
    message = "the foreign-key field's type `{Self}` cannot hold the target's primary key, of type `{K}`",
    label = "declared here",
    note = "a foreign key must have the type of the primary key it refers to (or an Option of it)"
)]
pub trait KeyField<K> {}

impl<K> KeyField<K> for K {}
impl<K> KeyField<K> for Option<K> {}

/// Compile-time check used by generated code: the field `F` can hold a key `K`.
pub fn key_field<K, F: KeyField<K>>(_: &F) {}
