//! The cross-process stampede lock: on a miss, one process computes a key while the others
//! wait for its value (`lock_timeout`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::Inner;
use crate::shape::Shape;
use crate::store::Budget;

use super::entry::decode;
use super::{Rules, Target};

/// What taking the lock came to.
pub(crate) enum Locked<R> {
    /// We hold the lock: compute, store, release.
    Acquired(LockGuard),
    /// Another process computed it while we waited.
    Value(R, Vec<u8>),
    /// Lock unavailable (Redis failing) or the wait bound passed: compute ourselves. `Some`
    /// when our `SET NX` may have taken the lock without us hearing the reply: it is released
    /// (compare-and-delete) after the body like a held lock, so it does not block other
    /// processes for a lease.
    GaveUp(Option<LockGuard>),
}

/// A held cross-process lock. Released after the store, and before a panic of the body goes
/// on; if the leader's future is dropped (cancelled) first, `Drop` releases it in the
/// background, so the waiters here and in other processes take over at once instead of
/// waiting out the lease.
pub(crate) struct LockGuard {
    inner: Arc<Inner>,
    key: String,
    token: String,
}

impl LockGuard {
    /// Releases the lock within what is left of the call's budget; with nothing left (or when
    /// that fails), in the background with a budget of its own.
    pub(crate) async fn release(mut self, budget: &mut Budget) {
        if budget.left().is_some() {
            let (inner, key, token) = (&self.inner, &self.key, &self.token);
            let released = budget
                .run(|limit| inner.store.unlock(key, token, limit))
                .await;
            if released.is_ok() {
                self.token.clear();
            }
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.token.is_empty() {
            return; // released
        }
        let inner = Arc::clone(&self.inner);
        let (key, token) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        self.inner.spawn(async move {
            let _ = inner
                .store
                .unlock(&key, &token, inner.store.op_timeout())
                .await;
        });
    }
}

/// `SET {key}:lock token NX PX lease`; the losers poll for the value with exponential backoff
/// (2 ms doubling to 50 ms: a handful of GETs per wait, never a busy loop) until the lease runs
/// out, then compute themselves. Every Redis operation is charged to the call's budget (the
/// sleeps between polls are not: they wait for another process's body); once it is spent the
/// waiter computes itself.
pub(crate) async fn cross_process<S: Shape<R>, R, Ru: Rules + ?Sized>(
    rules: &Ru,
    target: Target<'_>,
    lease: Duration,
    budget: &mut Budget,
) -> Locked<R> {
    let inner = target.inner;
    let guard = |lock_key: String, token: String| LockGuard {
        inner: Arc::clone(inner),
        key: lock_key,
        token,
    };
    let lock_key = format!("{}:lock", target.key);
    let token = format!("{:032x}", fastrand::u128(..));
    let deadline = Instant::now() + lease;
    let mut pause = Duration::from_millis(2);
    // The first pass tries the lock at once; later passes wait, read, and try again only when
    // the value is still missing: the holder may have given up (an `Err` result is not stored),
    // so take over as soon as the lock is free instead of waiting out the whole lease.
    let mut first = true;
    // The polls and the re-read after taking the lock read the master (`get_master`): the
    // holder wrote the value there a moment ago, and a lagging replica would make us run the
    // body once more.
    loop {
        if !first {
            let now = Instant::now();
            if now >= deadline {
                tracing::debug!(
                    function = rules.label(),
                    "waited a whole lock lease; computing"
                );
                return Locked::GaveUp(None);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            match budget
                .run(|limit| inner.store.get_master(target.key, limit))
                .await
            {
                Ok(Some(bytes)) => {
                    return match decode::<S, R>(&bytes, inner.config.max_value_bytes) {
                        Ok((r, _)) => Locked::Value(r, bytes),
                        Err(_) => Locked::GaveUp(None),
                    }
                }
                Ok(None) => {}
                Err(_) => return Locked::GaveUp(None),
            }
        }
        first = false;
        if budget.left().is_none() {
            return Locked::GaveUp(None);
        }
        if !inner.store.is_cluster() {
            // One round trip: the lock and the re-check of the entry pipelined.
            let locked = budget
                .run(|limit| {
                    inner
                        .store
                        .try_lock_get(&lock_key, &token, lease, target.key, limit)
                })
                .await;
            match locked {
                Ok((true, seen)) => {
                    return recheck::<S, R>(target, guard(lock_key, token), seen, budget).await
                }
                // Someone else holds the lock, and a value is there already (stored since our
                // read): no need to wait for a poll.
                Ok((false, Some(bytes))) => {
                    if let Ok((r, _)) = decode::<S, R>(&bytes, inner.config.max_value_bytes) {
                        return Locked::Value(r, bytes);
                    }
                }
                Ok((false, None)) => {}
                Err(_) => return Locked::GaveUp(Some(guard(lock_key, token))),
            }
            continue;
        }
        let locked = budget
            .run(|limit| inner.store.try_lock(&lock_key, &token, lease, limit))
            .await;
        match locked {
            Ok(true) => {
                let seen = budget
                    .run(|limit| inner.store.get_master(target.key, limit))
                    .await
                    .ok()
                    .flatten();
                return recheck::<S, R>(target, guard(lock_key, token), seen, budget).await;
            }
            Ok(false) => {}
            Err(_) => return Locked::GaveUp(Some(guard(lock_key, token))),
        }
    }
}

/// We hold the lock, but our miss may be older than it: the previous holder can have stored
/// the value and released the lock between our read and our `SET NX`. Holders store before they
/// release, so one more read after taking the lock (`seen`: pipelined behind the `SET NX` on a
/// single node) sees such a value; then the body does not run again.
async fn recheck<S: Shape<R>, R>(
    target: Target<'_>,
    lock: LockGuard,
    seen: Option<Vec<u8>>,
    budget: &mut Budget,
) -> Locked<R> {
    let inner = target.inner;
    if let Some(bytes) = seen
        && let Ok((r, _)) = decode::<S, R>(&bytes, inner.config.max_value_bytes)
    {
        lock.release(budget).await;
        return Locked::Value(r, bytes);
    }
    Locked::Acquired(lock)
}
