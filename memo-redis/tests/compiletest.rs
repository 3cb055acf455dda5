//! Compile-time behaviour of `#[redis_cache]`: what it rejects (with which message, where) and
//! what it accepts.
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test -p memo-redis --test compiletest`
//! and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
