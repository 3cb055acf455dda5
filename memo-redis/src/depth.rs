//! Nesting limits for every codec: wrappers around serde's `Serialize` and `Deserializer` that
//! count how deeply a value nests and fail past [`MAX_DEPTH`], so that no value and no entry can
//! overflow the stack (serde codecs recurse once per level).
//!
//! A level is one nested compound: a struct, tuple, sequence, map, enum variant, `Some` or
//! newtype. Both wrappers count the same way (a tuple or struct variant counts as two levels,
//! the enum and its fields, as it does when decoded), so a value that encodes also decodes.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use serde::ser::{self, Serialize, Serializer};

/// How deeply a cached value may nest (see the module docs for what a level is).
///
/// Far above ordinary data (a JSON API response rarely nests 20 levels), and far below what
/// overflows a 2 MiB Tokio worker stack in a debug build (checked by a test): a value nested
/// deeper is returned by the function but not cached, an entry nested deeper is a miss.
///
/// ```
/// use memo_redis::{depth::MAX_DEPTH, CodecKind};
/// // bincode: each `Deep` a one-element vector (byte 1), the last one empty (byte 0); every
/// // `Deep` is two levels (the newtype and its vector).
/// let mut bytes = vec![1u8; 200];
/// bytes.push(0);
/// assert_eq!(MAX_DEPTH, 128);
/// assert!(CodecKind::Bincode.decode::<Deep>(&bytes).is_err(), "402 levels");
/// assert!(CodecKind::Bincode.decode::<Deep>(&bytes[150..]).is_ok(), "102 levels");
/// # #[derive(serde::Deserialize)] struct Deep(Vec<Deep>);
/// ```
pub const MAX_DEPTH: u32 = 128;

/// The levels left for one encode or decode, and whether the limit was hit.
#[derive(Debug)]
pub(crate) struct Depth {
    left: Cell<u32>,
    tripped: Cell<bool>,
    /// Owned strings are read as borrowed `&str` and copied (see [`Depth::copy_strings`]).
    copy_strings: Cell<bool>,
}

impl Depth {
    pub(crate) fn new() -> Depth {
        Depth {
            left: Cell::new(MAX_DEPTH),
            tripped: Cell::new(false),
            copy_strings: Cell::new(false),
        }
    }

    /// From now on a `deserialize_string` is asked of the format as a `deserialize_str`, and the
    /// borrowed text handed to the visitor as a `String` copied from it (`visit_string`, what
    /// the format itself would call). For bincode, whose owned strings are a zeroed buffer
    /// (`calloc`) filled by a copy: one plain allocation instead, the same value.
    pub(crate) fn copy_strings(&self) {
        self.copy_strings.set(true);
    }

    /// Whether some value went past the limit.
    pub(crate) fn tripped(&self) -> bool {
        self.tripped.get()
    }

    pub(crate) fn enter(&self, levels: u32) -> Result<(), TooDeep> {
        match self.left.get().checked_sub(levels) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.tripped.set(true);
                Err(TooDeep)
            }
        }
    }

    pub(crate) fn leave(&self, levels: u32) {
        self.left.set(self.left.get().saturating_add(levels));
    }
}

/// The error the wrappers raise (converted into the codec's error type).
pub(crate) struct TooDeep;

impl fmt::Display for TooDeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "value nested deeper than {MAX_DEPTH} levels")
    }
}

fn de_err<E: de::Error>(t: TooDeep) -> E {
    E::custom(t)
}

fn ser_err<E: ser::Error>(t: TooDeep) -> E {
    E::custom(t)
}

// ---------------------------------------------------------------------------------------------
// Serialize

/// `value`, serialized with nesting counted against `depth`.
pub(crate) struct Limited<'a, T: ?Sized> {
    value: &'a T,
    depth: &'a Depth,
}

impl<'a, T: ?Sized> Limited<'a, T> {
    pub(crate) fn new(value: &'a T, depth: &'a Depth) -> Self {
        Limited { value, depth }
    }
}

impl<T: Serialize + ?Sized> Serialize for Limited<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Ser {
            inner: s,
            depth: self.depth,
        })
    }
}

struct Ser<'a, S> {
    inner: S,
    depth: &'a Depth,
}

/// A compound being serialized; `levels` are given back on `end`.
struct Compound<'a, C> {
    inner: C,
    depth: &'a Depth,
    levels: u32,
}

impl<'a, C> Compound<'a, C> {
    fn finish<R>(self, end: impl FnOnce(C) -> R) -> R {
        self.depth.leave(self.levels);
        end(self.inner)
    }
}

