//! The write side of the pipeline: the size check, the write within the call's budget (with the
//! tag bookkeeping), and the repair of an entry found corrupt.

use std::time::{Duration, Instant};

use crate::clock::now_ms;
use crate::error::Error;
use crate::store::{Budget, WriteFailed};

use super::entry::{self, Encoded};
use super::{Rules, Target};

/// Stores an encoded entry within what is left of the call's Redis budget.
///
/// `Ok(false)`: deliberately not stored (too large, budget spent); `Err`: Redis refused or failed.
pub(crate) async fn store<Ru: Rules + ?Sized>(
    rules: &Ru,
    target: Target<'_>,
    entry: &Encoded,
    budget: &mut Budget,
) -> Result<bool, Error> {
    let Admitted(ttl) = match admit(rules, target.inner, entry, budget) {
        Some(admitted) => admitted,
        None => return Ok(false),
    };
    rules.write(target, &entry.bytes, ttl, budget).await?;
    Ok(true)
}

/// An entry cleared for writing, with the expiry (PX) it is written with.
pub(crate) struct Admitted(pub(crate) Option<Duration>);

/// The checks before a write (the size limit, the eviction-policy warning, what is left of the
/// budget): `None` when the entry is deliberately not stored. Shared by single and batch writes.
pub(crate) fn admit<Ru: Rules + ?Sized>(
    rules: &Ru,
    inner: &std::sync::Arc<crate::cache::Inner>,
    entry: &Encoded,
    budget: &Budget,
) -> Option<Admitted> {
    if entry::oversize(inner, &entry.bytes).is_some() {
        rules.too_large(entry.bytes.len());
        tracing::debug!(
            function = rules.label(),
            size = entry.bytes.len(),
            "result too large to cache"
        );
        return None;
    }
    let ttl = rules.store_ttl(inner, entry.is_none);
    if ttl.is_none() {
        inner.check_eviction_policy();
    }
    if budget.left().is_none() {
        tracing::debug!(
            function = rules.label(),
            "redis time budget spent on the read; not storing"
        );
        return None;
    }
    Some(Admitted(ttl))
}

/// The default write: `SET … PX`, and the entry recorded in its tag sets (never with an expiry
/// earlier than the entry's), within the same budget. On a single node the two go in one
/// pipeline (one round trip); on a cluster the tag sets live in other slots: the `SET`, then one
/// script call per tag.
pub(crate) async fn plain(
    label: &str,
    target: Target<'_>,
    bytes: &[u8],
    ttl: Option<Duration>,
    budget: &mut Budget,
) -> Result<(), Error> {
    let inner = target.inner;
    let Some(limit) = budget.left() else {
        return Err(Error::Timeout(inner.store.op_timeout()));
    };
    let started = Instant::now();
    if !target.tags.is_empty() && !inner.store.is_cluster() {
        // One round trip: the `SET` and the tag bookkeeping pipelined. The script runs right
        // after the write on the server and takes the expiry from the server's clock, so the
        // recorded expiry is never earlier than the entry's.
        let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1));
        let (script, eval) =
            crate::tags::record_cmd(inner, target.tags, target.key, ttl_ms, now_ms());
        let written = inner
            .store
            .set_then_eval(target.key, bytes, ttl, script, &eval, limit)
            .await;
        budget.spend(started);
        return match written {
            Ok(()) => Ok(()),
            Err(WriteFailed::NotWritten(e)) => Err(e),
            Err(WriteFailed::Written(e)) => {
                untag(label, target, &e);
                Err(e)
            }
        };
    }
    let stored = inner.store.set(target.key, bytes, ttl, limit).await;
    budget.spend(started);
    stored?;
    if target.tags.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let expiry = ttl.map(|t| now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
    if let Err(e) = crate::tags::record(inner, target.tags, target.key, expiry, now, budget).await {
        untag(label, target, &e);
        return Err(e);
    }
    Ok(())
}

/// The entry was written but not recorded in its tag sets: it would survive `invalidate_tags`,
/// so take it back (in the background, not charged to the call). Redis refused the bookkeeping
/// (an ACL without scripting) or failed; the store logged why.
fn untag(label: &str, target: Target<'_>, e: &Error) {
    tracing::debug!(function = label, error = %e, "could not record tags; entry removed");
    let inner = target.inner;
    let owned = std::sync::Arc::clone(inner);
    let key = target.key.to_string();
    inner.spawn(async move {
        let _ = owned.store.del(&key).await;
    });
}

/// Removes an entry judged corrupt (`seen`: its bytes, empty for a foreign Redis type) unless
/// someone replaced it meanwhile, within what is left of the budget.
pub(crate) async fn repair(target: Target<'_>, seen: &[u8], budget: &mut Budget) {
    let inner = target.inner;
    let _ = budget
        .run(|limit| inner.store.repair(target.key, seen, limit))
        .await;
}
