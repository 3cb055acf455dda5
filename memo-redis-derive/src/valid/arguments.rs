//! The attribute's arguments resolved into the model: each value checked (durations, sizes,
//! names, codecs, templates) and each combination checked against the others and the signature.

use proc_macro2::Span;
use syn::Error;

use super::errors::Errors;
use super::placeholders::check_template;
use crate::ast::{value_for_override, CachedFn, ReceiverKind, ShapeKind};
use crate::attr::{
    parse_duration_ms, parse_size_bytes, Args, BetaArg, CompressArg, LockArg, TtlArg,
};
use crate::model::{KeyMode, Resolved, Ttl};
use crate::template;

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

/// Milliseconds of `lock = ...` or `local = ...`: `when_true` for `true`, `None` for `false`.
fn lease_arg(arg: Option<&LockArg>, name: &str, when_true: u64, errs: &mut Errors) -> Option<u64> {
    match arg {
        Some(LockArg::Bool(b)) if b.value => Some(when_true),
        Some(LockArg::Lease(t)) => match duration_arg(t, name, false) {
            Ok(ms) => ms,
            Err(e) => {
                errs.push(e);
                None
            }
        },
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

fn segment_problem(s: &str) -> Option<char> {
    if s.is_empty() {
        return Some(' ');
    }
    s.chars()
        .find(|c| matches!(c, ':' | '*' | '?' | '[' | ']' | '{' | '}' | '#') || c.is_whitespace())
}

/// Every argument's value, in the order the arguments are checked; the errors go to `errs`.
pub(super) fn resolve(f: &CachedFn, args: &Args, errs: &mut Errors) -> Resolved {
    let ttl_of = |ms: Option<u64>| ms.map_or(Ttl::Never, Ttl::Millis);
    let mut ttl = Ttl::Default;
    if let Some(t) = args.ttl.get() {
        match duration_arg(t, "ttl", true) {
            Ok(ms) => ttl = ttl_of(ms),
            Err(e) => errs.push(e),
        }
    }
    let mut none_ttl = None;
    if let Some(t) = args.none_ttl.get() {
        match duration_arg(t, "none_ttl", true) {
            Ok(ms) => none_ttl = Some(ttl_of(ms)),
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
    let lock_ms = lease_arg(args.lock.get(), "lock", DEFAULT_LOCK_MS, errs);
    let local_ms = lease_arg(args.local.get(), "local", 0, errs);
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
        Some(syn::Ident::new(variant, ident.span()))
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

    let cache = args.cache.get().cloned();

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
                check_template(f, &segments, lit.span(), "key template", errs);
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
                check_template(f, &segments, lit.span(), "tag", errs);
                tags.push((segments, lit.span()));
            }
        }
    }
    Resolved {
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
    }
}
