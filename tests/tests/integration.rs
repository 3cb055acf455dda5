//! Integration suites that can share a process, as modules of one test binary: they share one
//! link and one copy of the dependencies (one binary per suite filled `target/` with ≈ 1.2 GB of
//! test binaries). Run one suite with a filter on its module path:
//!
//! ```text
//! cargo test -p memo-redis-tests --test integration -- memoize::
//! cargo test -p memo-redis-tests --test integration -- fail_open:: herd::
//! ```
//!
//! The other suites stay `[[test]]` targets of their own in tests/Cargo.toml (`--test <suite>` as
//! before), because a test binary is also a process and a crate name: a suite that installs the
//! global tracing subscriber (`common::capture_logs`, logging, observability) or a metrics
//! recorder, sets environment variables (global_env), measures the process (soak), re-runs its own
//! binary by test name (stampede), pins keys or sizes that contain the crate name (golden, cluster,
//! near_cache_drops: a function's identity is its module path, `integration::…` here), or looks
//! counters up by a function name another module also uses (`common::stats_of`: access, freshness,
//! outcomes, promises, …) runs alone. Moving a suite in here means checking those points.
//! `autotests = false` in tests/Cargo.toml, so a new `tests/*.rs` file must be listed here or
//! there: [`every_suite_file_is_built`] checks it.
//!
//! Each module keeps its own `mod common;` (a `#[path]` module file is read as a `mod.rs`, so
//! `common/` resolves next to it, as in a binary of its own).

// Deliberate: each suite keeps its own copy of the shared helpers (and of their statics), as it
// had in a binary of its own.
#![allow(clippy::duplicate_mod)]

#[path = "axum_layer.rs"]
mod axum_layer;
#[path = "budget.rs"]
mod budget;
#[path = "coalesced_reads.rs"]
mod coalesced_reads;
#[path = "compression.rs"]
mod compression;
#[path = "connections.rs"]
mod connections;
#[path = "corrupt_entries.rs"]
mod corrupt_entries;
#[path = "fail_open.rs"]
mod fail_open;
#[path = "harness.rs"]
mod harness;
#[path = "health.rs"]
mod health;
#[path = "herd.rs"]
mod herd;
#[path = "http_privacy.rs"]
mod http_privacy;
#[path = "invalidation.rs"]
mod invalidation;
#[path = "key_properties.rs"]
mod key_properties;
#[path = "lock_reply.rs"]
mod lock_reply;
#[path = "memoize.rs"]
mod memoize;
#[path = "near_cache_review.rs"]
mod near_cache_review;
#[path = "near_values.rs"]
mod near_values;
#[path = "round_trips.rs"]
mod round_trips;
#[path = "stats_companion.rs"]
mod stats_companion;
#[path = "typed_handle.rs"]
mod typed_handle;

/// Every `tests/*.rs` file is a module of this binary or a `[[test]]` target of its own.
#[test]
fn every_suite_file_is_built() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let harness = include_str!("integration.rs");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("tests/Cargo.toml");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir.join("tests")).expect("tests/tests") {
        let name = entry.expect("a directory entry").file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".rs")) else {
            continue;
        };
        let module = format!("#[path = \"{stem}.rs\"]");
        let target = format!("path = \"tests/{stem}.rs\"");
        if !harness.contains(&module) && !manifest.contains(&target) {
            missing.push(stem.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "suites not built: {missing:?}; add `#[path = \"<file>.rs\"] mod <file>;` to \
         tests/tests/integration.rs, or a [[test]] target to tests/Cargo.toml"
    );
}
