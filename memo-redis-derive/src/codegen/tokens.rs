//! Token surgery shared by the generators: tokens moved onto the user's spans (so a missing bound
//! is one error, at the user's type), and words searched for in tokens.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::Type;

/// The one token of `ty` its bound errors are reported at: the type's name (`Filter` in
/// `&Filter`, `Vec` in `Vec<Filter>`), or the whole `(..)` / `[..]`. A single token because
/// `Span::join` is unstable, and rustc only merges duplicate errors reported at equal spans.
pub fn anchor(ty: &Type) -> Span {
    match ty {
        Type::Reference(r) => anchor(&r.elem),
        Type::Group(g) => anchor(&g.elem),
        Type::Paren(p) => p.paren_token.span.join(),
        Type::Tuple(t) => t.paren_token.span.join(),
        Type::Slice(s) => s.bracket_token.span.join(),
        Type::Array(a) => a.bracket_token.span.join(),
        Type::Path(p) => p
            .path
            .segments
            .last()
            .map_or_else(|| ty.span(), |seg| seg.ident.span()),
        _ => ty.span(),
    }
}

/// `tokens` with their name resolution kept and every location moved to `at`.
pub fn relocate(tokens: TokenStream, at: Span) -> TokenStream {
    map_spans(tokens, &|span| span.located_at(at))
}

/// `tokens` entirely at `at`: location and name resolution (a call's span is that of its first
/// and last tokens only when both resolve alike; see `companions::site_call`).
pub fn respan(tokens: TokenStream, at: Span) -> TokenStream {
    map_spans(tokens, &|_| at)
}

/// `tokens` with every span, groups' included, replaced by `to` of it.
fn map_spans(tokens: TokenStream, to: &impl Fn(Span) -> Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut inner = Group::new(g.delimiter(), map_spans(g.stream(), to));
                inner.set_span(to(g.span()));
                tt = TokenTree::Group(inner);
            } else {
                tt.set_span(to(tt.span()));
            }
            tt
        })
        .collect()
}

/// Whether `tokens` contain the identifier `word` (`Self`, or `impl` of a nested `impl Trait`).
pub fn mentions(tokens: TokenStream, word: &str) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == word,
        TokenTree::Group(g) => mentions(g.stream(), word),
        _ => false,
    })
}
