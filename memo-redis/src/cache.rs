//! [`Cache`]: one Redis connection, its configuration, breaker and background tasks.
//!
//! A `Cache` is meant to live in a `static`. The global one ([`crate::init`]) reads `REDIS_*`
//! variables on first use; named caches are declared by the user and pointed at with
//! `#[redis_cache(cache = NAME)]`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::breaker::BreakerState;
use crate::config::Config;
use crate::error::{ConfigError, Error};
use crate::events::Events;
use crate::flight::Flights;
use crate::store::Store;

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

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) store: Store,
    tasks: Tasks,
    policy_checked: AtomicBool,
    pub(crate) flights: Flights,
    pub(crate) events: Events,
    /// The near cache, created by the first `local = ...` call.
    pub(crate) near: OnceLock<crate::near::Near>,
    near_cluster_warned: AtomicBool,
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
    pub fn breaker_state(&self) -> BreakerState {
        self.inner()
            .map(|i| i.store.breaker.state())
            .unwrap_or(BreakerState::Closed)
    }

    /// Whether the circuit breaker currently bypasses Redis.
    pub fn breaker_open(&self) -> bool {
        self.inner()
            .map(|i| i.store.breaker.state() == BreakerState::Open)
            .unwrap_or(false)
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

    /// The state of this cache's near cache (the in-process tier of `local = ...` functions):
    /// `None` until such a function was first called (and always on Redis Cluster).
    ///
    /// ```
    /// static C: memo_redis::Cache = memo_redis::Cache::from_env();
    /// assert!(C.near_cache().is_none());
    /// ```
    pub fn near_cache(&self) -> Option<NearCacheState> {
        let near = self.inner().ok()?.near.get()?;
        Some(NearCacheState {
            live: near.is_live(),
            entries: near.len(),
            bytes: near.weight(),
        })
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

/// A snapshot of a cache's near cache, from [`Cache::near_cache`].
///
/// ```no_run
/// # async fn run() {
/// #[memo_redis::redis_cache(ttl = "5m", local = "30s")]
/// async fn flags(tenant: u64) -> Vec<String> {
///     vec![tenant.to_string()]
/// }
/// flags(1).await;
/// if let Some(state) = memo_redis::global().near_cache() {
///     println!("near cache live: {}, {} entries, {} bytes", state.live, state.entries, state.bytes);
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheState {
    /// The tracking connection is up: local entries are being served. While it is down the
    /// tier is empty and every call goes to Redis.
    pub live: bool,
    /// Entries held.
    pub entries: usize,
    /// Bytes held (keys, encoded values and a fixed per-entry overhead), at most
    /// `REDIS_LOCAL_MAX_BYTES`.
    pub bytes: u64,
}

impl Inner {
    fn new(config: Config) -> Result<Inner, Error> {
        Ok(Inner {
            store: Store::new(&config)?,
            config,
            tasks: Tasks::default(),
            policy_checked: AtomicBool::new(false),
            flights: Flights::default(),
            events: Events::default(),
            near: OnceLock::new(),
            near_cluster_warned: AtomicBool::new(false),
        })
    }

    /// Says once that `local = ...` is ignored on Redis Cluster.
    pub(crate) fn warn_near_cluster(&self) {
        if !self.near_cluster_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                namespace = %self.config.namespace,
                "memo-redis: the near cache (`local = ...`) is not supported on Redis Cluster; those functions use Redis only"
            );
        }
    }

    /// Spawns tracked background work on the current tokio runtime (if any).
    pub(crate) fn spawn(self: &Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if crate::runtime::check().is_err() {
            return;
        }
        let guard = self.tasks.enter();
        handle.spawn(async move {
            fut.await;
            drop(guard);
        });
    }

    /// Called before the first entry without expiry is written: warns once if the server can
    /// never evict such entries.
    pub(crate) fn check_eviction_policy(self: &Arc<Self>) {
        if self.policy_checked.swap(true, Ordering::Relaxed) {
            return;
        }
        let inner = Arc::clone(self);
        self.spawn(async move {
            let reply: Result<Vec<String>, Error> = inner
                .store
                .query(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
                .await;
            if let Ok(reply) = reply {
                if let Some(policy) = reply.get(1) {
                    if policy == "noeviction" || policy.starts_with("volatile-") {
                        tracing::warn!(
                            policy = %policy,
                            "memo-redis writes entries without expiry, but the server's maxmemory-policy never evicts keys without a TTL; set a ttl or use an allkeys-* policy"
                        );
                    }
                }
            }
        });
    }
}

/// Counts background tasks so shutdown can wait for them.
#[derive(Default)]
struct Tasks {
    running: Arc<(AtomicUsize, Notify)>,
}

struct TaskGuard(Arc<(AtomicUsize, Notify)>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0 .0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0 .1.notify_waiters();
        }
    }
}

impl Tasks {
    fn enter(&self) -> TaskGuard {
        self.running.0.fetch_add(1, Ordering::AcqRel);
        TaskGuard(Arc::clone(&self.running))
    }

    async fn idle(&self) {
        loop {
            let notified = self.running.1.notified();
            if self.running.0.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}
