//! The `#[redis_cache]` attribute of [memo-redis](https://docs.rs/memo-redis).
//!
//! This crate is an implementation detail: depend on `memo-redis`, which re-exports the macro and
//! documents every argument.

mod ast;
mod attr;
mod expand;
mod fallback;
mod template;
mod valid;

use proc_macro::TokenStream;

/// Memoizes an `async fn` in Redis. See the `memo-redis` crate docs for every argument.
#[proc_macro_attribute]
pub fn redis_cache(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(args.into(), item.into()).into()
}
