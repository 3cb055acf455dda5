//! Return-type policies: what of a function's result is cached, and how a hit becomes a result.
//!
//! The macro picks the shape from the return type's last path segment (`Option`, `Result`, else
//! plain); `shape = ...` overrides it for aliases. A function with `local = ...` gets that shape
//! wrapped in [`Kept`], which keeps its values decoded in the near tier.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

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

    /// The near tier's copy of a value just read from Redis (`None`: a cached `None`), kept
    /// decoded; `None` when this shape keeps nothing locally (only [`Kept`] does).
    #[inline]
    fn keep(_value: &Option<Self::Value>) -> Option<Held> {
        None
    }

    /// The result of a local hit on `held`; `None` when it is not a copy of this shape's value
    /// type (another function's value under the same key) or cannot be its result, which the
    /// caller treats as a miss.
    #[inline]
    fn from_held(_held: &Held) -> Option<R> {
        None
    }
}

/// A value kept decoded by the near tier: an `Option<V>` of the function's value type `V`,
/// downcast (by exact type) and cloned on a local hit.
pub type Held = Arc<dyn Any + Send + Sync>;

/// Value types of `local = ...` functions: the near tier keeps them decoded and serves clones.
///
/// Generated code requires it of the cached value type of a function with `local = ...`, at the
/// return type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be kept by the near cache (`local = ...`): it must implement `Clone + Send + Sync + 'static`",
    label = "kept decoded in process memory and cloned on every local hit, so it must be `Clone + Send + Sync + 'static`",
    note = "derive or implement `Clone` for the type (a large value can be returned as `Arc<T>`, serde's `rc` feature, so that a local hit clones a pointer), or remove `local = ...`"
)]
pub trait LocalValue: Clone + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Clone + Send + Sync + 'static> LocalValue for T {}

/// The shape of a function with `local = ...`: the policy `S` (for return type `R`), its values
/// kept decoded in the near tier, so a local hit is a lookup and a clone, not a decode.
#[derive(Debug)]
pub struct Kept<S>(PhantomData<fn() -> S>);

impl<S, R> Shape<R> for Kept<S>
where
    S: Shape<R>,
    S::Value: LocalValue,
{
    type Value = S::Value;

    #[inline]
    fn stored(r: &R, cache_none: bool) -> Option<Option<&Self::Value>> {
        S::stored(r, cache_none)
    }

    #[inline]
    fn from_cached(value: Option<Self::Value>) -> Option<R> {
        S::from_cached(value)
    }

    #[inline]
    fn keep(value: &Option<Self::Value>) -> Option<Held> {
        Some(Arc::new(value.clone()))
    }

    #[inline]
    fn from_held(held: &Held) -> Option<R> {
        let value = held.downcast_ref::<Option<Self::Value>>()?;
        S::from_cached(value.clone())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_value_is_served_as_a_clone_of_its_result() {
        let held = <Kept<Plain> as Shape<String>>::keep(&Some("v".to_string())).unwrap();
        assert_eq!(
            <Kept<Plain> as Shape<String>>::from_held(&held),
            Some("v".to_string())
        );
        // Twice: the held copy is cloned, not moved out.
        assert_eq!(
            <Kept<Plain> as Shape<String>>::from_held(&held),
            Some("v".to_string())
        );
        let r: Option<Result<String, ()>> =
            <Kept<Res> as Shape<Result<String, ()>>>::from_held(&held);
        assert_eq!(r, Some(Ok("v".to_string())));
    }

    #[test]
    fn a_held_value_of_another_type_is_no_result() {
        // Another function's value under the same key (e.g. one `key = "..."` shared by two
        // functions): the downcast fails, the caller treats it as a miss.
        let held = <Kept<Plain> as Shape<u64>>::keep(&Some(7u64)).unwrap();
        assert_eq!(<Kept<Plain> as Shape<u32>>::from_held(&held), None);
        assert_eq!(<Kept<Plain> as Shape<i64>>::from_held(&held), None);
        assert_eq!(<Kept<Plain> as Shape<u64>>::from_held(&held), Some(7));
    }

    #[test]
    fn a_kept_none_is_a_result_only_where_the_shape_can_return_none() {
        let held = <Kept<Opt> as Shape<Option<u64>>>::keep(&None).unwrap();
        assert_eq!(
            <Kept<Opt> as Shape<Option<u64>>>::from_held(&held),
            Some(None)
        );
        assert_eq!(<Kept<Plain> as Shape<u64>>::from_held(&held), None);
    }

    #[test]
    fn shapes_without_kept_keep_nothing() {
        assert!(<Plain as Shape<u64>>::keep(&Some(7)).is_none());
        let held: Held = Arc::new(Some(7u64));
        assert_eq!(<Plain as Shape<u64>>::from_held(&held), None);
    }
}
