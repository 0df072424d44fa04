//! What the derive emits next to its errors: an `impl Model` whose bodies
//! are unreachable, and the column handles, so that code using the model does
//! not add "Model is not implemented" errors to the real ones.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::ast::{default_crate, Model};
use crate::attr;
use crate::ctxt::Ctxt;
use crate::expand::{handles, private, relation_handles};

/// The stub impls for `input` (`model` when its fields could be read).
pub fn expand(input: &DeriveInput, model: Option<&Model>) -> TokenStream {
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let krate = match model {
        Some(model) => model.krate.clone(),
        // The attributes' errors were reported already; only the path is wanted.
        None => attr::container(&mut Ctxt::default(), &input.attrs)
            .krate
            .unwrap_or_else(default_crate),
    };
    let p = private(&krate);
    let ident = &input.ident;
    let handles = model.map(|m| {
        let handles = handles(m);
        let relations = relation_handles(m);
        quote!(impl #ident { #handles #relations })
    });
    quote! {
        #[allow(unused_variables, unreachable_code, clippy::all)]
        const _: () = {
            impl #p::Model for #ident {
                fn table() -> &'static #p::TableDef {
                    ::core::unreachable!()
                }
                fn from_row(row: #p::Row) -> #p::Result<Self> {
                    ::core::unreachable!()
                }
                fn to_values(&self) -> #p::Vec<#p::Value> {
                    ::core::unreachable!()
                }
                fn column_value(&self, index: usize) -> #p::Value {
                    ::core::unreachable!()
                }
                fn set_column_value(&mut self, index: usize, value: #p::Value) -> #p::Result<()> {
                    ::core::unreachable!()
                }
            }
            #handles
        };
    }
}
