//! Compile-time behaviour of `#[redis_cache]`: what it rejects, with which message, where. What it
//! accepts is `tests/accepts.rs` (modules of an ordinary test binary).
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test -p memo-redis --test compiletest`
//! and review the diff.

#[test]
fn ui() {
    // trybuild builds its own project, which does not inherit the workspace's `[profile.dev]`
    // (no debug info): with full debug info its target directory reached 3.2 GB in CI when it
    // also linked pass tests. Its cargo inherits this environment, and nothing here needs a
    // debugger. (Set before any thread runs.)
    // TODO: Audit that the environment access only happens in single-threaded code.
    unsafe { std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "0") };
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
}
