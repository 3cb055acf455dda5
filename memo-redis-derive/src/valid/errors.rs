//! The rejections found so far, combined so that one build reports every mistake.

use syn::Error;

/// The errors found so far, combined into one so that every mistake is reported in one build.
pub(super) struct Errors(pub(super) Option<Error>);

impl Errors {
    pub(super) fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}
