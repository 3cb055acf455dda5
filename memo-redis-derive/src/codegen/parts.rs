//! What every generated item of one function shares: its names, where its hidden items are
//! reached from, the span its value-type errors are reported at, and the companions' parameters.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{AttrStyle, Attribute, Ident, Type};

use super::tokens::{anchor, mentions};
use crate::ast::{CachedFn, ReceiverKind};
use crate::model::Resolved;

pub struct Parts<'a> {
    pub f: &'a CachedFn,
    pub r: &'a Resolved,
    /// The declared return type.
    pub ret: &'a Type,
    /// The function's name without `r#`.
    pub name_str: String,
    /// Whether the function takes `self`.
    pub method: bool,
    /// `Self::` where the hidden items are associated functions.
    pub qual: Option<TokenStream>,
    pub spec_fn: Ident,
    pub key_fn: Ident,
    pub body_fn: Ident,
    /// The call of the spec function: `__f_spec()` or `Self::__f_spec()`.
    pub site: TokenStream,
    /// Where the value type's bound errors are reported (see `companions::value_check`).
    pub value_at: Span,
    /// The function's outer attributes.
    pub outer: Vec<&'a Attribute>,
    /// Its `#[cfg]`s, repeated on every generated item.
    pub cfgs: Vec<&'a Attribute>,
    pub lifetimes: Option<TokenStream>,
    /// `&self,` for methods.
    pub recv: Option<TokenStream>,
    /// The key parameters, each by reference: the key function's and the companions'.
    pub comp_params: Vec<TokenStream>,
}

impl<'a> Parts<'a> {
    /// `None` for a function without a return type (rejected by validation).
    pub fn new(f: &'a CachedFn, r: &'a Resolved) -> Option<Parts<'a>> {
        let ret = f.ret.as_ref()?;
        let sig = &f.item.sig;
        let outer: Vec<_> = f
            .item
            .attrs
            .iter()
            .filter(|a| matches!(a.style, AttrStyle::Outer))
            .collect();
        let cfgs = outer
            .iter()
            .copied()
            .filter(|a| a.path().is_ident("cfg"))
            .collect();

        let name = &sig.ident;
        let name_str = name.to_string().trim_start_matches("r#").to_string();

        // Methods reach their hidden items as associated functions (`Self::__f_spec()`). So does an
        // associated function without `self` that names `Self`; one that does not is taken for a
        // free function (the macro cannot see the `impl` around it; see docs/design-decisions.md).
        let method = matches!(f.receiver, ReceiverKind::Present { .. });
        let assoc = method || mentions(f.item.to_token_stream(), "Self");
        let qual = assoc.then(|| quote!(Self::));
        let spec_fn = hidden(&name_str, "spec", name.span());
        let key_fn = hidden(&name_str, "key", name.span());
        let body_fn = hidden(&name_str, "body", name.span());
        let site = quote!(#qual #spec_fn());

        // The `Shape` bound is spanned where `value_type` reports (see `value_check`).
        let value_at = anchor(r.value_ty.as_ref().unwrap_or(ret));

        // A lifetime the user's signature names once was also named by the key code in the same
        // function (up to the fourth session): the split must not make `single_use_lifetimes` fire.
        let lifetimes = sig
            .generics
            .lifetimes()
            .next()
            .map(|_| quote!(#[allow(single_use_lifetimes, clippy::needless_lifetimes)]));

        let recv = match f.receiver {
            ReceiverKind::Present { span } => Some(quote_spanned!(span=> &self,)),
            ReceiverKind::None => None,
        };
        let comp_params = f
            .key_params()
            .map(|p| {
                let ident = &p.ident;
                let ty = &p.ty;
                if p.is_ref {
                    quote!(#ident: #ty)
                } else {
                    quote!(#ident: &#ty)
                }
            })
            .collect();

        Some(Parts {
            f,
            r,
            ret,
            name_str,
            method,
            qual,
            spec_fn,
            key_fn,
            body_fn,
            site,
            value_at,
            outer,
            cfgs,
            lifetimes,
            recv,
            comp_params,
        })
    }
}

/// The hidden items' names: `__f_spec`, `__f_key`, `__f_body` for a function `f`. Distinct
/// suffixes keep them apart for every pair of functions in one module or `impl`.
fn hidden(name: &str, what: &str, at: Span) -> Ident {
    format_ident!("__{}_{}", name, what, span = at)
}
