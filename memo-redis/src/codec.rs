//! Codecs: how a value becomes the payload bytes of an envelope.
//!
//! One small trait, [`Codec`], with an implementation per format; [`CodecKind`] names them at
//! run time (the id stored in every envelope). bincode 2 is always available; JSON, MessagePack and
//! postcard are cargo features (`json`, `msgpack`, `postcard`).

use std::fmt;
use std::str::FromStr;

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::depth::{Depth, Limited, Seed};

/// Upper bound on what decoding one value may allocate, whatever the bytes claim.
///
/// bincode checks length prefixes against this before allocating, so a hostile entry claiming a
/// 2^60-element vector fails instead of aborting the process.
pub(crate) const DECODE_ALLOC_LIMIT: usize = 256 * 1024 * 1024;

/// A serialization format for cached values.
///
/// Every codec bounds nesting at [`MAX_DEPTH`](crate::depth::MAX_DEPTH) levels, encoding and
/// decoding alike: a deeper value or entry is an error, never a stack overflow.
///
/// ```
/// use memo_redis::codec::{Bincode, Codec};
/// let mut out = Vec::new();
/// Bincode::encode(&(1u8, "x"), &mut out).unwrap();
/// let back: (u8, String) = Bincode::decode(&out).unwrap();
/// assert_eq!(back, (1, "x".to_string()));
/// ```
pub trait Codec {
    /// The id written into the envelope header; never reused for another format.
    const ID: u8;
    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    /// The format cannot represent the value (e.g. a map with non-string keys in JSON).
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String>;
    /// Decodes a whole value from `bytes`; trailing bytes are an error.
    ///
    /// # Errors
    /// The bytes are not a valid encoding of `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String>;
}

/// A value the typed handle can store: it must read back as [`Storable::Owned`], so that the
/// write can check it decodes back to itself (see [`Cache::set`](crate::Cache::set)).
///
/// Implemented for every `T: Serialize + DeserializeOwned` (read back as `T`), for `str`
/// (as `String`) and for `[T]` (as `Vec<T>`).
///
/// ```
/// fn owned<T: memo_redis::codec::Storable + ?Sized>(_: &T) {}
/// owned("text");
/// owned(&[1u8, 2][..]);
/// owned(&vec![String::new()]);
/// ```
pub trait Storable: Serialize {
    /// The type the stored value is read back as.
    type Owned: Serialize + DeserializeOwned;
}

impl<T: Serialize + DeserializeOwned> Storable for T {
    type Owned = T;
}

impl Storable for str {
    type Owned = String;
}

impl<T: Serialize + DeserializeOwned> Storable for [T] {
    type Owned = Vec<T>;
}

/// bincode 2 with its standard configuration (varint integers), the default codec.
#[derive(Debug, Clone, Copy)]
pub struct Bincode;

impl Codec for Bincode {
    const ID: u8 = 1;
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        CodecKind::Bincode.encode_in(value, out, &Depth::new())
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        CodecKind::Bincode.decode_in(bytes, &Depth::new())
    }
}

/// JSON through `serde_json` (feature `json`): readable, and shareable with services written in
/// other languages.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy)]
pub struct Json;

#[cfg(feature = "json")]
impl Codec for Json {
    const ID: u8 = 2;
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        CodecKind::Json.encode_in(value, out, &Depth::new())
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        CodecKind::Json.decode_in(bytes, &Depth::new())
    }
}

/// MessagePack through `rmp-serde` (feature `msgpack`), structs encoded as maps.
#[cfg(feature = "msgpack")]
#[derive(Debug, Clone, Copy)]
pub struct MsgPack;

#[cfg(feature = "msgpack")]
impl Codec for MsgPack {
    const ID: u8 = 3;
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        CodecKind::MsgPack.encode_in(value, out, &Depth::new())
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        CodecKind::MsgPack.decode_in(bytes, &Depth::new())
    }
}

/// postcard (feature `postcard`): the most compact encoding.
#[cfg(feature = "postcard")]
#[derive(Debug, Clone, Copy)]
pub struct Postcard;

#[cfg(feature = "postcard")]
impl Codec for Postcard {
    const ID: u8 = 4;
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        CodecKind::Postcard.encode_in(value, out, &Depth::new())
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        CodecKind::Postcard.decode_in(bytes, &Depth::new())
    }
}

/// The codec of a function or of a whole cache, chosen at run time.
///
/// Variants exist only for the codecs compiled in, so `codec = json` without the `json` feature
/// is a compile error rather than a silent fallback.
///
/// ```
/// use memo_redis::CodecKind;
/// assert_eq!("bincode".parse::<CodecKind>(), Ok(CodecKind::Bincode));
/// assert_eq!(CodecKind::default(), CodecKind::Bincode);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum CodecKind {
    /// [`Bincode`], the default.
    #[default]
    Bincode,
    /// [`Json`].
    #[cfg(feature = "json")]
    Json,
    /// [`MsgPack`].
    #[cfg(feature = "msgpack")]
    MsgPack,
    /// [`Postcard`].
    #[cfg(feature = "postcard")]
    Postcard,
}

