//! Shared code of the fuzz targets: the value types decoded and the decoding path, kept in a
//! library so the seed corpus and the unit test below use exactly what the fuzzer runs.

use std::collections::BTreeMap;
use std::fmt::Debug;

use memo_redis::envelope::{self, Envelope};
use memo_redis::CodecKind;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `max_len` passed to [`Envelope::parse`], as in a cache configured with 1 MiB values.
pub const MAX_LEN: usize = 1 << 20;

/// A typical cached record: strings, sequences, an option and a map (no floats, so decoded
/// values compare equal to themselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Plain integer.
    pub id: u64,
    /// A string.
    pub name: String,
    /// A sequence of strings.
    pub tags: Vec<String>,
    /// An optional string.
    pub note: Option<String>,
    /// A map.
    pub attrs: BTreeMap<String, i32>,
    /// Bytes as a sequence.
    pub blob: Vec<u8>,
}

/// The types every parsed payload is decoded as.
pub type Nested = Vec<Vec<String>>;
/// A tuple with a small integer, a string and a sequence.
pub type Tuple = (u8, String, Vec<u64>);

/// Decodes `payload` as `T`; if that works, encodes the value again with the same codec and
/// checks that it decodes to an equal value. Returns whether the first decode succeeded.
fn check<T>(codec: CodecKind, payload: &[u8]) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(value) = codec.decode::<T>(payload) else {
        return false;
    };
    let mut again = Vec::new();
    codec
        .encode(&value, &mut again)
        .unwrap_or_else(|e| panic!("{codec}: a decoded {value:?} does not encode again: {e}"));
    let back: T = codec
        .decode(&again)
        .unwrap_or_else(|e| panic!("{codec}: re-encoding of {value:?} does not decode: {e}"));
    assert_eq!(back, value, "{codec}: round trip changed the value");
    true
}

/// The fuzzed path: what a cache read does with the bytes found under a key. Returns how many
/// of the types decoded (for the seed check); never panics on any input unless there is a bug.
pub fn decode_entry(data: &[u8]) -> usize {
    let Ok(env) = Envelope::parse(data, MAX_LEN) else {
        return 0;
    };
    if env.is_none() {
        assert!(
            env.payload.is_empty(),
            "a cached None with a payload parsed"
        );
        return 0;
    }
    usize::from(check::<Record>(env.codec, env.payload))
        + usize::from(check::<Nested>(env.codec, env.payload))
        + usize::from(check::<Tuple>(env.codec, env.payload))
}

/// Valid entries of every type in every codec, plus a cached `None`: a seed corpus that gets
/// the fuzzer past the header and into each decoder at once.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let record = Record {
        id: 42,
        name: "Ada: \"quoted\" ünïcode".into(),
        tags: vec!["a".into(), String::new(), "c:d".into()],
        note: Some("n".into()),
        attrs: BTreeMap::from([("k".into(), -1), ("z".into(), i32::MAX)]),
        blob: vec![0, 255, 17],
    };
    let nested: Nested = vec![vec!["x".into(), "yy".into()], vec![], vec![String::new()]];
    let tuple: Tuple = (7, "t".into(), vec![0, 1, u64::MAX]);
    let mut out = Vec::new();
    for codec in [
        CodecKind::Bincode,
        CodecKind::Json,
        CodecKind::MsgPack,
        CodecKind::Postcard,
    ] {
        let enc = |v: &dyn erased::Value| v.entry(codec);
        out.push((format!("{codec}-record"), enc(&record)));
        out.push((format!("{codec}-nested"), enc(&nested)));
        out.push((format!("{codec}-tuple"), enc(&tuple)));
        out.push((
            format!("{codec}-none"),
            envelope::encode::<u8>(codec, None, 1_700_000_000_000, 3).expect("encode None"),
        ));
    }
    out
}

mod erased {
    use super::*;

    /// Object-safe "encode me as an entry", so `seeds` can loop over different types.
    pub trait Value {
        fn entry(&self, codec: CodecKind) -> Vec<u8>;
    }

    impl<T: Serialize> Value for T {
        fn entry(&self, codec: CodecKind) -> Vec<u8> {
            envelope::encode(codec, Some(self), 1_700_000_000_000, 3).expect("encode seed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed parses and decodes as its own type; with `MEMO_FUZZ_WRITE_SEEDS=DIR` the seeds
    /// are also written to DIR (see README.md).
    #[test]
    fn seeds_decode() {
        for (name, bytes) in seeds() {
            let decoded = decode_entry(&bytes);
            if name.ends_with("-none") {
                assert_eq!(decoded, 0, "{name}");
            } else {
                assert!(decoded >= 1, "seed {name} decodes as nothing");
            }
        }
        if let Some(dir) = std::env::var_os("MEMO_FUZZ_WRITE_SEEDS") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("create seed dir");
            for (name, bytes) in seeds() {
                std::fs::write(dir.join(name), bytes).expect("write seed");
            }
        }
    }

    #[test]
    fn garbage_is_rejected_quietly() {
        assert_eq!(decode_entry(b""), 0);
        assert_eq!(decode_entry(b"MR\x01\x01\x00"), 0);
        let mut huge = b"MR\x01\x01\x00".to_vec();
        huge.extend_from_slice(&[0; 12]);
        huge.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(
            decode_entry(&huge),
            0,
            "a 2^63-element claim fails, no abort"
        );
    }
}
