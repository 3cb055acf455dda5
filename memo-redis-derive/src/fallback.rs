//! On error: the compile errors plus the user's function unchanged (minus our parameter
//! attributes), so call sites get no follow-on errors.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, ItemFn};

pub fn emit(errors: syn::Error, item: Option<ItemFn>, raw: TokenStream) -> TokenStream {
    let errors = errors.to_compile_error();
    match item {
        Some(mut item) => {
            for arg in item.sig.inputs.iter_mut() {
                if let FnArg::Typed(pt) = arg {
                    pt.attrs.retain(|a| !a.path().is_ident("memo"));
                }
            }
            quote!(#errors #item)
        }
        None => quote!(#errors #raw),
    }
}
