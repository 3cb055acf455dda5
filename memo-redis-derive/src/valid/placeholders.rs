//! Key and tag templates checked against the function: each placeholder names a key argument
//! (or `self`), and a key template names every one.

use proc_macro2::Span;
use syn::Error;

use super::errors::Errors;
use crate::ast::{CachedFn, ReceiverKind};
use crate::template::Segment;

/// Checks a key template (`what` = "key template", every key argument required) or a tag
/// template (`what` = "tag", any subset of the key arguments).
pub(super) fn check_template(
    f: &CachedFn,
    segments: &[Segment],
    span: Span,
    what: &str,
    errs: &mut Errors,
) {
    let require_all = what == "key template";
    let key_names: Vec<String> = f.key_params().map(|p| p.ident.to_string()).collect();
    let mut used = Vec::new();
    let mut unknown = false;
    for seg in segments {
        let Segment::Arg { root, .. } = seg else {
            continue;
        };
        if root == "self" {
            if matches!(f.receiver, ReceiverKind::None) {
                errs.push(Error::new(
                    span,
                    format!("{what} names `self`, but this function has no `self` parameter"),
                ));
            }
            continue;
        }
        if let Some(p) = f.params.iter().find(|p| p.ident == root.as_str()) {
            if p.skip {
                errs.push(Error::new(
                    span,
                    format!("{what} names `{root}`, which is marked `#[memo(skip)]`; remove the skip or the placeholder"),
                ));
            }
            used.push(root.clone());
        } else {
            unknown = true;
            let expected = if key_names.is_empty() {
                "the function has no key arguments".to_string()
            } else if let [only] = key_names.as_slice() {
                format!("expected `{only}`")
            } else {
                format!(
                    "expected one of {}",
                    key_names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            errs.push(Error::new(
                span,
                format!("unknown argument `{root}` in {what}; {expected}"),
            ));
        }
    }
    // After a misspelt placeholder the unused argument is most likely the one meant: one error.
    for name in key_names.iter().filter(|_| !unknown && require_all) {
        if !used.contains(name) {
            errs.push(Error::new(
                span,
                format!("argument `{name}` is not in the key template, so calls differing only in `{name}` would share an entry; add `{{{name}}}` to the template or mark the argument `#[memo(skip)]`"),
            ));
        }
    }
}
