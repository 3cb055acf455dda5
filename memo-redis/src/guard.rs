//! The encode guards: a value is stored only if it nests within [`MAX_DEPTH`] levels and its
//! encoding decodes back to the same value.
//!
//! Some types do not round-trip through some codecs: with bincode or postcard,
//! `#[serde(skip_serializing_if = ...)]`, `flatten` and untagged or internally tagged enums
//! decode the bytes as something else (or fail); with JSON or MessagePack, `Some(None)` comes back
//! as `None` and NaN or infinities as `null`. Storing such a value would make the next call
//! return another value than the body did, so on every write (the miss path, refreshes and
//! [`Cache::set`](crate::Cache::set); never on a hit) the guard decodes what was encoded and
//! compares the two values.
//!
//! The comparison is by *canonical form*: a private, injective rendering of serde's data model
//! (every `Some`, unit, variant index and name, field name, skipped field, and float bit pattern
//! is distinct), so `Some(None)` differs from `None` and NaN equals itself. When the two forms
//! differ the guard tries once more with the elements of every sequence and the entries of every
//! map sorted: a `HashMap` or `HashSet` decoded from bytes iterates in another order than the
//! one it was built in, and must still be cached. See docs/design-decisions.md.
//!
//! [`MAX_DEPTH`]: crate::depth::MAX_DEPTH

use std::cell::Cell;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::ser::{self, Serialize, Serializer};

use crate::codec::CodecKind;
use crate::depth::Depth;
use crate::envelope;

/// Why a value was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It nests deeper than [`crate::depth::MAX_DEPTH`].
    TooDeep,
    /// It cannot be encoded, or its encoding does not decode back to it; the reason.
    NotRoundTrip(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooDeep => write!(
                f,
                "value nested deeper than {} levels",
                crate::depth::MAX_DEPTH
            ),
            Refusal::NotRoundTrip(why) => {
                write!(f, "value does not decode back to itself ({why})")
            }
        }
    }
}

/// The envelope for `value` (`None`: a cached `None`), written only if it passes the guards.
///
/// `O` is the type the entry is read back as (`T` itself, or `String` for `str`). The guards
/// run on the uncompressed codec payload; a payload of at least `compress` bytes (and at most
/// `max_len`) is then compressed ([`envelope::compress`]): the one place every write of a cached
/// function or of the typed handle compresses.
pub(crate) fn encode<V, O>(
    codec: CodecKind,
    value: Option<&V>,
    shape: u64,
    written_at_ms: u64,
    compute_ms: u32,
    compress: Option<usize>,
    max_len: usize,
) -> Result<Vec<u8>, Refusal>
where
    V: Serialize + ?Sized,
    O: Serialize + DeserializeOwned,
{
    let Some(value) = value else {
        return envelope::encode_shaped::<V>(codec, None, shape, written_at_ms, compute_ms)
            .map_err(Refusal::NotRoundTrip);
    };
    // The canonical form first: it bounds the depth before the codec recurses. Rendered into
    // this thread's scratch buffer (no allocation once warm), given back below.
    let mut original = Scratch::take();
    render(value, false, &mut *original)?;
    let mut out = Vec::with_capacity(original.len() + envelope::HEADER_LEN);
    envelope::header(&mut out, codec, 0, shape, written_at_ms, compute_ms);
    let depth = Depth::new();
    if let Err(e) = codec.encode_in(value, &mut out, &depth) {
        return Err(match depth.tripped() {
            true => Refusal::TooDeep,
            false => Refusal::NotRoundTrip(format!("cannot encode: {e}")),
        });
    }
    let depth = Depth::new();
    let back: O = match codec.decode_in(&out[envelope::HEADER_LEN..], &depth) {
        Ok(back) => back,
        Err(_) if depth.tripped() => return Err(Refusal::TooDeep),
        Err(e) => return Err(Refusal::NotRoundTrip(format!("cannot decode: {e}"))),
    };
    // The copy's canonical form compared with the original's as it is rendered (no second
    // buffer); the whole copy is always rendered, so its errors are the same as rendering it.
    let n = original.len();
    if matches(&back, &original)? || canonical(&back, true, n)? == canonical(value, true, n)? {
        return Ok(envelope::compress(out, compress, max_len));
    }
    Err(Refusal::NotRoundTrip("decodes to another value".into()))
}

