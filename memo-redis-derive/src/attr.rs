//! Parsing of `#[redis_cache(...)]` arguments.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitBool, LitInt, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(prefix);
    syn::custom_keyword!(key);
    syn::custom_keyword!(key_fn);
    syn::custom_keyword!(cache_none);
    syn::custom_keyword!(version);
    syn::custom_keyword!(codec);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(name);
    syn::custom_keyword!(shape);
}

pub const EXPECTED: &str = "expected one of `ttl`, `prefix`, `key`, `key_fn`, `cache_none`, `version`, `codec`, `cache`, `name`, `shape`";

/// `ttl = 300` or `ttl = "5m"` / `"never"`.
pub enum TtlArg {
    Secs(LitInt),
    Str(LitStr),
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
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::ttl) {
                let k: kw::ttl = input.parse()?;
                input.parse::<Token![=]>()?;
                let v = if input.peek(LitInt) {
                    TtlArg::Secs(input.parse()?)
                } else if input.peek(LitStr) {
                    TtlArg::Str(input.parse()?)
                } else {
                    return Err(input.error(
                        "expected whole seconds or a duration string for `ttl`, e.g. `ttl = 300` or `ttl = \"5m\"`",
                    ));
                };
                args.ttl.set(k.span, "ttl", v)?;
            } else if lookahead.peek(kw::prefix) {
                let k: kw::prefix = input.parse()?;
                input.parse::<Token![=]>()?;
                args.prefix.set(k.span, "prefix", input.parse()?)?;
            } else if lookahead.peek(kw::key_fn) {
                let k: kw::key_fn = input.parse()?;
                input.parse::<Token![=]>()?;
                args.key_fn.set(k.span, "key_fn", input.parse()?)?;
            } else if lookahead.peek(kw::key) {
                let k: kw::key = input.parse()?;
                input.parse::<Token![=]>()?;
                args.key.set(k.span, "key", input.parse()?)?;
            } else if lookahead.peek(kw::cache_none) {
                let k: kw::cache_none = input.parse()?;
                input.parse::<Token![=]>()?;
                args.cache_none.set(k.span, "cache_none", input.parse()?)?;
            } else if lookahead.peek(kw::version) {
                let k: kw::version = input.parse()?;
                input.parse::<Token![=]>()?;
                args.version.set(k.span, "version", input.parse()?)?;
            } else if lookahead.peek(kw::codec) {
                let k: kw::codec = input.parse()?;
                input.parse::<Token![=]>()?;
                args.codec.set(k.span, "codec", input.parse()?)?;
            } else if lookahead.peek(kw::cache) {
                let k: kw::cache = input.parse()?;
                input.parse::<Token![=]>()?;
                args.cache.set(k.span, "cache", input.parse()?)?;
            } else if lookahead.peek(kw::name) {
                let k: kw::name = input.parse()?;
                input.parse::<Token![=]>()?;
                args.name.set(k.span, "name", input.parse()?)?;
            } else if lookahead.peek(kw::shape) {
                let k: kw::shape = input.parse()?;
                input.parse::<Token![=]>()?;
                args.shape.set(k.span, "shape", input.parse()?)?;
            } else if input.peek(Ident) {
                let unknown: Ident = input.parse()?;
                return Err(syn::Error::new(
                    unknown.span(),
                    format!("unknown argument `{unknown}`; {EXPECTED}"),
                ));
            } else {
                return Err(lookahead.error());
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
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
    use super::parse_duration_ms;

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