macro_rules! forward_ser {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.inner.$method($($arg),*)
        }
    )*};
}

impl<'a, S: Serializer> Ser<'a, S> {
    fn open<C>(
        depth: &'a Depth,
        levels: u32,
        make: impl FnOnce() -> Result<C, S::Error>,
    ) -> Result<Compound<'a, C>, S::Error> {
        depth.enter(levels).map_err(ser_err)?;
        match make() {
            Ok(inner) => Ok(Compound {
                inner,
                depth,
                levels,
            }),
            Err(e) => {
                depth.leave(levels);
                Err(e)
            }
        }
    }
}

impl<'a, S: Serializer> Serializer for Ser<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'a, S::SerializeSeq>;
    type SerializeTuple = Compound<'a, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'a, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'a, S::SerializeMap>;
    type SerializeStruct = Compound<'a, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'a, S::SerializeStructVariant>;

    forward_ser! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.depth.enter(1).map_err(ser_err)?;
        self.depth.leave(1);
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let (inner, depth) = (self.inner, self.depth);
        depth.enter(1).map_err(ser_err)?;
        let r = inner.serialize_some(&Limited::new(value, depth));
        depth.leave(1);
        r
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let (inner, depth) = (self.inner, self.depth);
        depth.enter(1).map_err(ser_err)?;
        let r = inner.serialize_newtype_struct(name, &Limited::new(value, depth));
        depth.leave(1);
        r
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let (inner, depth) = (self.inner, self.depth);
        depth.enter(1).map_err(ser_err)?;
        let r = inner.serialize_newtype_variant(name, index, variant, &Limited::new(value, depth));
        depth.leave(1);
        r
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let inner = self.inner;
        Self::open(self.depth, 1, || inner.serialize_seq(len))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let inner = self.inner;
        Self::open(self.depth, 1, || inner.serialize_tuple(len))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let inner = self.inner;
        Self::open(self.depth, 1, || inner.serialize_tuple_struct(name, len))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let inner = self.inner;
        Self::open(self.depth, 2, || {
            inner.serialize_tuple_variant(name, index, variant, len)
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let inner = self.inner;
        Self::open(self.depth, 1, || inner.serialize_map(len))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let inner = self.inner;
        Self::open(self.depth, 1, || inner.serialize_struct(name, len))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let inner = self.inner;
        Self::open(self.depth, 2, || {
            inner.serialize_struct_variant(name, index, variant, len)
        })
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! compound {
    ($trait:ident, $($method:ident($($arg:ident: $ty:ty),*);)*) => {
        impl<C: ser::$trait> ser::$trait for Compound<'_, C> {
            type Ok = C::Ok;
            type Error = C::Error;
            $(
                fn $method<T: Serialize + ?Sized>(&mut self, $($arg: $ty,)* value: &T) -> Result<(), C::Error> {
                    self.inner.$method($($arg,)* &Limited::new(value, self.depth))
                }
            )*
            fn end(self) -> Result<C::Ok, C::Error> {
                self.finish(C::end)
            }
        }
    };
}

compound!(SerializeSeq, serialize_element(););
compound!(SerializeTuple, serialize_element(););
compound!(SerializeTupleStruct, serialize_field(););
compound!(SerializeTupleVariant, serialize_field(););
compound!(SerializeMap, serialize_key(); serialize_value(););
compound!(SerializeStruct, serialize_field(key: &'static str););
compound!(SerializeStructVariant, serialize_field(key: &'static str););

// ---------------------------------------------------------------------------------------------
// Deserialize

/// A seed deserializing `T` with nesting counted against `depth`; pass it to a codec's
/// seed-taking entry point (or call `deserialize` with the codec's deserializer).
pub(crate) struct Seed<'a, T> {
    inner: T,
    depth: &'a Depth,
}

impl<'a, T> Seed<'a, T> {
    pub(crate) fn new(inner: T, depth: &'a Depth) -> Self {
        Seed { inner, depth }
    }
}

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, T> {
    type Value = T::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> {
        self.inner.deserialize(De {
            inner: d,
            depth: self.depth,
        })
    }
}

/// A deserializer whose visitors count nesting.
struct De<'a, D> {
    inner: D,
    depth: &'a Depth,
}

/// A visitor counting one level for every compound it is handed.
struct Vis<'a, V> {
    inner: V,
    depth: &'a Depth,
}

macro_rules! forward_de {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Vis { inner: visitor, depth: self.depth })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<'_, D> {
    type Error = D::Error;

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let vis = Vis {
            inner: visitor,
            depth: self.depth,
        };
        if self.depth.copy_strings.get() {
            return self.inner.deserialize_str(CopyStr(vis));
        }
        self.inner.deserialize_string(vis)
    }

    forward_de! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Hands borrowed text to its visitor as an owned `String` (see [`Depth::copy_strings`]).
struct CopyStr<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for CopyStr<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        self.0.visit_string(v.to_owned())
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        self.0.visit_string(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        self.0.visit_string(v)
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let (inner, depth) = (self.inner, self.depth);
        depth.enter(1).map_err(de_err)?;
        let r = inner.visit_some(De { inner: d, depth });
        depth.leave(1);
        r
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let (inner, depth) = (self.inner, self.depth);
        depth.enter(1).map_err(de_err)?;
        let r = inner.visit_newtype_struct(De { inner: d, depth });
        depth.leave(1);
        r
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let (inner, depth) = (self.inner, self.depth);
        depth.enter(1).map_err(de_err)?;
        let r = inner.visit_seq(Access { inner: seq, depth });
        depth.leave(1);
        r
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let (inner, depth) = (self.inner, self.depth);
        depth.enter(1).map_err(de_err)?;
        let r = inner.visit_map(Access { inner: map, depth });
        depth.leave(1);
        r
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let (inner, depth) = (self.inner, self.depth);
        depth.enter(1).map_err(de_err)?;
        let r = inner.visit_enum(Access { inner: data, depth });
        depth.leave(1);
        r
    }
}

