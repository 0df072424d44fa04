//! The struct as the macro understands it: its fields, their attributes and
//! the derived names, borrowing from syn and keeping spans for messages.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, Ident, Type, Visibility};

use crate::attr::{self, FieldAttrs};
use crate::case::{screaming_snake_case, snake_case};
use crate::ctxt::Ctxt;

/// A model struct.
pub struct Model<'a> {
    /// The struct's name.
    pub ident: &'a Ident,
    /// The struct's visibility, given to the column handles.
    pub vis: &'a Visibility,
    /// The table name.
    pub table: String,
    /// The path of the `orm` crate (`crate = "..."`, default `::orm`).
    pub krate: syn::Path,
    /// Every field, skipped ones included, in declaration order.
    pub fields: Vec<Field<'a>>,
    /// `#[orm(events)]`: the model implements `ModelEvents`.
    pub events: bool,
}

/// One field of a model.
pub struct Field<'a> {
    /// The field's identifier (possibly raw: `r#type`).
    pub ident: &'a Ident,
    /// The field's name without `r#`.
    pub name: String,
    /// The field's type.
    pub ty: &'a Type,
    /// Its attributes.
    pub attrs: FieldAttrs,
    /// The column name (the field name unless `column = "..."`).
    pub column: String,
    /// Where the column name comes from, for messages.
    pub column_span: Span,
    /// The name of the column handle constant (`USER_ID`).
    pub handle: String,
    /// `ToOne<T>` / `ToMany<T>`: a relationship field, and its target type.
    pub relation: Option<(RelType, &'a Type)>,
}

/// The relationship field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelType {
    /// `ToOne<T>`.
    One,
    /// `ToMany<T>`.
    Many,
}

impl Field<'_> {
    /// Whether the field is stored in a column.
    pub fn persisted(&self) -> bool {
        self.attrs.skip.is_none() && self.relation.is_none()
    }
}

/// `ToOne<T>` or `ToMany<T>` (by the last path segment), with `T`.
fn relation_type(ty: &Type) -> Option<(RelType, &Type)> {
    let Type::Path(p) = ty else {
        return match ty {
            Type::Group(g) => relation_type(&g.elem),
            _ => None,
        };
    };
    let last = p.path.segments.last()?;
    let kind = if last.ident == "ToOne" {
        RelType::One
    } else if last.ident == "ToMany" {
        RelType::Many
    } else {
        return None;
    };
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            syn::GenericArgument::Type(t) => Some((kind, t)),
            _ => None,
        },
        _ => None,
    }
}

/// The last identifier of a type path (`crate::models::Author` → `Author`).
pub fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Group(g) => last_ident(&g.elem),
        _ => None,
    }
}

/// Whether `ty` is spelled as `Option<T>`.
pub fn is_option(ty: &Type) -> bool {
    !std::ptr::eq(strip_option(ty), ty)
}

/// `T` for `Option<T>`, else the type itself.
pub fn strip_option(ty: &Type) -> &Type {
    if let Type::Path(p) = ty {
        if let Some(last) = p.path.segments.last() {
            if last.ident == "Option" {
                if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                    if let Some(syn::GenericArgument::Type(t)) = args.args.first() {
                        return t;
                    }
                }
            }
        }
    }
    ty
}

