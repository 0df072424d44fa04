//! Code generation from a checked [`Model`]. It cannot fail: every mistake
//! was reported by `attr`, `ast` or `check` before.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

use crate::ast::{strip_option, Field, KeyChoice, Model, RelType};
use crate::case::snake_case;
use crate::check;
use crate::ctxt::Ctxt;
use crate::fallback;

/// The whole derive: parse, check, then expand, or report every error with
/// stub impls.
pub fn derive(input: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::default();
    let model = Model::from_ast(&mut cx, input);
    if let Some(model) = &model {
        check::check(&mut cx, model);
    }
    match model {
        Some(model) if !cx.has_errors() => expand(&model),
        model => {
            let mut out = cx.into_compile_errors();
            out.extend(fallback::expand(input, model.as_ref()));
            out
        }
    }
}

/// The runtime, as generated code must name it: `::orm::__private`, or
/// under the path given by `#[orm(crate = "...")]`.
pub fn private(krate: &syn::Path) -> TokenStream {
    quote!(#krate::__private)
}

fn expand(model: &Model) -> TokenStream {
    let p = private(&model.krate);
    let ident = model.ident;
    let table_def = table_def(model);
    let model_impl = model_impl(model);
    let handles = handles(model);
    let rel_handles = relation_handles(model);
    let checks = relation_checks(model);
    let has_key = model.single_key().map(|key| {
        let ty = strip_option(key.ty);
        quote! {
            #[automatically_derived]
            impl #p::HasKey for #ident {
                type Key = #ty;
            }
        }
    });
    quote! {
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            static TABLE: #p::TableDef = #table_def;

            #model_impl

            #has_key

            #checks

            #[automatically_derived]
            impl #ident {
                #handles
                #rel_handles
            }
        };
    }
}

/// The key field of relationship `f` of `model`, by name, and on which
/// model it lives.
fn relation_key(model: &Model, f: &Field) -> String {
    let a = &f.attrs;
    let many_to_one = matches!(f.relation, Some((RelType::One, _))) && a.one_to_one.is_none();
    if a.many_to_many.is_some() {
        String::new()
    } else if many_to_one {
        match model.many_to_one_key(f) {
            KeyChoice::Found(k) => k.name.clone(),
            _ => String::new(),
        }
    } else {
        a.key
            .as_ref()
            .map(syn::LitStr::value)
            .unwrap_or_else(|| format!("{}_id", snake_case(&model.ident.to_string())))
    }
}

