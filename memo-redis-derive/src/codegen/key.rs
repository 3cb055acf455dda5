//! The key rendering: the expression of the hidden key function (digest, `key_fn` or template),
//! and the tag templates wrapped around it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::Ident;

use super::tokens::{anchor, mentions, relocate};
use crate::ast::{CachedFn, Param};
use crate::model::{KeyMode, Resolved};
use crate::template::Segment;

/// The key expression of the hidden key function (its parameters are references).
pub fn key_expr(f: &CachedFn, r: &Resolved, site: &TokenStream) -> TokenStream {
    let key = match &r.key {
        KeyMode::Digest => {
            let args = f.key_params().map(digest_arg);
            quote!(#site.digest_key(|__memo_redis_d| { #(#args)* }))
        }
        KeyMode::Fn(path) => {
            let refs = f.key_params().map(ref_expr);
            quote!(#site.custom_key(#path(#(#refs),*)))
        }
        KeyMode::Template(segments, span) => {
            let stmts = render_stmts(f, segments, *span);
            quote!(#site.template_key(|__memo_redis_w| { #stmts }))
        }
    };
    if r.tags.is_empty() {
        return key;
    }
    let tags = r.tags.iter().map(|(segments, span)| {
        let stmts = render_stmts(f, segments, *span);
        quote!(__memo_redis_tags.tag(|__memo_redis_w| { #stmts });)
    });
    quote!(::memo_redis::__private::with_tags(#key, |__memo_redis_tags| { #(#tags)* }))
}

/// An expression of type `&T` for a parameter declared as `T`, inside the key function (which
/// takes `&T`: `&*` reborrows it). Shown at the parameter's name, so a `key_fn` taking the wrong
/// type is one error, there.
pub fn ref_expr(p: &Param) -> TokenStream {
    let ident = &p.ident;
    let at = Span::call_site().located_at(ident.span());
    if !p.is_ref {
        quote_spanned!(at=> &*#ident)
    } else {
        quote_spanned!(at=> &#ident)
    }
}

/// `KeyDigest::arg::<T>(__memo_redis_d, &a);` for one key argument, spanned at its type, in the
/// one function that hashes it (the key function): a type that cannot be hashed is one error,
/// there.
fn digest_arg(p: &Param) -> TokenStream {
    let at = anchor(&p.ty);
    let arg = relocate(ref_expr(p), at);
    // A nested `impl Trait` (a top-level one is rejected or skipped) cannot be named.
    if mentions(p.ty.to_token_stream(), "impl") {
        return quote_spanned!(at=> __memo_redis_d.arg(#arg););
    }
    let ty = relocate(p.ty.to_token_stream(), at);
    quote_spanned!(at=> ::memo_redis::__private::KeyDigest::arg::<#ty>(__memo_redis_d, #arg);)
}

/// `__memo_redis_w.lit(..); __memo_redis_w.arg(..);` for a key or tag template.
fn render_stmts(f: &CachedFn, segments: &[Segment], span: Span) -> TokenStream {
    let stmts = segments.iter().map(|seg| match seg {
        Segment::Lit(s) => quote!(__memo_redis_w.lit(#s);),
        Segment::Arg { root, fields } => {
            // The key function takes owned key parameters by reference: pass it as is.
            let reborrowed = fields.is_empty()
                && f.params
                    .iter()
                    .any(|p| p.ident == root.as_str() && !p.is_ref);
            let root = Ident::new(root, span);
            // Field names resolve the same at any hygiene; this one marks the access as macro
            // output, so a misspelt `{self.orgg}` is reported at the template without a
            // suggestion that would replace the whole literal by the field name.
            let field_span = Span::mixed_site().located_at(span);
            let fields = fields.iter().map(|fld| match fld.parse::<u32>() {
                Ok(i) => syn::Index {
                    index: i,
                    span: field_span,
                }
                .into_token_stream(),
                Err(_) => Ident::new(fld, field_span).into_token_stream(),
            });
            if reborrowed {
                quote_spanned!(span=> __memo_redis_w.arg(#root);)
            } else {
                quote_spanned!(span=> __memo_redis_w.arg(&#root #(.#fields)*);)
            }
        }
    });
    quote!(#(#stmts)*)
}
