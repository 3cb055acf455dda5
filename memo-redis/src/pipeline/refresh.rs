//! Background refreshes (`stale`, `early_refresh`): at most one per cache and key per process.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cache::Inner;
use crate::shape::Shape;
use crate::spec::key::Key;
use crate::spec::Spec;
use crate::store::Budget;

use super::{entry, write, Rules, Target};

/// Identifies a refresh exactly: the cache instance (its state's address, alive as long as the
/// refresh holds a `'static` reference to it) and the key. Two caches may share a namespace.
type RefreshId = (usize, String);

/// Keys being refreshed in the background right now, per process.
static REFRESHING: Mutex<Option<HashSet<RefreshId>>> = Mutex::new(None);

/// Holds a key's claim; dropping it (the refresh ended, panicked or was cancelled) frees it.
struct Claim(RefreshId);

impl Claim {
    /// Claims `key` of cache `cache` (see [`RefreshId`]) for a refresh; `None` when one is
    /// running already.
    fn take(cache: usize, key: &str) -> Option<Claim> {
        let id: RefreshId = (cache, key.to_string());
        let mut set = REFRESHING.lock().ok()?;
        let claimed = set.get_or_insert_with(HashSet::new).insert(id.clone());
        drop(set);
        // Built only when claimed: dropping a `Claim` frees its key.
        claimed.then(|| Claim(id))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut set) = REFRESHING.lock()
            && let Some(set) = set.as_mut()
        {
            set.remove(&self.0);
        }
    }
}

/// Runs `make` in the background and stores its result, unless `key` is being refreshed already.
pub(crate) fn spawn<S, R, M, F>(spec: &'static Spec, key: &Key, make: M)
where
    S: Shape<R> + 'static,
    R: Send + 'static,
    M: Fn() -> F + Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
{
    let Some(claim) = Claim::take(Arc::as_ptr(key.inner) as usize, &key.key) else {
        return;
    };
    let inner: &'static Arc<Inner> = key.inner;
    let (stored_key, tags) = (key.key.to_string(), key.tags.clone());
    inner.spawn(async move {
        let _claim = claim;
        let started = Instant::now();
        let r = make().await;
        spec.count_refresh();
        let target = Target {
            inner,
            key: &stored_key,
            tags: &tags,
        };
        if let Some(encoded) = entry::encode::<S, R, Spec>(spec, inner, &r, started.elapsed()) {
            let mut budget = Budget::new(inner.store.op_timeout());
            // A failed write is logged by the store; the result is returned either way.
            let _ = write::store(spec, target, &encoded, &mut budget).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_cache_and_key() {
        let (a, b) = (usize::MAX - 1, usize::MAX - 2);
        let first = Claim::take(a, "k");
        assert!(first.is_some());
        assert!(Claim::take(a, "k").is_none(), "claimed twice");
        assert!(Claim::take(b, "k").is_some(), "another cache, same key");
        assert!(Claim::take(a, "k2").is_some());
        drop(first);
        assert!(Claim::take(a, "k").is_some(), "freed when dropped");
    }
}