fn relation_defs(model: &Model) -> Vec<TokenStream> {
    let p = private(&model.krate);
    model
        .relations()
        .map(|f| {
            let Some((rel_type, target)) = f.relation else {
                unreachable!("relations() yields relationship fields")
            };
            let a = &f.attrs;
            let kind = match rel_type {
                RelType::Many if a.many_to_many.is_some() => quote!(#p::RelKind::ManyToMany),
                RelType::Many => quote!(#p::RelKind::OneToMany),
                RelType::One if a.one_to_one.is_some() => quote!(#p::RelKind::OneToOne),
                RelType::One => quote!(#p::RelKind::ManyToOne),
            };
            let name = &f.name;
            let key = relation_key(model, f);
            let back = opt(a.back_populates.as_ref().map(syn::LitStr::value));
            let cascade = match &a.cascade {
                Some(lit) => check::cascade_bits(&lit.value()).unwrap_or(3),
                None => 3,
            };
            let passive = a.passive_deletes.is_some();
            let lazy = match a.lazy.as_ref().map(syn::LitStr::value).as_deref() {
                Some("raise") => quote!(#p::Lazy::Raise),
                _ => quote!(#p::Lazy::Select),
            };
            let table = quote_spanned!(target.span()=> <#target as #p::Model>::table);
            let secondary = match &a.secondary {
                Some(sec) if a.many_to_many.is_some() => {
                    let local = a.local_key.as_ref().map_or_else(
                        || format!("{}_id", snake_case(&model.ident.to_string())),
                        syn::LitStr::value,
                    );
                    let remote = a.remote_key.as_ref().map_or_else(
                        || {
                            format!(
                                "{}_id",
                                snake_case(&crate::ast::last_ident(target).unwrap_or_default())
                            )
                        },
                        syn::LitStr::value,
                    );
                    quote!(::core::option::Option::Some(#p::Secondary { table: #sec, local: #local, remote: #remote }))
                }
                _ => quote!(::core::option::Option::None),
            };
            let post_update = a.post_update.is_some();
            quote! {
                #p::RelationshipDef {
                    name: #name,
                    kind: #kind,
                    target: #table,
                    target_type: #p::type_id_of::<#target>,
                    key: #key,
                    back_populates: #back,
                    cascade: #p::Cascade::from_bits(#cascade),
                    passive_deletes: #passive,
                    lazy: #lazy,
                    load: #p::loader::<#target>,
                    secondary: #secondary,
                    post_update: #post_update,
                }
            }
        })
        .collect()
}

/// Compile-time checks of the relationships: the key field exists and can
/// hold the other side's primary key.
fn relation_checks(model: &Model) -> TokenStream {
    let p = private(&model.krate);
    let ident = model.ident;
    let checks = model.relations().map(|f| {
        let Some((rel_type, target)) = f.relation else {
            unreachable!("relations() yields relationship fields")
        };
        if f.attrs.many_to_many.is_some() {
            // Both sides need a single-column key.
            return quote_spanned! {target.span()=>
                fn _check() -> (
                    ::core::marker::PhantomData<<#target as #p::HasKey>::Key>,
                    ::core::marker::PhantomData<<#ident as #p::HasKey>::Key>,
                ) {
                    (::core::marker::PhantomData, ::core::marker::PhantomData)
                }
            };
        }
        let key = relation_key(model, f);
        let many_to_one = rel_type == RelType::One && f.attrs.one_to_one.is_none();
        let span = f
            .attrs
            .key
            .as_ref()
            .map_or_else(|| target.span(), syn::LitStr::span);
        let key_ident = syn::Ident::new(&key, span);
        if many_to_one {
            quote_spanned! {span=>
                fn _check(v: &#ident) {
                    #p::key_field::<<#target as #p::HasKey>::Key, _>(&v.#key_ident);
                }
            }
        } else {
            quote_spanned! {span=>
                fn _check(v: &#target) {
                    #p::key_field::<<#ident as #p::HasKey>::Key, _>(&v.#key_ident);
                }
            }
        }
    });
    quote! {
        #(
            const _: () = {
                #[allow(dead_code)]
                #checks
            };
        )*
    }
}

/// The typed relationship handles (`Author::BOOKS`).
pub fn relation_handles(model: &Model) -> TokenStream {
    let p = private(&model.krate);
    let ident = model.ident;
    let vis = model.vis;
    model
        .relations()
        .enumerate()
        .map(|(i, f)| {
            let Some((rel_type, target)) = f.relation else {
                unreachable!("relations() yields relationship fields")
            };
            let handle = format_ident!("{}", f.handle, span = f.ident.span());
            let doc = format!(
                "The relationship `{}` of `{}`, for `obj.one`/`obj.many`/`obj.set`/`obj.push` and `Query::load`.",
                f.name, ident
            );
            let ty = match rel_type {
                RelType::One => quote!(#p::One<#ident, #target>),
                RelType::Many => quote!(#p::Many<#ident, #target>),
            };
            let ctor = match rel_type {
                RelType::One => quote!(#p::One::new(#i)),
                RelType::Many => quote!(#p::Many::new(#i)),
            };
            quote! {
                #[doc = #doc]
                #vis const #handle: #ty = #ctor;
            }
        })
        .collect()
}

fn opt<T: quote::ToTokens>(v: Option<T>) -> TokenStream {
    match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

fn table_def(model: &Model) -> TokenStream {
    let p = private(&model.krate);
    let columns: Vec<&Field> = model.columns().collect();
    let position = |pred: &dyn Fn(&Field) -> bool| columns.iter().position(|f| pred(f));
    let column_defs = columns.iter().map(|f| {
        let ty = f.ty;
        let name = &f.column;
        let field = &f.name;
        let sql_type = opt(f.attrs.sql_type.as_ref());
        let unique = f.attrs.unique.is_some();
        let indexed = f.attrs.index.is_some();
        let column_type = quote_spanned!(ty.span()=> #p::field::<#ty>().column_type);
        let nullable = quote_spanned!(ty.span()=> #p::field::<#ty>().nullable);
        let default = value_fn(model, f, f.attrs.default.as_ref());
        let on_update = value_fn(model, f, f.attrs.on_update.as_ref());
        let server_default = opt(f.attrs.server_default.as_ref());
        let server_on_update = opt(f.attrs.server_on_update.as_ref());
        quote! {
            #p::ColumnDef {
                name: #name,
                field: #field,
                column_type: #column_type,
                sql_type: #sql_type,
                nullable: #nullable,
                unique: #unique,
                indexed: #indexed,
                default: #default,
                on_update: #on_update,
                server_default: #server_default,
                server_on_update: #server_on_update,
            }
        }
    });
    let primary_key = columns
        .iter()
        .enumerate()
        .filter(|(_, f)| f.attrs.is_key())
        .map(|(i, _)| i);
    let auto_increment = opt(position(&|f| f.attrs.auto_increment.is_some()));
    let version = opt(position(&|f| f.attrs.version.is_some()));
    let on_delete = |f: &Field| match f
        .attrs
        .on_delete
        .as_ref()
        .map(|l| l.value().to_lowercase())
        .as_deref()
    {
        Some("cascade") => quote!(#p::OnDelete::Cascade),
        Some("set null") => quote!(#p::OnDelete::SetNull),
        _ => quote!(#p::OnDelete::Restrict),
    };
    let mut foreign_keys: Vec<TokenStream> = Vec::new();
    let mut referencing: Vec<String> = Vec::new();
    for (i, f) in columns.iter().enumerate() {
        if let Some(target) = f.attrs.references.as_ref() {
            let table = quote_spanned!(target.span()=> <#target as #p::Model>::table);
            let on_delete = on_delete(f);
            foreign_keys.push(
                quote!(#p::ForeignKeyDef { column: #i, target: #table, on_delete: #on_delete }),
            );
            referencing.push(f.name.clone());
        }
    }
    // A many-to-one relationship implies the foreign key of its key field.
    for f in model.relations() {
        let Some((RelType::One, target)) = f.relation else {
            continue;
        };
        if f.attrs.one_to_one.is_some() {
            continue;
        }
        let KeyChoice::Found(key) = model.many_to_one_key(f) else {
            continue;
        };
        if referencing.contains(&key.name) {
            continue;
        }
        let Some(i) = columns.iter().position(|c| c.name == key.name) else {
            continue;
        };
        referencing.push(key.name.clone());
        let table = quote_spanned!(target.span()=> <#target as #p::Model>::table);
        let on_delete = on_delete(key);
        foreign_keys
            .push(quote!(#p::ForeignKeyDef { column: #i, target: #table, on_delete: #on_delete }));
    }
    let relationships = relation_defs(model);
    let table = &model.table;
    let model_name = model.ident.to_string();
    quote! {
        #p::TableDef {
            name: #table,
            model: #model_name,
            columns: &[#(#column_defs),*],
            primary_key: &[#(#primary_key),*],
            auto_increment: #auto_increment,
            version: #version,
            foreign_keys: &[#(#foreign_keys),*],
            relationships: &[#(#relationships),*],
        }
    }
}

/// `default = expr` / `on_update = expr` as a `fn() -> Value`: the
/// expression converts (`Into`) to the field's type, or to the type inside
/// its `Option`.
fn value_fn(model: &Model, f: &Field, expr: Option<&syn::Expr>) -> TokenStream {
    let p = private(&model.krate);
    let Some(expr) = expr else {
        return quote!(::core::option::Option::None);
    };
    let ty = f.ty;
    // `Into`, so that `default = "open"` fits a `String` field.
    let value = if crate::ast::is_option(ty) {
        quote_spanned!(expr.span()=> ::core::option::Option::Some(::core::convert::Into::into(#expr)))
    } else {
        quote_spanned!(expr.span()=> ::core::convert::Into::into(#expr))
    };
    quote! {
        ::core::option::Option::Some({
            fn __value() -> #p::Value {
                let value: #ty = #value;
                (#p::field::<#ty>().encode)(&value)
            }
            __value as fn() -> #p::Value
        })
    }
}

fn model_impl(model: &Model) -> TokenStream {
    let p = private(&model.krate);
    let ident = model.ident;
    let columns: Vec<&Field> = model.columns().collect();
    let count = columns.len();

    let reads = columns.iter().enumerate().map(|(i, f)| {
        let var = format_ident!("__c{}", i);
        let ty = f.ty;
        let field = quote_spanned!(ty.span()=> #p::field::<#ty>());
        quote! {
            let #var = #p::decode_with(&TABLE, #i, row.take(#i), #field.decode)?;
        }
    });
    let mut column = 0usize;
    let inits = model.fields.iter().map(|f| {
        let field = f.ident;
        let ty = f.ty;
        if f.persisted() {
            let var = format_ident!("__c{}", column);
            column += 1;
            quote!(#field: #var)
        } else {
            quote_spanned!(ty.span()=> #field: <#ty as ::core::default::Default>::default())
        }
    });
    let to_value = |f: &Field| {
        let field = f.ident;
        let ty = f.ty;
        let ops = quote_spanned!(ty.span()=> #p::field::<#ty>());
        quote!((#ops.encode)(&self.#field))
    };
    let pushes = columns.iter().map(|f| {
        let v = to_value(f);
        quote!(values.push(#v);)
    });
    let gets = columns.iter().enumerate().map(|(i, f)| {
        let v = to_value(f);
        quote!(#i => #v,)
    });
    let eqs = columns.iter().enumerate().map(|(i, f)| {
        let field = f.ident;
        let ty = f.ty;
        let ops = quote_spanned!(ty.span()=> #p::field::<#ty>());
        quote!(#i => (#ops.eq)(&self.#field, value),)
    });
    let sames = columns.iter().enumerate().map(|(i, f)| {
        let field = f.ident;
        let ty = f.ty;
        let ops = quote_spanned!(ty.span()=> #p::field::<#ty>());
        quote!(#i => (#ops.same)(&self.#field, &other.#field),)
    });
    let sets = columns.iter().enumerate().map(|(i, f)| {
        let field = f.ident;
        let ty = f.ty;
        let ops = quote_spanned!(ty.span()=> #p::field::<#ty>());
        let decode = quote!(#p::decode_with(&TABLE, index, value, #ops.decode)?);
        quote!(#i => { self.#field = #decode; ::core::result::Result::Ok(()) })
    });
    let events = model.events.then(|| {
        quote! {
            const EVENTS: bool = true;

            fn model_event(
                event: #p::ModelEvent,
                session: &#p::Session,
                obj: &#p::Obj<Self>,
            ) -> #p::Result<()> {
                #p::model_event::<Self>(event, session, obj)
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl #p::Model for #ident {
            #[inline]
            fn table() -> &'static #p::TableDef {
                &TABLE
            }

            #events

            fn from_row(mut row: #p::Row) -> #p::Result<Self> {
                <Self as #p::Model>::from_row_taking(&mut row)
            }

            fn from_row_taking(row: &mut #p::Row) -> #p::Result<Self> {
                if row.len() < #count {
                    return ::core::result::Result::Err(#p::row_too_short(&TABLE, row.len()));
                }
                #(#reads)*
                ::core::result::Result::Ok(#ident { #(#inits),* })
            }

            fn to_values(&self) -> #p::Vec<#p::Value> {
                let mut values = #p::Vec::with_capacity(#count);
                #(#pushes)*
                values
            }

            fn column_value(&self, index: usize) -> #p::Value {
                match index {
                    #(#gets)*
                    _ => #p::column_index_panic(&TABLE, index),
                }
            }

            fn column_eq(&self, index: usize, value: &#p::Value) -> bool {
                match index {
                    #(#eqs)*
                    _ => #p::column_index_panic(&TABLE, index),
                }
            }

            fn column_same(&self, other: &Self, index: usize) -> bool {
                match index {
                    #(#sames)*
                    _ => #p::column_index_panic(&TABLE, index),
                }
            }

            fn set_column_value(&mut self, index: usize, value: #p::Value) -> #p::Result<()> {
                match index {
                    #(#sets)*
                    _ => ::core::result::Result::Err(#p::column_index_error(&TABLE, index)),
                }
            }
        }
    }
}

/// The typed column handles (`User::NAME`), one per persisted field.
pub fn handles(model: &Model) -> TokenStream {
    let p = private(&model.krate);
    let ident = model.ident;
    let vis = model.vis;
    model
        .columns()
        .enumerate()
        .map(|(i, f)| {
            let ty = f.ty;
            let name = &f.column;
            let handle = format_ident!("{}", f.handle, span = f.ident.span());
            let doc = format!(
                "The column `{}` of table `{}` (field `{}`), for typed filters and ordering.",
                f.column, model.table, f.name
            );
            quote! {
                #[doc = #doc]
                #vis const #handle: #p::Column<#ident, #ty> = #p::Column::new(#i, #name);
            }
        })
        .collect()
}
