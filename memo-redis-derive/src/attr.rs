//! Parsing of `#[redis_cache(...)]` arguments.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Lit, LitBool, LitInt, LitStr, Path, Token};

pub const EXPECTED: &str = "expected one of `ttl`, `prefix`, `key`, `key_fn`, `cache_none`, `version`, `codec`, `cache`, `name`, `shape`, `single_flight`, `lock`, `stale`, `early_refresh`, `sliding`, `jitter`, `none_ttl`, `tags`, `local`, `compress`";

/// `ttl = 300` or `ttl = "5m"` / `"never"`.
pub enum TtlArg {
    Secs(LitInt),
    Str(LitStr),
}

/// `lock = true` or `lock = "5s"` (the lease); also `local = true` / `local = "60s"`.
pub enum LockArg {
    Bool(LitBool),
    Lease(TtlArg),
}

/// `compress = true` / `false` or `compress = "4KiB"` (the threshold).
pub enum CompressArg {
    Bool(LitBool),
    Size(LitStr),
}

/// `early_refresh = true` (β = 1) or `early_refresh = 1.5` (β).
pub enum BetaArg {
    Bool(LitBool),
    Beta(Lit),
}

/// A set-once argument remembering where it was written.
pub struct Once<T> {
    pub value: Option<(Span, T)>,
}

impl<T> Default for Once<T> {
    fn default() -> Self {
        Once { value: None }
    }
}

impl<T> Once<T> {
    fn set(&mut self, kw_span: Span, name: &str, value: T) -> syn::Result<()> {
        if self.value.is_some() {
            return Err(syn::Error::new(
                kw_span,
                format!("duplicate argument `{name}`; each argument may appear once"),
            ));
        }
        self.value = Some((kw_span, value));
        Ok(())
    }
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }
    pub fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(s, _)| *s)
    }
}

#[derive(Default)]
pub struct Args {
    pub ttl: Once<TtlArg>,
    pub prefix: Once<LitStr>,
    pub key: Once<LitStr>,
    pub key_fn: Once<Path>,
    pub cache_none: Once<LitBool>,
    pub version: Once<LitInt>,
    pub codec: Once<Ident>,
    pub cache: Once<Path>,
    pub name: Once<LitStr>,
    pub shape: Once<Ident>,
    pub single_flight: Once<LitBool>,
    pub lock: Once<LockArg>,
    pub stale: Once<TtlArg>,
    pub early_refresh: Once<BetaArg>,
    pub sliding: Once<LitBool>,
    pub jitter: Once<Lit>,
    pub none_ttl: Once<TtlArg>,
    pub tags: Once<Vec<LitStr>>,
    pub local: Once<LockArg>,
    pub compress: Once<CompressArg>,
}

