//! Compile-time behaviour of `#[redis_cache]`: what it rejects (with which message, where) and
//! what it accepts.
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test -p memo-redis --test compiletest`
//! and review the diff.

#[test]
fn ui() {
    // trybuild builds its own project, which does not inherit the workspace's `[profile.dev]`
    // (line tables only, no debug info for dependencies): each pass test linked tokio & co. with
    // full debug info, ≈ 69 MB a binary and 3.2 GB of `target/tests/trybuild` in CI. Its cargo
    // inherits this environment, and nothing here needs a debugger. (Set before any thread runs.)
    std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "0");
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
