//! Compile-time behaviour of `#[redis_cache]`: what it rejects, with which message, where. What it
//! accepts is `memo-redis/tests/accepts.rs` (modules of an ordinary test binary).
//!
//! Regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test -p memo-redis-derive --test compiletest` and review the diff.
//! (Why this suite lives in the derive crate: its Cargo.toml, `[dev-dependencies]`.)

#[test]
fn ui() {
    // trybuild builds its own project, which does not inherit the workspace's `[profile.dev]`
    // (no debug info): with full debug info its target directory reached 3.2 GB in CI when it
    // also linked pass tests. Its cargo inherits this environment, and nothing here needs a
    // debugger. (Set before any thread runs.)
    std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "0");
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
}
