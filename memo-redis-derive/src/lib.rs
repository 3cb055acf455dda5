//! The `#[redis_cache]` attribute of [memo-redis](https://docs.rs/memo-redis).
//!
//! This crate is an implementation detail: depend on `memo-redis`, which re-exports the macro and
//! documents every argument.

mod ast;
mod attr;
mod expand;
mod fallback;
#[cfg(test)]
mod snapshot;
mod template;
mod valid;

use proc_macro::TokenStream;

// The whole attribute reference, shown by IDE hovers and docs.rs. Its examples use `memo_redis`,
// which this crate cannot depend on, so they are compiled by memo-redis's doctests instead (its
// `lib.rs` includes this file under `cfg(doctest)`); this crate's own doctests are off.
#[doc = include_str!("attribute.md")]
#[proc_macro_attribute]
pub fn redis_cache(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(args.into(), item.into()).into()
}