/// A sequence, map, enum or variant access handing out counting deserializers.
struct Access<'a, A> {
    inner: A,
    depth: &'a Depth,
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Access<'_, A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(Seed::new(seed, self.depth))
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Access<'_, A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(Seed::new(seed, self.depth))
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Seed::new(seed, self.depth))
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'a, 'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Access<'a, A> {
    type Error = A::Error;
    type Variant = Access<'a, A::Variant>;
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let depth = self.depth;
        let (value, variant) = self.inner.variant_seed(Seed::new(seed, depth))?;
        Ok((
            value,
            Access {
                inner: variant,
                depth,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Access<'_, A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed::new(seed, self.depth))
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let depth = self.depth;
        self.inner.tuple_variant(
            len,
            Vis {
                inner: visitor,
                depth,
            },
        )
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let depth = self.depth;
        self.inner.struct_variant(
            fields,
            Vis {
                inner: visitor,
                depth,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecKind;

    /// Text whose visitor takes only an owned `String` (`visit_string`), the one bincode called
    /// before its strings were read by reference: it must still decode.
    #[derive(Debug, PartialEq)]
    struct OnlyOwned(String);

    impl<'de> serde::Deserialize<'de> for OnlyOwned {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            #[allow(
                clippy::serde_api_misuse,
                reason = "the point of the test: a visitor that takes only owned strings"
            )]
            impl<'de> Visitor<'de> for V {
                type Value = OnlyOwned;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an owned string")
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<OnlyOwned, E> {
                    Ok(OnlyOwned(v))
                }
            }
            d.deserialize_string(V)
        }
    }

    #[test]
    fn bincode_strings_read_by_reference_decode_as_before() {
        let value = (
            "Ada".to_string(),
            vec!["é".to_string(), String::new(), "x".repeat(300)],
            Some("last".to_string()),
        );
        let mut bytes = Vec::new();
        CodecKind::Bincode.encode(&value, &mut bytes).unwrap();
        let back: (String, Vec<String>, Option<String>) =
            CodecKind::Bincode.decode(&bytes).unwrap();
        assert_eq!(back, value);

        let mut bytes = Vec::new();
        CodecKind::Bincode.encode("only owned", &mut bytes).unwrap();
        assert_eq!(
            CodecKind::Bincode.decode::<OnlyOwned>(&bytes).unwrap(),
            OnlyOwned("only owned".into())
        );

        // Invalid UTF-8 and a length past the end are still errors (no allocation of the
        // announced length).
        assert!(CodecKind::Bincode
            .decode::<String>(&[2, 0xff, 0xfe])
            .is_err());
        assert!(CodecKind::Bincode
            .decode::<String>(&[0xfc, 0xff, 0xff, 0xff, 0x7f, b'a'])
            .is_err());
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Node {
        v: u32,
        next: Option<Box<Node>>,
    }

    impl Drop for Node {
        // Iterative, so that dropping a deep test value cannot overflow either.
        fn drop(&mut self) {
            let mut next = self.next.take();
            while let Some(mut node) = next {
                next = node.next.take();
            }
        }
    }

    /// A chain of `nodes` nodes: `2 * nodes` levels (each node is a struct and a `Some`).
    fn chain(nodes: usize) -> Node {
        let mut node = Node { v: 0, next: None };
        for v in 1..nodes {
            node = Node {
                v: u32::try_from(v).unwrap(),
                next: Some(Box::new(node)),
            };
        }
        node
    }

    fn codecs() -> Vec<CodecKind> {
        vec![
            CodecKind::Bincode,
            #[cfg(feature = "json")]
            CodecKind::Json,
            #[cfg(feature = "msgpack")]
            CodecKind::MsgPack,
            #[cfg(feature = "postcard")]
            CodecKind::Postcard,
        ]
    }

    /// `levels` nested nodes, as `codec` writes them, built byte by byte (no recursion).
    fn hostile(codec: CodecKind, nodes: usize) -> Vec<u8> {
        match codec {
            #[cfg(feature = "json")]
            CodecKind::Json => {
                let mut s = "{\"v\":0,\"next\":".repeat(nodes);
                s.push_str("null");
                s.push_str(&"}".repeat(nodes));
                s.into_bytes()
            }
            #[cfg(feature = "msgpack")]
            CodecKind::MsgPack => {
                let mut b = Vec::new();
                for _ in 0..nodes {
                    b.extend_from_slice(b"\x82\xa1v\x00\xa4next");
                }
                b.push(0xc0);
                b
            }
            // bincode and postcard: v = 0, then the `Some` tag.
            _ => {
                let mut b = [0u8, 1].repeat(nodes);
                b.extend_from_slice(&[0, 0]);
                b
            }
        }
    }

    /// Runs `f` on a thread with `stack` bytes of stack; a stack overflow aborts the test binary.
    fn on_stack(stack: usize, f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    /// Tokio's default worker stack.
    const WORKER_STACK: usize = 2 * 1024 * 1024;

    #[test]
    fn hostile_deep_entries_are_errors_on_a_worker_stack() {
        on_stack(WORKER_STACK, || {
            for codec in codecs() {
                let bytes = hostile(codec, 50_000);
                let depth = Depth::new();
                assert!(codec.decode_in::<Node>(&bytes, &depth).is_err(), "{codec}");
                assert!(depth.tripped(), "{codec}");
                // The same bytes one node below the limit decode.
                let ok = codec.decode::<Node>(&hostile(codec, (MAX_DEPTH / 2) as usize - 1));
                assert!(ok.is_ok(), "{codec}: {ok:?}");
            }
        });
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn deep_unknown_fields_are_errors_too() {
        on_stack(WORKER_STACK, || {
            // A Node with an extra field holding 50 000 nested arrays: skipped with IgnoredAny.
            let mut b = b"\x83\xa1v\x00\xa4next\xc0\xa1x".to_vec();
            b.extend(std::iter::repeat_n(0x91u8, 50_000));
            b.push(0xc0);
            assert!(CodecKind::MsgPack.decode::<Node>(&b).is_err());
        });
    }

    #[test]
    fn deep_values_are_errors_on_a_worker_stack() {
        on_stack(WORKER_STACK, || {
            let deep = chain(50_000);
            for codec in codecs() {
                let (mut out, depth) = (Vec::new(), Depth::new());
                assert!(codec.encode_in(&deep, &mut out, &depth).is_err(), "{codec}");
                assert!(depth.tripped(), "{codec}");
            }
        });
    }

    /// The limit leaves most of a worker stack to the application: the deepest value allowed
    /// encodes, decodes and passes the guards on a quarter of one, in this (debug) build.
    #[test]
    fn the_limit_fits_in_a_quarter_of_a_worker_stack() {
        on_stack(WORKER_STACK / 4, || {
            let nodes = (MAX_DEPTH / 2) as usize;
            let value = chain(nodes);
            for codec in codecs() {
                let bytes =
                    crate::guard::encode::<Node, Node>(codec, Some(&value), 0, 0, 0, None, 0)
                        .unwrap_or_else(|e| panic!("{codec}: {e}"));
                let env = crate::envelope::Envelope::parse(&bytes, usize::MAX).unwrap();
                let back: Node = codec.decode(env.payload).unwrap();
                assert_eq!(back.v, value.v);
                let mut out = Vec::new();
                assert!(
                    codec.encode(&chain(nodes + 1), &mut out).is_err(),
                    "{codec}"
                );
            }
        });
    }
}