/// The canonical form of `value`; `sorted`: with sequence elements and map entries sorted.
fn canonical<V: Serialize + ?Sized>(
    value: &V,
    sorted: bool,
    capacity: usize,
) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::with_capacity(capacity);
    render(value, sorted, &mut out)?;
    Ok(out)
}

/// Whether the (unsorted) canonical form of `value` is exactly `expected`, compared while it
/// is rendered. The form is rendered to the end whatever the comparison finds, so the result
/// and the errors are those of `canonical(value, false, _) == expected`.
fn matches<V: Serialize + ?Sized>(value: &V, expected: &[u8]) -> Result<bool, Refusal> {
    let mut same = Same {
        expected,
        at: 0,
        same: true,
    };
    render(value, false, &mut same)?;
    Ok(same.same && same.at == expected.len())
}

/// Renders the canonical form of `value` into `out`.
fn render<V: Serialize + ?Sized, W: Sink>(
    value: &V,
    sorted: bool,
    out: &mut W,
) -> Result<(), Refusal> {
    let depth = Depth::new();
    match value.serialize(Canon {
        out,
        sorted,
        depth: &depth,
    }) {
        Ok(()) => Ok(()),
        Err(_) if depth.tripped() => Err(Refusal::TooDeep),
        Err(CanonError(e)) => Err(Refusal::NotRoundTrip(format!("cannot serialize: {e}"))),
    }
}

/// Where a canonical form goes: a buffer, or a comparison with a form rendered before.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn byte(&mut self, b: u8);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    #[inline]
    fn byte(&mut self, b: u8) {
        self.push(b);
    }
}

/// Compares the bytes put into it with `expected`, from the start; `same` stays true while
/// every byte so far matched.
struct Same<'e> {
    expected: &'e [u8],
    at: usize,
    same: bool,
}

impl Sink for Same<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        if !self.same {
            return;
        }
        let end = self.at.saturating_add(bytes.len());
        match self.expected.get(self.at..end) {
            Some(e) if e == bytes => self.at = end,
            _ => self.same = false,
        }
    }
    #[inline]
    fn byte(&mut self, b: u8) {
        match self.expected.get(self.at) {
            Some(&e) if self.same && e == b => self.at += 1,
            _ => self.same = false,
        }
    }
}

/// Larger scratch buffers are not kept (one huge value must not pin its memory in a thread).
const SCRATCH_KEEP: usize = 16 * 1024;

thread_local! {
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// This thread's canonical-form buffer, taken out (empty) for one guard run and given back
/// when dropped. Taken, not borrowed: a guard run inside another (a `Serialize` impl that
/// stores a value) gets a fresh buffer.
struct Scratch(Vec<u8>);

impl Scratch {
    fn take() -> Scratch {
        let mut buf = SCRATCH.try_with(Cell::take).unwrap_or_default();
        buf.clear();
        Scratch(buf)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.capacity() <= SCRATCH_KEEP {
            let buf = std::mem::take(&mut self.0);
            let _ = SCRATCH.try_with(|s| s.set(buf));
        }
    }
}

#[derive(Debug)]
struct CanonError(String);

impl fmt::Display for CanonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CanonError {}

impl ser::Error for CanonError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CanonError(msg.to_string())
    }
}

