//! `try_expand` = `from_syn` → `validate` → generate.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{AttrStyle, Attribute, Ident, ItemFn, Type, Visibility};

use crate::ast::{CachedFn, Param, ReceiverKind};
use crate::attr::Args;
use crate::fallback;
use crate::template::Segment;
use crate::valid::{self, KeyMode, Resolved};

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let e = syn::Error::new(
                item_kind_span(&item),
                "`#[redis_cache]` applies to an `async fn` (a free function or a method)",
            );
            return fallback::emit(e, None, item);
        }
    };
    let args: Args = match syn::parse2(args) {
        Ok(a) => a,
        Err(e) => return fallback::emit(e, Some(item_fn), item),
    };
    let f = CachedFn::from_syn(item_fn);
    match valid::validate(&f, args) {
        Ok(r) => generate(&f, &r),
        Err(e) => fallback::emit(e, Some(f.item), item),
    }
}

/// The first token of an item after its attributes and visibility (`struct`, `impl`, ...), where
/// "this is not a function" is reported.
fn item_kind_span(item: &TokenStream) -> Span {
    let parser = |input: ParseStream<'_>| {
        input.call(Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        let span = input.span();
        input.parse::<TokenStream>()?;
        Ok(span)
    };
    parser
        .parse2(item.clone())
        .unwrap_or_else(|_| Span::call_site())
}

/// The one token of `ty` its bound errors are reported at: the type's name (`Filter` in
/// `&Filter`, `Vec` in `Vec<Filter>`), or the whole `(..)` / `[..]`. A single token because
/// `Span::join` is unstable, and rustc only merges duplicate errors reported at equal spans.
fn anchor(ty: &Type) -> Span {
    match ty {
        Type::Reference(r) => anchor(&r.elem),
        Type::Group(g) => anchor(&g.elem),
        Type::Paren(p) => p.paren_token.span.join(),
        Type::Tuple(t) => t.paren_token.span.join(),
        Type::Slice(s) => s.bracket_token.span.join(),
        Type::Array(a) => a.bracket_token.span.join(),
        Type::Path(p) => p
            .path
            .segments
            .last()
            .map_or_else(|| ty.span(), |seg| seg.ident.span()),
        _ => ty.span(),
    }
}

/// Whether a type has a nested `impl Trait` (a top-level one is rejected or skipped).
fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == "impl",
        TokenTree::Group(g) => mentions_impl(g.stream()),
        _ => false,
    })
}

/// `tokens` with their name resolution kept and every location moved to `at`.
fn relocate(tokens: TokenStream, at: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut inner = Group::new(g.delimiter(), relocate(g.stream(), at));
                inner.set_span(g.span().located_at(at));
                tt = TokenTree::Group(inner);
            } else {
                tt.set_span(tt.span().located_at(at));
            }
            tt
        })
        .collect()
}

