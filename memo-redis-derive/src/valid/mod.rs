//! Validation: the attribute's arguments and the function's signature checked against each other,
//! every rejection spanned on the smallest offending node, and the result resolved into the
//! [`Resolved`] model that code generation reads.

mod arguments;
mod placeholders;
mod signature;

use syn::Error;

use crate::ast::CachedFn;
use crate::attr::Args;
use crate::model::Resolved;

/// The errors found so far, combined into one so that every mistake is reported in one build.
struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

/// The model of `f` under `args`, or every rejection: the signature's first, then the arguments'
/// in the order they are resolved.
pub fn validate(f: &CachedFn, args: Args) -> Result<Resolved, Error> {
    let mut errs = Errors(None);
    signature::check(f, &mut errs);
    let resolved = arguments::resolve(f, &args, &mut errs);
    match errs.0 {
        Some(e) => Err(e),
        None => Ok(resolved),
    }
}
