//! Every semantic rejection, each spanned on the smallest offending node.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Error, GenericParam, Path, ReturnType, Type};

use crate::ast::{value_for_override, CachedFn, ReceiverKind, ShapeKind};
use crate::attr::{
    parse_duration_ms, parse_size_bytes, Args, BetaArg, CompressArg, LockArg, TtlArg,
};
use crate::template::{self, Segment};

pub enum KeyMode {
    Digest,
    Template(Vec<Segment>, Span),
    Fn(Path),
}

pub struct Resolved {
    pub ttl: TokenStream,
    pub prefix: Option<String>,
    pub key: KeyMode,
    pub cache_none: bool,
    pub version: u32,
    pub codec: Option<TokenStream>,
    /// `compress = ...`: `Some(Some(n))` from `n` bytes, `Some(None)` never, `None`: the cache's.
    pub compress: Option<Option<usize>>,
    /// `cache = STATIC`; `None`: the global cache.
    pub cache: Option<TokenStream>,
    pub name: Option<String>,
    pub shape: ShapeKind,
    pub value_ty: Option<Type>,
    pub none_ttl: Option<TokenStream>,
    pub stale_ms: Option<u64>,
    pub lock_ms: Option<u64>,
    pub beta: Option<f64>,
    pub jitter: f64,
    pub single_flight: bool,
    pub sliding: bool,
    /// `local = ...`: near-cache lifetime cap in ms, `Some(0)` = the function's TTL.
    pub local_ms: Option<u64>,
    /// `tags = [...]`: each a template over the arguments.
    pub tags: Vec<(Vec<Segment>, Span)>,
}

/// Threshold of `compress = true`.
const DEFAULT_COMPRESS_MIN_BYTES: usize = 1024;

/// Lease of `lock = true`.
const DEFAULT_LOCK_MS: u64 = 5_000;

fn lit_f64(lit: &syn::Lit) -> Option<f64> {
    match lit {
        syn::Lit::Float(f) => f.base10_parse().ok(),
        syn::Lit::Int(i) => i.base10_parse::<u32>().ok().map(f64::from),
        _ => None,
    }
}

/// Milliseconds of a `ttl`-like argument; `Ok(None)` for `"never"` where `allow_never`.
fn duration_arg(arg: &TtlArg, name: &str, allow_never: bool) -> Result<Option<u64>, Error> {
    let remedy = if name == "ttl" {
        "omit `ttl` for the configured default or write `ttl = \"never\"`".to_string()
    } else {
        format!("omit `{name}` instead")
    };
    match arg {
        // `5m` lexes as the integer 5 with a suffix, which `base10_parse` ignores.
        TtlArg::Secs(lit) if !lit.suffix().is_empty() => Err(Error::new(
            lit.span(),
            format!("`{name} = {lit}` is not a number of seconds; write durations with units as a string, `{name} = \"{lit}\"`"),
        )),
        TtlArg::Secs(lit) => match lit.base10_parse::<u64>() {
            Ok(0) => Err(Error::new(
                lit.span(),
                if name == "ttl" {
                    "`ttl = 0` is not allowed; omit `ttl` for the configured default or write `ttl = \"never\"` for entries that do not expire".to_string()
                } else {
                    format!("`{name} = 0` is not allowed; {remedy}")
                },
            )),
            Ok(s) => s
                .checked_mul(1000)
                .map(Some)
                .ok_or_else(|| Error::new(lit.span(), format!("{name} too large"))),
            Err(_) => Err(Error::new(
                lit.span(),
                format!("malformed {name}; expected whole seconds, e.g. `{name} = 300`"),
            )),
        },
        TtlArg::Str(lit) => {
            let v = lit.value();
            if allow_never && v.trim() == "never" {
                return Ok(None);
            }
            let never = if allow_never { " or `\"never\"`" } else { "" };
            match parse_duration_ms(&v) {
                Ok(0) => Err(Error::new(
                    lit.span(),
                    format!("a zero {name} is not allowed; {remedy}"),
                )),
                Ok(ms) => Ok(Some(ms)),
                Err(why) => Err(Error::new(
                    lit.span(),
                    format!("malformed {name} `{v}`: {why}; write e.g. `\"90s\"`, `\"5m\"`, `\"1h30m\"`{never}"),
                )),
            }
        }
    }
}

struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

fn segment_problem(s: &str) -> Option<char> {
    if s.is_empty() {
        return Some(' ');
    }
    s.chars()
        .find(|c| matches!(c, ':' | '*' | '?' | '[' | ']' | '{' | '}' | '#') || c.is_whitespace())
}

pub fn validate(f: &CachedFn, args: Args) -> Result<Resolved, Error> {
    let mut errs = Errors(None);
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

    let ttl_tokens = |ms: Option<u64>| match ms {
        Some(ms) => quote!(::memo_redis::__private::Ttl::Millis(#ms)),
        None => quote!(::memo_redis::__private::Ttl::Never),
    };
    let mut ttl = quote!(::memo_redis::__private::Ttl::Default);
    if let Some(t) = args.ttl.get() {
        match duration_arg(t, "ttl", true) {
            Ok(ms) => ttl = ttl_tokens(ms),
            Err(e) => errs.push(e),
        }
    }
    let mut none_ttl = None;
    if let Some(t) = args.none_ttl.get() {
        match duration_arg(t, "none_ttl", true) {
            Ok(ms) => none_ttl = Some(ttl_tokens(ms)),
            Err(e) => errs.push(e),
        }
    }
    let mut stale_ms = None;
    if let Some(t) = args.stale.get() {
        match duration_arg(t, "stale", false) {
            Ok(ms) => stale_ms = ms,
            Err(e) => errs.push(e),
        }
    }
    let mut lock_ms = None;
    match args.lock.get() {
        Some(LockArg::Bool(b)) if b.value => lock_ms = Some(DEFAULT_LOCK_MS),
        Some(LockArg::Lease(t)) => match duration_arg(t, "lock", false) {
            Ok(ms) => lock_ms = ms,
            Err(e) => errs.push(e),
        },
        _ => {}
    }
    let mut local_ms = None;
    match args.local.get() {
        Some(LockArg::Bool(b)) if b.value => local_ms = Some(0),
        Some(LockArg::Lease(t)) => match duration_arg(t, "local", false) {
            Ok(ms) => local_ms = ms,
            Err(e) => errs.push(e),
        },
        _ => {}
    }
    let mut beta = None;
    match args.early_refresh.get() {
        Some(BetaArg::Bool(b)) if b.value => beta = Some(1.0),
        Some(BetaArg::Beta(lit)) => match lit_f64(lit) {
            Some(v) if v > 0.0 && v.is_finite() => beta = Some(v),
            _ => errs.push(Error::new(
                lit.span(),
                "`early_refresh` takes `true` (β = 1) or a positive number β, e.g. `early_refresh = 2.0`",
            )),
        },
        _ => {}
    }
    let mut jitter = 0.0;
    if let Some(lit) = args.jitter.get() {
        match lit_f64(lit) {
            Some(v) if (0.0..1.0).contains(&v) => jitter = v,
            _ => errs.push(Error::new(
                lit.span(),
                "`jitter` takes a fraction from 0 to below 1, e.g. `jitter = 0.1` for ±10 %",
            )),
        }
    }
    let single_flight = args.single_flight.get().is_none_or(|b| b.value);
    let sliding = args.sliding.get().is_some_and(|b| b.value);
    if let (true, Some(k)) = (sliding, args.tags.span()) {
        errs.push(Error::new(
            k,
            "`tags` and `sliding` cannot be combined: a hit extends the entry but not its tag membership, so a tag invalidation could miss it; use the typed handle's `set_with_tags`/`get_and_extend` for sliding, tagged data",
        ));
    }
    if let (true, Some(_)) = (sliding, local_ms) {
        errs.push(Error::new(
            args.local.span().unwrap_or_else(Span::call_site),
            "`local` and `sliding` cannot be combined: a near-cache hit never reaches Redis, so it could not extend the sliding TTL",
        ));
    }
    if let (true, Some(_)) = (sliding, args.stale.get()) {
        errs.push(Error::new(
            args.stale.span().unwrap_or_else(Span::call_site),
            "`stale` and `sliding` cannot be combined; a sliding entry is refreshed by reads and never goes stale",
        ));
    }
    if stale_ms.is_some() || beta.is_some() {
        if let ReceiverKind::Present { span } = f.receiver {
            errs.push(Error::new(
                span,
                "`stale` and `early_refresh` run the body in the background, which needs owned arguments and no `self`; cache an associated or free function taking owned arguments, and call it from the method",
            ));
        }
        for p in &f.params {
            if p.is_ref {
                errs.push(Error::new_spanned(
                    &p.ty,
                    "`stale` and `early_refresh` run the body in the background, which needs owned `Clone + Send + Sync + 'static` arguments; take an owned type (e.g. `String` instead of `&str`)",
                ));
            }
        }
    }
    if let (Some(_), Some(k)) = (&none_ttl, args.none_ttl.span()) {
        if !args.cache_none.get().is_some_and(|b| b.value) {
            errs.push(Error::new(
                k,
                "`none_ttl` applies to cached `None` entries; add `cache_none = true`",
            ));
        }
    }

    let prefix = args.prefix.get().and_then(|lit| {
        let v = lit.value();
        match segment_problem(&v) {
            Some(c) => {
                errs.push(Error::new(
                    lit.span(),
                    if v.is_empty() {
                        "`prefix` must not be empty".to_string()
                    } else {
                        format!("`prefix` must not contain `{c}` (it is one key field); use letters, digits, `_`, `-`, `.` or `/`")
                    },
                ));
                None
            }
            None => Some(v),
        }
    });
    let name = args.name.get().and_then(|lit| {
        let v = lit.value();
        if v.trim().is_empty() {
            errs.push(Error::new(lit.span(), "`name` must not be empty"));
            None
        } else {
            Some(v)
        }
    });

    // shape
    let mut shape = f.shape;
    let mut value_ty = f.value_ty.clone();
    if let Some(ident) = args.shape.get() {
        let s = match ident.to_string().as_str() {
            "plain" => Some(ShapeKind::Plain),
            "option" => Some(ShapeKind::Opt),
            "result" => Some(ShapeKind::Res),
            "result_option" => Some(ShapeKind::ResOpt),
            other => {
                errs.push(Error::new(
                    ident.span(),
                    format!("unknown shape `{other}`; expected one of `plain`, `option`, `result`, `result_option`"),
                ));
                None
            }
        };
        if let (Some(s), Some(ret)) = (s, &f.ret) {
            shape = s;
            value_ty = value_for_override(ret, s);
        }
    }

    let cache_none = match args.cache_none.get() {
        Some(b) => {
            if b.value && !shape.caches_none() {
                errs.push(Error::new(
                    b.span(),
                    "`cache_none` needs a return type of `Option<T>` or `Result<Option<T>, E>`; remove it, or use `shape = option` for an alias of `Option`",
                ));
            }
            b.value
        }
        None => false,
    };

    let version = match args.version.get() {
        Some(lit) => match lit.base10_parse::<u32>() {
            Ok(v) => v,
            Err(_) => {
                errs.push(Error::new(
                    lit.span(),
                    "`version` must be a whole number from 0 to 4294967295",
                ));
                0
            }
        },
        None => 0,
    };

    let codec = args.codec.get().and_then(|ident| {
        let variant = match ident.to_string().as_str() {
            "bincode" => "Bincode",
            "json" => "Json",
            "msgpack" => "MsgPack",
            "postcard" => "Postcard",
            other => {
                errs.push(Error::new(
                    ident.span(),
                    format!("unknown codec `{other}`; expected one of `bincode`, `json`, `msgpack`, `postcard`"),
                ));
                return None;
            }
        };
        let v = syn::Ident::new(variant, ident.span());
        Some(quote!(::memo_redis::__private::CodecKind::#v))
    });

    let compress = match args.compress.get() {
        None => None,
        Some(CompressArg::Bool(b)) => Some(b.value.then_some(DEFAULT_COMPRESS_MIN_BYTES)),
        Some(CompressArg::Size(lit)) => match parse_size_bytes(&lit.value()) {
            Ok(n) => Some(Some(n)),
            Err(why) => {
                errs.push(Error::new(
                    lit.span(),
                    format!("invalid `compress` size: {why}; e.g. `compress = \"4KiB\"`, or `compress = true` for 1 KiB"),
                ));
                None
            }
        },
    };

    let cache = args.cache.get().map(|path| quote!(#path));

    // key
    let key = match (args.key.get(), args.key_fn.get()) {
        (Some(_), Some(_)) => {
            errs.push(Error::new(
                args.key_fn.span().unwrap_or_else(Span::call_site),
                "`key` and `key_fn` cannot be combined; use one of them",
            ));
            KeyMode::Digest
        }
        (Some(lit), None) => match template::parse(&lit.value())
            .and_then(|segments| template::check_key_separators(&segments).map(|()| segments))
        {
            Err(why) => {
                errs.push(Error::new(lit.span(), why));
                KeyMode::Digest
            }
            Ok(segments) => {
                check_template(f, &segments, lit.span(), "key template", &mut errs);
                KeyMode::Template(segments, lit.span())
            }
        },
        (None, Some(path)) => KeyMode::Fn(path.clone()),
        (None, None) => KeyMode::Digest,
    };

    let mut tags = Vec::new();
    for lit in args.tags.get().into_iter().flatten() {
        match template::parse(&lit.value()) {
            Err(why) => errs.push(Error::new(lit.span(), why)),
            Ok(segments) => {
                check_template(f, &segments, lit.span(), "tag", &mut errs);
                tags.push((segments, lit.span()));
            }
        }
    }

    match errs.0 {
        Some(e) => Err(e),
        None => Ok(Resolved {
            ttl,
            prefix,
            key,
            cache_none,
            version,
            codec,
            compress,
            cache,
            name,
            shape,
            value_ty,
            none_ttl,
            stale_ms,
            lock_ms,
            beta,
            jitter,
            single_flight,
            sliding,
            local_ms,
            tags,
        }),
    }
}

/// Checks a key template (`what` = "key template", every key argument required) or a tag
/// template (`what` = "tag", any subset of the key arguments).
fn check_template(f: &CachedFn, segments: &[Segment], span: Span, what: &str, errs: &mut Errors) {
    let require_all = what == "key template";
    let key_names: Vec<String> = f.key_params().map(|p| p.ident.to_string()).collect();
    let mut used = Vec::new();
    let mut unknown = false;
    for seg in segments {
        let Segment::Arg { root, .. } = seg else {
            continue;
        };
        if root == "self" {
            if matches!(f.receiver, ReceiverKind::None) {
                errs.push(Error::new(
                    span,
                    format!("{what} names `self`, but this function has no `self` parameter"),
                ));
            }
            continue;
        }
        if let Some(p) = f.params.iter().find(|p| p.ident == root.as_str()) {
            if p.skip {
                errs.push(Error::new(
                    span,
                    format!("{what} names `{root}`, which is marked `#[memo(skip)]`; remove the skip or the placeholder"),
                ));
            }
            used.push(root.clone());
        } else {
            unknown = true;
            let expected = if key_names.is_empty() {
                "the function has no key arguments".to_string()
            } else if let [only] = key_names.as_slice() {
                format!("expected `{only}`")
            } else {
                format!(
                    "expected one of {}",
                    key_names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            errs.push(Error::new(
                span,
                format!("unknown argument `{root}` in {what}; {expected}"),
            ));
        }
    }
    // After a misspelt placeholder the unused argument is most likely the one meant: one error.
    for name in key_names.iter().filter(|_| !unknown && require_all) {
        if !used.contains(name) {
            errs.push(Error::new(
                span,
                format!("argument `{name}` is not in the key template, so calls differing only in `{name}` would share an entry; add `{{{name}}}` to the template or mark the argument `#[memo(skip)]`"),
            ));
        }
    }
}