/// The compile-time check that the cached value type can be stored, at the user's type. Every
/// function that calls a runtime entry bound on the value type repeats it, and those calls are
/// spanned at the same token, so a missing bound is reported once, here (rustc drops errors
/// implied by an earlier one at the same span in the same function). A key argument's bound is
/// checked once, where the key function hashes it (`digest_arg`).
fn value_check(r: &Resolved) -> Option<TokenStream> {
    let v = r.value_ty.as_ref()?;
    let at = anchor(v);
    let ty = relocate(v.to_token_stream(), at);
    Some(quote_spanned!(at=> ::memo_redis::__private::value_type::<#ty>();))
}

/// An expression of type `&T` for a parameter declared as `T`, inside the key function (which
/// takes `&T`: `&*` reborrows it). Shown at the parameter's name, so a `key_fn` taking the wrong
/// type is one error, there.
fn ref_expr(p: &Param) -> TokenStream {
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
    if mentions_impl(p.ty.to_token_stream()) {
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

/// `tokens` entirely at `at`: location and name resolution (a call's span is that of its first
/// and last tokens only when both resolve alike; see [`site_call`]).
fn respan(tokens: TokenStream, at: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut inner = Group::new(g.delimiter(), respan(g.stream(), at));
                inner.set_span(at);
                tt = TokenTree::Group(inner);
            } else {
                tt.set_span(at);
            }
            tt
        })
        .collect()
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

/// The hidden items' names: `__f_spec`, `__f_key`, `__f_body` for a function `f`. Distinct
/// suffixes keep them apart for every pair of functions in one module or `impl`.
fn hidden(name: &str, what: &str, at: Span) -> Ident {
    format_ident!("__{}_{}", name, what, span = at)
}

/// Attributes of the function that also apply to its body: `cfg` and lint levels.
fn body_attr(a: &Attribute) -> bool {
    ["cfg", "allow", "warn", "deny", "forbid", "expect"]
        .iter()
        .any(|name| a.path().is_ident(name))
}

/// The key expression of the hidden key function (its parameters are references).
fn key_expr(f: &CachedFn, r: &Resolved, site: &TokenStream) -> TokenStream {
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

/// The `Spec` builder calls for the arguments that differ from `Spec::new`'s defaults.
fn spec_options(r: &Resolved) -> TokenStream {
    let mut out = TokenStream::new();
    if let Some(cache) = &r.cache {
        out.extend(quote!(.cache(&#cache)));
    }
    let ttl = &r.ttl;
    out.extend(quote!(.ttl(#ttl)));
    if r.version != 0 {
        let version = r.version;
        out.extend(quote!(.version(#version)));
    }
    if r.cache_none {
        out.extend(quote!(.cache_none(true)));
    }
    if let Some(p) = &r.prefix {
        out.extend(quote!(.prefix(#p)));
    }
    if let Some(n) = &r.name {
        out.extend(quote!(.identity(#n)));
    }
    if let Some(c) = &r.codec {
        out.extend(quote!(.codec(#c)));
    }
    match r.compress {
        Some(Some(n)) => out.extend(quote!(.compress(::core::option::Option::Some(#n)))),
        Some(None) => out.extend(quote!(.compress(::core::option::Option::None))),
        None => {}
    }
    if let Some(t) = &r.none_ttl {
        out.extend(quote!(.none_ttl(#t)));
    }
    if let Some(ms) = r.stale_ms {
        out.extend(quote!(.stale(#ms)));
    }
    if let Some(ms) = r.lock_ms {
        out.extend(quote!(.lock(#ms)));
    }
    if let Some(b) = r.beta {
        out.extend(quote!(.early_refresh(#b)));
    }
    if r.jitter > 0.0 {
        let j = r.jitter;
        out.extend(quote!(.jitter(#j)));
    }
    if !r.single_flight {
        out.extend(quote!(.single_flight(false)));
    }
    if r.sliding {
        out.extend(quote!(.sliding(true)));
    }
    if let Some(ms) = r.local_ms {
        out.extend(quote!(.local(#ms)));
    }
    out
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

/// Whether `tokens` name `Self`.
fn mentions_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == "Self",
        TokenTree::Group(g) => mentions_self(g.stream()),
        _ => false,
    })
}

fn generate(f: &CachedFn, r: &Resolved) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &f.item;
    let outer: Vec<_> = attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Outer))
        .collect();
    let inner: Vec<_> = attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Inner(_)))
        .collect();
    let cfgs: Vec<_> = outer.iter().filter(|a| a.path().is_ident("cfg")).collect();
    let body_attrs: Vec<_> = outer.iter().filter(|a| body_attr(a)).collect();
    let Some(ret) = &f.ret else {
        return TokenStream::new();
    };

    let name = &sig.ident;
    let name_str = name.to_string().trim_start_matches("r#").to_string();
    let param_tys: Vec<String> = f
        .key_params()
        .map(|p| p.ty.to_token_stream().to_string())
        .collect();
    let sig_str = format!("({}) -> {}", param_tys.join(", "), ret.to_token_stream());

    // Methods reach their hidden items as associated functions (`Self::__f_spec()`). So does an
    // associated function without `self` that names `Self`; one that does not is taken for a
    // free function (the macro cannot see the `impl` around it; see docs/design-decisions.md).
    let method = matches!(f.receiver, ReceiverKind::Present { .. });
    let assoc = method || mentions_self(f.item.to_token_stream());
    let qual = assoc.then(|| quote!(Self::));
    let spec_fn = hidden(&name_str, "spec", name.span());
    let key_fn = hidden(&name_str, "key", name.span());
    let body_fn = hidden(&name_str, "body", name.span());

    // The `Shape` bound is spanned where `value_type` reports (see `value_check`).
    let value_at = anchor(r.value_ty.as_ref().unwrap_or(ret));
    let shape_ident = format_ident!("{}", r.shape.ident(), span = value_at);
    let shape = quote_spanned!(value_at=> ::memo_redis::__private::#shape_ident);
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
    let site_new = if method {
        quote!(::memo_redis::__private::Site::method(&__MEMO_REDIS_SPEC, ::core::any::type_name::<Self>(), #shape_fn))
    } else {
        quote!(::memo_redis::__private::Site::new(&__MEMO_REDIS_SPEC, #shape_fn))
    };

    // The function's one spec (its counters live there).
    let spec_item = quote! {
        #(#cfgs)*
        fn #spec_fn() -> ::memo_redis::__private::Site<#shape> {
            static __MEMO_REDIS_SPEC: ::memo_redis::__private::Spec =
                ::memo_redis::__private::Spec::new(::core::module_path!(), #name_str, #sig_str)
                    #options;
            #site_new
        }
    };
    let site = quote!(#qual #spec_fn());

    // A lifetime the user's signature names once was also named by the key code in the same
    // function (up to the fourth session): the split must not make `single_use_lifetimes` fire.
    let lifetimes = sig
        .generics
        .lifetimes()
        .next()
        .map(|_| quote!(#[allow(single_use_lifetimes, clippy::needless_lifetimes)]));

    // The body, once: the user's signature under a hidden name.
    let mut body_sig = sig.clone();
    body_sig.ident = body_fn.clone();
    let stmts = &block.stmts;
    // The key parameters are used (by the key) even where the body ignores them.
    let key_idents: Vec<_> = f.key_params().map(|p| &p.ident).collect();
    let used = (!key_idents.is_empty()).then(|| quote!(let _ = (#(&#key_idents,)*);));
    let mut body = Group::new(Delimiter::Brace, quote!(#(#inner)* #used #(#stmts)*));
    body.set_span(block.brace_token.span.join());
    let body_item = quote! {
        #(#body_attrs)*
        #lifetimes
        #[allow(clippy::unused_async)] // the user's body need not await
        #body_sig #body
    };

    // The key, once, from references to the key parameters (the companions' parameters).
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let recv = match f.receiver {
        ReceiverKind::Present { span } => Some(quote_spanned!(span=> &self,)),
        ReceiverKind::None => None,
    };
    let comp_params: Vec<_> = f
        .key_params()
        .map(|p| {
            let ident = &p.ident;
            let ty = &p.ty;
            if p.is_ref {
                quote!(#ident: #ty)
            } else {
                quote!(#ident: &#ty)
            }
        })
        .collect();
    let key = key_expr(f, r, &site);
    let key_item = quote! {
        #(#cfgs)*
        #lifetimes
        fn #key_fn #generics (#recv #(#comp_params),*)
            -> ::memo_redis::__private::KeyResult #where_clause
        {
            #key
        }
    };

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
        site_call(&site, "memo_bg", args, value_at)
    } else {
        site_call(&site, "memo", quote!(#key_of_args, #body_of_args), value_at)
    };
    let refresh_call = site_call(
        &site,
        "refresh",
        quote!(#key_of_args, #body_of_args),
        value_at,
    );
    let peek_call = site_call(&site, "peek", key_of_refs.clone(), value_at);

    let check = value_check(r);
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
        #spec_item
        #key_item
        #body_item

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
    }
}
