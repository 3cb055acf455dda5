//! The hidden items, each emitted once per function: the spec `__f_spec()` (which holds the
//! counters), the key function `__f_key` and the user's body `__f_body`.

use proc_macro2::{Delimiter, Group, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{AttrStyle, Attribute};

use super::key::key_expr;
use super::parts::Parts;
use super::spec::spec_options;
use super::tokens::relocate;

/// `fn __f_spec() -> Site<Shape>`: the function's one spec (its counters live there).
pub fn spec_item(p: &Parts<'_>) -> TokenStream {
    let Parts {
        f,
        r,
        ret,
        name_str,
        method,
        spec_fn,
        value_at,
        cfgs,
        ..
    } = p;
    let value_at = *value_at;
    let param_tys: Vec<String> = f
        .key_params()
        .map(|p| p.ty.to_token_stream().to_string())
        .collect();
    let sig_str = format!("({}) -> {}", param_tys.join(", "), ret.to_token_stream());

    let shape_ident = format_ident!("{}", r.shape.ident(), span = value_at);
    let mut shape = quote_spanned!(value_at=> ::memo_redis::__private::#shape_ident);
    if r.local_ms.is_some() {
        // The near tier keeps this function's values decoded (the value type must be `Clone`).
        shape = quote_spanned!(value_at=> ::memo_redis::__private::Kept<#shape>);
    }
    // Traces the cached value type's serde shape (once per type) for the key's fingerprint. Picked
    // by autoref (`shape_fn!`), so a non-serde type is reported once, by `value_type`.
    // With `shape = ...` on an alias, only the policy knows the value type exactly.
    let shape_fn = match r.value_ty.as_ref().filter(|_| r.shape == f.shape) {
        Some(v) => {
            let ty = relocate(v.to_token_stream(), value_at);
            quote_spanned!(value_at=> ::memo_redis::__private::shape_fn!(#ty))
        }
        None => quote_spanned!(value_at=> ::memo_redis::__private::shape_fn_of::<#shape, #ret>),
    };
    let options = spec_options(r);
    let site_new = if *method {
        quote!(::memo_redis::__private::Site::method(&__MEMO_REDIS_SPEC, ::core::any::type_name::<Self>(), #shape_fn))
    } else {
        quote!(::memo_redis::__private::Site::new(&__MEMO_REDIS_SPEC, #shape_fn))
    };
    quote! {
        #(#cfgs)*
        fn #spec_fn() -> ::memo_redis::__private::Site<#shape> {
            static __MEMO_REDIS_SPEC: ::memo_redis::__private::Spec =
                ::memo_redis::__private::Spec::new(::core::module_path!(), #name_str, #sig_str)
                    #options;
            #site_new
        }
    }
}

/// `fn __f_key(&self, a: &A, ..) -> KeyResult`: the key, once, from references to the key
/// parameters (the companions' parameters).
pub fn key_item(p: &Parts<'_>) -> TokenStream {
    let Parts {
        f,
        r,
        key_fn,
        site,
        cfgs,
        lifetimes,
        recv,
        comp_params,
        ..
    } = p;
    let generics = &f.item.sig.generics;
    let where_clause = &generics.where_clause;
    let key = key_expr(f, r, site);
    quote! {
        #(#cfgs)*
        #lifetimes
        fn #key_fn #generics (#recv #(#comp_params),*)
            -> ::memo_redis::__private::KeyResult #where_clause
        {
            #key
        }
    }
}

/// `async fn __f_body(..)`: the body, once, under the user's signature with a hidden name.
pub fn body_item(p: &Parts<'_>) -> TokenStream {
    let Parts {
        f,
        body_fn,
        outer,
        lifetimes,
        ..
    } = p;
    let inner: Vec<_> = f
        .item
        .attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Inner(_)))
        .collect();
    let body_attrs: Vec<_> = outer.iter().filter(|a| body_attr(a)).collect();
    let mut body_sig = f.item.sig.clone();
    body_sig.ident = body_fn.clone();
    let block = &f.item.block;
    let stmts = &block.stmts;
    // The key parameters are used (by the key) even where the body ignores them.
    let key_idents: Vec<_> = f.key_params().map(|p| &p.ident).collect();
    let used = (!key_idents.is_empty()).then(|| quote!(let _ = (#(&#key_idents,)*);));
    let mut body = Group::new(Delimiter::Brace, quote!(#(#inner)* #used #(#stmts)*));
    body.set_span(block.brace_token.span.join());
    quote! {
        #(#body_attrs)*
        #lifetimes
        #[allow(clippy::unused_async)] // the user's body need not await
        #body_sig #body
    }
}

/// Attributes of the function that also apply to its body: `cfg` and lint levels.
fn body_attr(a: &Attribute) -> bool {
    ["cfg", "allow", "warn", "deny", "forbid", "expect"]
        .iter()
        .any(|name| a.path().is_ident(name))
}
