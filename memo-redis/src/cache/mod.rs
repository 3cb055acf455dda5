//! [`Cache`]: one Redis connection, its configuration, breaker and background tasks.
//!
//! A `Cache` is meant to live in a `static`. The global one ([`crate::init`]) reads `REDIS_*`
//! variables on first use; named caches are declared by the user and pointed at with
//! `#[redis_cache(cache = NAME)]`.
//!
//! The public handle is a facade over [`Inner`] (the shared parts, `cache/inner.rs`); its methods
//! are grouped by concept: lifecycle and state here, publishing and subscribing in
//! `cache/events.rs`, the near-cache state in `cache/near.rs`. Invalidation (`invalidate.rs`,
//! `tags.rs`), health (`health.rs`) and the typed handle add theirs next to their own machinery.
//! The parts themselves take what they need and know nothing of `Cache`: the Redis side
//! (`store/`), the event bus (`events.rs`), the near tier (`near/`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::breaker::{BreakerState, NodeBreaker};
use crate::config::Config;
use crate::error::{ConfigError, Error};

mod events;
mod inner;
mod near;

pub(crate) use inner::Inner;
pub use near::NearCacheState;

enum Source {
    Env,
    Lazy(fn() -> Result<Config, ConfigError>),
}

enum State {
    Ready(Arc<Inner>),
    Invalid(ConfigError),
}

/// A Redis-backed cache: configuration, one multiplexed connection, a circuit breaker.
///
/// Declare it in a `static` and either let it configure itself on first use, or install a
/// configuration at startup:
///
/// ```
/// use memo_redis::{redis_cache, Cache, Config};
///
/// static SESSIONS: Cache = Cache::from_env();
///
/// #[redis_cache(cache = SESSIONS, ttl = "5m")]
/// async fn session_owner(id: String) -> Option<u64> {
///     None
/// }
///
/// # fn main() -> Result<(), memo_redis::Error> {
/// SESSIONS.install(Config::builder().url("redis://127.0.0.1:6379/1").namespace("sess").build()?)?;
/// assert_eq!(SESSIONS.config().map(|c| c.namespace()), Some("sess"));
/// # Ok(()) }
/// ```
pub struct Cache {
    source: Source,
    state: OnceLock<State>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state.get() {
            Some(State::Ready(inner)) => f.debug_tuple("Cache").field(&inner.config).finish(),
            Some(State::Invalid(e)) => f.debug_tuple("Cache").field(e).finish(),
            None => f.write_str("Cache(uninitialised)"),
        }
    }
}

impl Cache {
    /// A cache configured from `REDIS_*` environment variables on first use, unless
    /// [`Cache::install`] ran first.
    pub const fn from_env() -> Cache {
        Cache {
            source: Source::Env,
            state: OnceLock::new(),
        }
    }

    /// A cache configured on first use by calling `make`, unless [`Cache::install`] ran first.
    ///
    /// ```
    /// use memo_redis::{Cache, Config};
    /// static REPORTS: Cache = Cache::lazy(|| Config::builder().namespace("reports").build());
    /// assert_eq!(REPORTS.config().map(|c| c.namespace()), Some("reports"));
    /// ```
    pub const fn lazy(make: fn() -> Result<Config, ConfigError>) -> Cache {
        Cache {
            source: Source::Lazy(make),
            state: OnceLock::new(),
        }
    }

    /// Installs `config`; call it at startup, before the first cached call.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialised`] when the cache was installed or used already; [`Error::Redis`]
    /// when redis-rs rejects the connection parameters.
    pub fn install(&self, config: Config) -> Result<(), Error> {
        let inner = Inner::new(config)?;
        let mut installed = false;
        self.state.get_or_init(|| {
            installed = true;
            State::Ready(Arc::new(inner))
        });
        if installed {
            Ok(())
        } else {
            Err(Error::AlreadyInitialised)
        }
    }

