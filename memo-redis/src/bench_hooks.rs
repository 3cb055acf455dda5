//! Hooks for the benchmarks in `tests/benches/` (reachable as `memo_redis::__private::bench`).
//! Not public API: no stability promise, hidden from the docs.
//!
//! They run the CPU part of the hit path on a reply that was fetched beforehand, so
//! `tests/benches/micro.rs` can time it without a round trip.

use crate::error::Error;
use crate::observe::CallOutcome;
use crate::shape::Shape;
use crate::spec::key::Key;
use crate::spec::Spec;

/// What a hit does besides the `GET`, on `reply`: the breaker check, the envelope parse and
/// decode (`call::decode`) and the stats (counter + span field + metrics counter).
/// `None` when the breaker bypasses, the key is an error, or `reply` does not decode.
///
/// The key itself is an argument, so a caller can time it with or without the key's cost (pass
/// the `Result` the macro's `digest_key` returns).
pub fn hit<S: Shape<R>, R>(
    spec: &'static Spec,
    key: Result<Key, Error>,
    reply: &[u8],
) -> Option<R> {
    spec.register();
    let key = key.ok()?;
    let inner = key.inner;
    if inner.store.breaker.bypassing() {
        return None;
    }
    let (r, _) = crate::call::decode::<S, R>(reply, inner.config.max_value_bytes).ok()?;
    spec.count(CallOutcome::Hit);
    Some(r)
}

/// What the miss path writes for `value`: the envelope, after the encode guards (depth and
/// round trip, `guard::encode`). `Err` names why the value would not be stored.
///
/// # Errors
/// The value nests too deeply or does not decode back to itself with `codec`.
pub fn encode_guarded<T>(codec: crate::CodecKind, value: &T) -> Result<Vec<u8>, String>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    crate::guard::encode::<T, T>(
        codec,
        Some(value),
        crate::schema::tag_of::<T>(),
        1_764_000_000_000,
        3,
        None,
        usize::MAX,
    )
    .map_err(|e| e.to_string())
}

/// The envelope shape tag of `T` (traced on first use, then a lock-free table lookup): what every
/// decode compares an entry's tag with.
pub fn shape_tag<T: serde::de::DeserializeOwned>() -> u64 {
    crate::schema::tag_of::<T>()
}
