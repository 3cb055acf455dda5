//! Code generation: the validated model turned into the function's items, the hidden ones first
//! (spec, key, body), then the function and its companions.

mod companions;
mod hidden;
mod key;
mod parts;
mod spec;
mod tokens;

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::CachedFn;
use crate::model::Resolved;
use parts::Parts;

pub fn generate(f: &CachedFn, r: &Resolved) -> TokenStream {
    let Some(parts) = Parts::new(f, r) else {
        return TokenStream::new();
    };
    let spec_item = hidden::spec_item(&parts);
    let key_item = hidden::key_item(&parts);
    let body_item = hidden::body_item(&parts);
    let items = companions::items(&parts);
    quote! {
        #spec_item
        #key_item
        #body_item
        #items
    }
}
