//! Every semantic rejection, each spanned on the smallest offending node.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Error, GenericParam, Path, ReturnType, Type};

use crate::ast::{value_for_override, CachedFn, ReceiverKind, ShapeKind};
use crate::attr::{parse_duration_ms, Args, TtlArg};
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
    pub cache: TokenStream,
    pub name: Option<String>,
    pub shape: ShapeKind,
    pub value_ty: Option<Type>,
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

    // ttl
    let mut ttl = quote!(::memo_redis::__private::Ttl::Default);
    if let Some(t) = args.ttl.get() {
        match t {
            // `5m` lexes as the integer 5 with a suffix, which `base10_parse` ignores.
            TtlArg::Secs(lit) if !lit.suffix().is_empty() => errs.push(Error::new(
                lit.span(),
                format!("`ttl = {lit}` is not a number of seconds; write durations with units as a string, `ttl = \"{lit}\"`"),
            )),
            TtlArg::Secs(lit) => match lit.base10_parse::<u64>() {
                Ok(0) => errs.push(Error::new(
                    lit.span(),
                    "`ttl = 0` is not allowed; omit `ttl` for the configured default or write `ttl = \"never\"` for entries that do not expire",
                )),
                Ok(s) => match s.checked_mul(1000) {
                    Some(ms) => ttl = quote!(::memo_redis::__private::Ttl::Millis(#ms)),
                    None => errs.push(Error::new(lit.span(), "ttl too large")),
                },
                Err(_) => errs.push(Error::new(
                    lit.span(),
                    "malformed ttl; expected whole seconds, e.g. `ttl = 300`",
                )),
            },
            TtlArg::Str(lit) => {
                let v = lit.value();
                if v.trim() == "never" {
                    ttl = quote!(::memo_redis::__private::Ttl::Never);
                } else {
                    match parse_duration_ms(&v) {
                        Ok(0) => errs.push(Error::new(
                            lit.span(),
                            "a zero ttl is not allowed; omit `ttl` for the configured default or write `ttl = \"never\"`",
                        )),
                        Ok(ms) => ttl = quote!(::memo_redis::__private::Ttl::Millis(#ms)),
                        Err(why) => errs.push(Error::new(
                            lit.span(),
                            format!("malformed ttl `{v}`: {why}; write e.g. `\"90s\"`, `\"5m\"`, `\"1h30m\"` or `\"never\"`"),
                        )),
                    }
                }
            }
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

    let cache = match args.cache.get() {
        Some(path) => quote!(#path),
        None => quote!(::memo_redis::__private::GLOBAL),
    };

    // key
    let key = match (args.key.get(), args.key_fn.get()) {
        (Some(_), Some(_)) => {
            errs.push(Error::new(
                args.key_fn.span().unwrap_or_else(Span::call_site),
                "`key` and `key_fn` cannot be combined; use one of them",
            ));
            KeyMode::Digest
        }
        (Some(lit), None) => match template::parse(&lit.value()) {
            Err(why) => {
                errs.push(Error::new(lit.span(), why));
                KeyMode::Digest
            }
            Ok(segments) => {
                check_template(f, &segments, lit.span(), &mut errs);
                KeyMode::Template(segments, lit.span())
            }
        },
        (None, Some(path)) => KeyMode::Fn(path.clone()),
        (None, None) => KeyMode::Digest,
    };

    match errs.0 {
        Some(e) => Err(e),
        None => Ok(Resolved {
            ttl,
            prefix,
            key,
            cache_none,
            version,
            codec,
            cache,
            name,
            shape,
            value_ty,
        }),
    }
}

fn check_template(f: &CachedFn, segments: &[Segment], span: Span, errs: &mut Errors) {
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
                    "key template names `self`, but this function has no `self` parameter",
                ));
            }
            continue;
        }
        if let Some(p) = f.params.iter().find(|p| p.ident == root.as_str()) {
            if p.skip {
                errs.push(Error::new(
                    span,
                    format!("key template names `{root}`, which is marked `#[memo(skip)]`; remove the skip or the placeholder"),
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
                format!("unknown argument `{root}` in key template; {expected}"),
            ));
        }
    }
    // After a misspelt placeholder the unused argument is most likely the one meant: one error.
    for name in key_names.iter().filter(|_| !unknown) {
        if !used.contains(name) {
            errs.push(Error::new(
                span,
                format!("argument `{name}` is not in the key template, so calls differing only in `{name}` would share an entry; add `{{{name}}}` to the template or mark the argument `#[memo(skip)]`"),
            ));
        }
    }
}
