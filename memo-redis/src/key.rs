//! Keys: `{namespace}:{prefix}:{fingerprint}:{digest-or-template}`.
//!
//! - the digest is SHA-256 over the bincode encoding of the key arguments, streamed into the
//!   hasher, truncated to 128 bits and written as 32 hex digits;
//! - a template (`key = "user:{id}"`) renders each argument with `Display`, keeping the URL
//!   "unreserved" characters `[A-Za-z0-9-._~]` and percent-escaping every other byte as `%XX`, so a
//!   `:` (or any separator the macro accepts) inside a value can never imitate a separator;
//! - the fingerprint covers the function identity, the return type's tokens, `version` and the
//!   traced serde shape of the cached value type ([`shaped_fingerprint`]); a type whose shape
//!   cannot be traced keeps the first three ([`fingerprint`]).

use std::fmt::{self, Write as _};
use std::io;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Rendered templates longer than this are replaced by `#` and a digest of the rendering, so a
/// hostile argument cannot make keys grow without bound.
pub const MAX_TEMPLATE_LEN: usize = 256;

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    // Digits into a buffer, then one `push_str` per 16 bytes: a `String::push` per digit
    // (capacity check and UTF-8 length of each `char`) cost ≈ 300 instructions per key.
    for chunk in bytes.chunks(16) {
        let mut buf = [0u8; 32];
        for (pair, b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0x0f)];
        }
        // ASCII digits: always UTF-8.
        if let Ok(digits) = std::str::from_utf8(&buf[..2 * chunk.len()]) {
            out.push_str(digits);
        }
    }
}

/// The 12-hex-digit fingerprint of a function: identity, return type and version.
///
/// ```
/// use memo_redis::key::fingerprint;
/// assert_ne!(fingerprint("app::f", "u32", 0), fingerprint("app::f", "u64", 0));
/// assert_ne!(fingerprint("app::f", "u32", 0), fingerprint("app::f", "u32", 1));
/// assert_eq!(fingerprint("app::f", "u32", 0).len(), 12);
/// ```
pub fn fingerprint(identity: &str, ret: &str, version: u32) -> String {
    fingerprint_of(identity, ret, version, None)
}

/// The fingerprint of a function whose value type's serde shape was traced: [`fingerprint`]'s
/// inputs plus the SHA-256 of the shape's canonical description (see [`crate::schema`]), so a
/// change inside the type (a field's type, order or name, an enum variant) changes the keys.
///
/// ```
/// use memo_redis::key::{fingerprint, shaped_fingerprint};
/// let (a, b) = ([1u8; 32], [2u8; 32]);
/// assert_ne!(shaped_fingerprint("app::f", "Score", 0, &a), shaped_fingerprint("app::f", "Score", 0, &b));
/// assert_ne!(shaped_fingerprint("app::f", "Score", 0, &a), fingerprint("app::f", "Score", 0));
/// ```
pub fn shaped_fingerprint(identity: &str, ret: &str, version: u32, shape: &[u8; 32]) -> String {
    fingerprint_of(identity, ret, version, Some(shape))
}

