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

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    /// Inside the function itself (and `_refresh`): parameters are the declared types.
    Main,
    /// Inside `_key`/`_evict`/`_peek`: owned key parameters are taken by reference.
    Companion,
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

/// Compile-time bound checks at the user's types. Every body that needs a bound repeats them, and
/// every later use of the bound (the digest, the `Shape` calls) is spanned at the same token, so
/// a missing bound is reported once, here (rustc drops identical diagnostics and errors implied
/// by an earlier one at the same span).
fn checks(f: &CachedFn, r: &Resolved, value: bool) -> TokenStream {
    let mut checks = TokenStream::new();
    if matches!(r.key, KeyMode::Digest) {
        for p in f.key_params() {
            let at = anchor(&p.ty);
            if mentions_impl(p.ty.to_token_stream()) {
                // `Vec<impl Serialize>` cannot be named in a turbofish: check the value.
                let arg = relocate(ref_expr(p, Ctx::Main), at);
                checks.extend(quote_spanned!(at=> ::memo_redis::__private::key_arg(#arg);));
                continue;
            }
            let ty = relocate(p.ty.to_token_stream(), at);
            checks.extend(quote_spanned!(at=> let _ = ::memo_redis::__private::key_arg::<#ty>;));
        }
    }
    if let (true, Some(v)) = (value, &r.value_ty) {
        let at = anchor(v);
        let ty = relocate(v.to_token_stream(), at);
        checks.extend(quote_spanned!(at=> ::memo_redis::__private::value_type::<#ty>();));
    }
    checks
}

/// `::memo_redis::__private::#func::<#generics>(#args).await`, every token of the call and the
/// `.await` at `at` (see [`checks`]).
/// `let [mut] a = Clone::clone(&a);` for every parameter, each at its type.
fn clone_params(f: &CachedFn) -> TokenStream {
    let mut out = TokenStream::new();
    for arg in &f.item.sig.inputs {
        let syn::FnArg::Typed(pt) = arg else { continue };
        let syn::Pat::Ident(pi) = &*pt.pat else {
            continue;
        };
        let ident = &pi.ident;
        let mutability = &pi.mutability;
        let at = pt.ty.span();
        out.extend(
            quote_spanned!(at=> let #mutability #ident = ::core::clone::Clone::clone(&#ident);),
        );
    }
    out
}

fn shape_call(func: &str, generics: TokenStream, args: TokenStream, at: Span) -> TokenStream {
    let func = Ident::new(func, at);
    let mut args = Group::new(Delimiter::Parenthesis, args);
    args.set_span(at);
    quote_spanned!(at=> ::memo_redis::__private::#func::<#generics> #args.await)
}

/// An expression of type `&T` for a parameter declared as `T`. Shown at the parameter's name, in
/// the same form in the function and its companions (`&*` reborrows a companion's reference), so
/// a `key_fn` taking the wrong type is one error, there.
fn ref_expr(p: &Param, ctx: Ctx) -> TokenStream {
    let ident = &p.ident;
    let at = Span::call_site().located_at(ident.span());
    if ctx == Ctx::Companion && !p.is_ref {
        quote_spanned!(at=> &*#ident)
    } else {
        quote_spanned!(at=> &#ident)
    }
}

/// `KeyDigest::arg::<T>(__memo_redis_d, &a);` for one key argument: the same bound on the same
/// type at the same token as its check (see [`checks`]), so a type that cannot be hashed is one
/// error, there.
fn digest_arg(p: &Param, ctx: Ctx) -> TokenStream {
    let at = anchor(&p.ty);
    let arg = relocate(ref_expr(p, ctx), at);
    if mentions_impl(p.ty.to_token_stream()) {
        return quote_spanned!(at=> __memo_redis_d.arg(#arg););
    }
    let ty = relocate(p.ty.to_token_stream(), at);
    quote_spanned!(at=> ::memo_redis::__private::KeyDigest::arg::<#ty>(__memo_redis_d, #arg);)
}

/// `__memo_redis_w.lit(..); __memo_redis_w.arg(..);` for a key or tag template.
fn render_stmts(f: &CachedFn, segments: &[Segment], span: Span, ctx: Ctx) -> TokenStream {
    let stmts = segments.iter().map(|seg| match seg {
        Segment::Lit(s) => quote!(__memo_redis_w.lit(#s);),
        Segment::Arg { root, fields } => {
            // A companion's owned key parameter is already a reference: pass it as is, so
            // a missing `Display` reads the same for the function and its companions.
            let reborrowed = ctx == Ctx::Companion
                && fields.is_empty()
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

fn key_expr(
    f: &CachedFn,
    r: &Resolved,
    ctx: Ctx,
    self_ty: &TokenStream,
    shape_fn: &TokenStream,
) -> TokenStream {
    match &r.key {
        KeyMode::Digest => {
            let args = f.key_params().map(|p| digest_arg(p, ctx));
            quote!(::memo_redis::__private::digest_key(&__MEMO_REDIS_SPEC, #self_ty, #shape_fn, |__memo_redis_d| { #(#args)* }))
        }
        KeyMode::Fn(path) => {
            let refs = f.key_params().map(|p| ref_expr(p, ctx));
            quote!(::memo_redis::__private::custom_key(&__MEMO_REDIS_SPEC, #self_ty, #shape_fn, #path(#(#refs),*)))
        }
        KeyMode::Template(segments, span) => {
            let stmts = render_stmts(f, segments, *span, ctx);
            quote!(::memo_redis::__private::template_key(&__MEMO_REDIS_SPEC, #self_ty, #shape_fn, |__memo_redis_w| { #stmts }))
        }
    }
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

    let cache = &r.cache;
    let ttl = &r.ttl;
    let version = r.version;
    let cache_none = r.cache_none;
    let prefix = r.prefix.as_ref().map(|p| quote!(.prefix(#p)));
    let identity = r.name.as_ref().map(|n| quote!(.identity(#n)));
    let codec = r.codec.as_ref().map(|c| quote!(.codec(#c)));
    let compress = r.compress.map(|min| match min {
        Some(n) => quote!(.compress(::core::option::Option::Some(#n))),
        None => quote!(.compress(::core::option::Option::None)),
    });
    let none_ttl = r.none_ttl.as_ref().map(|t| quote!(.none_ttl(#t)));
    let stale = r.stale_ms.map(|ms| quote!(.stale(#ms)));
    let lock = r.lock_ms.map(|ms| quote!(.lock(#ms)));
    let early = r.beta.map(|b| quote!(.early_refresh(#b)));
    let jitter = (r.jitter > 0.0).then(|| {
        let j = r.jitter;
        quote!(.jitter(#j))
    });
    let single_flight = (!r.single_flight).then(|| quote!(.single_flight(false)));
    let sliding = r.sliding.then(|| quote!(.sliding(true)));
    let local = r.local_ms.map(|ms| quote!(.local(#ms)));
    let spec = quote! {
        static __MEMO_REDIS_SPEC: ::memo_redis::__private::Spec =
            ::memo_redis::__private::Spec::new(::core::module_path!(), #name_str, #sig_str, &#cache)
                .ttl(#ttl)
                .version(#version)
                .cache_none(#cache_none)
                #prefix #identity #codec #compress #none_ttl #stale #lock #early #jitter #single_flight #sliding #local;
    };
    let self_ty = match f.receiver {
        ReceiverKind::Present { .. } => quote!(::core::any::type_name::<Self>()),
        ReceiverKind::None => quote!(::memo_redis::__private::NO_SELF),
    };
    // The `Shape` bound is spanned where `value_type` reports (see `checks`).
    let value_at = anchor(r.value_ty.as_ref().unwrap_or(ret));
    let shape_ident = format_ident!("{}", r.shape.ident(), span = value_at);
    let shape = quote_spanned!(value_at=> ::memo_redis::__private::#shape_ident);
    // Traces the cached value type's serde shape (once per type) for the key's fingerprint. Picked
    // by autoref (`ShapeProbe`), so a non-serde type is reported once, by `value_type`.
    // With `shape = ...` on an alias, only the policy knows the value type exactly.
    let shape_fn = match r.value_ty.as_ref().filter(|_| r.shape == f.shape) {
        Some(v) => {
            let ty = relocate(v.to_token_stream(), value_at);
            quote_spanned!(value_at=> {
                // One of the two is picked; the other is unused.
                #[allow(unused_imports)]
                use ::memo_redis::__private::{ShapeOf as _, ShapeOfFallback as _};
                (&&::memo_redis::__private::ShapeProbe::<#ty>::new()).shape_fn()
            })
        }
        None => quote_spanned!(value_at=> ::memo_redis::__private::shape_fn_of::<#shape, #ret>),
    };

    let checks_main = checks(f, r, true);
    let checks_comp = checks(f, r, false);
    let checks_peek = checks_main.clone();

    let mut key_main = key_expr(f, r, Ctx::Main, &self_ty, &shape_fn);
    if !r.tags.is_empty() {
        let tags = r.tags.iter().map(|(segments, span)| {
            let stmts = render_stmts(f, segments, *span, Ctx::Main);
            quote!(__memo_redis_tags.tag(|__memo_redis_w| { #stmts });)
        });
        key_main = quote!(::memo_redis::__private::with_tags(#key_main, |__memo_redis_tags| { #(#tags)* }));
    }
    let key_comp = key_expr(f, r, Ctx::Companion, &self_ty, &shape_fn);

    let body_args = quote! {
        &__MEMO_REDIS_SPEC,
        __memo_redis_key,
        ::memo_redis::__private::body::<#ret, _>(async move #block),
    };
    let memo_call = if r.stale_ms.is_some() || r.beta.is_some() {
        // Background refreshes re-run the body later: a closure owning clones of the arguments
        // builds a fresh body future for this call and for each refresh.
        let clones = clone_params(f);
        let args = quote! {
            &__MEMO_REDIS_SPEC,
            __memo_redis_key,
            move || {
                #clones
                ::memo_redis::__private::body::<#ret, _>(async move #block)
            },
        };
        shape_call("memo_bg", quote!(#shape, _, _, _), args, value_at)
    } else {
        shape_call("memo", quote!(#shape, _, _), body_args.clone(), value_at)
    };
    let refresh_call = shape_call("refresh", quote!(#shape, _, _), body_args, value_at);
    let peek_call = shape_call("peek", quote!(#shape, #ret), key_comp.clone(), value_at);

    // With background refreshes the body runs on clones (`clone_params`), which carry the
    // parameters' `mut`; the parameters themselves are never mutated.
    let mut main_sig = sig.clone();
    if r.stale_ms.is_some() || r.beta.is_some() {
        for arg in main_sig.inputs.iter_mut() {
            if let syn::FnArg::Typed(pt) = arg {
                if let syn::Pat::Ident(pi) = &mut *pt.pat {
                    pi.mutability = None;
                }
            }
        }
    }
    let main_fn = quote! {
        #(#outer)*
        #vis #main_sig {
            #(#inner)*
            #spec
            #checks_main
            let __memo_redis_key = #key_main;
            #memo_call
        }
    };

    // Companions.
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let recv = match f.receiver {
        ReceiverKind::Present { span } => Some(quote_spanned!(span=> &self,)),
        ReceiverKind::None => None,
    };
    let comp_params = f.key_params().map(|p| {
        let ident = &p.ident;
        let ty = &p.ty;
        if p.is_ref {
            quote!(#ident: #ty)
        } else {
            quote!(#ident: &#ty)
        }
    });
    let comp_params: Vec<_> = comp_params.collect();
    let key_name = format_ident!("{}_key", name_str, span = name.span());
    let evict_name = format_ident!("{}_evict", name_str, span = name.span());
    let peek_name = format_ident!("{}_peek", name_str, span = name.span());
    let refresh_name = format_ident!("{}_refresh", name_str, span = name.span());
    let invalidate_all_name = format_ident!("{}_invalidate_all", name_str, span = name.span());
    let stats_name = format_ident!("{}_stats", name_str, span = name.span());
    let doc_stats = format!("Companion of `{name_str}`: its counters in this process (hits, misses, bypass, errors…); zeros until it is first called.");
    let doc_invalidate_all = format!("Companion of `{name_str}`: deletes its entries for every argument tuple (SCAN + UNLINK), leaving other functions' entries; returns how many were deleted.");
    let mut refresh_sig = sig.clone();
    refresh_sig.ident = refresh_name;
    let doc_key = format!("Companion of `{name_str}`: the exact Redis key for these arguments.");
    let doc_evict = format!("Companion of `{name_str}`: deletes the cached entry for these arguments; `true` if one existed.");
    let doc_peek = format!(
        "Companion of `{name_str}`: what a cache hit would return, without running the function."
    );
    let doc_refresh = format!("Companion of `{name_str}`: runs the function and stores its result, whatever is cached (write-through).");

    quote! {
        #main_fn

        #(#cfgs)*
        #[doc = #doc_key]
        #[allow(dead_code)]
        #vis fn #key_name #generics (#recv #(#comp_params),*)
            -> ::core::result::Result<::std::string::String, ::memo_redis::Error> #where_clause
        {
            #spec
            #checks_comp
            ::memo_redis::__private::key_string(#key_comp)
        }

        #(#cfgs)*
        #[doc = #doc_evict]
        #[allow(dead_code)]
        #vis async fn #evict_name #generics (#recv #(#comp_params),*)
            -> ::core::result::Result<bool, ::memo_redis::Error> #where_clause
        {
            #spec
            #checks_comp
            ::memo_redis::__private::evict(#key_comp).await
        }

        #(#cfgs)*
        #[doc = #doc_peek]
        #[allow(dead_code)]
        #vis async fn #peek_name #generics (#recv #(#comp_params),*)
            -> ::core::result::Result<::core::option::Option<#ret>, ::memo_redis::Error> #where_clause
        {
            #spec
            #checks_peek
            #peek_call
        }

        #(#cfgs)*
        #[doc = #doc_invalidate_all]
        #[allow(dead_code)]
        #vis async fn #invalidate_all_name(#recv) -> ::core::result::Result<u64, ::memo_redis::Error> {
            #spec
            ::memo_redis::__private::invalidate_all(&__MEMO_REDIS_SPEC, #self_ty, #shape_fn).await
        }

        #(#cfgs)*
        #[doc = #doc_stats]
        #[allow(dead_code)]
        #vis fn #stats_name(#recv) -> ::memo_redis::FnStats {
            #spec
            ::memo_redis::__private::stats_for(&__MEMO_REDIS_SPEC, #self_ty)
        }

        #(#cfgs)*
        #[doc = #doc_refresh]
        #[allow(dead_code)]
        #vis #refresh_sig {
            #(#inner)*
            #spec
            #checks_main
            let __memo_redis_key = #key_main;
            #refresh_call
        }
    }
}
