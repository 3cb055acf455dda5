//! `try_expand` = `from_syn` → `validate` → generate.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{AttrStyle, Ident, ItemFn};

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
                Span::call_site(),
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

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    /// Inside the function itself (and `_refresh`): parameters are the declared types.
    Main,
    /// Inside `_key`/`_evict`/`_peek`: owned key parameters are taken by reference.
    Companion,
}

/// An expression of type `&T` for a parameter declared as `T`.
fn ref_expr(p: &Param, ctx: Ctx) -> TokenStream {
    let ident = &p.ident;
    if ctx == Ctx::Companion && !p.is_ref {
        quote!(#ident)
    } else {
        quote!(&#ident)
    }
}

fn key_expr(f: &CachedFn, r: &Resolved, ctx: Ctx, self_ty: &TokenStream) -> TokenStream {
    match &r.key {
        KeyMode::Digest => {
            let refs = f.key_params().map(|p| ref_expr(p, ctx));
            quote!(::memo_redis::__private::digest_key(&__MEMO_REDIS_SPEC, #self_ty, &(#(#refs,)*)))
        }
        KeyMode::Fn(path) => {
            let refs = f.key_params().map(|p| ref_expr(p, ctx));
            quote!(::memo_redis::__private::custom_key(&__MEMO_REDIS_SPEC, #self_ty, #path(#(#refs),*)))
        }
        KeyMode::Template(segments, span) => {
            let stmts = segments.iter().map(|seg| match seg {
                Segment::Lit(s) => quote!(__memo_redis_w.lit(#s);),
                Segment::Arg { root, fields } => {
                    let root = Ident::new(root, *span);
                    let fields = fields.iter().map(|fld| match fld.parse::<u32>() {
                        Ok(i) => syn::Index {
                            index: i,
                            span: *span,
                        }
                        .into_token_stream(),
                        Err(_) => Ident::new(fld, *span).into_token_stream(),
                    });
                    quote_spanned!(*span=> __memo_redis_w.arg(&#root #(.#fields)*);)
                }
            });
            quote!(::memo_redis::__private::template_key(&__MEMO_REDIS_SPEC, #self_ty, |__memo_redis_w| { #(#stmts)* }))
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
    let spec = quote! {
        static __MEMO_REDIS_SPEC: ::memo_redis::__private::Spec =
            ::memo_redis::__private::Spec::new(::core::module_path!(), #name_str, #sig_str, &#cache)
                .ttl(#ttl)
                .version(#version)
                .cache_none(#cache_none)
                #prefix #identity #codec;
    };
    let self_ty = match f.receiver {
        ReceiverKind::Present { .. } => quote!(::core::any::type_name::<Self>()),
        ReceiverKind::None => quote!(::memo_redis::__private::NO_SELF),
    };
    let shape_ident = format_ident!("{}", r.shape.ident());
    let shape = quote_spanned!(ret.span()=> ::memo_redis::__private::#shape_ident);

    // Bound checks on the user's spans.
    let mut checks = TokenStream::new();
    if matches!(r.key, KeyMode::Digest) {
        for p in f.key_params() {
            let ident = &p.ident;
            checks.extend(quote_spanned!(p.ty.span()=> ::memo_redis::__private::key_arg(&#ident);));
        }
    }
    if let Some(v) = &r.value_ty {
        checks.extend(quote_spanned!(v.span()=> ::memo_redis::__private::value_type::<#v>();));
    }

    let key_main = key_expr(f, r, Ctx::Main, &self_ty);
    let key_comp = key_expr(f, r, Ctx::Companion, &self_ty);

    let main_fn = quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            #spec
            #checks
            let __memo_redis_key = #key_main;
            ::memo_redis::__private::memo::<#shape, _, _>(
                &__MEMO_REDIS_SPEC,
                __memo_redis_key,
                ::memo_redis::__private::body::<#ret, _>(async move #block),
            )
            .await
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
            ::memo_redis::__private::key_string(#key_comp)
        }

        #(#cfgs)*
        #[doc = #doc_evict]
        #[allow(dead_code)]
        #vis async fn #evict_name #generics (#recv #(#comp_params),*)
            -> ::core::result::Result<bool, ::memo_redis::Error> #where_clause
        {
            #spec
            ::memo_redis::__private::evict(#key_comp).await
        }

        #(#cfgs)*
        #[doc = #doc_peek]
        #[allow(dead_code)]
        #vis async fn #peek_name #generics (#recv #(#comp_params),*)
            -> ::core::result::Result<::core::option::Option<#ret>, ::memo_redis::Error> #where_clause
        {
            #spec
            ::memo_redis::__private::peek::<#shape, #ret>(#key_comp).await
        }

        #(#cfgs)*
        #[doc = #doc_refresh]
        #[allow(dead_code)]
        #vis #refresh_sig {
            #(#inner)*
            #spec
            let __memo_redis_key = #key_main;
            ::memo_redis::__private::refresh::<#shape, _, _>(
                &__MEMO_REDIS_SPEC,
                __memo_redis_key,
                ::memo_redis::__private::body::<#ret, _>(async move #block),
            )
            .await
        }
    }
}
