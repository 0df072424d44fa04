//! The rules across fields, checked once every attribute is parsed: a
//! primary key exists, one field per column, at most one `auto_increment`
//! and one `version`, attribute/type combinations that make sense.

use std::collections::HashMap;

use crate::ast::{is_integer, is_option_of_integer, KeyChoice, Model, RelType};
use crate::ctxt::Ctxt;

/// Records every broken rule in `cx`.
pub fn check(cx: &mut Ctxt, model: &Model) {
    check_fields(cx, model);
    check_relations(cx, model);
    check_unique_names(cx, model);
    check_singletons(cx, model);
    check_defaults(cx, model);
    if !model.columns().any(|f| f.attrs.is_key()) {
        cx.error(
            model.ident.span(),
            format!(
                "model `{}` has no primary key: mark the key field(s) with #[orm(primary_key)] \
                 (or #[orm(auto_increment)] on an `Option<i64>` id)",
                model.ident
            ),
        );
    }
}

fn check_fields(cx: &mut Ctxt, model: &Model) {
    for field in &model.fields {
        let a = &field.attrs;
        if a.skip.is_some() {
            for (name, span) in a.column_attributes() {
                cx.error(
                    span,
                    format!("`{name}` cannot be combined with `skip`: a skipped field is not stored in a column"),
                );
            }
            continue;
        }
        if a.auto_increment.is_some() && !is_option_of_integer(field.ty) {
            cx.error_at(
                field.ty,
                "an `auto_increment` field must be an `Option` of an integer type (such as `Option<i64>`): \
                 it is `None` until the row is inserted",
            );
        }
        if let Some(version) = a.version {
            if !is_integer(field.ty) {
                cx.error_at(
                    field.ty,
                    "a `version` field must be an integer type (such as `i32` or `u64`), not an `Option`: \
                     it counts the updates of the row",
                );
            }
            if a.is_key() {
                cx.error(
                    version,
                    "a `version` field cannot be part of the primary key: it changes on every update",
                );
            }
        }
    }
}

/// The relationship kinds, for messages.
fn kind_of(field: &crate::ast::Field) -> Option<(&'static str, proc_macro2::Span)> {
    let a = &field.attrs;
    [
        ("many_to_one", a.many_to_one),
        ("one_to_many", a.one_to_many),
        ("one_to_one", a.one_to_one),
        ("many_to_many", a.many_to_many),
    ]
    .into_iter()
    .find_map(|(name, span)| span.map(|s| (name, s)))
}

