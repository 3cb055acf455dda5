//! Entries as bytes: the envelope decoded (with its guards: size bound, shape tag, codec) and a
//! result encoded (through the encode guards of `guard.rs`).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::Inner;
use crate::clock::now_ms;
use crate::codec::CodecKind;
use crate::envelope::{self, Envelope};
use crate::guard::Refusal;
use crate::shape::{Held, Shape};

use super::Rules;

/// What the envelope says about an entry, for freshness decisions.
#[derive(Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) written_at_ms: u64,
    pub(crate) compute_ms: u32,
    pub(crate) is_none: bool,
    /// The entry's length with its payload decompressed: what a decoded copy of it is weighed
    /// as in the near tier.
    pub(crate) len: usize,
}

/// The value of an entry (`None`: a cached `None`) and its metadata. `Err` says why the bytes
/// are no entry of a `V`: corrupt, foreign, larger than `max_len`, of another shape.
///
/// `shape` is the tag the entry must carry (entries written without one always match).
pub(crate) fn decode_value<V: DeserializeOwned>(
    bytes: &[u8],
    max_len: usize,
    shape: u64,
) -> Result<(Option<V>, Meta), String> {
    let env = Envelope::parse(bytes, max_len).map_err(|e| e.to_string())?;
    if !env.shape_matches(shape) {
        return Err(format!(
            "entry written for a value type of another shape than `{}`",
            std::any::type_name::<V>()
        ));
    }
    let meta = Meta {
        written_at_ms: env.written_at_ms,
        compute_ms: env.compute_ms,
        is_none: env.is_none(),
        len: bytes.len(),
    };
    if env.is_none() {
        return Ok((None, meta));
    }
    let payload = env.decompressed(max_len).map_err(|e| e.to_string())?;
    let meta = Meta {
        len: bytes
            .len()
            .saturating_sub(env.payload.len())
            .saturating_add(payload.len()),
        ..meta
    };
    Ok((Some(env.codec.decode::<V>(&payload)?), meta))
}

/// A call's result `R` from an entry, through its shape `S`.
pub(crate) fn decode<S: Shape<R>, R>(bytes: &[u8], max_len: usize) -> Result<(R, Meta), String> {
    decode_kept::<S, R>(bytes, max_len, false).map(|(r, meta, _)| (r, meta))
}

/// [`decode`], and when `keep` is set the near tier's decoded copy of the value (if the shape
/// keeps one: [`Kept`](crate::shape::Kept)), made before the value becomes the result.
pub(crate) fn decode_kept<S: Shape<R>, R>(
    bytes: &[u8],
    max_len: usize,
    keep: bool,
) -> Result<(R, Meta, Option<Held>), String> {
    let (value, meta) =
        decode_value::<S::Value>(bytes, max_len, crate::schema::tag_of::<S::Value>())?;
    let held = if keep { S::keep(&value) } else { None };
    let r = S::from_cached(value)
        .ok_or_else(|| "cached None under a function that cannot return None".to_string())?;
    Ok((r, meta, held))
}

/// An encoded entry and whether it is a cached `None`.
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) is_none: bool,
}

/// The entry `value` (`None`: a cached `None`) is stored as, through the encode guards, or why
/// they refuse it. `shape` is the tag written; `O` the type the entry is read back as.
pub(crate) fn encode_value<V, O>(
    codec: CodecKind,
    compress: Option<usize>,
    inner: &Inner,
    value: Option<&V>,
    shape: u64,
    compute: Duration,
) -> Result<Encoded, Refusal>
where
    V: Serialize + ?Sized,
    O: Serialize + DeserializeOwned,
{
    let compute_ms = u32::try_from(compute.as_millis()).unwrap_or(u32::MAX);
    let bytes = crate::guard::encode::<V, O>(
        codec,
        value,
        shape,
        now_ms(),
        compute_ms,
        compress,
        inner.config.max_value_bytes,
    )?;
    Ok(Encoded {
        bytes,
        is_none: value.is_none(),
    })
}

/// The payload size of an entry larger than the cache's `max_value_bytes`; `None` if it fits.
pub(crate) fn oversize(inner: &Inner, bytes: &[u8]) -> Option<usize> {
    let payload = bytes.len().saturating_sub(envelope::HEADER_LEN);
    (payload > inner.config.max_value_bytes).then_some(payload)
}

/// The entry a call's result `r` is stored as; `None` when nothing is cached for it.
pub(crate) fn encode<S: Shape<R>, R, Ru: Rules + ?Sized>(
    rules: &Ru,
    inner: &Inner,
    r: &R,
    compute: Duration,
) -> Option<Encoded> {
    let stored = S::stored(r, rules.cache_none())?;
    let codec = rules.codec(inner);
    let shape = crate::schema::tag_of::<S::Value>();
    match encode_value::<S::Value, S::Value>(
        codec,
        rules.compress(inner),
        inner,
        stored,
        shape,
        compute,
    ) {
        Ok(encoded) => Some(encoded),
        Err(refused) => {
            rules.refused(codec, &refused);
            None
        }
    }
}

/// An uncached `None` (no `cache_none`) is not stored, but the followers of the flight get it,
/// as a `None` entry: it is what the body returned for their key while they waited, exactly as
/// a shared value is. `None` for anything else (an `Err`).
pub(crate) fn shared_none<S: Shape<R>, R, Ru: Rules + ?Sized>(
    rules: &Ru,
    inner: &Inner,
    r: &R,
) -> Option<Vec<u8>> {
    match S::stored(r, true) {
        Some(None) => envelope::encode::<S::Value>(rules.codec(inner), None, now_ms(), 0).ok(),
        _ => None,
    }
}
