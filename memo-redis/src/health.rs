//! Health reports: is Redis reachable right now, how fast, what server, and what the cache makes
//! of it (breaker, near cache) — for `/health` endpoints and readiness probes.

use std::fmt;
use std::time::Duration;

use crate::breaker::{BreakerState, NodeBreaker};
use crate::cache::{Cache, NearCacheState};

/// What [`Cache::health`] measured.
///
/// A report never fails: an unreachable server, a wrong password or an invalid configuration are
/// described in [`Health::error`]. `reachable` is what the probe saw now; `breaker` is what the
/// cached calls do now (an open breaker bypasses Redis until its next probe succeeds, so the two
/// can disagree for up to the breaker's cooldown after Redis comes back).
///
/// ```no_run
/// # async fn run() {
/// let health = memo_redis::health().await;
/// if health.reachable {
///     println!("{} in {:?}", health.server.as_deref().unwrap_or("?"), health.round_trip);
/// } else {
///     println!("cache degraded: {}", health.error.as_deref().unwrap_or("?"));
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Health {
    /// A `PING` got its answer within the operation timeout.
    pub reachable: bool,
    /// Round trip of that `PING` (connection set-up not included).
    pub round_trip: Option<Duration>,
    /// Server software and version from `INFO server`, e.g. `redis 7.0.15` or `valkey 9.1.0`.
    pub server: Option<String>,
    /// The circuit breaker of the cached calls. On a Redis Cluster: `Open` only when every
    /// master's breaker is open (see [`Health::nodes`] for each master's).
    pub breaker: BreakerState,
    /// On a Redis Cluster, each master's breaker (empty on a single node). A master whose
    /// breaker is open has its keys' calls bypass Redis while the others keep hitting.
    pub nodes: Vec<NodeBreaker>,
    /// The near cache's state, when a `local = ...` function has created it.
    pub near_cache: Option<NearCacheState>,
    /// Whether the cache talks to a Redis Cluster.
    pub cluster: bool,
    /// Why the probe failed (connection refused, timeout, wrong password, invalid configuration);
    /// credentials are never part of it.
    pub error: Option<String>,
}

impl Health {
    /// Reachable and the cached calls use Redis (breaker closed).
    ///
    /// ```
    /// # let health = memo_redis::Health::unconfigured_for_doc();
    /// let status = if health.is_healthy() { 200 } else { 503 };
    /// # assert_eq!(status, 503);
    /// ```
    pub fn is_healthy(&self) -> bool {
        self.reachable && self.breaker == BreakerState::Closed
    }

    #[doc(hidden)]
    pub fn unconfigured_for_doc() -> Health {
        Health::failed(BreakerState::Closed, None, false, "not configured".into())
    }

    fn failed(
        breaker: BreakerState,
        near_cache: Option<NearCacheState>,
        cluster: bool,
        error: String,
    ) -> Health {
        Health {
            reachable: false,
            round_trip: None,
            server: None,
            breaker,
            nodes: Vec::new(),
            near_cache,
            cluster,
            error: Some(error),
        }
    }
}

impl fmt::Display for Health {
    /// One line, e.g. `reachable (redis 7.0.15, 0.21 ms), breaker closed` or
    /// `unreachable: timed out after 250ms, breaker open`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let breaker = match self.breaker {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
        };
        let open = self
            .nodes
            .iter()
            .filter(|n| n.state == BreakerState::Open)
            .count();
        let breaker = if open > 0 && self.breaker == BreakerState::Closed {
            format!("{breaker} ({open} of {} masters open)", self.nodes.len())
        } else {
            breaker.to_string()
        };
        if self.reachable {
            let rtt = self.round_trip.unwrap_or_default().as_secs_f64() * 1000.0;
            let server = self.server.as_deref().unwrap_or("unknown server");
            write!(f, "reachable ({server}, {rtt:.2} ms), breaker {breaker}")
        } else {
            let error = self.error.as_deref().unwrap_or("unknown error");
            write!(f, "unreachable: {error}, breaker {breaker}")
        }
    }
}

/// `redis 7.0.15` / `valkey 9.1.0` from an `INFO server` reply.
pub(crate) fn server_name(info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.trim_end().strip_prefix(name)?.strip_prefix(':'))
            .map(str::to_owned)
    };
    // Valkey reports `server_name:valkey` and `valkey_version` (and a `redis_version` it claims
    // compatibility with); Redis has neither of the first two.
    match field("server_name").as_deref() {
        Some("valkey") => Some(format!(
            "valkey {}",
            field("valkey_version").or_else(|| field("redis_version"))?
        )),
        Some(other) if !other.is_empty() => Some(format!(
            "{other} {}",
            field("redis_version").unwrap_or_default()
        )),
        _ => Some(format!("redis {}", field("redis_version")?)),
    }
}

impl Cache {
    /// Probes Redis now and reports what this cache sees: reachable, round-trip time, server
    /// name and version, breaker state, near-cache state.
    ///
    /// The probe (`PING` + `INFO server`) runs outside the circuit breaker — it measures even
    /// while the breaker bypasses Redis, and its outcome does not move the breaker — and takes
    /// at most the operation timeout (`REDIS_SOCKET_TIMEOUT`), connection included.
    ///
    /// # Errors
    /// None: every failure is described in the report ([`Health::error`]).
    ///
    /// # Panics
    /// Never. Outside a Tokio runtime (or on one without its time or IO driver) the report says
    /// so instead of probing.
    ///
    /// ```no_run
    /// # async fn run() {
    /// static CACHE: memo_redis::Cache = memo_redis::Cache::from_env();
    /// let health = CACHE.health().await;
    /// println!("{health}"); // reachable (redis 7.0.15, 0.21 ms), breaker closed
    /// # }
    /// ```
    pub async fn health(&self) -> Health {
        let inner = match self.inner() {
            Ok(inner) => inner,
            Err(e) => {
                return Health::failed(
                    BreakerState::Closed,
                    None,
                    false,
                    format!("invalid configuration: {e}"),
                )
            }
        };
        let breaker = inner.store.breaker.state();
        let near_cache = self.near_cache();
        let cluster = inner.store.is_cluster();
        // Outside a Tokio runtime, or on one without its time or IO driver, the probe would panic.
        if let Err(e) = crate::runtime::check() {
            return Health::failed(breaker, near_cache, cluster, e.to_string());
        }
        match inner.store.probe(inner.store.op_timeout()).await {
            Ok(probe) => Health {
                reachable: true,
                round_trip: Some(probe.round_trip),
                server: server_name(&probe.info),
                // Read again: calls may have moved it while the probe ran.
                breaker: inner.store.breaker.state(),
                nodes: inner.store.breaker.per_node(),
                near_cache,
                cluster,
                error: None,
            },
            Err(e) => Health {
                nodes: inner.store.breaker.per_node(),
                ..Health::failed(
                    inner.store.breaker.state(),
                    near_cache,
                    cluster,
                    e.to_string(),
                )
            },
        }
    }
}

/// [`Cache::health`] of the global cache.
///
/// ```no_run
/// # async fn run() {
/// let healthy = memo_redis::health().await.is_healthy();
/// # }
/// ```
pub async fn health() -> Health {
    crate::global().health().await
}

#[cfg(test)]
mod tests {
    use super::server_name;

    #[test]
    fn server_names() {
        let redis = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(server_name(redis).as_deref(), Some("redis 7.0.15"));
        let valkey =
            "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.1.0\r\n";
        assert_eq!(server_name(valkey).as_deref(), Some("valkey 9.1.0"));
        assert_eq!(server_name("garbage"), None);
    }
}
