//! The key of one call: the spec's head followed by the arguments, as a digest, a template or a
//! `key_fn`'s output.

use std::sync::Arc;

use super::Spec;
use crate::cache::Inner;
use crate::error::Error;
use crate::key::{KeyDigest, TemplateWriter};
use crate::schema::ShapeFn;

/// A computed key with the cache it belongs to.
pub struct Key {
    pub(crate) inner: &'static Arc<Inner>,
    pub(crate) key: String,
    pub(crate) tags: Vec<String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Key").field(&self.key).finish()
    }
}

impl Key {
    /// The full Redis key.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

fn start_key(
    spec: &'static Spec,
    self_ty: &'static str,
    shape: ShapeFn,
) -> Result<(&'static Arc<Inner>, String), Error> {
    let inner = spec.cache.inner().map_err(|e| Error::Config(e.clone()))?;
    let head = spec.head(inner, self_ty, shape);
    let mut key = String::with_capacity(head.len() + 32);
    key.push_str(&head);
    Ok((inner, key))
}

/// Key from the SHA-256 digest of the arguments, which `args` feeds one by one (in parameter
/// order) to [`KeyDigest::arg`](crate::key::KeyDigest::arg).
///
/// # Errors
/// The cache configuration is invalid, or an argument failed to serialize.
pub fn digest_key(
    spec: &'static Spec,
    self_ty: &'static str,
    shape: ShapeFn,
    args: impl FnOnce(&mut KeyDigest),
) -> Result<Key, Error> {
    let (inner, mut key) = start_key(spec, self_ty, shape)?;
    let mut digest = KeyDigest::new();
    args(&mut digest);
    digest.finish(&mut key).map_err(Error::Key)?;
    Ok(Key {
        inner,
        key,
        tags: Vec::new(),
    })
}

/// Key from a `key = "..."` template.
///
/// # Errors
/// The cache configuration is invalid.
pub fn template_key(
    spec: &'static Spec,
    self_ty: &'static str,
    shape: ShapeFn,
    render: impl FnOnce(&mut TemplateWriter<'_>),
) -> Result<Key, Error> {
    let (inner, mut key) = start_key(spec, self_ty, shape)?;
    let mut w = TemplateWriter::new(&mut key);
    render(&mut w);
    w.finish();
    Ok(Key {
        inner,
        key,
        tags: Vec::new(),
    })
}

/// Key from a `key_fn = ...` builder's output.
///
/// # Errors
/// The cache configuration is invalid, or the builder returned an empty string.
pub fn custom_key(
    spec: &'static Spec,
    self_ty: &'static str,
    shape: ShapeFn,
    custom: impl AsRef<str>,
) -> Result<Key, Error> {
    let custom = custom.as_ref();
    if custom.is_empty() {
        return Err(Error::Key("key_fn returned an empty key".into()));
    }
    template_key(spec, self_ty, shape, |w| w.lit(custom))
}
