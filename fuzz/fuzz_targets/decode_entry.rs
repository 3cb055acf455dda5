//! Arbitrary bytes as a Redis entry: `Envelope::parse`, then the recorded codec decoding several
//! value types (see `memo_redis_fuzz::decode_entry`). Any panic, abort, OOM or timeout is a bug.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    memo_redis_fuzz::decode_entry(data);
});
