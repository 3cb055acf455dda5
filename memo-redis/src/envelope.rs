//! The envelope: a small self-describing header in front of the codec payload.
//!
//! ```text
//! offset  size  field
//! 0       2     magic  b"MR"
//! 2       1     format version (1)
//! 3       1     codec id (see CodecKind::id)
//! 4       1     flags: bit 0 = cached `None` (no payload), bit 1 = payload compressed
//! 5       8     written at, ms since the Unix epoch, big-endian
//! 13      4     compute time of the body, ms, big-endian (for early refresh)
//! 17      8     shape tag of the value type, big-endian (0 = not checked; see below)
//! 25      ..    payload
//! ```
//! Anything that does not parse, carries an unknown version or codec, or exceeds the size limit
//! is rejected with [`EnvelopeError`]; the caller treats it as a miss and repairs the entry.
//!
//! The shape tag (format version 2) is the first 8 bytes of the SHA-256 of the value type's
//! traced serde shape ([`crate::schema`]), written by cached functions and by the typed handle
//! (`set` writes the tag of the type its value is read back as); a reader whose type has another
//! tag treats the entry like an undecodable one. 0 ("not checked", written by [`encode`]) is
//! accepted by every reader. Entries of format version 1 (no tag) are a miss and are repaired.
//!
//! A compressed payload ([`FLAG_COMPRESSED`], written when the cache's
//! `REDIS_COMPRESS_MIN_BYTES` or the function's `compress = ...` asks for it) is the codec
//! payload's length as a big-endian `u32` followed by one LZ4 block (`lz4_flex::block`). Every
//! reader decompresses, whatever its own setting; the length is checked against the reader's
//! `max_value_bytes` before anything is allocated, and a block that does not decompress to
//! exactly that length is rejected. The format version stays 2: a build older than the flag
//! rejects it as an unknown flag, which is a miss (and a repair), never a wrong value.

use std::borrow::Cow;

use crate::codec::CodecKind;

/// First two bytes of every entry.
pub const MAGIC: [u8; 2] = *b"MR";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 2;
/// Header length in bytes.
pub const HEADER_LEN: usize = 25;
/// Flag: the entry is a cached `None`.
pub const FLAG_NONE: u8 = 0b0000_0001;
/// Flag: the payload is compressed (see the module docs).
pub const FLAG_COMPRESSED: u8 = 0b0000_0010;
const KNOWN_FLAGS: u8 = FLAG_NONE | FLAG_COMPRESSED;
/// Length of the uncompressed-size prefix of a compressed payload.
const SIZE_PREFIX: usize = 4;

/// Why an entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Shorter than the header.
    #[error("entry truncated ({0} bytes)")]
    Truncated(usize),
    /// Not written by memo-redis.
    #[error("foreign entry (bad magic)")]
    BadMagic,
    /// Written by another (newer or older) format version.
    #[error("unsupported envelope format version {0}")]
    Version(u8),
    /// Written with a codec this build does not have.
    #[error("unknown codec id {0}")]
    Codec(u8),
    /// Unknown flag bits, or a cached `None` with a payload.
    #[error("invalid flags {0:#04x}")]
    Flags(u8),
    /// Larger than the configured maximum.
    #[error("entry of {0} bytes exceeds the size limit")]
    TooLarge(usize),
    /// A compressed payload that does not decompress to the length it announces.
    #[error("compressed payload does not decompress ({0})")]
    Compression(String),
}