/// Whole seconds or a duration string, for `ttl`, `stale`, `none_ttl` and `lock`.
fn duration(input: ParseStream<'_>, name: &str) -> syn::Result<TtlArg> {
    if input.peek(LitInt) {
        Ok(TtlArg::Secs(input.parse()?))
    } else if input.peek(LitStr) {
        Ok(TtlArg::Str(input.parse()?))
    } else {
        Err(input.error(format!(
            "expected whole seconds or a duration string for `{name}`, e.g. `{name} = 300` or `{name} = \"5m\"`"
        )))
    }
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let k: Ident = input.call(Ident::parse_any).map_err(|e| {
                syn::Error::new(e.span(), format!("expected an argument name; {EXPECTED}"))
            })?;
            let name = k.to_string();
            let at = k.span();
            if !EXPECTED.contains(&format!("`{name}`")) {
                return Err(syn::Error::new(
                    at,
                    format!("unknown argument `{name}`; {EXPECTED}"),
                ));
            }
            input.parse::<Token![=]>()?;
            match name.as_str() {
                "ttl" => args.ttl.set(at, &name, duration(input, "ttl")?)?,
                "prefix" => args.prefix.set(at, &name, input.parse()?)?,
                "key" => args.key.set(at, &name, input.parse()?)?,
                "key_fn" => args.key_fn.set(at, &name, input.parse()?)?,
                "cache_none" => args.cache_none.set(at, &name, input.parse()?)?,
                "version" => args.version.set(at, &name, input.parse()?)?,
                "codec" => args.codec.set(at, &name, input.parse()?)?,
                "cache" => args.cache.set(at, &name, input.parse()?)?,
                "name" => args.name.set(at, &name, input.parse()?)?,
                "shape" => args.shape.set(at, &name, input.parse()?)?,
                "single_flight" => args.single_flight.set(at, &name, input.parse()?)?,
                "sliding" => args.sliding.set(at, &name, input.parse()?)?,
                "jitter" => args.jitter.set(at, &name, input.parse()?)?,
                "stale" => args.stale.set(at, &name, duration(input, "stale")?)?,
                "none_ttl" => args.none_ttl.set(at, &name, duration(input, "none_ttl")?)?,
                "tags" => {
                    let content;
                    syn::bracketed!(content in input);
                    let list = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
                    args.tags.set(at, &name, list.into_iter().collect())?;
                }
                "lock" | "local" => {
                    let v = if input.peek(LitBool) {
                        LockArg::Bool(input.parse()?)
                    } else {
                        LockArg::Lease(duration(input, &name)?)
                    };
                    let slot = if name == "lock" {
                        &mut args.lock
                    } else {
                        &mut args.local
                    };
                    slot.set(at, &name, v)?;
                }
                "compress" => {
                    let v = if input.peek(LitBool) {
                        CompressArg::Bool(input.parse()?)
                    } else if input.peek(LitStr) {
                        CompressArg::Size(input.parse()?)
                    } else {
                        return Err(input.error(
                            "expected `true`, `false` or a size for `compress`, e.g. `compress = true` or `compress = \"4KiB\"`",
                        ));
                    };
                    args.compress.set(at, &name, v)?;
                }
                _ => {
                    // early_refresh
                    let v = if input.peek(LitBool) {
                        BetaArg::Bool(input.parse()?)
                    } else {
                        BetaArg::Beta(input.parse()?)
                    };
                    args.early_refresh.set(at, &name, v)?;
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// Parses `"512B"`, `"4KiB"`, `"1MiB"` into bytes.
pub fn parse_size_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(format!("expected a size such as \"4KiB\", found `{s}`"));
    }
    let n: usize = s[..digits]
        .parse()
        .map_err(|_| "size too large".to_string())?;
    let factor: usize = match s[digits..].trim_start() {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "" => {
            return Err(format!(
                "expected a unit (`B`, `KiB` or `MiB`) right after `{n}`"
            ))
        }
        other => {
            return Err(format!(
                "unknown unit `{other}` (expected `B`, `KiB` or `MiB`)"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| "size too large".to_string())
}

/// Parses `"90s"`, `"5m"`, `"1h30m"`, `"1500ms"`, `"2d"` into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "number too large".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "expected a unit (`ms`, `s`, `m`, `h` or `d`) right after `{n}`"
                ))
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` (expected `ms`, `s`, `m`, `h` or `d`)"
                ))
            }
        };
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "duration too large".to_string())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::{parse_duration_ms, parse_size_bytes};

    #[test]
    fn sizes() {
        assert_eq!(parse_size_bytes("512B"), Ok(512));
        assert_eq!(parse_size_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_size_bytes("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_size_bytes("0B"), Ok(0));
        assert!(parse_size_bytes("4").is_err());
        assert!(parse_size_bytes("4KB").is_err());
        assert!(parse_size_bytes("KiB").is_err());
        assert!(parse_size_bytes("99999999999999999999B").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert!(parse_duration_ms("5").is_err());
        assert!(parse_duration_ms("5 minutes").is_err());
        assert!(parse_duration_ms("m").is_err());
    }
}
