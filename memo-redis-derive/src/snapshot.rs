//! The expansion of one small function, pinned: `snapshots/ttl-60.rs` holds it pretty-printed,
//! and docs/design-decisions.md ("What the macro emits") prints the same text.
//!
//! After a deliberate change of the expansion, regenerate both with
//! `MEMO_REDIS_BLESS=1 cargo test -p memo-redis-derive` and review the diff.

use std::path::PathBuf;

use quote::quote;

const DOC_START: &str = "<!-- expansion:start -->\n```rust\n";
const DOC_END: &str = "```\n<!-- expansion:end -->";

fn expanded() -> String {
    let tokens = crate::expand::expand(
        quote!(ttl = 60),
        quote!(
            async fn f(x: u64) -> u64 {
                x
            }
        ),
    );
    let file: syn::File = match syn::parse2(tokens) {
        Ok(file) => file,
        Err(e) => panic!("the expansion does not parse as items: {e}"),
    };
    prettyplease::unparse(&file)
}

fn path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn bless() -> bool {
    std::env::var_os("MEMO_REDIS_BLESS").is_some()
}

#[test]
fn expansion_matches_snapshot() {
    let got = expanded();
    let file = "snapshots/ttl-60.rs";
    if bless() {
        std::fs::write(path(file), &got).unwrap_or_else(|e| panic!("cannot write {file}: {e}"));
    }
    assert_eq!(
        got,
        read(file),
        "the expansion changed; review it and regenerate with MEMO_REDIS_BLESS=1"
    );
    // 204 lines before the body was emitted once and the spec once (issue 16), 61 then, 69 with
    // the batch companion `f_many` (issue 17); this guard keeps an accidental regrowth visible.
    let lines = got.lines().count();
    assert!(
        lines <= 69,
        "the expansion grew to {lines} lines (at most 69)"
    );
}

#[test]
fn design_doc_prints_the_snapshot() {
    let doc_file = "../docs/design-decisions.md";
    let doc = read(doc_file);
    let start = doc
        .find(DOC_START)
        .unwrap_or_else(|| panic!("{doc_file} lacks the `{DOC_START}` marker"))
        + DOC_START.len();
    let end = doc[start..]
        .find(DOC_END)
        .unwrap_or_else(|| panic!("{doc_file} lacks the `{DOC_END}` marker"))
        + start;
    let snapshot = read("snapshots/ttl-60.rs");
    if bless() && doc[start..end] != snapshot {
        let updated = format!("{}{snapshot}{}", &doc[..start], &doc[end..]);
        std::fs::write(path(doc_file), updated)
            .unwrap_or_else(|e| panic!("cannot write {doc_file}: {e}"));
        return;
    }
    assert_eq!(
        &doc[start..end],
        snapshot,
        "docs/design-decisions.md (\"What the macro emits\") differs from snapshots/ttl-60.rs; \
         regenerate with MEMO_REDIS_BLESS=1"
    );
}