/// A parsed envelope borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The codec that wrote the payload.
    pub codec: CodecKind,
    /// Flag bits (see [`FLAG_NONE`]).
    pub flags: u8,
    /// When the entry was written, ms since the Unix epoch.
    pub written_at_ms: u64,
    /// How long the body took to compute, ms.
    pub compute_ms: u32,
    /// The shape tag of the value type that wrote the entry (0 = not checked).
    pub shape: u64,
    /// The codec bytes.
    pub payload: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Whether this entry is a cached `None`.
    pub fn is_none(&self) -> bool {
        self.flags & FLAG_NONE != 0
    }

    /// Parses `bytes`, rejecting entries larger than `max_len`.
    ///
    /// # Errors
    /// See [`EnvelopeError`].
    ///
    /// ```
    /// use memo_redis::envelope::{Envelope, EnvelopeError};
    /// assert_eq!(Envelope::parse(b"hello", 1024), Err(EnvelopeError::Truncated(5)));
    /// ```
    pub fn parse(bytes: &'a [u8], max_len: usize) -> Result<Envelope<'a>, EnvelopeError> {
        if bytes.len() > max_len.saturating_add(HEADER_LEN) {
            return Err(EnvelopeError::TooLarge(bytes.len()));
        }
        let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(EnvelopeError::Truncated(bytes.len()));
        };
        if header[0..2] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        if header[2] != FORMAT_VERSION {
            return Err(EnvelopeError::Version(header[2]));
        }
        let codec = CodecKind::from_id(header[3]).ok_or(EnvelopeError::Codec(header[3]))?;
        let flags = header[4];
        if flags & !KNOWN_FLAGS != 0
            || (flags & FLAG_NONE != 0 && (!payload.is_empty() || flags & FLAG_COMPRESSED != 0))
        {
            return Err(EnvelopeError::Flags(flags));
        }
        let mut written = [0u8; 8];
        written.copy_from_slice(&header[5..13]);
        let mut compute = [0u8; 4];
        compute.copy_from_slice(&header[13..17]);
        let mut shape = [0u8; 8];
        shape.copy_from_slice(&header[17..25]);
        Ok(Envelope {
            codec,
            flags,
            written_at_ms: u64::from_be_bytes(written),
            compute_ms: u32::from_be_bytes(compute),
            shape: u64::from_be_bytes(shape),
            payload,
        })
    }

    /// Whether the payload is compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    /// The codec payload, decompressed if the entry is compressed; a decompressed payload longer
    /// than `max_len` is rejected before anything is allocated.
    ///
    /// # Errors
    /// [`EnvelopeError::TooLarge`] or [`EnvelopeError::Compression`].
    ///
    /// ```
    /// use memo_redis::{envelope, CodecKind};
    /// let value = "abc".repeat(100);
    /// let plain = envelope::encode(CodecKind::Bincode, Some(&value), 0, 0).unwrap();
    /// let bytes = envelope::compress(plain, Some(64), 1 << 20);
    /// let env = envelope::Envelope::parse(&bytes, 1 << 20).unwrap();
    /// assert!(env.is_compressed() && env.payload.len() < 100);
    /// let payload = env.decompressed(1 << 20).unwrap();
    /// assert_eq!(env.codec.decode::<String>(&payload).unwrap(), value);
    /// ```
    pub fn decompressed(&self, max_len: usize) -> Result<Cow<'a, [u8]>, EnvelopeError> {
        if !self.is_compressed() {
            return Ok(Cow::Borrowed(self.payload));
        }
        let Some((len, block)) = self.payload.split_first_chunk::<SIZE_PREFIX>() else {
            return Err(EnvelopeError::Compression("no length".into()));
        };
        let len = u32::from_be_bytes(*len);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > max_len {
            return Err(EnvelopeError::TooLarge(len));
        }
        let mut out = vec![0u8; len];
        match lz4_flex::block::decompress_into(block, &mut out) {
            Ok(n) if n == len => Ok(Cow::Owned(out)),
            Ok(n) => Err(EnvelopeError::Compression(format!(
                "{n} bytes where {len} were announced"
            ))),
            Err(e) => Err(EnvelopeError::Compression(e.to_string())),
        }
    }

    /// Whether a reader of a type with shape tag `expected` may decode this entry: the tags are
    /// equal, or the writer did not know its type's (0).
    pub fn shape_matches(&self, expected: u64) -> bool {
        self.shape == 0 || self.shape == expected
    }
}

/// Writes a header with shape tag 0 ("not checked") into `out` (which should be empty); the
/// payload is appended after it.
pub fn write_header(
    out: &mut Vec<u8>,
    codec: CodecKind,
    flags: u8,
    written_at_ms: u64,
    compute_ms: u32,
) {
    header(out, codec, flags, 0, written_at_ms, compute_ms);
}

pub(crate) fn header(
    out: &mut Vec<u8>,
    codec: CodecKind,
    flags: u8,
    shape: u64,
    written_at_ms: u64,
    compute_ms: u32,
) {
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.push(codec.id());
    out.push(flags);
    out.extend_from_slice(&written_at_ms.to_be_bytes());
    out.extend_from_slice(&compute_ms.to_be_bytes());
    out.extend_from_slice(&shape.to_be_bytes());
}

