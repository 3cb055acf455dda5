//! Property tests for the decoder: arbitrary bytes from Redis never panic and never allocate
//! without bound. (A coverage-guided target for longer runs lives in `fuzz/`; see
//! `docs/when-redis-fails.md`.)

use std::collections::BTreeMap;

use memo_redis::envelope::{self, Envelope, HEADER_LEN};
use memo_redis::CodecKind;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    scores: BTreeMap<String, f64>,
    nested: Option<Box<Record>>,
}

fn all_codecs() -> Vec<CodecKind> {
    vec![
        CodecKind::Bincode,
        CodecKind::Json,
        CodecKind::MsgPack,
        CodecKind::Postcard,
    ]
}

/// Decodes like the call path does; must return, never panic.
fn decode_any(bytes: &[u8]) {
    if let Ok(env) = Envelope::parse(bytes, 1 << 20) {
        let _ = env.codec.decode::<Record>(env.payload);
        let _ = env.codec.decode::<Vec<Vec<String>>>(env.payload);
        let _ = env.codec.decode::<(u8, String, Vec<u64>)>(env.payload);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_any(&bytes);
    }

    #[test]
    fn arbitrary_payload_behind_a_valid_header(codec in 0usize..4, payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = Vec::new();
        envelope::write_header(&mut bytes, all_codecs()[codec], 0, 0, 0);
        bytes.extend_from_slice(&payload);
        decode_any(&bytes);
    }

    #[test]
    fn mutated_valid_entries_never_panic(codec in 0usize..4, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let rec = Record {
            id: 7,
            name: "n".repeat(20),
            tags: vec!["a".into(), "b".into()],
            scores: [("x".to_string(), 1.5)].into_iter().collect(),
            nested: Some(Box::new(Record { id: 1, name: "i".into(), tags: vec![], scores: BTreeMap::new(), nested: None })),
        };
        let mut bytes = envelope::encode(all_codecs()[codec], Some(&rec), 1, 2).unwrap();
        for (at, v) in flips {
            let i = at % bytes.len();
            bytes[i] ^= v;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        decode_any(&bytes);
    }
}

/// The largest single allocation this thread asked for since [`largest_allocation_during`]
/// started measuring: a decoder that trusts a length prefix shows up here even when the system
/// would have granted the memory (overcommit), instead of only when it aborts the process.
struct Measuring;

thread_local! {
    static LARGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only records sizes.
unsafe impl std::alloc::GlobalAlloc for Measuring {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(layout.size())));
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(new)));
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Measuring = Measuring;

/// Runs `f` and returns its result with the largest single allocation it made.
fn largest_allocation_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|m| m.set(0));
    let r = f();
    (r, LARGEST.with(|m| m.get()))
}

/// A payload must not make the decoder reserve more than this (the payloads here are < 64 bytes;
/// serde's own pre-allocation for a claimed length is capped at 1 MiB).
const ALLOCATION_BOUND: usize = 1 << 20;

/// Decodes `payload` behind a valid header as `T` and asserts it fails without a large
/// allocation.
fn rejects_cheaply<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    codec: CodecKind,
    what: &str,
    payload: &[u8],
) {
    let mut bytes = Vec::new();
    envelope::write_header(&mut bytes, codec, 0, 0, 0);
    bytes.extend_from_slice(payload);
    let env = Envelope::parse(&bytes, 1 << 20).unwrap();
    let (decoded, largest) = largest_allocation_during(|| env.codec.decode::<T>(env.payload));
    let err = match decoded {
        Ok(v) => panic!(
            "{codec} {what} as {}: decoded {v:?}",
            std::any::type_name::<T>()
        ),
        Err(e) => e,
    };
    // The case is meant to fail on what the length (or depth) claims, not on a type mismatch
    // before or after it.
    assert!(
        !err.contains("invalid type"),
        "{codec} {what} as {}: stopped on a type error: {err}",
        std::any::type_name::<T>()
    );
    assert!(
        largest <= ALLOCATION_BOUND,
        "{codec} {what} as {}: a {largest}-byte allocation",
        std::any::type_name::<T>()
    );
}

/// msgpack: 32-bit length prefixes (bin32, str32, array32, map32) claiming 4 GiB - 1, followed
/// by a few valid elements, each decoded as the type that reads that prefix: the decoder must
/// run out of input, not reserve what the prefix claims.
#[test]
fn msgpack_hostile_length_prefixes() {
    let c = CodecKind::MsgPack;
    let with = |marker: u8, tail: &[u8]| {
        let mut p = vec![marker, 0xFF, 0xFF, 0xFF, 0xFF];
        p.extend_from_slice(tail);
        p
    };
    // fixstr "a"; float64 1.5; fixint 7.
    let s = [0xA1, b'a'];
    let f = [0xCB, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0];
    rejects_cheaply::<Vec<u8>>(c, "bin32", &with(0xC6, b"abc"));
    rejects_cheaply::<String>(c, "str32", &with(0xDB, b"abc"));
    rejects_cheaply::<Vec<u64>>(c, "array32", &with(0xDD, &[1, 2, 3]));
    rejects_cheaply::<Vec<String>>(c, "array32", &with(0xDD, &[s, s, s].concat()));
    rejects_cheaply::<BTreeMap<String, f64>>(c, "map32", &with(0xDF, &[&s[..], &f].concat()));
    // A struct as a map (how the codec writes it) and as an array (also accepted).
    rejects_cheaply::<Record>(c, "map32", &with(0xDF, &[0xA2, b'i', b'd', 7]));
    rejects_cheaply::<Record>(c, "array32", &with(0xDD, &[7, 0xA1, b'n']));
    // A valid outer map whose `name` carries the hostile prefix.
    let mut nested = vec![0x81, 0xA4];
    nested.extend_from_slice(b"name");
    nested.extend_from_slice(&with(0xDB, b"abc"));
    rejects_cheaply::<Record>(c, "str32 in a field", &nested);
}

