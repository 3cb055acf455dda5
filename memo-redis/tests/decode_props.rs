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
