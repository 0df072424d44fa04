//! Parsing of the `#[orm(...)]` attributes, on the struct and on its fields.
//!
//! Parsing never stops at the first mistake: an unknown or duplicate
//! attribute is recorded in the [`Ctxt`] and parsing goes on, so that the user
//! sees every bad attribute at once.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{LitStr, Token};

use crate::ctxt::Ctxt;

/// The field attributes, for messages.
pub const FIELD_ATTRIBUTES: &str =
    "primary_key, auto_increment, column = \"...\", version, references = Model, sql_type = \"...\", unique, index, skip";

/// The names of the field attributes.
const FIELD_ATTRIBUTE_NAMES: &[&str] = &[
    "primary_key",
    "auto_increment",
    "column",
    "version",
    "references",
    "sql_type",
    "unique",
    "index",
    "skip",
];

/// The attributes on the struct.
#[derive(Default)]
pub struct ContainerAttrs {
    /// `table = "..."`.
    pub table: Option<LitStr>,
    /// `crate = "path"`: where the `orm` crate is (default `::orm`).
    pub krate: Option<syn::Path>,
}

/// The attributes on one field. Flags keep the span of their keyword, for
/// messages about them.
#[derive(Default)]
pub struct FieldAttrs {
    pub primary_key: Option<Span>,
    pub auto_increment: Option<Span>,
    pub column: Option<LitStr>,
    pub version: Option<Span>,
    pub references: Option<syn::Path>,
    pub skip: Option<Span>,
    pub sql_type: Option<LitStr>,
    pub unique: Option<Span>,
    pub index: Option<Span>,
}

impl FieldAttrs {
    /// The attributes that describe a column, with their names: those that a
    /// `skip` field cannot have.
    pub fn column_attributes(&self) -> Vec<(&'static str, Span)> {
        let mut out = Vec::new();
        let mut push = |name, span: Option<Span>| {
            if let Some(span) = span {
                out.push((name, span));
            }
        };
        push("primary_key", self.primary_key);
        push("auto_increment", self.auto_increment);
        push("column", self.column.as_ref().map(LitStr::span));
        push("version", self.version);
        push("references", self.references.as_ref().map(Spanned::span));
        push("sql_type", self.sql_type.as_ref().map(LitStr::span));
        push("unique", self.unique);
        push("index", self.index);
        out
    }

    /// Whether the field is part of the primary key (`auto_increment`
    /// implies `primary_key`).
    pub fn is_key(&self) -> bool {
        self.primary_key.is_some() || self.auto_increment.is_some()
    }
}

/// Parses the struct's `#[orm(...)]` attributes.
pub fn container(cx: &mut Ctxt, attrs: &[syn::Attribute]) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("orm")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.table, lit, &meta, "table");
            } else if meta.path.is_ident("crate") {
                let path = string_value(cx, &meta)?.and_then(|lit| match lit.parse::<syn::Path>() {
                    Ok(path) => Some(path),
                    Err(_) => {
                        cx.error_at(
                            &lit,
                            format!(
                                "`crate` must be the path of the orm crate, such as \"::orm\" or \"my_app::db::orm\"; `{}` is not a path",
                                lit.value()
                            ),
                        );
                        None
                    }
                });
                set(cx, &mut out.krate, path, &meta, "crate");
            } else {
                let name = path_name(&meta.path);
                if FIELD_ATTRIBUTE_NAMES.contains(&name.as_str()) {
                    cx.error_at(
                        &meta.path,
                        format!("`{name}` is a field attribute; put it on a field, not on the struct"),
                    );
                } else {
                    cx.error_at(
                        &meta.path,
                        format!("unknown orm attribute `{name}` on a struct; the struct attributes are `table = \"...\"` and `crate = \"path\"`"),
                    );
                }
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    out
}

/// Parses one field's `#[orm(...)]` attributes.
pub fn field(cx: &mut Ctxt, attrs: &[syn::Attribute]) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("orm")) {
        let result = attr.parse_nested_meta(|meta| {
            let p = &meta.path;
            if p.is_ident("primary_key") {
                flag(cx, &mut out.primary_key, &meta, "primary_key")?;
            } else if p.is_ident("auto_increment") {
                flag(cx, &mut out.auto_increment, &meta, "auto_increment")?;
            } else if p.is_ident("version") {
                flag(cx, &mut out.version, &meta, "version")?;
            } else if p.is_ident("skip") {
                flag(cx, &mut out.skip, &meta, "skip")?;
            } else if p.is_ident("unique") {
                flag(cx, &mut out.unique, &meta, "unique")?;
            } else if p.is_ident("index") {
                flag(cx, &mut out.index, &meta, "index")?;
            } else if p.is_ident("column") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.column, lit, &meta, "column");
            } else if p.is_ident("sql_type") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.sql_type, lit, &meta, "sql_type");
            } else if p.is_ident("references") {
                let path: syn::Path = meta.value()?.parse()?;
                set(cx, &mut out.references, Some(path), &meta, "references");
            } else {
                let name = path_name(p);
                let hint = if name == "table" {
                    "; `table` goes on the struct".to_string()
                } else {
                    format!("; expected one of: {FIELD_ATTRIBUTES}")
                };
                cx.error_at(p, format!("unknown orm attribute `{name}`{hint}"));
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    out
}

fn path_name(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

fn duplicate(cx: &mut Ctxt, meta: &ParseNestedMeta, name: &str) {
    cx.error_at(&meta.path, format!("duplicate orm attribute `{name}`"));
}

/// A flag without value (`primary_key`).
fn flag(
    cx: &mut Ctxt,
    slot: &mut Option<Span>,
    meta: &ParseNestedMeta,
    name: &str,
) -> syn::Result<()> {
    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        cx.error_at(
            &meta.path,
            format!("`{name}` takes no value: write `#[orm({name})]`"),
        );
        return skip_value(meta);
    }
    if slot.is_some() {
        duplicate(cx, meta, name);
    } else {
        *slot = Some(meta.path.span());
    }
    Ok(())
}

/// Stores a value, or reports a duplicate.
fn set<T>(
    cx: &mut Ctxt,
    slot: &mut Option<T>,
    value: Option<T>,
    meta: &ParseNestedMeta,
    name: &str,
) {
    let Some(value) = value else { return };
    if slot.is_some() {
        duplicate(cx, meta, name);
    } else {
        *slot = Some(value);
    }
}

/// `name = "non-empty string"`; `Ok(None)` when the string is empty (reported).
fn string_value(cx: &mut Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<LitStr>> {
    let lit: LitStr = meta.value()?.parse()?;
    if lit.value().trim().is_empty() {
        cx.error_at(
            &lit,
            format!("`{}` must not be empty", path_name(&meta.path)),
        );
        return Ok(None);
    }
    Ok(Some(lit))
}

/// Consumes whatever follows an attribute name (`= expr` or `(...)`).
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}
