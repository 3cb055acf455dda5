//! What `#[redis_cache]` accepts: each file under `tests/accepts/` is a module of this one test
//! binary, and compiling it (warning-free under `clippy -D warnings` in CI) is the test. The
//! rejections, with their messages and spans, are trybuild snapshots
//! (`memo-redis-derive/tests/compiletest.rs`, `memo-redis-derive/tests/ui/fail/`). These files were trybuild pass tests, one project and one linked binary
//! each (16 links and a codegen build of every dependency in trybuild's own target directory);
//! as modules they share the test build the rest of the suite needs anyway.

#[path = "accepts/attribute-options.rs"]
mod attribute_options;
#[path = "accepts/body-features.rs"]
mod body_features;
#[path = "accepts/companions.rs"]
mod companions;
#[path = "accepts/free-fn.rs"]
mod free_fn;
#[path = "accepts/freshness-options.rs"]
mod freshness_options;
#[path = "accepts/generic-impl.rs"]
mod generic_impl;
#[path = "accepts/key-fn.rs"]
mod key_fn;
#[path = "accepts/key-template.rs"]
mod key_template;
#[path = "accepts/lifetimes.rs"]
mod lifetimes;
#[path = "accepts/local.rs"]
mod local;
#[path = "accepts/memo-skip.rs"]
mod memo_skip;
#[path = "accepts/methods.rs"]
mod methods;
#[path = "accepts/ref-args.rs"]
mod ref_args;
#[path = "accepts/shapes.rs"]
mod shapes;
#[path = "accepts/tags.rs"]
mod tags;
#[path = "accepts/visibility.rs"]
mod visibility;

/// Runs each file's `main` (they create the futures of the cached functions and drop them).
#[test]
fn every_accepted_form_compiles_and_builds_its_futures() {
    attribute_options::main();
    body_features::main();
    companions::main();
    free_fn::main();
    freshness_options::main();
    generic_impl::main();
    key_fn::main();
    key_template::main();
    lifetimes::main();
    local::main();
    memo_skip::main();
    methods::main();
    ref_args::main();
    shapes::main();
    tags::main();
    visibility::main();
}
