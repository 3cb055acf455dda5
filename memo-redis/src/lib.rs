//! Declarative Redis-backed memoization for async Rust, fail-open by design.
//!
//! Put `#[redis_cache]` on an `async fn` and its results are cached in Redis, keyed by its
//! arguments. When Redis is unreachable, slow or returns garbage, the function simply runs:
//! the cache may make a call faster, it never makes it fail, hang or lie.
//!
//! # Five minutes
//!
//! ```
//! use memo_redis::{redis_cache, Config};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct User { id: u64, name: String }
//!
//! // Cached for 5 minutes under `memo:users:<fingerprint>:<sha256 of the arguments>`.
//! #[redis_cache(ttl = "5m", prefix = "users")]
//! async fn get_user(id: u64) -> Option<User> {
//!     // ... an expensive database query ...
//!     Some(User { id, name: "Ada".into() })
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Optional: configure the global cache at startup (otherwise REDIS_URL & co. are read on the
//! // first call). Here nothing listens on port 1, to show the fail-open promise:
//! memo_redis::init(Config::builder().url("redis://127.0.0.1:1/").build()?)?;
//!
//! // Redis is unreachable: the function still answers, from its body.
//! assert_eq!(get_user(42).await.map(|u| u.name), Some("Ada".to_string()));
//!
//! // Companions are generated next to the function:
//! let key = get_user_key(&42)?;                  // the exact Redis key
//! assert!(key.starts_with("memo:users:"));
//! assert!(get_user_evict(&42).await.is_err());   // explicit operations do report Redis errors
//! # Ok(()) }
//! ```
//!
//! # What gets cached
//!
//! | return type | cached | never cached |
//! |---|---|---|
//! | `T` | every value | — |
//! | `Option<T>` | `Some`; `None` with `cache_none = true` (reads back as a hit returning `None`) | `None` by default |
//! | `Result<T, E>` (also `anyhow::Result<T>`, `io::Result<T>`) | `Ok` | `Err` (`E` needs no serde) |
//! | `Result<Option<T>, E>` | `Ok(Some)`, `Ok(None)` with `cache_none` | `Err` |
//!
//! Arguments are hashed through their `Serialize` implementation (skip one with
//! `#[memo(skip)]`); the value type must be `Serialize + DeserializeOwned`. Mistakes are compile
//! errors pointing at your code:
//!
//! ```compile_fail
//! #[memo_redis::redis_cache(ttl = "5 minutes")] // malformed ttl `5 minutes`: ...
//! async fn f(x: u32) -> u32 { x }
//! ```
//!
//! # Companions
//!
//! For a function `f`, the macro generates next to it (as methods for methods):
//!
//! | companion | does |
//! |---|---|
//! | `f_key(&args) -> Result<String, Error>` | the exact Redis key |
//! | `f_evict(&args).await -> Result<bool, Error>` | deletes the entry |
//! | `f_peek(&args).await -> Result<Option<R>, Error>` | what a hit would return, without running the body |
//! | `f_refresh(args).await -> R` | runs the body and stores the result (write-through) |
//! | `f_invalidate_all().await -> Result<u64, Error>` | deletes the function's entries for every argument tuple |
//! | `f_stats() -> Stats` | the function's counters in this process (hits, misses, bypass, errors…) |
//!
//! Companions take references to the key arguments only (skipped arguments are left out), except
//! `f_refresh`, which takes the function's own parameters because it runs the body.
//!
//! # The attribute
//!
//! `ttl`, `prefix`, `key = "user:{id}"` (readable template), `key_fn`, `cache_none`, `version`,
//! `codec`, `cache = STATIC` (a named [`Cache`]), `name`, `shape`, `tags = [...]`, and the
//! stampede/freshness options `single_flight`, `lock`, `stale`, `early_refresh`, `sliding`,
//! `jitter`, `none_ttl`, and `local = "30s"` (a near cache in process memory, kept coherent by
//! Redis server-assisted client tracking). Each argument, its default and an example:
//! [`redis_cache`](macro@redis_cache) (the attribute's own documentation, also shown by IDE hovers).
//! Guides in the repository: `docs/guide.md` (start here), `docs/keys-and-failures.md`,
//! `docs/stampedes-and-freshness.md`, `docs/near-cache.md`, `docs/invalidation.md`,
//! `docs/when-redis-fails.md`, `docs/observability.md`, `docs/typed-handle.md`.
//!
//! # Configuration
//!
//! The global cache reads `REDIS_URL` (default `redis://127.0.0.1:6379`), `REDIS_PREFIX`
//! (default `memo`), `REDIS_DEFAULT_TTL` (default 3600 s, 0 = no expiry),
//! `REDIS_SOCKET_TIMEOUT` (default 0.25 s) and the other variables listed on [`Config`] on the
//! first cached call, or takes a configuration installed with [`init`]. Invalid configuration is an
//! error from [`Config::from_env`] / [`ConfigBuilder::build`] / [`init`]; a cached function whose
//! configuration is invalid still returns its own result and logs the problem once.
//!
//! # Observability
//!
//! Each call runs in a TRACE `tracing` span `memo_redis.call` recording its outcome (hit, miss,
//! stale, bypass, error); counters are readable with [`stats`] / [`StatsTable`], and with the
//! default `metrics` feature they are reported through the `metrics` facade.
//!
//! # Keys
//!
//! `{namespace}:{prefix}:{fingerprint}:{digest}` — see [`key`] and `docs/keys-and-failures.md`.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod breaker;
mod cache;
mod clock;
mod cluster_api;
pub mod codec;
mod config;
pub mod depth;
pub mod envelope;
mod error;
mod events;
mod flight;
mod global;
mod guard;
mod handle;
mod health;
mod invalidate;
pub mod key;
mod log;
mod near;
mod observe;
mod outline;
mod pipeline;
mod runtime;
pub mod schema;
mod shape;
mod site;
mod slot;
mod spec;
mod stats;
mod store;
mod tags;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use crate::breaker::{BreakerState, NodeBreaker};
pub use crate::cache::{Cache, NearCacheState};
pub use crate::codec::CodecKind;
pub use crate::config::{
    Config, ConfigBuilder, DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_THRESHOLD,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_LOCAL_MAX_BYTES, DEFAULT_MAX_VALUE_BYTES, DEFAULT_NAMESPACE,
    DEFAULT_OP_TIMEOUT, DEFAULT_TTL, DEFAULT_URL,
};
pub use crate::error::{ConfigError, Error};
pub use crate::events::Event;
pub use crate::health::{health, Health};
pub use crate::invalidate::invalidate_pattern;
pub use crate::pipeline::batch::CONCURRENCY as BATCH_CONCURRENCY;
pub use crate::spec::stats;
pub use crate::stats::{FunctionStats, Stats, StatsTable};
pub use crate::tags::invalidate_tags;
pub use memo_redis_derive::redis_cache;
/// redis-rs, whose [`RedisError`](redis::RedisError) [`Error::Redis`] carries: name its types
/// (`memo_redis::redis::ErrorKind`) without depending on redis-rs at a matching version.
#[doc(no_inline)]
pub use redis;

use std::time::Duration;

/// Installs the configuration of the global cache; call it at startup, before the first cached
/// call. Without it the global cache configures itself from `REDIS_*` variables.
///
/// # Errors
/// [`Error::AlreadyInitialised`] if the global cache was installed or used already.
///
/// ```
/// let config = memo_redis::Config::builder().namespace("myapp").build()?;
/// memo_redis::init(config)?;
/// assert_eq!(memo_redis::global().config().map(|c| c.namespace()), Some("myapp"));
/// # Ok::<(), memo_redis::Error>(())
/// ```
pub fn init(config: Config) -> Result<(), Error> {
    global::GLOBAL.install(config)
}

/// The global cache, used by every function that does not name another.
///
/// ```
/// let cache = memo_redis::global();
/// assert!(!cache.breaker_open());
/// ```
pub fn global() -> &'static Cache {
    &global::GLOBAL
}

/// Waits (at most 5 s) for the global cache's background work, then closes its connection.
/// For workers and jobs that exit.
///
/// Returns `false` if background work was still running at the deadline.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// memo_redis::shutdown().await;
/// # }
/// ```
pub async fn shutdown() -> bool {
    global::GLOBAL.shutdown(Duration::from_secs(5)).await
}

/// The README's Rust snippets, compiled by `cargo test --doc` so the Quickstart stays a program
/// that builds as written. (`cfg(doctest)`: the README lives outside the packaged crate.)
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The `#[redis_cache]` reference (`memo-redis-derive/src/attribute.md`, the attribute's own
/// rustdoc), compiled here because its examples need this crate.
#[cfg(doctest)]
#[doc = include_str!("../../memo-redis-derive/src/attribute.md")]
pub struct AttributeDoctests;