impl<'a> Model<'a> {
    /// Reads the derive input. Returns `None` (with the reason in `cx`) when
    /// the item cannot be a model at all; attribute mistakes are recorded in
    /// `cx` but still give a `Model`, so that later checks run too.
    pub fn from_ast(cx: &mut Ctxt, input: &'a DeriveInput) -> Option<Model<'a>> {
        let container = attr::container(cx, &input.attrs);
        let data = match &input.data {
            Data::Struct(data) => data,
            Data::Enum(e) => {
                cx.error(
                    e.enum_token.span,
                    "#[derive(Model)] works on structs with named fields; an enum cannot be a model",
                );
                return None;
            }
            Data::Union(u) => {
                cx.error(
                    u.union_token.span,
                    "#[derive(Model)] works on structs with named fields; a union cannot be a model",
                );
                return None;
            }
        };
        let named = match &data.fields {
            Fields::Named(named) => named,
            Fields::Unnamed(unnamed) => {
                cx.error_at(
                    unnamed,
                    "#[derive(Model)] needs named fields, whose names become column names; a tuple struct cannot be a model",
                );
                return None;
            }
            Fields::Unit => {
                cx.error(
                    input.ident.span(),
                    "#[derive(Model)] needs named fields, whose names become column names; a unit struct has none",
                );
                return None;
            }
        };
        if !input.generics.params.is_empty() {
            cx.error_at(
                &input.generics,
                "a model cannot have generic parameters or lifetimes: its table description is one static item",
            );
        }
        let table = match &container.table {
            Some(lit) => lit.value(),
            None => snake_case(&input.ident.unraw().to_string()),
        };
        let fields = named
            .named
            .iter()
            .map(|f| {
                let ident = f.ident.as_ref().expect("named field");
                let attrs = attr::field(cx, &f.attrs);
                let name = ident.unraw().to_string();
                let (column, column_span) = match &attrs.column {
                    Some(lit) => (lit.value(), lit.span()),
                    None => (name.clone(), ident.span()),
                };
                Field {
                    ident,
                    handle: screaming_snake_case(&name),
                    name,
                    ty: &f.ty,
                    relation: relation_type(&f.ty),
                    attrs,
                    column,
                    column_span,
                }
            })
            .collect();
        Some(Model {
            ident: &input.ident,
            vis: &input.vis,
            table,
            krate: container.krate.unwrap_or_else(default_crate),
            fields,
            events: container.events.is_some(),
        })
    }

    /// The persisted fields, in column order.
    pub fn columns(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields.iter().filter(|f| f.persisted())
    }

    /// The relationship fields, in declaration order.
    pub fn relations(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields
            .iter()
            .filter(|f| f.relation.is_some() && f.attrs.skip.is_none())
    }

    /// The key field a many-to-one relationship on `field` uses: `key = ".."`,
    /// else the one field that `references` its target.
    pub fn many_to_one_key(&self, field: &Field) -> KeyChoice<'_, 'a> {
        if let Some(lit) = &field.attrs.key {
            return match self.columns().find(|f| f.name == lit.value()) {
                Some(f) => KeyChoice::Found(f),
                None => KeyChoice::NoSuchField,
            };
        }
        let Some((_, target)) = field.relation else {
            return KeyChoice::Missing;
        };
        let target = last_ident(target);
        let candidates: Vec<&Field<'a>> = self
            .columns()
            .filter(|f| {
                f.attrs
                    .references
                    .as_ref()
                    .and_then(|p| p.segments.last())
                    .is_some_and(|s| Some(s.ident.to_string()) == target)
            })
            .collect();
        match candidates.as_slice() {
            [one] => KeyChoice::Found(one),
            [] => KeyChoice::Missing,
            _ => KeyChoice::Ambiguous(candidates.iter().map(|f| f.name.clone()).collect()),
        }
    }

    /// The single primary-key field, if the key has one column.
    pub fn single_key(&self) -> Option<&Field<'a>> {
        let mut keys = self.columns().filter(|f| f.attrs.is_key());
        let first = keys.next()?;
        keys.next().is_none().then_some(first)
    }
}

/// Which field a many-to-one relationship uses as its key.
pub enum KeyChoice<'m, 'a> {
    /// This one.
    Found(&'m Field<'a>),
    /// `key = ".."` names no column field of the struct.
    NoSuchField,
    /// No `key` and no field `references` the target.
    Missing,
    /// No `key` and several fields reference the target.
    Ambiguous(Vec<String>),
}

/// `::orm`: where the runtime is unless `crate = "..."` says otherwise.
pub fn default_crate() -> syn::Path {
    syn::parse_quote!(::orm)
}

const INTEGERS: &[&str] = &[
    "i8", "i16", "i32", "i64", "isize", "u8", "u16", "u32", "u64", "usize",
];

/// Whether `ty` is spelled as a primitive integer type.
pub fn is_integer(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.arguments.is_empty() && INTEGERS.iter().any(|i| s.ident == i)),
        Type::Group(g) => is_integer(&g.elem),
        Type::Paren(p) => is_integer(&p.elem),
        _ => false,
    }
}

/// Whether `ty` is spelled as `Option<integer>`.
pub fn is_option_of_integer(ty: &Type) -> bool {
    let Type::Path(p) = ty else {
        return matches!(ty, Type::Group(g) if is_option_of_integer(&g.elem));
    };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    if p.qself.is_some() || last.ident != "Option" {
        return false;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => {
            matches!(&args.args[0], syn::GenericArgument::Type(t) if is_integer(t))
        }
        _ => false,
    }
}