/// JSON has no length prefixes: what stands for them is nesting and literal sizes. Deep nesting
/// stops at serde_json's recursion limit (an error, not a stack overflow); a huge number or an
/// unterminated string fails without allocating for what it claims.
#[test]
fn json_hostile_inputs() {
    let c = CodecKind::Json;
    let deep = "[".repeat(100_000);
    rejects_cheaply::<serde_json::Value>(c, "100 000 nested arrays", deep.as_bytes());
    let deep_maps = "{\"a\":".repeat(50_000);
    rejects_cheaply::<serde_json::Value>(c, "50 000 nested maps", deep_maps.as_bytes());
    rejects_cheaply::<BTreeMap<String, serde_json::Value>>(
        c,
        "50 000 nested maps",
        deep_maps.as_bytes(),
    );
    rejects_cheaply::<u64>(c, "a 400-digit integer", "9".repeat(400).as_bytes());
    rejects_cheaply::<String>(c, "an unterminated string", b"\"abc");
    rejects_cheaply::<Vec<u64>>(c, "an unterminated array", b"[1,2,3");
    rejects_cheaply::<Record>(
        c,
        "an unterminated string with a lone surrogate",
        b"{\"id\":1,\"name\":\"\\uD800",
    );
}

/// postcard: varint lengths claiming u32::MAX and u64::MAX elements or bytes.
#[test]
fn postcard_hostile_varint_lengths() {
    let c = CodecKind::Postcard;
    let u32_max = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
    let u64_max = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
    for (what, prefix) in [("u32::MAX", &u32_max[..]), ("u64::MAX", &u64_max[..])] {
        let mut p = prefix.to_vec();
        p.extend_from_slice(b"abc");
        rejects_cheaply::<Vec<u64>>(c, what, &p);
        rejects_cheaply::<Vec<String>>(c, what, &p);
        rejects_cheaply::<String>(c, what, &p);
        rejects_cheaply::<Vec<u8>>(c, what, &p);
        rejects_cheaply::<BTreeMap<String, f64>>(c, what, &p);
        // As a field: `Record { id: 1, name: <hostile> }`.
        let mut field = vec![0x01];
        field.extend_from_slice(&p);
        rejects_cheaply::<Record>(c, what, &field);
    }
    // An over-long varint (11 bytes) is an error of its own.
    rejects_cheaply::<Vec<u64>>(c, "11-byte varint", &[0xFF; 11]);
}

/// bincode: varint lengths claiming 2^60 and u64::MAX, checked against its decode limit.
#[test]
fn bincode_hostile_varint_lengths() {
    let c = CodecKind::Bincode;
    // 0xFD: a u64 follows (little-endian).
    // 2^31 is one the system could grant (overcommit): only the measurement catches it.
    let two_31 = [0xFD, 0, 0, 0, 0x80, 0, 0, 0, 0];
    let two_60 = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0x10];
    let u64_max = [0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    for (what, prefix) in [
        ("2^31", &two_31[..]),
        ("2^60", &two_60[..]),
        ("u64::MAX", &u64_max[..]),
    ] {
        let mut p = prefix.to_vec();
        p.extend_from_slice(b"abc");
        rejects_cheaply::<Vec<u64>>(c, what, &p);
        rejects_cheaply::<Vec<String>>(c, what, &p);
        rejects_cheaply::<String>(c, what, &p);
        rejects_cheaply::<Vec<u8>>(c, what, &p);
    }
}

/// A length prefix claiming 2^60 elements must fail fast instead of reserving memory.
#[test]
fn hostile_length_prefixes_fail_without_allocating() {
    for codec in all_codecs() {
        let mut bytes = Vec::new();
        envelope::write_header(&mut bytes, codec, 0, 0, 0);
        // bincode/postcard varint 0xFF.. (huge), msgpack array32 0xFFFFFFFF, json is textual.
        bytes.extend_from_slice(&[0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
        bytes.extend_from_slice(&[0xDD, 0xFF, 0xFF, 0xFF, 0xFF]);
        let env = Envelope::parse(&bytes, 1 << 20).unwrap();
        assert!(
            env.codec.decode::<Vec<u64>>(env.payload).is_err(),
            "{codec}"
        );
        assert!(
            env.codec.decode::<Vec<String>>(env.payload).is_err(),
            "{codec}"
        );
        assert!(env.codec.decode::<String>(env.payload).is_err(), "{codec}");
    }
}

#[test]
fn oversized_entries_are_rejected_before_decoding() {
    let big = vec![0u8; 4096];
    let bytes = envelope::encode(CodecKind::Bincode, Some(&big), 0, 0).unwrap();
    assert!(Envelope::parse(&bytes, 1024).is_err());
    assert!(Envelope::parse(&bytes, bytes.len() - HEADER_LEN).is_ok());
}