// One tag byte per data-model event; strings and names are length-prefixed and compounds end
// with END, so the form is prefix-free and two values have the same form only if they emit the
// same events.
const BOOL: u8 = 1;
const I8: u8 = 2;
const I16: u8 = 3;
const I32: u8 = 4;
const I64: u8 = 5;
const I128: u8 = 6;
const U8: u8 = 7;
const U16: u8 = 8;
const U32: u8 = 9;
const U64: u8 = 10;
const U128: u8 = 11;
const F32: u8 = 12;
const F64: u8 = 13;
const CHAR: u8 = 14;
const STR: u8 = 15;
const BYTES: u8 = 16;
const NONE: u8 = 17;
const SOME: u8 = 18;
const UNIT: u8 = 19;
const UNIT_STRUCT: u8 = 20;
const UNIT_VARIANT: u8 = 21;
const NEWTYPE_STRUCT: u8 = 22;
const NEWTYPE_VARIANT: u8 = 23;
const SEQ: u8 = 24;
const TUPLE: u8 = 25;
const TUPLE_STRUCT: u8 = 26;
const TUPLE_VARIANT: u8 = 27;
const MAP: u8 = 28;
const STRUCT: u8 = 29;
const STRUCT_VARIANT: u8 = 30;
const SKIPPED: u8 = 31;
const ITEM: u8 = 32;
const END: u8 = 33;

#[inline]
fn put_str<W: Sink + ?Sized>(out: &mut W, s: &[u8]) {
    out.put(&(s.len() as u64).to_le_bytes());
    out.put(s);
}

struct Canon<'a, W> {
    out: &'a mut W,
    sorted: bool,
    depth: &'a Depth,
}

impl<W: Sink> Canon<'_, W> {
    fn scalar(self, tag: u8, bytes: &[u8]) -> Result<(), CanonError> {
        self.out.byte(tag);
        self.out.put(bytes);
        Ok(())
    }

    fn enter(&self, levels: u32) -> Result<(), CanonError> {
        self.depth
            .enter(levels)
            .map_err(|t| CanonError(t.to_string()))
    }
}

/// A compound in canonical form; with `sort`, its items are buffered and written sorted.
struct CanonCompound<'a, W> {
    out: &'a mut W,
    sorted: bool,
    depth: &'a Depth,
    levels: u32,
    /// `Some` when this compound's items are sorted (sequences and maps in sorted mode).
    items: Option<Vec<Vec<u8>>>,
}

impl<'a, W: Sink> Canon<'a, W> {
    fn open(
        self,
        tag: u8,
        name: &str,
        levels: u32,
        sortable: bool,
    ) -> Result<CanonCompound<'a, W>, CanonError> {
        self.enter(levels)?;
        self.out.byte(tag);
        put_str(self.out, name.as_bytes());
        Ok(CanonCompound {
            out: self.out,
            sorted: self.sorted,
            depth: self.depth,
            levels,
            items: (sortable && self.sorted).then(Vec::new),
        })
    }
}

impl<W: Sink> CanonCompound<'_, W> {
    fn item<T: Serialize + ?Sized>(
        &mut self,
        key: Option<&str>,
        value: &T,
    ) -> Result<(), CanonError> {
        let (sorted, depth) = (self.sorted, self.depth);
        match &mut self.items {
            Some(items) => {
                let mut buf = Vec::new();
                value.serialize(Canon {
                    out: &mut buf,
                    sorted,
                    depth,
                })?;
                items.push(buf);
            }
            None => {
                self.out.byte(ITEM);
                if let Some(key) = key {
                    put_str(self.out, key.as_bytes());
                }
                value.serialize(Canon {
                    out: self.out,
                    sorted,
                    depth,
                })?;
            }
        }
        Ok(())
    }

    /// A map value: appended to the entry its key started.
    fn map_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        let (sorted, depth) = (self.sorted, self.depth);
        match &mut self.items {
            Some(items) => match items.last_mut() {
                Some(out) => value.serialize(Canon { out, sorted, depth }),
                None => Err(CanonError("map value without a key".into())),
            },
            None => value.serialize(Canon {
                out: &mut *self.out,
                sorted,
                depth,
            }),
        }
    }

    fn end(self) -> Result<(), CanonError> {
        if let Some(mut items) = self.items {
            items.sort_unstable();
            for item in items {
                self.out.byte(ITEM);
                put_str(self.out, &item);
            }
        }
        self.out.byte(END);
        self.depth.leave(self.levels);
        Ok(())
    }
}

