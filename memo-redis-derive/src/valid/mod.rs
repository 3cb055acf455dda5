//! Validation: the attribute's arguments and the function's signature checked against each other,
//! every rejection spanned on the smallest offending node, and the result resolved into the
//! [`Resolved`] model that code generation reads.

mod arguments;
mod errors;
mod placeholders;
mod signature;

use syn::Error;

use crate::ast::CachedFn;
use crate::attr::Args;
use crate::model::Resolved;
use errors::Errors;

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
