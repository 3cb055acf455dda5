//! The companions every cached function gets (`f_peek`, `f_evict`, `f_key`, `f_refresh`), and
//! the body pin the expansion uses.

use std::future::Future;
use std::time::Instant;

use crate::error::Error;
use crate::shape::Shape;
use crate::spec::key::Key;
use crate::spec::Spec;
use crate::store::Budget;

use super::{entry, write, Target};

/// Companion `peek`: the value a hit would return, without running the body.
///
/// # Errors
/// Redis failed, timed out or the breaker is open; the key could not be computed.
pub async fn peek<S: Shape<R>, R>(key: Result<Key, Error>) -> Result<Option<R>, Error> {
    let key = key?;
    let inner = key.inner;
    match inner.store.get(&key.key, inner.store.op_timeout()).await {
        Ok(Some(bytes)) => Ok(entry::decode::<S, R>(&bytes, inner.config.max_value_bytes)
            .ok()
            .map(|(r, _)| r)),
        Ok(None) | Err(Error::WrongType) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Companion `evict`: deletes the entry; `true` if one existed.
///
/// # Errors
/// Redis failed, timed out or the breaker is open; the key could not be computed.
pub async fn evict(key: Result<Key, Error>) -> Result<bool, Error> {
    let key = key?;
    key.inner.forget_local(&key.key);
    let existed = key.inner.store.del(&key.key).await?;
    key.inner
        .announce(crate::events::Event::Keys(vec![key.key.into_string()]))
        .await;
    Ok(existed)
}

/// Companion `key`: the exact Redis key.
///
/// # Errors
/// The cache configuration is invalid or the key could not be computed.
pub fn key_string(key: Result<Key, Error>) -> Result<String, Error> {
    key.map(|k| k.key.into_string())
}

/// Companion `refresh`: runs the body and stores its result (write-through), whatever is cached.
pub async fn refresh<S, R, F>(spec: &'static Spec, key: Result<Key, Error>, body: F) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let started = Instant::now();
    let r = body.await;
    match key {
        Ok(key) => {
            let target = Target {
                inner: key.inner,
                key: &key.key,
                tags: &key.tags,
            };
            let mut budget = Budget::new(key.inner.store.op_timeout());
            if let Some(encoded) =
                entry::encode::<S, R, Spec>(spec, key.inner, &r, started.elapsed())
            {
                // A failed write is logged by the store; the result is returned either way.
                let _ = write::store(spec, target, &encoded, &mut budget).await;
            }
            key.inner.forget_local(&key.key);
        }
        Err(e) => spec.log_key_error(&e),
    }
    r
}
