//! Invalidation beyond one key: whole functions and key patterns, by `SCAN` + batched `UNLINK`
//! (never `KEYS`), each announced on the cache's event channel.

use crate::cache::{Cache, Inner};
use crate::error::Error;
use crate::events::Event;
use crate::spec::Spec;
use crate::store::Target;

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

/// The reachable masters that serve slots, from a `CLUSTER NODES` reply
/// (`id host:port@cport[,hostname] flags master ping pong epoch link slot...`).
pub(crate) fn masters(nodes: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        let flags: Vec<&str> = flags.split(',').collect();
        if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
            continue;
        }
        if fields.len() <= 8 {
            continue; // a master without slots holds no keys
        }
        let hostport = addr.split(['@', ',']).next().unwrap_or("");
        let Some((host, port)) = hostport.rsplit_once(':') else {
            continue;
        };
        if let Ok(port) = port.parse::<u16>() {
            out.push((host.to_string(), port));
        }
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
    ///
    /// On Redis Cluster every master is scanned in turn (a `SCAN` cursor belongs to one node);
    /// the matches are unlinked through the cluster connection, which splits each `UNLINK` per
    /// slot.
    pub(crate) async fn unlink_matching(&self, pattern: &str) -> Result<u64, Error> {
        if !self.store.is_cluster() {
            return self.unlink_matching_on(pattern, None).await;
        }
        let nodes: String = self
            .store
            .query_on(redis::cmd("CLUSTER").arg("NODES"), &Target::Random)
            .await?;
        let mut deleted = 0u64;
        for (host, port) in masters(&nodes) {
            deleted += self
                .unlink_matching_on(pattern, Some(Target::Node(host, port)))
                .await?;
        }
        Ok(deleted)
    }

    async fn unlink_matching_on(&self, pattern: &str, node: Option<Target>) -> Result<u64, Error> {
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(BATCH);
            let (next, keys): (u64, Vec<String>) = match &node {
                None => self.store.query(&scan).await?,
                Some(target) => self.store.query_on(&scan, target).await?,
            };
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
pub async fn invalidate_all(
    spec: &'static Spec,
    self_ty: &'static str,
    shape: crate::schema::ShapeFn,
) -> Result<u64, Error> {
    let inner = spec.cache.inner().map_err(|e| Error::Config(e.clone()))?;
    let head = spec.head(inner, self_ty, shape);
    let pattern = format!("{}*", escape_glob(&head));
    let n = inner.unlink_matching(&pattern).await?;
    inner.announce(Event::Pattern(pattern)).await;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::escape_glob;

    #[test]
    fn cluster_nodes_masters() {
        let reply = "\
a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7003@17003 slave a 0 0 1 connected
c 127.0.0.1:7001@17001,host1 master - 0 0 2 connected 5461-10922
d 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected 10923-16383
e 127.0.0.1:7004@17004 master - 0 0 4 connected
";
        assert_eq!(
            super::masters(reply),
            vec![
                ("127.0.0.1".to_string(), 7000),
                ("127.0.0.1".to_string(), 7001)
            ]
        );
    }

    #[test]
    fn globs_are_escaped() {
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
