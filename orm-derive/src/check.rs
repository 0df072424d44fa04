//! The rules across fields, checked once every attribute is parsed: a
//! primary key exists, one field per column, at most one `auto_increment`
//! and one `version`, attribute/type combinations that make sense.

use std::collections::HashMap;

use crate::ast::{is_integer, is_option_of_integer, Model};
use crate::ctxt::Ctxt;

/// Records every broken rule in `cx`.
pub fn check(cx: &mut Ctxt, model: &Model) {
    check_fields(cx, model);
    check_unique_names(cx, model);
    check_singletons(cx, model);
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
