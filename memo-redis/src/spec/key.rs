//! The key of one call: the spec's head followed by the arguments, as a digest, a template or a
//! `key_fn`'s output.

use std::borrow::Cow;
use std::sync::Arc;

use super::Spec;
use crate::cache::Inner;
use crate::error::Error;
use crate::key::{KeyDigest, TemplateWriter};
use crate::schema::ShapeFn;

/// A computed key with the cache it belongs to.
pub struct Key {
    pub(crate) inner: &'static Arc<Inner>,
    pub(crate) key: KeyText,
    pub(crate) tags: Vec<String>,
}

/// The text of a key: rendered for this call, shared from a function's memo of keys, or (when
/// the breaker was open as the key was made: the call is likely to bypass Redis and never need
/// it) hashed and rendered on first use.
#[derive(Clone)]
pub(crate) enum KeyText {
    Owned(String),
    Shared(Arc<str>),
    Lazy(LazyKey),
}

/// A key whose digest is computed on first use.
#[derive(Clone)]
pub(crate) struct LazyKey {
    head: Cow<'static, str>,
    digest: KeyDigest,
    text: std::sync::OnceLock<String>,
}

impl KeyText {
    pub(crate) fn into_string(self) -> String {
        match self {
            KeyText::Owned(s) => s,
            KeyText::Shared(s) => s.to_string(),
            KeyText::Lazy(l) => {
                let _ = l.rendered();
                l.text.into_inner().unwrap_or_default()
            }
        }
    }
}

impl LazyKey {
    fn rendered(&self) -> &str {
        self.text.get_or_init(|| {
            let mut key = String::with_capacity(self.head.len() + 32);
            key.push_str(&self.head);
            self.digest.finish_ref(&mut key);
            key
        })
    }
}

impl std::ops::Deref for KeyText {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            KeyText::Owned(s) => s,
            KeyText::Shared(s) => s,
            KeyText::Lazy(l) => l.rendered(),
        }
    }
}

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// Keys remembered per `local` function (by the exact bytes of the arguments), so a near-cache
/// hit does not hash them: at most this many, each ≈ 64 + 80 bytes plus the table's overhead.
const KEY_MEMO_ENTRIES: usize = 8192;

/// The memo of keys of a `local` function: argument bytes → the full key. A key is a pure
/// function of the spec, its cache's configuration and the arguments, so an entry never goes
/// stale and needs no invalidation.
pub(crate) type KeyMemo = quick_cache::sync::Cache<Box<[u8]>, Arc<str>>;

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
    let inner = spec.cache.inner().map_err(|e| Error::Config(e.clone()))?;
    let head = spec.head(inner, self_ty, shape);
    let mut digest = KeyDigest::new();
    args(&mut digest);
    if let Some(e) = digest.error() {
        return Err(Error::Key(e.to_string()));
    }
    // A near-cache function looks its key up by the exact argument bytes (when short) instead
    // of hashing them: the whole point of a local hit is to be cheap. Only for the `Self` whose
    // head the spec holds (a borrowed head), since the memo does not record the head.
    let memo = match (&head, spec.local_ms, digest.exact()) {
        (Cow::Borrowed(_), Some(_), Some(exact)) => {
            let memo = spec.key_memo.get_or_init(|| KeyMemo::new(KEY_MEMO_ENTRIES));
            if let Some(key) = memo.get(exact) {
                return Ok(Key {
                    inner,
                    key: KeyText::Shared(key),
                    tags: Vec::new(),
                });
            }
            Some((memo, Box::<[u8]>::from(exact)))
        }
        _ => None,
    };
    if memo.is_none() && matches!(inner.store.breaker.state(), crate::BreakerState::Open) {
        // The breaker is open: the call will most likely run its body without Redis, so the
        // digest waits until something reads the key (a probe, a `_key` companion).
        return Ok(Key {
            inner,
            key: KeyText::Lazy(LazyKey {
                head,
                digest,
                text: std::sync::OnceLock::new(),
            }),
            tags: Vec::new(),
        });
    }
    let mut key = String::with_capacity(head.len() + 32);
    key.push_str(&head);
    digest.finish(&mut key).map_err(Error::Key)?;
    let key = match memo {
        Some((memo, exact)) => {
            let shared: Arc<str> = Arc::from(key);
            memo.insert(exact, Arc::clone(&shared));
            KeyText::Shared(shared)
        }
        None => KeyText::Owned(key),
    };
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
        key: KeyText::Owned(key),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_key_renders_the_eager_key() {
        for arg in ["x".to_string(), "y".repeat(300)] {
            let mut digest = KeyDigest::new();
            digest.arg(&7u64);
            digest.arg(&arg);
            let lazy = KeyText::Lazy(LazyKey {
                head: Cow::Borrowed("ns:p:0123456789ab:"),
                digest: digest.clone(),
                text: std::sync::OnceLock::new(),
            });
            let mut eager = String::from("ns:p:0123456789ab:");
            digest.finish(&mut eager).unwrap();
            assert_eq!(&*lazy, eager.as_str());
            assert_eq!(lazy.clone().into_string(), eager);
            assert_eq!(&*lazy, eager.as_str(), "rendered once, read again");
        }
    }
}