fn fingerprint_of(identity: &str, ret: &str, version: u32, shape: Option<&[u8; 32]>) -> String {
    let mut h = Sha256::new();
    h.update((identity.len() as u64).to_le_bytes());
    h.update(identity.as_bytes());
    h.update((ret.len() as u64).to_le_bytes());
    h.update(ret.as_bytes());
    h.update(version.to_le_bytes());
    if let Some(shape) = shape {
        h.update(b"shape");
        h.update(shape);
    }
    let d = h.finalize();
    let mut s = String::with_capacity(12);
    push_hex(&mut s, &d[..6]);
    s
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Argument bytes up to this length are kept (and hashed at the end): they are the exact
/// identity of the call a near cache can look its key up by, without hashing.
const INLINE_ARGS: usize = 64;

/// Where the arguments' bytes go: kept while they fit, streamed into the hasher beyond.
#[derive(Clone)]
enum Sink {
    Inline { buf: [u8; INLINE_ARGS], len: usize },
    Hash(Sha256),
}

impl io::Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Inline { buf, len } => {
                if let Some(dst) = buf.get_mut(*len..*len + data.len()) {
                    dst.copy_from_slice(data);
                    *len += data.len();
                } else {
                    let mut h = Sha256::new();
                    h.update(&buf[..*len]);
                    h.update(data);
                    *self = Sink::Hash(h);
                }
            }
            Sink::Hash(h) => h.update(data),
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Key arguments: what the digest hashes (through `Serialize`).
///
/// Generated code requires it of every key argument, so a type that cannot be hashed is reported
/// once per argument, with the remedy for arguments that are not part of the key. For generated
/// code only (through `__private`).
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of the cache key: it does not implement `serde::Serialize`",
    label = "hashed into the cache key, so it must implement `serde::Serialize`",
    note = "an argument that does not select the result (a connection pool, a client, a handle) stays out of the key with `#[memo(skip)]`: `#[memo(skip)] pool: &Pool`",
    note = "an argument that does select the result needs `#[derive(serde::Serialize)]` on its type, or a `key = \"...\"` template rendering it with `Display`"
)]
pub trait KeyArg: Serialize {}

impl<T: Serialize + ?Sized> KeyArg for T {}

/// Streams key arguments, one after the other, into the digest.
///
/// The bytes hashed are those of the tuple of the arguments (bincode encodes a tuple as its
/// elements in order), so `arg(&a); arg(&b)` gives the digest of `&(&a, &b)`. Up to 64 bytes
/// of them are kept rather than hashed at once, so a caller with a memo of keys can skip the
/// hash ([`KeyDigest::exact`]). For generated code only (through `__private`).
#[doc(hidden)]
#[derive(Clone)]
pub struct KeyDigest {
    sink: Sink,
    error: Option<String>,
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyDigest")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl KeyDigest {
    pub(crate) fn new() -> Self {
        KeyDigest {
            sink: Sink::Inline {
                buf: [0; INLINE_ARGS],
                len: 0,
            },
            error: None,
        }
    }

    /// Hashes the next key argument.
    pub fn arg<T: KeyArg + ?Sized>(&mut self, value: &T) {
        if self.error.is_some() {
            return;
        }
        // Depth-bounded like every codec, so that a deeply nested argument is a key error (the
        // call bypasses the cache) instead of a stack overflow.
        let depth = crate::depth::Depth::new();
        if let Err(e) = bincode::serde::encode_into_std_write(
            crate::depth::Limited::new(value, &depth),
            &mut self.sink,
            bincode::config::standard(),
        ) {
            self.error = Some(e.to_string());
        }
    }

    /// The first argument's serialization error, if any.
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The exact bytes that are hashed, when they are short enough to have been kept: the
    /// same bytes mean the same digest (and the same arguments, for one function).
    pub(crate) fn exact(&self) -> Option<&[u8]> {
        match (&self.sink, &self.error) {
            (Sink::Inline { buf, len }, None) => Some(&buf[..*len]),
            _ => None,
        }
    }

    /// Appends the 32 hex digits to `out`, or the first argument's serialization error.
    pub(crate) fn finish(self, out: &mut String) -> Result<(), String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.finish_ref(out);
        Ok(())
    }

    /// Appends the 32 hex digits of the arguments hashed so far to `out` (an error is ignored:
    /// check [`KeyDigest::error`] first).
    pub(crate) fn finish_ref(&self, out: &mut String) {
        let d = match &self.sink {
            Sink::Inline { buf, len } => Sha256::digest(&buf[..*len]),
            Sink::Hash(h) => h.clone().finalize(),
        };
        push_hex(out, &d[..16]);
    }
}