impl<'a, W: Sink> Serializer for Canon<'a, W> {
    type Ok = ();
    type Error = CanonError;
    type SerializeSeq = CanonCompound<'a, W>;
    type SerializeTuple = CanonCompound<'a, W>;
    type SerializeTupleStruct = CanonCompound<'a, W>;
    type SerializeTupleVariant = CanonCompound<'a, W>;
    type SerializeMap = CanonCompound<'a, W>;
    type SerializeStruct = CanonCompound<'a, W>;
    type SerializeStructVariant = CanonCompound<'a, W>;

    fn serialize_bool(self, v: bool) -> Result<(), CanonError> {
        self.scalar(BOOL, &[u8::from(v)])
    }
    fn serialize_i8(self, v: i8) -> Result<(), CanonError> {
        self.scalar(I8, &v.to_le_bytes())
    }
    fn serialize_i16(self, v: i16) -> Result<(), CanonError> {
        self.scalar(I16, &v.to_le_bytes())
    }
    fn serialize_i32(self, v: i32) -> Result<(), CanonError> {
        self.scalar(I32, &v.to_le_bytes())
    }
    fn serialize_i64(self, v: i64) -> Result<(), CanonError> {
        self.scalar(I64, &v.to_le_bytes())
    }
    fn serialize_i128(self, v: i128) -> Result<(), CanonError> {
        self.scalar(I128, &v.to_le_bytes())
    }
    fn serialize_u8(self, v: u8) -> Result<(), CanonError> {
        self.scalar(U8, &[v])
    }
    fn serialize_u16(self, v: u16) -> Result<(), CanonError> {
        self.scalar(U16, &v.to_le_bytes())
    }
    fn serialize_u32(self, v: u32) -> Result<(), CanonError> {
        self.scalar(U32, &v.to_le_bytes())
    }
    fn serialize_u64(self, v: u64) -> Result<(), CanonError> {
        self.scalar(U64, &v.to_le_bytes())
    }
    fn serialize_u128(self, v: u128) -> Result<(), CanonError> {
        self.scalar(U128, &v.to_le_bytes())
    }
    // Bit patterns: NaN equals itself, -0.0 differs from 0.0.
    fn serialize_f32(self, v: f32) -> Result<(), CanonError> {
        self.scalar(F32, &v.to_bits().to_le_bytes())
    }
    fn serialize_f64(self, v: f64) -> Result<(), CanonError> {
        self.scalar(F64, &v.to_bits().to_le_bytes())
    }
    fn serialize_char(self, v: char) -> Result<(), CanonError> {
        self.scalar(CHAR, &u32::from(v).to_le_bytes())
    }
    fn serialize_str(self, v: &str) -> Result<(), CanonError> {
        self.out.byte(STR);
        put_str(self.out, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CanonError> {
        self.out.byte(BYTES);
        put_str(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), CanonError> {
        self.scalar(NONE, &[])
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CanonError> {
        self.enter(1)?;
        self.out.byte(SOME);
        let depth = self.depth;
        value.serialize(Canon {
            out: self.out,
            sorted: self.sorted,
            depth,
        })?;
        depth.leave(1);
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), CanonError> {
        self.scalar(UNIT, &[])
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), CanonError> {
        self.out.byte(UNIT_STRUCT);
        put_str(self.out, name.as_bytes());
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), CanonError> {
        self.enter(1)?;
        self.depth.leave(1);
        self.out.byte(UNIT_VARIANT);
        put_str(self.out, name.as_bytes());
        self.out.put(&index.to_le_bytes());
        put_str(self.out, variant.as_bytes());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.enter(1)?;
        self.out.byte(NEWTYPE_STRUCT);
        put_str(self.out, name.as_bytes());
        let depth = self.depth;
        value.serialize(Canon {
            out: self.out,
            sorted: self.sorted,
            depth,
        })?;
        depth.leave(1);
        Ok(())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.enter(1)?;
        self.out.byte(NEWTYPE_VARIANT);
        put_str(self.out, name.as_bytes());
        self.out.put(&index.to_le_bytes());
        put_str(self.out, variant.as_bytes());
        let depth = self.depth;
        value.serialize(Canon {
            out: self.out,
            sorted: self.sorted,
            depth,
        })?;
        depth.leave(1);
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<CanonCompound<'a, W>, CanonError> {
        self.open(SEQ, "", 1, true)
    }
    fn serialize_tuple(self, _: usize) -> Result<CanonCompound<'a, W>, CanonError> {
        self.open(TUPLE, "", 1, false)
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _: usize,
    ) -> Result<CanonCompound<'a, W>, CanonError> {
        self.open(TUPLE_STRUCT, name, 1, false)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<CanonCompound<'a, W>, CanonError> {
        let c = self.open(TUPLE_VARIANT, name, 2, false)?;
        c.out.put(&index.to_le_bytes());
        put_str(c.out, variant.as_bytes());
        Ok(c)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<CanonCompound<'a, W>, CanonError> {
        self.open(MAP, "", 1, true)
    }
    fn serialize_struct(
        self,
        name: &'static str,
        _: usize,
    ) -> Result<CanonCompound<'a, W>, CanonError> {
        self.open(STRUCT, name, 1, false)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<CanonCompound<'a, W>, CanonError> {
        let c = self.open(STRUCT_VARIANT, name, 2, false)?;
        c.out.put(&index.to_le_bytes());
        put_str(c.out, variant.as_bytes());
        Ok(c)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

impl<W: Sink> ser::SerializeSeq for CanonCompound<'_, W> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonError> {
        self.item(None, v)
    }
    fn end(self) -> Result<(), CanonError> {
        CanonCompound::end(self)
    }
}

impl<W: Sink> ser::SerializeTuple for CanonCompound<'_, W> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonError> {
        self.item(None, v)
    }
    fn end(self) -> Result<(), CanonError> {
        CanonCompound::end(self)
    }
}

