//! The signature's rejections: what no argument can make cacheable (a synchronous or generic
//! function, `&mut` or `impl Trait` arguments, patterns, a borrowed or missing return value).

use syn::spanned::Spanned;
use syn::{Error, GenericParam, ReturnType, Type};

use super::errors::Errors;
use crate::ast::CachedFn;

pub(super) fn check(f: &CachedFn, errs: &mut Errors) {
    let sig = &f.item.sig;

    if sig.asyncness.is_none() {
        errs.push(Error::new(
            sig.fn_token.span,
            "`#[redis_cache]` requires an `async fn`; a synchronous function cannot await Redis, make it `async fn`",
        ));
    }
    for gp in &sig.generics.params {
        match gp {
            GenericParam::Lifetime(_) => {}
            other => errs.push(Error::new_spanned(
                other,
                "generic functions are not supported by `#[redis_cache]`; use concrete types, or cache a non-generic inner function",
            )),
        }
    }
    if let Some(v) = &sig.variadic {
        errs.push(Error::new(v.span(), "variadic functions are not supported"));
    }
    for p in &f.params {
        if let (Type::ImplTrait(it), false) = (&p.ty, p.skip) {
            errs.push(Error::new_spanned(
                it,
                "`impl Trait` arguments cannot be part of a cache key; use a concrete serializable type, or leave the argument out of the key with `#[memo(skip)]`",
            ));
        }
    }
    for p in &f.params {
        // On a hit the body does not run, so whatever it would have done through the reference
        // silently does not happen; skipping the argument does not change that.
        if let Some(at) = &p.mut_ref {
            let name = &p.ident;
            errs.push(Error::new_spanned(
                at,
                if p.skip {
                    format!("`#[memo(skip)]` does not make a `&mut` argument safe to cache: on a cache hit the body does not run, so its changes through `{name}` would silently not happen; make the changes outside the cached function, or pass what the body only reads by shared reference (a pool instead of a connection)")
                } else {
                    format!("`&mut` arguments cannot be cached: on a cache hit the body does not run, so its changes through `{name}` would silently not happen; take the argument by value or shared reference and return what changes as part of the result, or make the changes outside the cached function")
                },
            ));
        }
        for e in &p.memo_attr_errors {
            errs.push(e.clone());
        }
        if p.bad_pattern {
            errs.push(Error::new(
                p.pat_span,
                "destructuring patterns are not supported in cached functions; bind the argument to a name and destructure it in the body",
            ));
        }
    }
    match &sig.output {
        ReturnType::Default => errs.push(Error::new(
            sig.ident.span(),
            "a function returning `()` has nothing to cache; return the value to memoize",
        )),
        ReturnType::Type(_, ty) => {
            if matches!(**ty, Type::ImplTrait(_)) {
                errs.push(Error::new_spanned(
                    ty,
                    "`impl Trait` return types cannot be cached; return a concrete type that implements `Serialize` and `Deserialize`",
                ));
            } else if matches!(**ty, Type::Reference(_)) {
                errs.push(Error::new_spanned(
                    ty,
                    "a cached function must return an owned value; references cannot be read back from Redis",
                ));
            }
        }
    }
}
