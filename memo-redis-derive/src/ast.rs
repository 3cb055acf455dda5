//! The model of a cached function, keeping the original nodes for their spans.

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

/// How the result maps to what is cached (`memo_redis::__private::{Plain, Opt, Res, ResOpt}`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShapeKind {
    Plain,
    Opt,
    Res,
    ResOpt,
}

impl ShapeKind {
    pub fn ident(self) -> &'static str {
        match self {
            ShapeKind::Plain => "Plain",
            ShapeKind::Opt => "Opt",
            ShapeKind::Res => "Res",
            ShapeKind::ResOpt => "ResOpt",
        }
    }
    pub fn caches_none(self) -> bool {
        matches!(self, ShapeKind::Opt | ShapeKind::ResOpt)
    }
}

pub enum ReceiverKind {
    /// `&self`, `&mut self`, `self`, `self: Arc<Self>`...
    Present {
        span: Span,
    },
    None,
}

pub struct Param {
    pub ident: Ident,
    pub ty: Type,
    pub skip: bool,
    /// The declared type is already a reference (`&str`, `&T`).
    pub is_ref: bool,
    pub pat_span: Span,
    /// A pattern that is not a plain binding, kept for the error message.
    pub bad_pattern: bool,
    /// The first `&mut` in the declared type (`&mut Vec<u32>`, `Option<&mut T>`).
    pub mut_ref: Option<syn::TypeReference>,
    pub memo_attr_errors: Vec<syn::Error>,
}

pub struct CachedFn {
    pub item: ItemFn,
    pub receiver: ReceiverKind,
    pub params: Vec<Param>,
    pub ret: Option<Type>,
    pub shape: ShapeKind,
    /// The cached value type `T`, when it can be read off the return type.
    pub value_ty: Option<Type>,
}

impl CachedFn {
    /// Builds the model; `#[memo(...)]` attributes are removed from `item`'s parameters.
    pub fn from_syn(mut item: ItemFn) -> CachedFn {
        let mut receiver = ReceiverKind::None;
        let mut params = Vec::new();
        for arg in item.sig.inputs.iter_mut() {
            match arg {
                FnArg::Receiver(r) => {
                    receiver = ReceiverKind::Present { span: r.span() };
                }
                FnArg::Typed(pt) => {
                    let mut skip = false;
                    let mut errors = Vec::new();
                    pt.attrs.retain(|a| {
                        if !a.path().is_ident("memo") {
                            return true;
                        }
                        let parsed = a.parse_nested_meta(|meta| {
                            if meta.path.is_ident("skip") {
                                skip = true;
                                Ok(())
                            } else {
                                let option =
                                    meta.path.to_token_stream().to_string().replace(' ', "");
                                Err(meta.error(format!(
                                    "unknown parameter option `{option}`; expected `#[memo(skip)]`"
                                )))
                            }
                        });
                        if let Err(e) = parsed {
                            errors.push(e);
                        }
                        false
                    });
                    let (ident, bad_pattern) = match &*pt.pat {
                        Pat::Ident(pi) if pi.subpat.is_none() => (pi.ident.clone(), false),
                        other => (Ident::new("__memo_redis_pattern", other.span()), true),
                    };
                    params.push(Param {
                        ident,
                        is_ref: matches!(&*pt.ty, Type::Reference(_)),
                        ty: (*pt.ty).clone(),
                        skip,
                        pat_span: pt.pat.span(),
                        bad_pattern,
                        mut_ref: find_mut_ref(&pt.ty),
                        memo_attr_errors: errors,
                    });
                }
            }
        }
        let ret = match &item.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some((**ty).clone()),
        };
        let (shape, value_ty) = match &ret {
            Some(ty) => detect_shape(ty),
            None => (ShapeKind::Plain, None),
        };
        // Drop the param attrs we consumed from the signature in place.
        CachedFn {
            item,
            receiver,
            params,
            ret,
            shape,
            value_ty,
        }
    }

    pub fn key_params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| !p.skip)
    }
}

/// The first `&mut T` in `ty`.
fn find_mut_ref(ty: &Type) -> Option<syn::TypeReference> {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => Some(r.clone()),
        Type::Reference(r) => find_mut_ref(&r.elem),
        Type::Group(g) => find_mut_ref(&g.elem),
        Type::Paren(p) => find_mut_ref(&p.elem),
        Type::Slice(s) => find_mut_ref(&s.elem),
        Type::Array(a) => find_mut_ref(&a.elem),
        Type::Tuple(t) => t.elems.iter().find_map(find_mut_ref),
        Type::Path(p) => p.path.segments.iter().find_map(|seg| match &seg.arguments {
            PathArguments::AngleBracketed(ab) => ab.args.iter().find_map(|a| match a {
                GenericArgument::Type(t) => find_mut_ref(t),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    }
}

fn last_segment_args(ty: &Type) -> Option<(&Ident, Vec<&Type>)> {
    let Type::Path(tp) = ty else { return None };
    if tp.qself.is_some() {
        return None;
    }
    let seg = tp.path.segments.last()?;
    let args = match &seg.arguments {
        PathArguments::AngleBracketed(ab) => ab
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((&seg.ident, args))
}

/// Picks the shape from the last path segment: `Option<T>`, `Result<T, ..>` / `Result<Option<T>, ..>`
/// (covers `anyhow::Result<T>` and `io::Result<T>`), else plain.
pub fn detect_shape(ty: &Type) -> (ShapeKind, Option<Type>) {
    match last_segment_args(ty) {
        Some((ident, args)) if ident == "Option" && args.len() == 1 => {
            (ShapeKind::Opt, Some(args[0].clone()))
        }
        Some((ident, args)) if ident == "Result" && !args.is_empty() => {
            match last_segment_args(args[0]) {
                Some((inner, inner_args)) if inner == "Option" && inner_args.len() == 1 => {
                    (ShapeKind::ResOpt, Some(inner_args[0].clone()))
                }
                _ => (ShapeKind::Res, Some(args[0].clone())),
            }
        }
        _ => (ShapeKind::Plain, Some(ty.clone())),
    }
}

/// The value type for an explicit `shape = ...` on an alias: its first generic argument (or the
/// first argument's `Option` payload for `result_option`), when there is one.
pub fn value_for_override(ty: &Type, shape: ShapeKind) -> Option<Type> {
    let first = || last_segment_args(ty).and_then(|(_, args)| args.first().map(|t| (*t).clone()));
    match shape {
        ShapeKind::Plain => Some(ty.clone()),
        ShapeKind::Opt | ShapeKind::Res => first(),
        ShapeKind::ResOpt => first().and_then(|t| match detect_shape(&t) {
            (ShapeKind::Opt, v) => v,
            _ => None,
        }),
    }
}
