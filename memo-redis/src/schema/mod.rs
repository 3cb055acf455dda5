//! Structural fingerprints of cached value types: what the bytes of a value look like.
//!
//! The attribute macro sees only the return type's tokens, not its definition, so a change inside
//! a type (a field's type, field order, a new enum variant, a `serde(rename)`) would keep the same
//! key while the bytes change meaning. Here the type's serde shape is traced at run time, once per
//! type: a [`Deserializer`](serde::Deserializer) that answers every request with a small sample
//! value and records what was requested (struct and field names, enum variants, primitive kinds,
//! options, sequences, maps, tuples), recursively. The record is written as a canonical text and
//! hashed with SHA-256, so the result is the same on every build and platform.
//!
//! - Enums are traced variant by variant: the type is deserialized again until every variant of
//!   every enum it reaches has been seen.
//! - Recursive types (`struct Node { next: Option<Box<Node>> }`) are cut where a container
//!   reappears inside itself: the description refers back to it, and the value is completed with
//!   empty options and sequences.
//! - Sample values that a type's `Deserialize` rejects (a `NonZeroU32` given 0, a date parsed from
//!   a string) are replaced by the next candidate and the trace is run again.
//! - Types that describe themselves at run time (`deserialize_any`: untagged or internally tagged
//!   enums, `flatten`, `serde_json::Value`) cannot be traced: [`describe`] reports
//!   [`Untraceable`], and callers fall back to the type's name.
//!
//! Traces are cached per type for the life of the process; the table is read without locks.

mod de;
mod trace;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use trace::trace;

/// Why a type's shape could not be traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the serde shape of `{type_name}` cannot be traced: {reason}")]
pub struct Untraceable {
    /// The type, as `std::any::type_name` spells it.
    pub type_name: &'static str,
    /// What stopped the trace.
    pub reason: String,
}

/// The canonical description of `T`'s serde shape (the text whose SHA-256 is its fingerprint).
///
/// # Errors
/// The type's `Deserialize` asks for a self-describing format (`deserialize_any`,
/// `deserialize_identifier`), panics, rejects every sample value, or is too large to trace.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Score { user: u64, delta: i32 }
/// #[derive(serde::Deserialize)]
/// #[serde(untagged)]
/// enum Loose { A(u8), B(String) }
///
/// let d = memo_redis::schema::describe::<Score>().unwrap();
/// assert_eq!(d, "S5:Score.s{4:user:u64,5:delta:i32}");
/// assert!(memo_redis::schema::describe::<Loose>().is_err());
/// ```
pub fn describe<T: DeserializeOwned>() -> Result<String, Untraceable> {
    let type_name = std::any::type_name::<T>();
    let pass = |t: &mut trace::Tracer| T::deserialize(de::De { t }).map(drop);
    let traced = std::panic::catch_unwind(|| trace(pass)).map_err(|_| Untraceable {
        type_name,
        reason: "its Deserialize implementation panicked".into(),
    })?;
    traced.map_err(|reason| Untraceable { type_name, reason })
}

/// The traced shape of one value type, as stored in the process-wide table (opaque; what
/// [`ShapeFn`]s return, for generated code).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traced {
    /// SHA-256 of the canonical description; `None` when the type could not be traced.
    pub(crate) digest: Option<[u8; 32]>,
    /// Why not, for the one-time warning.
    pub(crate) error: Option<String>,
    /// What envelopes carry to tell value types apart: the first 8 bytes of `digest`, or of a
    /// hash of the type's name when it could not be traced; never 0 (0 = "not checked").
    pub(crate) tag: u64,
}

/// A function returning the traced shape of one value type, which the macro passes to the key
/// builders (for generated code).
#[doc(hidden)]
pub type ShapeFn = fn() -> &'static Traced;

/// The traced shape of `T`, traced on first use and cached for the life of the process.
pub(crate) fn shape_of<T: DeserializeOwned>() -> &'static Traced {
    // The address of this instantiation identifies `T` (without needing `T: 'static`): two
    // instantiations folded into one address have identical code, so identical traces.
    let key = compute::<T> as fn() -> Traced as usize;
    table_get(key).unwrap_or_else(|| table_insert(key, compute::<T>))
}

/// A shape for no type in particular (never used by a program that compiles; see
/// `__private::ShapeOfFallback`).
pub(crate) fn untraced() -> &'static Traced {
    static UNTRACED: Traced = Traced {
        digest: None,
        error: None,
        tag: 1,
    };
    &UNTRACED
}

/// The envelope tag of `T` (see [`Traced::tag`]).
pub(crate) fn tag_of<T: DeserializeOwned>() -> u64 {
    shape_of::<T>().tag
}

fn compute<T: DeserializeOwned>() -> Traced {
    match describe::<T>() {
        Ok(text) => {
            let mut h = Sha256::new();
            h.update(b"memo-redis shape v1\n");
            h.update(text.as_bytes());
            let digest: [u8; 32] = h.finalize().into();
            Traced {
                digest: Some(digest),
                error: None,
                tag: tag_from(&digest),
            }
        }
        Err(e) => {
            let mut h = Sha256::new();
            h.update(b"memo-redis untraced type\n");
            h.update(e.type_name.as_bytes());
            let digest: [u8; 32] = h.finalize().into();
            Traced {
                digest: None,
                error: Some(e.reason),
                tag: tag_from(&digest),
            }
        }
    }
}

fn tag_from(digest: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b).max(1)
}

// The process-wide table: open addressing over fixed slots, read with two atomic loads; writers
// (once per value type) take a mutex. Types beyond the slots go to a locked overflow list.
const SLOTS: usize = 256;
static KEYS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static VALUES: [OnceLock<&'static Traced>; SLOTS] = [const { OnceLock::new() }; SLOTS];
static WRITER: Mutex<Vec<(usize, &'static Traced)>> = Mutex::new(Vec::new());

fn slot_of(key: usize) -> usize {
    (key >> 4) % SLOTS
}

fn table_get(key: usize) -> Option<&'static Traced> {
    let start = slot_of(key);
    for i in 0..SLOTS {
        let s = (start + i) % SLOTS;
        match KEYS[s].load(Ordering::Acquire) {
            0 => return None,
            k if k == key => return VALUES[s].get().copied(),
            _ => {}
        }
    }
    let overflow = WRITER.lock().unwrap_or_else(|p| p.into_inner());
    overflow.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn table_insert(key: usize, compute: fn() -> Traced) -> &'static Traced {
    let mut overflow = WRITER.lock().unwrap_or_else(|p| p.into_inner());
    let start = slot_of(key);
    for i in 0..SLOTS {
        let s = (start + i) % SLOTS;
        match KEYS[s].load(Ordering::Acquire) {
            k if k == key => {
                if let Some(v) = VALUES[s].get() {
                    return v;
                }
            }
            0 => {
                let v: &'static Traced = Box::leak(Box::new(compute()));
                let _ = VALUES[s].set(v);
                // Published after the value: a reader that sees the key finds the value.
                KEYS[s].store(key, Ordering::Release);
                return v;
            }
            _ => {}
        }
    }
    if let Some((_, v)) = overflow.iter().find(|(k, _)| *k == key) {
        return v;
    }
    let v: &'static Traced = Box::leak(Box::new(compute()));
    overflow.push((key, v));
    v
}

#[cfg(test)]
mod tests;
