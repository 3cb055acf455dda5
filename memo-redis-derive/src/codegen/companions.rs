//! The items users call: the cached function itself, a thin call of the runtime with its key and
//! body, and its companions `f_key`, `f_evict`, `f_peek`, `f_invalidate_all`, `f_stats`,
//! `f_refresh` and `f_many`.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::Ident;

use super::parts::Parts;
use super::tokens::{anchor, relocate, respan};
use crate::model::Resolved;

/// The function and its companions, in this order.
pub fn items(p: &Parts<'_>) -> TokenStream {
    let Parts {
        f,
        r,
        ret,
        name_str,
        method,
        qual,
        key_fn,
        body_fn,
        site,
        value_at,
        outer,
        cfgs,
        lifetimes,
        recv,
        comp_params,
        ..
    } = p;
    let (method, value_at) = (*method, *value_at);
    let sig = &f.item.sig;
    let vis = &f.item.vis;
    let name = &sig.ident;
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;

    // Calls of the key and body functions: from the function (owned parameters) and from a
    // companion (references).
    let key_fn_path = if method {
        quote!(self.#key_fn)
    } else {
        quote!(#qual #key_fn)
    };
    let key_names = f.key_params().map(|p| &p.ident);
    let key_of_refs = quote!(#key_fn_path(#(#key_names),*));
    // From the function, owned key parameters are lent.
    let lent = f.key_params().map(|p| {
        let ident = &p.ident;
        if p.is_ref {
            quote!(#ident)
        } else {
            quote!(&#ident)
        }
    });
    let key_of_args = quote!(#key_fn_path(#(#lent),*));
    let arg_names: Vec<_> = f.params.iter().map(|p| &p.ident).collect();
    let self_arg = method.then(|| quote!(self,));
    let body_of_args = quote!(#qual #body_fn(#self_arg #(#arg_names),*));

    let bg = r.stale_ms.is_some() || r.beta.is_some();
    let memo_call = if bg {
        // Background refreshes run the body again later: a closure owning the arguments builds
        // a body future from clones of them, for this call and for each refresh.
        let clones = f.params.iter().map(|p| {
            let ident = &p.ident;
            quote_spanned!(p.ty.span()=> ::core::clone::Clone::clone(&#ident))
        });
        let args = quote!(#key_of_args, move || #qual #body_fn(#(#clones),*));
        site_call(site, "memo_bg", args, value_at)
    } else {
        site_call(site, "memo", quote!(#key_of_args, #body_of_args), value_at)
    };
    let refresh_call = site_call(
        site,
        "refresh",
        quote!(#key_of_args, #body_of_args),
        value_at,
    );
    let peek_call = site_call(site, "peek", key_of_refs.clone(), value_at);

    let check = value_check(r);
    let many = many_item(p, &check, &key_fn_path);
    let main_sig = without_mut(sig);
    let mut refresh_sig = main_sig.clone();
    refresh_sig.ident = format_ident!("{}_refresh", name_str, span = name.span());
    let key_name = format_ident!("{}_key", name_str, span = name.span());
    let evict_name = format_ident!("{}_evict", name_str, span = name.span());
    let peek_name = format_ident!("{}_peek", name_str, span = name.span());
    let invalidate_all_name = format_ident!("{}_invalidate_all", name_str, span = name.span());
    let stats_name = format_ident!("{}_stats", name_str, span = name.span());
    let doc_key = format!("Companion of `{name_str}`: the exact Redis key for these arguments.");
    let doc_evict = format!("Companion of `{name_str}`: deletes the cached entry for these arguments; `true` if one existed.");
    let doc_peek = format!(
        "Companion of `{name_str}`: what a cache hit would return, without running the function."
    );
    let doc_refresh = format!("Companion of `{name_str}`: runs the function and stores its result, whatever is cached (write-through).");
    let doc_invalidate_all = format!("Companion of `{name_str}`: deletes its entries for every argument tuple (SCAN + UNLINK), leaving other functions' entries; returns how many were deleted.");
    let doc_stats = format!("Companion of `{name_str}`: its counters in this process (hits, misses, refreshes, skipped results…); zeros until it is first called.");

    quote! {
        #(#outer)*
        #lifetimes
        #vis #main_sig {
            #check
            #memo_call
        }

        #(#cfgs)*
        #[doc = #doc_key]
        #[allow(dead_code)] #lifetimes
        #vis fn #key_name #generics (#recv #(#comp_params),*)
            -> ::core::result::Result<::std::string::String, ::memo_redis::Error> #where_clause
        {
            ::memo_redis::__private::key_string(#key_of_refs)
        }

        #(#cfgs)*
        #[doc = #doc_evict]
        #[allow(dead_code)] #lifetimes
        #vis async fn #evict_name #generics (#recv #(#comp_params),*)
            -> ::core::result::Result<bool, ::memo_redis::Error> #where_clause
        {
            ::memo_redis::__private::evict(#key_of_refs).await
        }

        #(#cfgs)*
        #[doc = #doc_peek]
        #[allow(dead_code)] #lifetimes
        #vis async fn #peek_name #generics (#recv #(#comp_params),*)
            -> ::core::result::Result<::core::option::Option<#ret>, ::memo_redis::Error> #where_clause
        {
            #check
            #peek_call
        }

        #(#cfgs)*
        #[doc = #doc_invalidate_all]
        #[allow(dead_code)]
        #vis async fn #invalidate_all_name(#recv) -> ::core::result::Result<u64, ::memo_redis::Error> {
            #site.invalidate_all().await
        }

        #(#cfgs)*
        #[doc = #doc_stats]
        #[allow(dead_code)]
        #vis fn #stats_name(#recv) -> ::memo_redis::Stats {
            #site.stats()
        }

        #(#cfgs)*
        #[doc = #doc_refresh]
        #[allow(dead_code)] #lifetimes
        #vis #refresh_sig {
            #check
            #refresh_call
        }

        #many
    }
}

/// Companion `f_many` (a batch of calls: one read and one write pipeline for all of them), for
/// functions with key parameters whose receiver, if any, is `&self` and whose `#[memo(skip)]`
/// arguments are shared references (passed once, lent to every body).
fn many_item(
    p: &Parts<'_>,
    check: &Option<TokenStream>,
    key_fn_path: &TokenStream,
) -> Option<TokenStream> {
    let Parts {
        f,
        ret,
        name_str,
        method,
        qual,
        body_fn,
        site,
        value_at,
        cfgs,
        lifetimes,
        recv,
        ..
    } = p;
    let by_ref_self = f.item.sig.inputs.iter().all(|arg| match arg {
        syn::FnArg::Receiver(r) => {
            r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none()
        }
        syn::FnArg::Typed(_) => true,
    });
    let skips_shared = f
        .params
        .iter()
        .filter(|p| p.skip)
        .all(|p| p.is_ref && p.mut_ref.is_none());
    let keys: Vec<_> = f.key_params().collect();
    if keys.is_empty() || !by_ref_self || !skips_shared {
        return None;
    }
    let sig = &f.item.sig;
    let vis = &f.item.vis;
    let generics = &sig.generics;
    let where_clause = &generics.where_clause;
    let idents: Vec<_> = keys.iter().map(|p| &p.ident).collect();
    let tys: Vec<_> = keys.iter().map(|p| &p.ty).collect();
    let (item_ty, pat) = match (&idents[..], &tys[..]) {
        ([ident], [ty]) => (quote!(#ty), quote!(#ident)),
        _ => (quote!((#(#tys),*)), quote!((#(#idents),*))),
    };
    let skip_params = f.params.iter().filter(|p| p.skip).map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        quote!(#ident: #ty)
    });
    let args = f.params.iter().map(|p| &p.ident);
    let self_arg = method.then(|| quote!(self,));
    let call_args = quote!(
        __memo_redis_items,
        |#pat| #key_fn_path(#(#idents),*),
        |#pat| #qual #body_fn(#self_arg #(#args),*)
    );
    let many_call = site_call(site, "many", call_args, *value_at);
    let many_name = format_ident!("{}_many", name_str, span = sig.ident.span());
    let doc = format!("Companion of `{name_str}`: its calls for many argument tuples, results in input order, with one Redis read and one write pipeline (a batch).");
    Some(quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[allow(dead_code)] #lifetimes
        #vis async fn #many_name #generics (
            #recv
            __memo_redis_items: impl ::core::iter::IntoIterator<Item = #item_ty>,
            #(#skip_params),*
        ) -> ::std::vec::Vec<#ret> #where_clause {
            #check
            #many_call
        }
    })
}

/// The compile-time check that the cached value type can be stored, at the user's type. Every
/// function that calls a runtime entry bound on the value type repeats it, and those calls are
/// spanned at the same token, so a missing bound is reported once, here (rustc drops errors
/// implied by an earlier one at the same span in the same function). A key argument's bound is
/// checked once, where the key function hashes it (`digest_arg`).
///
/// A function with `local = ...` also checks that the near tier can keep its values decoded
/// (`local_value`: `Clone + Send + Sync + 'static`).
fn value_check(r: &Resolved) -> Option<TokenStream> {
    let v = r.value_ty.as_ref()?;
    let at = anchor(v);
    let ty = relocate(v.to_token_stream(), at);
    let local = r
        .local_ms
        .is_some()
        .then(|| quote_spanned!(at=> ::memo_redis::__private::local_value::<#ty>();));
    Some(quote_spanned!(at=> ::memo_redis::__private::value_type::<#ty>(); #local))
}

/// `#site.#method(#args).await`, every token of the call at `at` (see
/// [`value_check`]): a missing `Shape` bound is reported at the value type, once.
fn site_call(site: &TokenStream, method: &str, args: TokenStream, at: Span) -> TokenStream {
    let site = respan(site.clone(), at);
    let method = Ident::new(method, at);
    let mut args = Group::new(Delimiter::Parenthesis, args);
    args.set_span(at);
    quote_spanned!(at=> #site.#method #args.await)
}

/// `sig` with `mut` removed from its bindings: the function and `_refresh` hand their
/// parameters on to the body, which keeps the `mut`.
fn without_mut(sig: &syn::Signature) -> syn::Signature {
    let mut sig = sig.clone();
    for arg in sig.inputs.iter_mut() {
        match arg {
            syn::FnArg::Typed(pt) => {
                if let syn::Pat::Ident(pi) = &mut *pt.pat {
                    pi.mutability = None;
                }
            }
            syn::FnArg::Receiver(r) => {
                if r.reference.is_none() {
                    r.mutability = None;
                }
            }
        }
    }
    sig
}
