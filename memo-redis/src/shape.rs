//! Return-type policies: what of a function's result is cached, and how a hit becomes a result.
//!
//! The macro picks the shape from the return type's last path segment (`Option`, `Result`, else
//! plain); `shape = ...` overrides it for aliases.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Cached value types: what is stored in Redis and read back.
///
/// Generated code requires it of the cached value type at the return type, and every runtime
/// bound on the value goes through it, so a type without serde is one error, there.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must implement `serde::Serialize` and `serde::Deserialize`",
    label = "stored in Redis and read back, so it must implement `Serialize` and `Deserialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to the type (for `Result<T, E>` only `T` is stored: `E` needs neither)"
)]
pub trait CacheValue: Serialize + DeserializeOwned {}

// `do_not_recommend`: report the missing `CacheValue` (our message, once) instead of each of
// the blanket impl's two unmet bounds (`Serialize` and `Deserialize`: two errors).
#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> CacheValue for T {}

/// How a return type `R` maps to what is stored.
pub trait Shape<R> {
    /// The cached value type (`T` in `T`, `Option<T>`, `Result<T, E>`, `Result<Option<T>, E>`).
    type Value: Serialize + DeserializeOwned;

    /// What to store for `r`: `None` = nothing, `Some(None)` = a cached `None`,
    /// `Some(Some(v))` = the value `v`.
    fn stored(r: &R, cache_none: bool) -> Option<Option<&Self::Value>>;

    /// The result a hit returns; `None` when the entry cannot belong to this shape (a cached
    /// `None` under a plain function), which is treated like a corrupt entry.
    fn from_cached(value: Option<Self::Value>) -> Option<R>;
}

/// Plain `T`: always cached.
#[derive(Debug)]
pub enum Plain {}
/// `Option<T>`: `Some` cached; `None` only with `cache_none`.
#[derive(Debug)]
pub enum Opt {}
/// `Result<T, E>`: only `Ok` cached; `E` needs no serde.
#[derive(Debug)]
pub enum Res {}
/// `Result<Option<T>, E>`: `Ok(Some)` cached, `Ok(None)` with `cache_none`, never `Err`.
#[derive(Debug)]
pub enum ResOpt {}

impl<T: CacheValue> Shape<T> for Plain {
    type Value = T;
    fn stored(r: &T, _: bool) -> Option<Option<&T>> {
        Some(Some(r))
    }
    fn from_cached(value: Option<T>) -> Option<T> {
        value
    }
}

impl<T: CacheValue> Shape<Option<T>> for Opt {
    type Value = T;
    fn stored(r: &Option<T>, cache_none: bool) -> Option<Option<&T>> {
        match r {
            Some(v) => Some(Some(v)),
            None if cache_none => Some(None),
            None => None,
        }
    }
    fn from_cached(value: Option<T>) -> Option<Option<T>> {
        Some(value)
    }
}

impl<T: CacheValue, E> Shape<Result<T, E>> for Res {
    type Value = T;
    fn stored(r: &Result<T, E>, _: bool) -> Option<Option<&T>> {
        r.as_ref().ok().map(Some)
    }
    fn from_cached(value: Option<T>) -> Option<Result<T, E>> {
        value.map(Ok)
    }
}

impl<T: CacheValue, E> Shape<Result<Option<T>, E>> for ResOpt {
    type Value = T;
    fn stored(r: &Result<Option<T>, E>, cache_none: bool) -> Option<Option<&T>> {
        match r {
            Ok(Some(v)) => Some(Some(v)),
            Ok(None) if cache_none => Some(None),
            _ => None,
        }
    }
    fn from_cached(value: Option<T>) -> Option<Result<Option<T>, E>> {
        Some(Ok(value))
    }
}