/// Appends the 32-hex-digit digest of `args` to `out`.
///
/// # Errors
/// An argument's `Serialize` implementation failed (e.g. a sequence of unknown length).
///
/// ```
/// let mut a = String::new();
/// memo_redis::key::push_digest(&mut a, &(&1u32, &"x")).unwrap();
/// let mut b = String::new();
/// memo_redis::key::push_digest(&mut b, &(&1u32, &"y")).unwrap();
/// assert_eq!(a.len(), 32);
/// assert_ne!(a, b);
/// ```
pub fn push_digest<A: Serialize + ?Sized>(out: &mut String, args: &A) -> Result<(), String> {
    let mut h = Sha256::new();
    // Depth-bounded like every codec, so that a deeply nested argument is a key error (the call
    // bypasses the cache) instead of a stack overflow.
    let depth = crate::depth::Depth::new();
    bincode::serde::encode_into_std_write(
        crate::depth::Limited::new(args, &depth),
        &mut HashWriter(&mut h),
        bincode::config::standard(),
    )
    .map_err(|e| e.to_string())?;
    let d = h.finalize();
    push_hex(out, &d[..16]);
    Ok(())
}

/// Writes template values into a key (escaping them) or a tag (verbatim).
///
/// Generated code calls [`TemplateWriter::lit`] for the literal parts of a `key = "..."` or
/// `tags = [...]` template and [`TemplateWriter::arg`] for each placeholder.
#[derive(Debug)]
pub struct TemplateWriter<'a> {
    out: &'a mut String,
    start: usize,
    escape: bool,
}

impl<'a> TemplateWriter<'a> {
    /// A writer for a key: values are escaped (see [`escape_into`]).
    pub(crate) fn new(out: &'a mut String) -> Self {
        let start = out.len();
        TemplateWriter {
            out,
            start,
            escape: true,
        }
    }

    /// A writer for a tag: values are written as `Display` renders them, so the tag is the text
    /// a caller passes to `invalidate_tags` (see `tags.rs` for how tag names become keys).
    pub(crate) fn verbatim(out: &'a mut String) -> Self {
        let start = out.len();
        TemplateWriter {
            out,
            start,
            escape: false,
        }
    }

    /// Appends literal template text as is.
    pub fn lit(&mut self, s: &str) {
        self.out.push_str(s);
    }

    /// Appends the `Display` rendering of `value`; in a key, percent-escaping every byte
    /// outside `[A-Za-z0-9-._~]`.
    pub fn arg<T: fmt::Display + ?Sized>(&mut self, value: &T) {
        // Writing into a String cannot fail.
        if self.escape {
            let _ = write!(Escaper(self.out), "{value}");
        } else {
            let _ = write!(self.out, "{value}");
        }
    }

    /// Replaces an over-long rendering by `#` and its digest.
    pub(crate) fn finish(self) {
        let rendered_len = self.out.len() - self.start;
        if rendered_len > MAX_TEMPLATE_LEN {
            let d = Sha256::digest(&self.out.as_bytes()[self.start..]);
            self.out.truncate(self.start);
            self.out.push('#');
            push_hex(self.out, &d[..16]);
        }
    }
}

/// Whether template values keep `b` as is: the URL "unreserved" characters (RFC 3986), so keys
/// stay readable for common values (`eu-west`, `2026-11-25`, `a.b`, `x_y`, `~u`).
///
/// Escaped values consist of these and `%`: a key template may only separate two placeholders by
/// text containing some other character, so the rendering stays injective (the macro checks it).
fn keeps(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

struct Escaper<'a>(&'a mut String);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if keeps(b) {
                self.0.push(b as char);
            } else {
                self.0.push('%');
                self.0
                    .push(HEX[usize::from(b >> 4)].to_ascii_uppercase() as char);
                self.0
                    .push(HEX[usize::from(b & 0x0f)].to_ascii_uppercase() as char);
            }
        }
        Ok(())
    }
}

