//! The macro's pipeline: parse the item and the arguments, build the model, validate it, generate;
//! on any error, the fallback.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, ItemFn, Visibility};

use crate::ast::CachedFn;
use crate::attr::Args;
use crate::codegen::generate;
use crate::fallback;
use crate::valid;

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let e = syn::Error::new(
                item_kind_span(&item),
                "`#[redis_cache]` applies to an `async fn` (a free function or a method)",
            );
            return fallback::emit(e, None, item);
        }
    };
    let args: Args = match syn::parse2(args) {
        Ok(a) => a,
        Err(e) => return fallback::emit(e, Some(item_fn), item),
    };
    let f = CachedFn::from_syn(item_fn);
    match valid::validate(&f, args) {
        Ok(r) => generate(&f, &r),
        Err(e) => fallback::emit(e, Some(f.item), item),
    }
}

/// The first token of an item after its attributes and visibility (`struct`, `impl`, ...), where
/// "this is not a function" is reported.
fn item_kind_span(item: &TokenStream) -> Span {
    let parser = |input: ParseStream<'_>| {
        input.call(Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        let span = input.span();
        input.parse::<TokenStream>()?;
        Ok(span)
    };
    parser
        .parse2(item.clone())
        .unwrap_or_else(|_| Span::call_site())
}
