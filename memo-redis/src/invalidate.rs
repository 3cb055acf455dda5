//! Invalidation beyond one key: whole functions and key patterns, by `SCAN` + batched `UNLINK`
//! (never `KEYS`), each announced on the cache's event channel.

use crate::cache::{Cache, Inner};
use crate::error::Error;
use crate::events::Event;
use crate::memo::Spec;

/// Keys asked for per `SCAN` step, and deleted per `UNLINK`.
const BATCH: usize = 1000;

/// Characters that make a `SCAN MATCH` pattern match more than themselves.
pub(crate) fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Inner {
    /// `namespace:pattern`, unless the pattern is already inside the namespace: invalidation
    /// never reaches keys outside it.
    pub(crate) fn scoped(&self, pattern: &str) -> String {
        let ns = &self.config.namespace;
        match pattern.strip_prefix(ns.as_str()) {
            Some(rest) if rest.starts_with(':') => pattern.to_string(),
            _ => format!("{ns}:{pattern}"),
        }
    }

    /// Deletes every key matching `pattern` (already scoped); returns how many were deleted.
    pub(crate) async fn unlink_matching(&self, pattern: &str) -> Result<u64, Error> {
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .store
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(BATCH),
                )
                .await?;
            for chunk in keys.chunks(BATCH) {
                if !chunk.is_empty() {
                    let n: u64 = self.store.query(redis::cmd("UNLINK").arg(chunk)).await?;
                    deleted += n;
                }
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

impl Cache {
    /// Deletes every entry whose key matches `pattern` (`SCAN MATCH` + batched `UNLINK`, never
    /// `KEYS`) and returns how many were deleted. The pattern is scoped to this cache's namespace:
    /// `"users:*"` means `"{namespace}:users:*"`; a pattern already starting with
    /// `"{namespace}:"` is used as is. The invalidation is announced on the event channel.
    ///
    /// Cost: one `SCAN` round trip per 1000 keys in the database (not per match), plus one
    /// `UNLINK` per 1000 matches.
    ///
    /// # Errors
    /// The configuration is invalid, or Redis failed or timed out on a step (entries deleted
    /// before the failure stay deleted).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// let n = memo_redis::global().invalidate_pattern("users:*:user:42:*").await?;
    /// println!("{n} entries deleted");
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64, Error> {
        let inner = self.inner().map_err(|e| Error::Config(e.clone()))?;
        let scoped = inner.scoped(pattern);
        let n = inner.unlink_matching(&scoped).await?;
        inner.announce(Event::Pattern(scoped)).await;
        Ok(n)
    }
}

/// [`Cache::invalidate_pattern`] on the global cache.
///
/// # Errors
/// See [`Cache::invalidate_pattern`].
///
/// ```no_run
/// # async fn run() -> Result<(), memo_redis::Error> {
/// memo_redis::invalidate_pattern("reports:*").await?;
/// # Ok(()) }
/// ```
pub async fn invalidate_pattern(pattern: &str) -> Result<u64, Error> {
    crate::global().invalidate_pattern(pattern).await
}

/// Companion `f_invalidate_all`: every entry of one function (all argument tuples), leaving other
/// functions' entries alone.
///
/// # Errors
/// See [`Cache::invalidate_pattern`].
pub async fn invalidate_all(spec: &'static Spec, self_ty: &'static str) -> Result<u64, Error> {
    let inner = spec.cache.inner().map_err(|e| Error::Config(e.clone()))?;
    let head = spec.head(inner, self_ty);
    let pattern = format!("{}*", escape_glob(&head));
    let n = inner.unlink_matching(&pattern).await?;
    inner.announce(Event::Pattern(pattern)).await;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::escape_glob;

    #[test]
    fn globs_are_escaped() {
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
