//! What the benchmarks share (`mod common;` in each bench target; not a target itself).
#![allow(dead_code)] // each bench uses a part

use serde::{Deserialize, Serialize};

/// A typical 5-field cached record: ~80 bytes of bincode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub tags: Vec<String>,
    pub score: f64,
}

/// The record for `id` (a pure function of it).
pub fn profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("Ada Lovelace #{id}"),
        email: format!("ada.lovelace.{id}@example.com"),
        tags: vec!["admin".into(), "beta".into(), "early-adopter".into()],
        score: 4.25,
    }
}

/// Smoke mode (tiny counts, for CI): `--smoke`, `MEMO_BENCH_SMOKE=1`, or the binary run without
/// the `--bench` flag `cargo bench` passes (e.g. by `cargo test --benches`).
pub fn smoke() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().any(|a| a == "--smoke")
        || std::env::var("MEMO_BENCH_SMOKE").is_ok_and(|v| v == "1")
        || !args.iter().any(|a| a == "--bench")
}
