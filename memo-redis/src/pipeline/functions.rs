//! The entry points of cached functions (`#[redis_cache]` expansions call them through
//! `__private`): the key's errors, the call's span, then the pipeline with the function's spec.

use std::future::Future;

use tracing::Instrument;

use crate::error::Error;
use crate::observe::{self, CallOutcome};
use crate::outline::Outlined;
use crate::shape::Shape;
use crate::spec::key::{Key, KeyText};
use crate::spec::Spec;

use super::{refresh, run, Refresher, Target};

/// The memoized call: hit → decoded value; miss → body, then store; Redis trouble → body.
///
/// Concurrent calls with the same key share one read and one body run (single-flight) unless
/// the function opted out with `single_flight = false`.
pub async fn memo<S, R, F>(spec: &'static Spec, key: Result<Key, Error>, body: F) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    // No span (and no `Instrumented` wrapper around every poll) unless a subscriber wants it.
    let span = spec.call_span();
    if span.is_disabled() {
        if let Some(r) = local_hit::<S, R>(spec, &key) {
            return r;
        }
        return Outlined::new(call::<S, R, F>(spec, key, body, None, false)).await;
    }
    // Polled through `Outlined` on both paths: the state machine is compiled once, not once
    // here and once more inside `Instrumented::poll`.
    Outlined::new(call::<S, R, F>(spec, key, body, None, true))
        .instrument(span)
        .await
}

/// A near-cache hit, served before the call's machinery is built (no span wanted): a lookup,
/// a downcast and a clone. What `run` would do first, so `None` changes nothing for the call.
#[inline]
fn local_hit<S: Shape<R>, R>(spec: &'static Spec, key: &Result<Key, Error>) -> Option<R> {
    spec.local_ms?;
    let key = key.as_ref().ok()?;
    if matches!(key.key, KeyText::Lazy(_)) {
        return None;
    }
    let near = key.inner.near()?;
    let held = near.get(&key.key)?;
    let r = S::from_held(&held)?;
    spec.register();
    spec.count_served_locally();
    Some(r)
}

/// [`memo`] for functions with `stale` or `early_refresh`: `make` builds the body future, once
/// for this call and again for each background refresh, so it must own clones of the arguments.
pub async fn memo_bg<S, R, M, F>(spec: &'static Spec, key: Result<Key, Error>, make: M) -> R
where
    S: Shape<R> + 'static,
    R: Send + 'static,
    M: Fn() -> F + Clone + Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
{
    let span = spec.call_span();
    if span.is_disabled()
        && let Some(r) = local_hit::<S, R>(spec, &key)
    {
        return r;
    }
    let refresher = |key: &Key| refresh::spawn::<S, R, M, F>(spec, key, make.clone());
    if span.is_disabled() {
        return Outlined::new(call::<S, R, F>(spec, key, make(), Some(&refresher), false)).await;
    }
    Outlined::new(call::<S, R, F>(spec, key, make(), Some(&refresher), true))
        .instrument(span)
        .await
}

async fn call<S, R, F>(
    spec: &'static Spec,
    key: Result<Key, Error>,
    body: F,
    bg: Option<&(dyn Fn(&Key) + Sync)>,
    traced: bool,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    spec.register();
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            spec.count(CallOutcome::Bypass);
            if !matches!(e, Error::Config(_)) {
                spec.log_key_error(&e);
            }
            return body.await;
        }
    };
    // A key made while the breaker was open is not hashed yet: do what `run` does first for a
    // function without a near cache before the key's text is read, so a bypassed call never
    // hashes its arguments.
    if matches!(key.key, KeyText::Lazy(_))
        && spec.local_ms.is_none()
        && (key.inner.store.breaker.bypassing() || !crate::runtime::usable())
    {
        spec.count(CallOutcome::Bypass);
        return body.await;
    }
    if traced {
        // The call's own span (entered by `instrument`), never a caller's.
        observe::record_key(&tracing::Span::current(), &key.key);
    }
    let key = &key;
    let refresh = bg.map(|bg| move || bg(key));
    let refresh = refresh.as_ref().map(|r| r as Refresher<'_>);
    let target = Target {
        inner: key.inner,
        key: &key.key,
        tags: &key.tags,
    };
    run::<S, R, Spec, _, F>(spec, target, || body, refresh).await
}