impl CodecKind {
    /// The id stored in envelopes.
    pub fn id(self) -> u8 {
        match self {
            CodecKind::Bincode => Bincode::ID,
            #[cfg(feature = "json")]
            CodecKind::Json => Json::ID,
            #[cfg(feature = "msgpack")]
            CodecKind::MsgPack => MsgPack::ID,
            #[cfg(feature = "postcard")]
            CodecKind::Postcard => Postcard::ID,
        }
    }

    /// The codec with envelope id `id`, if it is compiled in.
    pub fn from_id(id: u8) -> Option<CodecKind> {
        match id {
            Bincode::ID => Some(CodecKind::Bincode),
            #[cfg(feature = "json")]
            Json::ID => Some(CodecKind::Json),
            #[cfg(feature = "msgpack")]
            MsgPack::ID => Some(CodecKind::MsgPack),
            #[cfg(feature = "postcard")]
            Postcard::ID => Some(CodecKind::Postcard),
            _ => None,
        }
    }

    /// Encodes `value` with this codec, appending to `out`.
    ///
    /// # Errors
    /// The format cannot represent the value.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        self.encode_in(value, out, &Depth::new())
    }

    /// [`CodecKind::encode`] counting nesting in `depth` (which tells afterwards whether the
    /// limit was hit).
    pub(crate) fn encode_in<T: Serialize + ?Sized>(
        self,
        value: &T,
        out: &mut Vec<u8>,
        depth: &Depth,
    ) -> Result<(), String> {
        let value = Limited::new(value, depth);
        match self {
            CodecKind::Bincode => {
                bincode::serde::encode_into_std_write(&value, out, bincode::config::standard())
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            #[cfg(feature = "json")]
            CodecKind::Json => serde_json::to_writer(out, &value).map_err(|e| e.to_string()),
            #[cfg(feature = "msgpack")]
            CodecKind::MsgPack => value
                .serialize(&mut rmp_serde::Serializer::new(out).with_struct_map())
                .map_err(|e| e.to_string()),
            #[cfg(feature = "postcard")]
            CodecKind::Postcard => {
                let bytes = postcard::to_stdvec(&value).map_err(|e| e.to_string())?;
                out.extend_from_slice(&bytes);
                Ok(())
            }
        }
    }

    /// Decodes a whole value with this codec.
    ///
    /// # Errors
    /// The bytes are not a valid encoding of `T`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        self.decode_in(bytes, &Depth::new())
    }

    /// [`CodecKind::decode`] counting nesting in `depth`.
    pub(crate) fn decode_in<T: DeserializeOwned>(
        self,
        bytes: &[u8],
        depth: &Depth,
    ) -> Result<T, String> {
        #[cfg(any(feature = "json", feature = "msgpack", feature = "postcard"))]
        use serde::de::DeserializeSeed;
        let seed = Seed::new(PhantomData::<T>, depth);
        match self {
            CodecKind::Bincode => {
                // bincode reads an owned string into a zeroed buffer; borrowed, then copied, the
                // same string costs one plain allocation.
                depth.copy_strings();
                let config = bincode::config::standard().with_limit::<DECODE_ALLOC_LIMIT>();
                let (value, read) = bincode::serde::seed_decode_from_slice(seed, bytes, config)
                    .map_err(|e| e.to_string())?;
                if read != bytes.len() {
                    return Err(format!("{} trailing bytes", bytes.len() - read));
                }
                Ok(value)
            }
            #[cfg(feature = "json")]
            CodecKind::Json => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                let value = seed.deserialize(&mut de).map_err(|e| e.to_string())?;
                de.end().map_err(|e| e.to_string())?;
                Ok(value)
            }
            #[cfg(feature = "msgpack")]
            CodecKind::MsgPack => {
                let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
                let value = seed.deserialize(&mut de).map_err(|e| e.to_string())?;
                if usize::try_from(de.position()).ok() != Some(bytes.len()) {
                    return Err("trailing bytes".into());
                }
                Ok(value)
            }
            #[cfg(feature = "postcard")]
            CodecKind::Postcard => {
                let mut de = postcard::Deserializer::from_bytes(bytes);
                let value = seed.deserialize(&mut de).map_err(|e| e.to_string())?;
                let rest = de.finalize().map_err(|e| e.to_string())?;
                if !rest.is_empty() {
                    return Err(format!("{} trailing bytes", rest.len()));
                }
                Ok(value)
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            CodecKind::Bincode => "bincode",
            #[cfg(feature = "json")]
            CodecKind::Json => "json",
            #[cfg(feature = "msgpack")]
            CodecKind::MsgPack => "msgpack",
            #[cfg(feature = "postcard")]
            CodecKind::Postcard => "postcard",
        }
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CodecKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "bincode" => Ok(CodecKind::Bincode),
            #[cfg(feature = "json")]
            "json" => Ok(CodecKind::Json),
            #[cfg(feature = "msgpack")]
            "msgpack" | "messagepack" => Ok(CodecKind::MsgPack),
            #[cfg(feature = "postcard")]
            "postcard" => Ok(CodecKind::Postcard),
            other if ["json", "msgpack", "messagepack", "postcard"].contains(&other) => {
                Err(format!(
                    "codec `{other}` needs the `{}` feature of memo-redis",
                    if other == "messagepack" {
                        "msgpack"
                    } else {
                        other
                    }
                ))
            }
            other => Err(format!(
                "unknown codec `{other}`; expected one of `bincode`, `json`, `msgpack`, `postcard`"
            )),
        }
    }
}