/// Compresses the payload of the whole entry `entry` (header included, as [`encode`] returns it)
/// if it is at least `min_bytes` long (`None`: never), at most `max_len` long (a longer one is
/// refused by the size limit anyway) and compressing makes it smaller; otherwise returns
/// `entry` unchanged. A cached `None` is never compressed.
///
/// ```
/// use memo_redis::{envelope, CodecKind};
/// let small = envelope::encode(CodecKind::Bincode, Some(&"abc".repeat(10)), 0, 0).unwrap();
/// assert_eq!(envelope::compress(small.clone(), Some(64), 1 << 20), small);
/// ```
pub fn compress(entry: Vec<u8>, min_bytes: Option<usize>, max_len: usize) -> Vec<u8> {
    let Some(min_bytes) = min_bytes else {
        return entry;
    };
    let Some((header, payload)) = entry.split_first_chunk::<HEADER_LEN>() else {
        return entry;
    };
    let Ok(len) = u32::try_from(payload.len()) else {
        return entry;
    };
    if payload.len() < min_bytes || payload.len() > max_len || header[4] != 0 {
        return entry;
    }
    let bound = lz4_flex::block::get_maximum_output_size(payload.len());
    let mut out = vec![0u8; HEADER_LEN + SIZE_PREFIX + bound];
    out[..HEADER_LEN].copy_from_slice(header);
    out[4] = FLAG_COMPRESSED;
    out[HEADER_LEN..HEADER_LEN + SIZE_PREFIX].copy_from_slice(&len.to_be_bytes());
    match lz4_flex::block::compress_into(payload, &mut out[HEADER_LEN + SIZE_PREFIX..]) {
        Ok(n) if SIZE_PREFIX + n < payload.len() => {
            out.truncate(HEADER_LEN + SIZE_PREFIX + n);
            out
        }
        _ => entry,
    }
}

/// Encodes a whole entry: `Some(value)` or a cached `None`.
///
/// # Errors
/// The codec cannot represent the value.
///
/// ```
/// use memo_redis::{envelope, CodecKind};
/// let bytes = envelope::encode(CodecKind::Bincode, Some(&42u32), 0, 5).unwrap();
/// let env = envelope::Envelope::parse(&bytes, 1 << 20).unwrap();
/// assert_eq!(env.compute_ms, 5);
/// assert_eq!(env.codec.decode::<u32>(env.payload).unwrap(), 42);
/// ```
pub fn encode<T: serde::Serialize + ?Sized>(
    codec: CodecKind,
    value: Option<&T>,
    written_at_ms: u64,
    compute_ms: u32,
) -> Result<Vec<u8>, String> {
    encode_shaped(codec, value, 0, written_at_ms, compute_ms)
}

