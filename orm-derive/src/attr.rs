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
    "primary_key, auto_increment, column = \"...\", version, references = Model, on_delete = \"...\", sql_type = \"...\", unique, index, skip, default = expr, on_update = expr, server_default = \"SQL\", server_on_update = \"SQL\"; on relationship fields: many_to_one, one_to_many, one_to_one, many_to_many, key = \"...\", back_populates = \"...\", cascade = \"...\", passive_deletes, post_update, lazy = \"select|raise\", secondary = \"...\", local_key = \"...\", remote_key = \"...\"";

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
    "on_delete",
    "many_to_one",
    "one_to_many",
    "one_to_one",
    "key",
    "back_populates",
    "cascade",
    "passive_deletes",
    "lazy",
    "many_to_many",
    "post_update",
    "secondary",
    "local_key",
    "remote_key",
    "default",
    "on_update",
    "server_default",
    "server_on_update",
];

/// The attributes on the struct.
#[derive(Default)]
pub struct ContainerAttrs {
    /// `table = "..."`.
    pub table: Option<LitStr>,
    /// `crate = "path"`: where the `orm` crate is (default `::orm`).
    pub krate: Option<syn::Path>,
    /// `events`: the model implements `ModelEvents`.
    pub events: Option<Span>,
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
    /// `on_delete = "cascade" | "set null" | "restrict"` beside `references`.
    pub on_delete: Option<LitStr>,
    /// Relationship fields.
    pub many_to_one: Option<Span>,
    pub one_to_many: Option<Span>,
    pub one_to_one: Option<Span>,
    pub key: Option<LitStr>,
    pub back_populates: Option<LitStr>,
    pub cascade: Option<LitStr>,
    pub passive_deletes: Option<Span>,
    pub lazy: Option<LitStr>,
    pub many_to_many: Option<Span>,
    pub post_update: Option<Span>,
    pub secondary: Option<LitStr>,
    pub local_key: Option<LitStr>,
    pub remote_key: Option<LitStr>,
    /// Column defaults: `default = expr`, `on_update = expr` (Rust values)
    /// and `server_default = "SQL"`, `server_on_update = "SQL"` (DDL).
    pub default: Option<syn::Expr>,
    pub on_update: Option<syn::Expr>,
    pub server_default: Option<LitStr>,
    pub server_on_update: Option<LitStr>,
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
        push("on_delete", self.on_delete.as_ref().map(LitStr::span));
        push("default", self.default.as_ref().map(Spanned::span));
        push("on_update", self.on_update.as_ref().map(Spanned::span));
        push(
            "server_default",
            self.server_default.as_ref().map(LitStr::span),
        );
        push(
            "server_on_update",
            self.server_on_update.as_ref().map(LitStr::span),
        );
        out
    }

    /// The relationship attributes, with their names: those only a
    /// relationship field can have.
    pub fn relationship_attributes(&self) -> Vec<(&'static str, Span)> {
        let mut out = Vec::new();
        let mut push = |name, span: Option<Span>| {
            if let Some(span) = span {
                out.push((name, span));
            }
        };
        push("many_to_one", self.many_to_one);
        push("one_to_many", self.one_to_many);
        push("one_to_one", self.one_to_one);
        push("key", self.key.as_ref().map(LitStr::span));
        push(
            "back_populates",
            self.back_populates.as_ref().map(LitStr::span),
        );
        push("cascade", self.cascade.as_ref().map(LitStr::span));
        push("passive_deletes", self.passive_deletes);
        push("lazy", self.lazy.as_ref().map(LitStr::span));
        push("many_to_many", self.many_to_many);
        push("post_update", self.post_update);
        push("secondary", self.secondary.as_ref().map(LitStr::span));
        push("local_key", self.local_key.as_ref().map(LitStr::span));
        push("remote_key", self.remote_key.as_ref().map(LitStr::span));
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
            } else if meta.path.is_ident("events") {
                flag(cx, &mut out.events, &meta, "events")?;
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
                        format!("unknown orm attribute `{name}` on a struct; the struct attributes are `table = \"...\"`, `crate = \"path\"` and `events`"),
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
            } else if p.is_ident("on_delete") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.on_delete, lit, &meta, "on_delete");
            } else if p.is_ident("many_to_one") {
                flag(cx, &mut out.many_to_one, &meta, "many_to_one")?;
            } else if p.is_ident("one_to_many") {
                flag(cx, &mut out.one_to_many, &meta, "one_to_many")?;
            } else if p.is_ident("one_to_one") {
                flag(cx, &mut out.one_to_one, &meta, "one_to_one")?;
            } else if p.is_ident("passive_deletes") {
                flag(cx, &mut out.passive_deletes, &meta, "passive_deletes")?;
            } else if p.is_ident("key") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.key, lit, &meta, "key");
            } else if p.is_ident("back_populates") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.back_populates, lit, &meta, "back_populates");
            } else if p.is_ident("cascade") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.cascade, lit, &meta, "cascade");
            } else if p.is_ident("lazy") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.lazy, lit, &meta, "lazy");
            } else if p.is_ident("many_to_many") {
                flag(cx, &mut out.many_to_many, &meta, "many_to_many")?;
            } else if p.is_ident("post_update") {
                flag(cx, &mut out.post_update, &meta, "post_update")?;
            } else if p.is_ident("secondary") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.secondary, lit, &meta, "secondary");
            } else if p.is_ident("local_key") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.local_key, lit, &meta, "local_key");
            } else if p.is_ident("remote_key") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.remote_key, lit, &meta, "remote_key");
            } else if p.is_ident("default") {
                let expr: syn::Expr = meta.value()?.parse()?;
                set(cx, &mut out.default, Some(expr), &meta, "default");
            } else if p.is_ident("on_update") {
                let expr: syn::Expr = meta.value()?.parse()?;
                set(cx, &mut out.on_update, Some(expr), &meta, "on_update");
            } else if p.is_ident("server_default") {
                let lit = string_value(cx, &meta)?;
                set(cx, &mut out.server_default, lit, &meta, "server_default");
            } else if p.is_ident("server_on_update") {
                let lit = string_value(cx, &meta)?;
                set(
                    cx,
                    &mut out.server_on_update,
                    lit,
                    &meta,
                    "server_on_update",
                );
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
