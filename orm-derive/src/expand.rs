//! Code generation from a checked [`Model`]. It cannot fail: every mistake
//! was reported by `attr`, `ast` or `check` before.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

use crate::ast::{Field, Model};
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
    quote! {
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            static TABLE: #p::TableDef = #table_def;

            #model_impl

            #[automatically_derived]
            impl #ident {
                #handles
            }
        };
    }
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
        quote! {
            #p::ColumnDef {
                name: #name,
                field: #field,
                column_type: #column_type,
                sql_type: #sql_type,
                nullable: #nullable,
                unique: #unique,
                indexed: #indexed,
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
    let foreign_keys = columns.iter().enumerate().filter_map(|(i, f)| {
        let target = f.attrs.references.as_ref()?;
        let table = quote_spanned!(target.span()=> <#target as #p::Model>::table);
        Some(quote!(#p::ForeignKeyDef { column: #i, target: #table }))
    });
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
        }
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
            let #var = #p::decode_with(
                &TABLE,
                #i,
                #p::take_value(&mut values, &TABLE, #i)?,
                #field.decode,
            )?;
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
    let sets = columns.iter().enumerate().map(|(i, f)| {
        let field = f.ident;
        let ty = f.ty;
        let ops = quote_spanned!(ty.span()=> #p::field::<#ty>());
        let decode = quote!(#p::decode_with(&TABLE, index, value, #ops.decode)?);
        quote!(#i => { self.#field = #decode; ::core::result::Result::Ok(()) })
    });
    quote! {
        #[automatically_derived]
        impl #p::Model for #ident {
            #[inline]
            fn table() -> &'static #p::TableDef {
                &TABLE
            }

            fn from_row(row: #p::Row) -> #p::Result<Self> {
                let mut values = row.into_values().into_iter();
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