/// [`encode`] with the shape tag of the value's type (see the module docs).
///
/// # Errors
/// The codec cannot represent the value.
///
/// ```
/// use memo_redis::{envelope, CodecKind};
/// let bytes = envelope::encode_shaped(CodecKind::Bincode, Some(&42u32), 7, 0, 5).unwrap();
/// let env = envelope::Envelope::parse(&bytes, 1 << 20).unwrap();
/// assert!(env.shape_matches(7) && !env.shape_matches(8));
/// ```
pub fn encode_shaped<T: serde::Serialize + ?Sized>(
    codec: CodecKind,
    value: Option<&T>,
    shape: u64,
    written_at_ms: u64,
    compute_ms: u32,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64);
    match value {
        Some(v) => {
            header(&mut out, codec, 0, shape, written_at_ms, compute_ms);
            codec.encode(v, &mut out)?;
        }
        None => header(&mut out, codec, FLAG_NONE, shape, written_at_ms, compute_ms),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejections() {
        let bytes = encode(CodecKind::Bincode, Some(&("a", 7u64)), 123, 9).unwrap();
        let env = Envelope::parse(&bytes, 1024).unwrap();
        assert_eq!(
            (env.written_at_ms, env.compute_ms, env.is_none()),
            (123, 9, false)
        );
        let none = encode::<u8>(CodecKind::Bincode, None, 1, 2).unwrap();
        assert!(Envelope::parse(&none, 1024).unwrap().is_none());
        let shaped = encode_shaped(CodecKind::Bincode, Some(&1u8), 0xabcd, 1, 2).unwrap();
        let env = Envelope::parse(&shaped, 1024).unwrap();
        assert_eq!(env.shape, 0xabcd);
        assert!(env.shape_matches(0xabcd) && !env.shape_matches(1));
        assert!(Envelope::parse(&bytes, 1024).unwrap().shape_matches(1));
        // Format version 1 (17-byte header, no shape tag) is not read (one shorter than 25 bytes
        // is `Truncated`: a miss all the same).
        let mut v1 = bytes[..17].to_vec();
        v1[2] = 1;
        v1.extend_from_slice(&[7; 12]);
        assert_eq!(Envelope::parse(&v1, 1024), Err(EnvelopeError::Version(1)));

        assert_eq!(
            Envelope::parse(&bytes[..10], 1024),
            Err(EnvelopeError::Truncated(10))
        );
        let mut v = bytes.clone();
        v[2] = 9;
        assert_eq!(Envelope::parse(&v, 1024), Err(EnvelopeError::Version(9)));
        let mut v = bytes.clone();
        v[3] = 200;
        assert_eq!(Envelope::parse(&v, 1024), Err(EnvelopeError::Codec(200)));
        let mut v = bytes.clone();
        v[4] = 0x80;
        assert_eq!(Envelope::parse(&v, 1024), Err(EnvelopeError::Flags(0x80)));
        let mut v = none.clone();
        v.push(0);
        assert_eq!(Envelope::parse(&v, 1024), Err(EnvelopeError::Flags(1)));
        assert_eq!(
            Envelope::parse(b"xx-not-an-envelope-at-all, really", 1024),
            Err(EnvelopeError::BadMagic)
        );
        assert!(matches!(
            Envelope::parse(&bytes, 1),
            Err(EnvelopeError::TooLarge(_))
        ));
    }

    #[test]
    fn compression_roundtrip_threshold_and_hostile_lengths() {
        let value = "memo-redis ".repeat(200);
        let plain = encode(CodecKind::Bincode, Some(&value), 1, 2).unwrap();
        let payload_len = plain.len() - HEADER_LEN;
        // Off, below the threshold, above the size limit: unchanged.
        assert_eq!(compress(plain.clone(), None, 1 << 20), plain);
        assert_eq!(
            compress(plain.clone(), Some(payload_len + 1), 1 << 20),
            plain
        );
        assert_eq!(compress(plain.clone(), Some(0), payload_len - 1), plain);
        // At the threshold: compressed, same header but the flag.
        let packed = compress(plain.clone(), Some(payload_len), 1 << 20);
        assert!(packed.len() < plain.len() / 4, "{}", packed.len());
        assert_eq!(packed[..4], plain[..4]);
        assert_eq!(packed[4], FLAG_COMPRESSED);
        assert_eq!(packed[5..HEADER_LEN], plain[5..HEADER_LEN]);
        let env = Envelope::parse(&packed, 1 << 20).unwrap();
        assert!(env.is_compressed() && !env.is_none());
        let back = env.decompressed(payload_len).unwrap();
        assert_eq!(&back[..], &plain[HEADER_LEN..]);
        // The reader's limit bounds the decompressed length.
        assert_eq!(
            env.decompressed(payload_len - 1),
            Err(EnvelopeError::TooLarge(payload_len))
        );
        // Incompressible payloads stay as they are; a cached None is never compressed.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()[0]
            })
            .collect();
        let raw = encode(CodecKind::Bincode, Some(&noise), 1, 2).unwrap();
        assert_eq!(compress(raw.clone(), Some(0), 1 << 20), raw);
        let none = encode::<u8>(CodecKind::Bincode, None, 1, 2).unwrap();
        assert_eq!(compress(none.clone(), Some(0), 1 << 20), none);
        // Hostile: a 4 GiB claim is refused before allocating; garbage and wrong lengths fail.
        let mut huge = packed[..HEADER_LEN].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.extend_from_slice(&[0x1f; 16]);
        let env = Envelope::parse(&huge, 1 << 20).unwrap();
        assert_eq!(
            env.decompressed(1 << 20),
            Err(EnvelopeError::TooLarge(u32::MAX as usize))
        );
        let mut garbage = packed[..HEADER_LEN].to_vec();
        garbage.extend_from_slice(&100u32.to_be_bytes());
        garbage.extend_from_slice(&[0xff; 16]);
        let env = Envelope::parse(&garbage, 1 << 20).unwrap();
        assert!(matches!(
            env.decompressed(1 << 20),
            Err(EnvelopeError::Compression(_))
        ));
        let mut short = packed.clone();
        short[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(payload_len as u32 + 1).to_be_bytes());
        let env = Envelope::parse(&short, 1 << 20).unwrap();
        assert!(matches!(
            env.decompressed(1 << 20),
            Err(EnvelopeError::Compression(_))
        ));
        let env = Envelope::parse(&packed[..HEADER_LEN + 2], 1 << 20).unwrap();
        assert!(matches!(
            env.decompressed(1 << 20),
            Err(EnvelopeError::Compression(_))
        ));
        // A cached None cannot be compressed.
        let mut v = none.clone();
        v[4] = FLAG_NONE | FLAG_COMPRESSED;
        assert_eq!(Envelope::parse(&v, 1024), Err(EnvelopeError::Flags(3)));
    }
}