/// Renders a template into a fresh string (for tests and tools).
///
/// ```
/// let k = memo_redis::key::render(|w| { w.lit("user:"); w.arg("a:b"); });
/// assert_eq!(k, "user:a%3Ab");
/// ```
pub fn render(f: impl FnOnce(&mut TemplateWriter<'_>)) -> String {
    let mut s = String::new();
    let mut w = TemplateWriter::new(&mut s);
    f(&mut w);
    w.finish();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_hex_writes_two_lowercase_digits_per_byte_after_what_is_there() {
        let bytes: Vec<u8> = (0..=255u8).rev().collect();
        for len in [0, 1, 6, 8, 15, 16, 17, 32, 33, 256] {
            let mut out = String::from("head:");
            push_hex(&mut out, &bytes[..len]);
            let expected: String = bytes[..len].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(out, format!("head:{expected}"), "{len} bytes");
        }
    }

    #[test]
    fn escaping_is_injective_on_separators() {
        let a = render(|w| {
            w.lit("u:");
            w.arg("x:y");
            w.lit(":");
            w.arg("z");
        });
        let b = render(|w| {
            w.lit("u:");
            w.arg("x");
            w.lit(":");
            w.arg("y:z");
        });
        assert_ne!(a, b);
        assert_eq!(a, "u:x%3Ay:z");
        assert_eq!(render(|w| w.arg("%3A")), "%253A");
        assert_eq!(render(|w| w.arg("é*")), "%C3%A9%2A");
        assert_eq!(render(|w| w.arg("eu-west.1_~x")), "eu-west.1_~x");
    }

    #[test]
    fn verbatim_writers_do_not_escape() {
        let mut s = String::new();
        let mut w = TemplateWriter::verbatim(&mut s);
        w.lit("region:");
        w.arg("eu-west 50% {x}");
        assert_eq!(s, "region:eu-west 50% {x}");
    }

    #[test]
    fn streamed_digest_equals_the_tuple_digest() {
        let (a, b, c) = (7u64, "x:y".to_string(), vec![1u8, 2]);
        let mut tuple = String::new();
        push_digest(&mut tuple, &(&a, &b, &c)).unwrap();
        let mut d = KeyDigest::new();
        d.arg(&a);
        d.arg(&b);
        d.arg(&c);
        let mut streamed = String::new();
        d.finish(&mut streamed).unwrap();
        assert_eq!(streamed, tuple);
        let mut one = String::new();
        push_digest(&mut one, &(&a,)).unwrap();
        let mut d = KeyDigest::new();
        d.arg(&a);
        let mut streamed = String::new();
        d.finish(&mut streamed).unwrap();
        assert_eq!(streamed, one);
    }

    #[test]
    fn arguments_longer_than_the_kept_bytes_give_the_tuple_digest() {
        for n in [0, 1, INLINE_ARGS - 2, INLINE_ARGS - 1, INLINE_ARGS, 200] {
            let (a, b) = (7u64, "y".repeat(n));
            let mut tuple = String::new();
            push_digest(&mut tuple, &(&a, &b)).unwrap();
            let mut d = KeyDigest::new();
            d.arg(&a);
            d.arg(&b);
            // 1 byte for 7u64, 1 or 2 for the length, n for the text.
            assert_eq!(d.exact().is_some(), n + 2 <= INLINE_ARGS, "{n}");
            let mut streamed = String::new();
            d.finish(&mut streamed).unwrap();
            assert_eq!(streamed, tuple, "{n}");
        }
    }

    #[test]
    fn long_templates_fall_back_to_a_digest() {
        let long = "x".repeat(MAX_TEMPLATE_LEN + 1);
        let k = render(|w| {
            w.lit("p:");
            w.arg(&long);
        });
        assert!(k.starts_with('#') && k.len() == 33, "{k}");
    }
}