impl<W: Sink> ser::SerializeTupleStruct for CanonCompound<'_, W> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonError> {
        self.item(None, v)
    }
    fn end(self) -> Result<(), CanonError> {
        CanonCompound::end(self)
    }
}

impl<W: Sink> ser::SerializeTupleVariant for CanonCompound<'_, W> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonError> {
        self.item(None, v)
    }
    fn end(self) -> Result<(), CanonError> {
        CanonCompound::end(self)
    }
}

impl<W: Sink> ser::SerializeMap for CanonCompound<'_, W> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), CanonError> {
        self.item(None, k)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonError> {
        self.map_value(v)
    }
    fn end(self) -> Result<(), CanonError> {
        CanonCompound::end(self)
    }
}

impl<W: Sink> ser::SerializeStruct for CanonCompound<'_, W> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), CanonError> {
        self.item(Some(key), v)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), CanonError> {
        self.out.byte(SKIPPED);
        put_str(self.out, key.as_bytes());
        Ok(())
    }
    fn end(self) -> Result<(), CanonError> {
        CanonCompound::end(self)
    }
}

impl<W: Sink> ser::SerializeStructVariant for CanonCompound<'_, W> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), CanonError> {
        self.item(Some(key), v)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), CanonError> {
        self.out.byte(SKIPPED);
        put_str(self.out, key.as_bytes());
        Ok(())
    }
    fn end(self) -> Result<(), CanonError> {
        CanonCompound::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn check<T: Serialize + DeserializeOwned>(codec: CodecKind, v: &T) -> Result<(), Refusal> {
        encode::<T, T>(codec, Some(v), 0, 0, 0, None, usize::MAX).map(|_| ())
    }

    #[test]
    fn canonical_forms_tell_apart_what_codecs_may_merge() {
        let f = |v: &dyn erased::E| v.canon();
        assert_ne!(f(&Some(None::<u8>)), f(&None::<Option<u8>>));
        assert_eq!(f(&f64::NAN), f(&f64::NAN));
        assert_ne!(f(&-0.0f64), f(&0.0f64));
        assert_ne!(f(&("ab", "c")), f(&("a", "bc")));
    }

    mod erased {
        pub trait E {
            fn canon(&self) -> Vec<u8>;
            fn same_as(&self, form: &[u8]) -> bool;
        }
        impl<T: serde::Serialize> E for T {
            fn canon(&self) -> Vec<u8> {
                super::canonical(self, false, 0).unwrap()
            }
            fn same_as(&self, form: &[u8]) -> bool {
                super::matches(self, form).unwrap()
            }
        }
    }

    #[test]
    fn comparing_while_rendering_agrees_with_comparing_the_forms() {
        let values: Vec<Box<dyn erased::E>> = vec![
            Box::new(Some(None::<u8>)),
            Box::new(None::<Option<u8>>),
            Box::new(("ab", "c")),
            Box::new(("a", "bc")),
            Box::new(("ab", "c", 1u8)),
            Box::new(vec![1u32, 2]),
            Box::new(vec![1u32, 2, 3]),
            Box::new(vec![2u32, 1]),
            Box::new(Vec::<u32>::new()),
            Box::new(f64::NAN),
            Box::new(0.0f64),
            Box::new(-0.0f64),
            Box::new(chain(3)),
            Box::new(chain(4)),
            Box::new(String::new()),
        ];
        for a in &values {
            for b in &values {
                let (fa, fb) = (a.canon(), b.canon());
                assert_eq!(a.same_as(&fb), fa == fb, "{fa:?} against {fb:?}");
            }
            // A prefix of the form, and the form with a byte more, are other forms.
            let f = a.canon();
            assert!(!a.same_as(&f[..f.len() - 1]));
            assert!(!a.same_as(&[&f[..], &[0]].concat()));
        }
    }

    #[test]
    fn the_scratch_buffer_is_reused_and_nested_runs_get_their_own() {
        let mut outer = Scratch::take();
        outer.extend_from_slice(b"outer");
        {
            let mut inner = Scratch::take();
            assert!(
                inner.is_empty(),
                "a nested run does not see the outer buffer"
            );
            inner.extend_from_slice(b"inner");
        }
        assert_eq!(&outer[..], b"outer");
        drop(outer);
        assert!(
            Scratch::take().is_empty(),
            "given back cleared of what it held"
        );
        let mut big = Scratch::take();
        big.reserve(SCRATCH_KEEP * 2);
        drop(big);
        assert!(
            Scratch::take().capacity() <= SCRATCH_KEEP,
            "a large buffer is not kept"
        );
    }

    #[test]
    fn hash_maps_and_sets_pass_whatever_their_order() {
        let map: HashMap<String, u32> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        let set: HashSet<u64> = (0..50).collect();
        check(CodecKind::Bincode, &map).unwrap();
        check(CodecKind::Bincode, &set).unwrap();
        check(CodecKind::Bincode, &vec![map.clone(), map]).unwrap();
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Node {
        v: u32,
        next: Option<Box<Node>>,
    }

    fn chain(n: usize) -> Node {
        let mut node = Node { v: 0, next: None };
        for v in 1..n {
            node = Node {
                v: v as u32,
                next: Some(Box::new(node)),
            };
        }
        node
    }

    #[test]
    fn plain_values_pass_and_deep_ones_are_refused() {
        check(
            CodecKind::Bincode,
            &(1u8, "x".to_string(), vec![1.5f64, f64::NAN]),
        )
        .unwrap();
        // Two levels per node (the struct and the `Some`).
        check(CodecKind::Bincode, &chain(60)).unwrap();
        assert_eq!(check(CodecKind::Bincode, &chain(70)), Err(Refusal::TooDeep));
    }
}