    /// The active configuration, initialising the cache if needed; `None` when it is invalid.
    pub fn config(&self) -> Option<&Config> {
        self.inner().ok().map(|i| &i.config)
    }

    /// The configuration error, if this cache's configuration is invalid.
    pub fn config_error(&self) -> Option<&ConfigError> {
        match self.state() {
            State::Invalid(e) => Some(e),
            State::Ready(_) => None,
        }
    }

    /// The circuit breaker's state (closed when the configuration is invalid: there is no Redis
    /// to protect).
    ///
    /// On a Redis Cluster each master has its own breaker (see [`Cache::breaker_nodes`]); this is
    /// `Open` only when every master of the current slot map is open, i.e. when no call can use
    /// Redis. One master down out of three leaves it `Closed`: the calls on that master's keys
    /// bypass Redis, the others keep hitting.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner()
            .map(|i| i.store.breaker.state())
            .unwrap_or(BreakerState::Closed)
    }

    /// Whether the circuit breaker currently bypasses Redis (on a cluster: every master's does;
    /// see [`Cache::breaker_state`]).
    pub fn breaker_open(&self) -> bool {
        self.inner()
            .map(|i| i.store.breaker.state() == BreakerState::Open)
            .unwrap_or(false)
    }

    /// The breaker of each master of a Redis Cluster, in the order they were discovered (empty
    /// on a single node, and before the first connection read the slot map). A master replaced
    /// by a failover leaves the list once a rebuilt connection has read the new slot map.
    ///
    /// ```no_run
    /// # async fn run() {
    /// static CACHE: memo_redis::Cache = memo_redis::Cache::from_env();
    /// let open: Vec<_> = CACHE
    ///     .breaker_nodes()
    ///     .into_iter()
    ///     .filter(|n| n.state == memo_redis::BreakerState::Open)
    ///     .map(|n| n.node)
    ///     .collect();
    /// println!("masters bypassed: {open:?}");
    /// # }
    /// ```
    pub fn breaker_nodes(&self) -> Vec<NodeBreaker> {
        self.inner()
            .map(|i| i.store.breaker.per_node())
            .unwrap_or_default()
    }

    fn state(&self) -> &State {
        self.state.get_or_init(|| {
            let config = match &self.source {
                Source::Env => Config::from_env(),
                Source::Lazy(make) => make(),
            };
            let built = config.map_err(Error::from).and_then(Inner::new);
            match built {
                Ok(inner) => State::Ready(Arc::new(inner)),
                Err(e) => {
                    // Logged once: the state is computed once.
                    tracing::error!(error = %e, "memo-redis: invalid cache configuration; cached functions will run without the cache");
                    State::Invalid(match e {
                        Error::Config(c) => c,
                        other => ConfigError::Unsupported(other.to_string()),
                    })
                }
            }
        })
    }

    pub(crate) fn inner(&self) -> Result<&Arc<Inner>, &ConfigError> {
        match self.state() {
            State::Ready(inner) => Ok(inner),
            State::Invalid(e) => Err(e),
        }
    }

    /// Keys whose computation is in flight right now (single-flight table size; 0 when idle).
    pub fn in_flight(&self) -> usize {
        self.inner().map(|i| i.flights.len()).unwrap_or(0)
    }

    /// Waits up to `timeout` for background work (refreshes, repairs, checks) to finish, then
    /// closes the connection. A later cached call reconnects.
    ///
    /// Returns `false` if background work was still running at the deadline.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        let Some(State::Ready(inner)) = self.state.get() else {
            return true;
        };
        // Without a usable runtime nothing was spawned: there is nothing to wait for.
        let done = crate::runtime::check().is_err()
            || tokio::time::timeout(timeout, inner.tasks.idle())
                .await
                .is_ok();
        inner.events.stop();
        if let Some(near) = inner.near.get() {
            near.stop();
        }
        inner.store.close();
        done
    }
}
