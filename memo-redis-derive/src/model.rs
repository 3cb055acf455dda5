//! The validated model of one `#[redis_cache]` use: every argument resolved to plain data, ready
//! for code generation (which alone turns it into tokens).

use proc_macro2::Span;
use syn::{Ident, Path, Type};

use crate::ast::ShapeKind;
use crate::template::Segment;

/// How the key is built from the key arguments.
pub enum KeyMode {
    Digest,
    Template(Vec<Segment>, Span),
    Fn(Path),
}

/// A lifetime: `ttl` or `none_ttl` (`memo_redis::__private::Ttl`).
pub enum Ttl {
    /// Not written: the cache's configured default.
    Default,
    /// `"never"`.
    Never,
    Millis(u64),
}

/// The arguments of one use, validated against each other and the function's signature.
pub struct Resolved {
    pub ttl: Ttl,
    pub prefix: Option<String>,
    pub key: KeyMode,
    pub cache_none: bool,
    pub version: u32,
    /// `codec = ...`: the `CodecKind` variant, at the codec's name.
    pub codec: Option<Ident>,
    /// `compress = ...`: `Some(Some(n))` from `n` bytes, `Some(None)` never, `None`: the cache's.
    pub compress: Option<Option<usize>>,
    /// `cache = STATIC`; `None`: the global cache.
    pub cache: Option<Path>,
    pub name: Option<String>,
    pub shape: ShapeKind,
    pub value_ty: Option<Type>,
    pub none_ttl: Option<Ttl>,
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
