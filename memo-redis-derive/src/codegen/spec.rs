//! The `Spec` builder chain: the model's arguments that differ from `Spec::new`'s defaults, as
//! calls on the function's one `static` spec.

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::{Resolved, Ttl};

/// The `Spec` builder calls for the arguments that differ from `Spec::new`'s defaults.
pub fn spec_options(r: &Resolved) -> TokenStream {
    let mut out = TokenStream::new();
    if let Some(cache) = &r.cache {
        out.extend(quote!(.cache(&#cache)));
    }
    let ttl = ttl_tokens(&r.ttl);
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
        out.extend(quote!(.codec(::memo_redis::__private::CodecKind::#c)));
    }
    match r.compress {
        Some(Some(n)) => out.extend(quote!(.compress(::core::option::Option::Some(#n)))),
        Some(None) => out.extend(quote!(.compress(::core::option::Option::None))),
        None => {}
    }
    if let Some(t) = &r.none_ttl {
        let t = ttl_tokens(t);
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

/// `::memo_redis::__private::Ttl::...` for a resolved lifetime.
fn ttl_tokens(ttl: &Ttl) -> TokenStream {
    match ttl {
        Ttl::Default => quote!(::memo_redis::__private::Ttl::Default),
        Ttl::Never => quote!(::memo_redis::__private::Ttl::Never),
        Ttl::Millis(ms) => quote!(::memo_redis::__private::Ttl::Millis(#ms)),
    }
}