fn check_relations(cx: &mut Ctxt, model: &Model) {
    for field in &model.fields {
        let a = &field.attrs;
        if let Some(span) = a.on_delete.as_ref().map(syn::LitStr::span) {
            if a.references.is_none() && field.relation.is_none() {
                cx.error(
                    span,
                    "`on_delete` goes with `references = Model` on a foreign-key field",
                );
            }
            let value = a
                .on_delete
                .as_ref()
                .map(|l| l.value().to_lowercase())
                .unwrap_or_default();
            if !["cascade", "set null", "restrict"].contains(&value.as_str()) {
                cx.error(
                    span,
                    "`on_delete` must be \"cascade\", \"set null\" or \"restrict\"",
                );
            }
        }
        let Some((rel_type, _)) = field.relation else {
            for (name, span) in a.relationship_attributes() {
                cx.error(
                    span,
                    format!(
                        "`{name}` belongs on a relationship field, whose type is `ToOne<Model>` or `ToMany<Model>`"
                    ),
                );
            }
            continue;
        };
        if a.skip.is_some() {
            continue;
        }
        for (name, span) in a.column_attributes() {
            if name != "on_delete" {
                cx.error(
                    span,
                    format!("`{name}` describes a column; a relationship field is not stored in a column"),
                );
            }
        }
        let kinds = [a.many_to_one, a.one_to_many, a.one_to_one, a.many_to_many]
            .into_iter()
            .flatten()
            .count();
        if kinds > 1 {
            cx.error_at(
                field.ty,
                "a relationship is one of many_to_one, one_to_many, one_to_one or many_to_many, not several",
            );
        }
        match (rel_type, kind_of(field)) {
            (RelType::Many, Some(("many_to_one" | "one_to_one", span))) => cx.error(
                span,
                "a many-to-one or one-to-one relationship has at most one target: its field type is \
                 `ToOne<Model>`, not the collection `ToMany<Model>`",
            ),
            (RelType::One, Some((kind @ ("one_to_many" | "many_to_many"), span))) => cx.error(
                span,
                format!("a {kind} relationship is a collection: its field type is `ToMany<Model>`, not `ToOne<Model>`"),
            ),
            _ => {}
        }
        if let Some(lit) = &a.cascade {
            if let Err(e) = cascade_bits(&lit.value()) {
                cx.error(lit.span(), e);
            }
        }
        if let Some(lit) = &a.lazy {
            if !["select", "raise"].contains(&lit.value().as_str()) {
                cx.error(lit.span(), "`lazy` must be \"select\" or \"raise\"");
            }
        }
        if a.many_to_many.is_some() {
            if a.secondary.is_none() {
                cx.error_at(
                    field.ty,
                    "a many_to_many relationship needs its association table: #[orm(many_to_many, secondary = \"...\")] \
                     (create_all creates it)",
                );
            }
            if let Some(lit) = &a.key {
                cx.error(
                    lit.span(),
                    "a many_to_many relationship has `local_key` and `remote_key`, not `key`",
                );
            }
        } else {
            for lit in [&a.secondary, &a.local_key, &a.remote_key]
                .into_iter()
                .flatten()
            {
                cx.error(lit.span(), "`secondary`, `local_key` and `remote_key` belong to a many_to_many relationship");
            }
        }
        if let Some(span) = a.post_update {
            if !(rel_type == RelType::One && a.one_to_one.is_none()) {
                cx.error(span, "`post_update` applies to a many_to_one relationship");
            }
        }
        let many_to_one = rel_type == RelType::One && a.one_to_one.is_none();
        if many_to_one {
            match model.many_to_one_key(field) {
                KeyChoice::Found(_) => {}
                KeyChoice::NoSuchField => {
                    let lit = a.key.as_ref().expect("key given");
                    cx.error(
                        lit.span(),
                        format!(
                            "`key = \"{}\"` names no column field of `{}`; a many-to-one relationship's key is a \
                             field of this model holding the target's primary key",
                            lit.value(),
                            model.ident
                        ),
                    );
                }
                KeyChoice::Missing => cx.error(
                    field.ident.span(),
                    format!(
                        "relationship `{}` has no key: add a field with #[orm(references = Target)] \
                         holding the target's primary key, or name it with #[orm(key = \"...\")]",
                        field.name
                    ),
                ),
                KeyChoice::Ambiguous(names) => cx.error(
                    field.ident.span(),
                    format!(
                        "relationship `{}` has an ambiguous key: fields {} all reference its target; \
                         choose one with #[orm(key = \"...\")]",
                        field.name,
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
    }
}

/// SQLAlchemy's cascade words as the runtime's bits.
pub fn cascade_bits(text: &str) -> Result<u8, String> {
    let mut bits = 0u8;
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        bits |= match word {
            "all" => 1 | 2 | 4 | 16,
            "none" | "refresh-expire" => 0,
            "save-update" => 1,
            "merge" => 2,
            "delete" => 4,
            "delete-orphan" => 8,
            "expunge" => 16,
            other => {
                return Err(format!(
                    "unknown cascade `{other}`; expected a comma-separated list of: all, none, \
                     save-update, merge, delete, delete-orphan, expunge"
                ))
            }
        };
    }
    Ok(bits)
}

fn check_unique_names(cx: &mut Ctxt, model: &Model) {
    let mut columns: HashMap<String, &str> = HashMap::new();
    let mut handles: HashMap<&str, &str> = HashMap::new();
    for field in model.columns() {
        if let Some(other) = columns.insert(field.column.to_lowercase(), &field.name) {
            cx.error(
                field.column_span,
                format!(
                    "column `{}` is already mapped by field `{other}`; give one of them another \
                     #[orm(column = \"...\")]",
                    field.column
                ),
            );
        }
    }
    // Column and relationship handles share the struct's namespace.
    for field in model.columns().chain(model.relations()) {
        if let Some(other) = handles.insert(&field.handle, &field.name) {
            cx.error(
                field.ident.span(),
                format!(
                    "fields `{other}` and `{}` would both get the column handle `{}`; rename one of them",
                    field.name, field.handle
                ),
            );
        }
    }
}

fn check_singletons(cx: &mut Ctxt, model: &Model) {
    let mut auto: Option<&str> = None;
    let mut version: Option<&str> = None;
    for field in model.columns() {
        if let Some(span) = field.attrs.auto_increment {
            match auto {
                Some(first) => cx.error(
                    span,
                    format!("only one field can be `auto_increment`, and `{first}` already is"),
                ),
                None => auto = Some(&field.name),
            }
        }
        if let Some(span) = field.attrs.version {
            match version {
                Some(first) => cx.error(
                    span,
                    format!(
                        "only one field can be the `version` counter, and `{first}` already is"
                    ),
                ),
                None => version = Some(&field.name),
            }
        }
    }
}

/// `default`, `on_update`, `server_default`, `server_on_update`.
fn check_defaults(cx: &mut Ctxt, model: &Model) {
    for field in model.columns() {
        let a = &field.attrs;
        if let Some(expr) = &a.default {
            if !crate::ast::is_option(field.ty) {
                cx.error_at(
                    expr,
                    "a field with `default = expr` must be an `Option`: `None` means \"not set\", and the \
                     default is INSERTed in its place (the expression converts into the type inside the `Option`)",
                );
            }
            if let Some(lit) = &a.server_default {
                cx.error(
                    lit.span(),
                    "`default` and `server_default` cannot both be given: choose the value the \
                     session sends (`default`) or the one the server fills in (`server_default`)",
                );
            }
        }
        if a.default.is_some() || a.server_default.is_some() {
            if let Some(span) = a.auto_increment.or(a.version) {
                cx.error(
                    span,
                    "an `auto_increment` or `version` column gets its value from the database or the \
                     session; it cannot have a default",
                );
            }
        }
        if a.on_update.is_some() || a.server_on_update.is_some() {
            if let Some(span) = a.version.or(a.primary_key).or(a.auto_increment) {
                cx.error(
                    span,
                    "a key or `version` column cannot have `on_update`: its value on update is the \
                     session's to decide",
                );
            }
        }
        if let (Some(expr), Some(_)) = (&a.on_update, &a.server_on_update) {
            cx.error_at(
                expr,
                "`on_update` and `server_on_update` cannot both be given: choose the value the \
                 session sends (`on_update`) or the one the server sets (`server_on_update`)",
            );
        }
    }
}
