//! The call algorithm and the per-function specification the macro emits.

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cache::{Cache, Inner};
use crate::codec::CodecKind;
use crate::envelope::{self, Envelope};
use crate::error::Error;
use crate::flight::{self, Lead, Outcome, Role, Wait};
use crate::key::{self, TemplateWriter};
use crate::log::RateLimited;
use crate::shape::Shape;
use crate::store::Budget;

/// TTL of a function's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The cache's configured default (`REDIS_DEFAULT_TTL`).
    Default,
    /// Never expire.
    Never,
    /// This many milliseconds.
    Millis(u64),
}

/// Static description of one cached function, emitted by `#[redis_cache]`.
#[derive(Debug)]
pub struct Spec {
    module: &'static str,
    name: &'static str,
    identity: Option<&'static str>,
    prefix: Option<&'static str>,
    ret: &'static str,
    version: u32,
    ttl: Ttl,
    cache_none: bool,
    codec: Option<CodecKind>,
    cache: &'static Cache,
    head: OnceLock<Head>,
    stats: Stats,
    key_errors: OnceLock<RateLimited>,
    registered: AtomicBool,
    single_flight: bool,
}

#[derive(Debug)]
struct Head {
    self_ty: &'static str,
    identity: String,
    text: String,
}

/// Every function that has been called at least once, for [`stats`].
static REGISTRY: Mutex<Vec<&'static Spec>> = Mutex::new(Vec::new());

/// Outcome counters of one function, as returned by [`stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// The function's identity (`module::function`, `module::Type::method`, or its `name`).
    pub function: String,
    /// Its counters.
    pub stats: FnStats,
}

/// Counters of every cached function called so far in this process, sorted by function.
///
/// ```
/// for f in memo_redis::stats() {
///     println!("{}: {} hits / {} calls", f.function, f.stats.hits, f.stats.calls());
/// }
/// ```
pub fn stats() -> Vec<FunctionStats> {
    let specs: Vec<&'static Spec> = REGISTRY.lock().map(|r| r.clone()).unwrap_or_default();
    let mut out: Vec<FunctionStats> = specs
        .into_iter()
        .map(|spec| FunctionStats {
            function: spec
                .head
                .get()
                .map(|h| h.identity.clone())
                .unwrap_or_else(|| format!("{}::{}", spec.module, spec.name)),
            stats: spec.stats(),
        })
        .collect();
    out.sort_by(|a, b| a.function.cmp(&b.function));
    out
}

/// The counters of the function `companion` (a companion's spec) belongs to.
pub fn stats_for(companion: &Spec) -> FnStats {
    let Ok(registry) = REGISTRY.lock() else {
        return FnStats::default();
    };
    registry
        .iter()
        .find(|s| {
            s.module == companion.module
                && s.name == companion.name
                && s.ret == companion.ret
                && s.identity == companion.identity
        })
        .map(|s| s.stats())
        .unwrap_or_default()
}

/// Outcome counters of one function (relaxed atomics: nothing on the hit path waits for them).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bypass: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) skipped_too_large: AtomicU64,
    pub(crate) coalesced: AtomicU64,
}

/// A snapshot of one function's outcome counters.
///
/// Every call ends as exactly one of hit, miss, bypass or error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FnStats {
    /// Served from Redis; the body did not run.
    pub hits: u64,
    /// Not in Redis (or the entry was corrupt); the body ran and the result was offered to Redis.
    pub misses: u64,
    /// Redis was not asked (breaker open, invalid configuration, key not computable); the body ran.
    pub bypass: u64,
    /// Redis failed or timed out on the read; the body ran.
    pub errors: u64,
    /// Results not stored because their encoding exceeded the size limit.
    pub skipped_too_large: u64,
    /// Hits served by a concurrent identical call's read or body run (single-flight); included
    /// in `hits`.
    pub coalesced: u64,
}

impl FnStats {
    /// Calls counted: hits + misses + bypass + errors.
    pub fn calls(&self) -> u64 {
        self.hits + self.misses + self.bypass + self.errors
    }
    /// Hits divided by calls (0 when there were none).
    pub fn hit_ratio(&self) -> f64 {
        match self.calls() {
            0 => 0.0,
            n => self.hits as f64 / n as f64,
        }
    }
}

impl Spec {
    /// A spec for function `name` in `module`; the rest are builder-style `const fn`s.
    pub const fn new(
        module: &'static str,
        name: &'static str,
        ret: &'static str,
        cache: &'static Cache,
    ) -> Spec {
        Spec {
            module,
            name,
            identity: None,
            prefix: None,
            ret,
            version: 0,
            ttl: Ttl::Default,
            cache_none: false,
            codec: None,
            cache,
            head: OnceLock::new(),
            stats: Stats {
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                bypass: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                skipped_too_large: AtomicU64::new(0),
                coalesced: AtomicU64::new(0),
            },
            key_errors: OnceLock::new(),
            registered: AtomicBool::new(false),
            single_flight: true,
        }
    }
    /// `name = "..."`: a stable identity replacing the module path.
    pub const fn identity(mut self, identity: &'static str) -> Spec {
        self.identity = Some(identity);
        self
    }
    /// `prefix = "..."`.
    pub const fn prefix(mut self, prefix: &'static str) -> Spec {
        self.prefix = Some(prefix);
        self
    }
    /// `version = N`.
    pub const fn version(mut self, version: u32) -> Spec {
        self.version = version;
        self
    }
    /// `ttl = ...`.
    pub const fn ttl(mut self, ttl: Ttl) -> Spec {
        self.ttl = ttl;
        self
    }
    /// `cache_none = true`.
    pub const fn cache_none(mut self, cache_none: bool) -> Spec {
        self.cache_none = cache_none;
        self
    }
    /// `single_flight = false`.
    pub const fn single_flight(mut self, on: bool) -> Spec {
        self.single_flight = on;
        self
    }
    /// `codec = ...`.
    pub const fn codec(mut self, codec: CodecKind) -> Spec {
        self.codec = Some(codec);
        self
    }

    /// The counters of this function.
    pub fn stats(&self) -> FnStats {
        let s = &self.stats;
        FnStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            bypass: s.bypass.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            skipped_too_large: s.skipped_too_large.load(Ordering::Relaxed),
            coalesced: s.coalesced.load(Ordering::Relaxed),
        }
    }

    fn head(&self, inner: &Inner, self_ty: &'static str) -> Cow<'_, str> {
        let head = self.head.get_or_init(|| {
            let (identity, text) = self.render_head(inner, self_ty);
            Head {
                self_ty,
                identity,
                text,
            }
        });
        // A method's spec is shared by every instantiation of a generic impl; only the first
        // `Self` gets the cached head, the others compute theirs.
        if head.self_ty == self_ty {
            Cow::Borrowed(&head.text)
        } else {
            Cow::Owned(self.render_head(inner, self_ty).1)
        }
    }

    fn render_head(&self, inner: &Inner, self_ty: &str) -> (String, String) {
        let owner = if self_ty.is_empty() {
            self.module
        } else {
            self_ty
        };
        let identity: Cow<'_, str> = match self.identity {
            Some(id) => Cow::Borrowed(id),
            None => Cow::Owned(format!("{owner}::{}", self.name)),
        };
        let prefix: Cow<'_, str> = match self.prefix {
            Some(p) => Cow::Borrowed(p),
            None => Cow::Owned(sanitize_prefix(&identity)),
        };
        let fp = key::fingerprint(&identity, self.ret, self.version);
        let text = format!("{}:{prefix}:{fp}:", inner.config.namespace);
        (identity.into_owned(), text)
    }

    /// Adds this (main) spec to the registry read by [`stats`], once.
    fn register(&'static self) {
        if !self.registered.swap(true, Ordering::Relaxed) {
            if let Ok(mut r) = REGISTRY.lock() {
                r.push(self);
            }
        }
    }

    fn ttl_for(&self, inner: &Inner) -> Option<Duration> {
        match self.ttl {
            Ttl::Default => inner.config.default_ttl,
            Ttl::Never => None,
            Ttl::Millis(ms) => Some(Duration::from_millis(ms)),
        }
    }

    fn codec_for(&self, inner: &Inner) -> CodecKind {
        self.codec.unwrap_or(inner.config.codec)
    }

    fn log_key_error(&self, e: &Error) {
        self.key_errors.get_or_init(RateLimited::new).hit(|suppressed| {
            tracing::warn!(function = self.name, error = %e, suppressed, "memo-redis: cache bypassed for this call");
        });
    }
}

/// `a::b::<T>::c` → `a.b._T_.c`: a default prefix is one key field.
fn sanitize_prefix(identity: &str) -> String {
    let dotted = identity.replace("::", ".");
    dotted
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A computed key with the cache it belongs to.
pub struct Key {
    inner: &'static Arc<Inner>,
    key: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Key").field(&self.key).finish()
    }
}

impl Key {
    /// The full Redis key.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

fn start_key(
    spec: &'static Spec,
    self_ty: &'static str,
) -> Result<(&'static Arc<Inner>, String), Error> {
    let inner = spec.cache.inner().map_err(|e| Error::Config(e.clone()))?;
    let head = spec.head(inner, self_ty);
    let mut key = String::with_capacity(head.len() + 32);
    key.push_str(&head);
    Ok((inner, key))
}

/// Key from the SHA-256 digest of the arguments.
///
/// # Errors
/// The cache configuration is invalid, or an argument failed to serialize.
pub fn digest_key<A: Serialize + ?Sized>(
    spec: &'static Spec,
    self_ty: &'static str,
    args: &A,
) -> Result<Key, Error> {
    let (inner, mut key) = start_key(spec, self_ty)?;
    key::push_digest(&mut key, args).map_err(Error::Key)?;
    Ok(Key { inner, key })
}

/// Key from a `key = "..."` template.
///
/// # Errors
/// The cache configuration is invalid.
pub fn template_key(
    spec: &'static Spec,
    self_ty: &'static str,
    render: impl FnOnce(&mut TemplateWriter<'_>),
) -> Result<Key, Error> {
    let (inner, mut key) = start_key(spec, self_ty)?;
    let mut w = TemplateWriter::new(&mut key);
    render(&mut w);
    w.finish();
    Ok(Key { inner, key })
}

/// Key from a `key_fn = ...` builder's output.
///
/// # Errors
/// The cache configuration is invalid, or the builder returned an empty string.
pub fn custom_key(
    spec: &'static Spec,
    self_ty: &'static str,
    custom: impl AsRef<str>,
) -> Result<Key, Error> {
    let custom = custom.as_ref();
    if custom.is_empty() {
        return Err(Error::Key("key_fn returned an empty key".into()));
    }
    template_key(spec, self_ty, |w| w.lit(custom))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn decode<S: Shape<R>, R>(bytes: &[u8], max_len: usize) -> Result<R, String> {
    let env = Envelope::parse(bytes, max_len).map_err(|e| e.to_string())?;
    let value = if env.is_none() {
        None
    } else {
        Some(env.codec.decode::<S::Value>(env.payload)?)
    };
    S::from_cached(value)
        .ok_or_else(|| "cached None under a function that cannot return None".to_string())
}

/// The entry `r` would be stored as; `None` when nothing is cached for it.
fn encode_entry<S: Shape<R>, R>(
    spec: &'static Spec,
    inner: &Inner,
    r: &R,
    compute: Duration,
) -> Option<Vec<u8>> {
    let stored = S::stored(r, spec.cache_none)?;
    let compute_ms = u32::try_from(compute.as_millis()).unwrap_or(u32::MAX);
    match envelope::encode(spec.codec_for(inner), stored, now_ms(), compute_ms) {
        Ok(b) => Some(b),
        Err(e) => {
            spec.log_key_error(&Error::Codec(e));
            None
        }
    }
}

/// Stores an encoded entry within what is left of the call's Redis budget.
async fn store_entry(spec: &'static Spec, key: &Key, bytes: &[u8], budget: &mut Budget) -> bool {
    let inner = key.inner;
    if bytes.len().saturating_sub(envelope::HEADER_LEN) > inner.config.max_value_bytes {
        spec.stats.skipped_too_large.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            function = spec.name,
            size = bytes.len(),
            "result too large to cache"
        );
        return false;
    }
    let ttl = spec.ttl_for(inner);
    if ttl.is_none() {
        inner.check_eviction_policy();
    }
    let Some(limit) = budget.left() else {
        tracing::debug!(
            function = spec.name,
            "redis time budget spent on the read; not storing"
        );
        return false;
    };
    let started = Instant::now();
    let stored = inner.store.set(&key.key, bytes, ttl, limit).await.is_ok();
    budget.spend(started);
    stored
}

/// The memoized call: hit → decoded value; miss → body, then store; Redis trouble → body.
///
/// Concurrent calls with the same key share one read and one body run (single-flight) unless
/// the function opted out with `single_flight = false`.
pub async fn memo<S, R, F>(spec: &'static Spec, key: Result<Key, Error>, body: F) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    spec.register();
    let stats = &spec.stats;
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            stats.bypass.fetch_add(1, Ordering::Relaxed);
            if !matches!(e, Error::Config(_)) {
                spec.log_key_error(&e);
            }
            return body.await;
        }
    };
    let inner = key.inner;
    if inner.store.breaker.bypassing() {
        stats.bypass.fetch_add(1, Ordering::Relaxed);
        return body.await;
    }
    if !spec.single_flight {
        return lead::<S, R, F>(spec, &key, body, None).await;
    }
    loop {
        match inner.flights.join(&key.key) {
            Role::Leader(flight) => return lead::<S, R, F>(spec, &key, body, Some(flight)).await,
            Role::Follower(rx) => match flight::wait(rx).await {
                Wait::Shared(bytes) => {
                    if let Ok(r) = decode::<S, R>(&bytes, usize::MAX) {
                        stats.hits.fetch_add(1, Ordering::Relaxed);
                        stats.coalesced.fetch_add(1, Ordering::Relaxed);
                        return r;
                    }
                    stats.misses.fetch_add(1, Ordering::Relaxed);
                    return body.await;
                }
                Wait::NotShared => {
                    // An `Err` or an uncached `None` is not shared (E has no Clone or serde
                    // bound): this caller runs the body itself, as without single-flight.
                    stats.misses.fetch_add(1, Ordering::Relaxed);
                    return body.await;
                }
                // The leader panicked or was cancelled: race to lead.
                Wait::Abandoned => continue,
            },
        }
    }
}

/// One read, and on a miss one body run and one write, publishing the entry to followers.
async fn lead<S, R, F>(spec: &'static Spec, key: &Key, body: F, flight: Option<Lead<'static>>) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let stats = &spec.stats;
    let inner = key.inner;
    let mut corrupt: Option<Vec<u8>> = None;
    let mut budget = Budget::new(inner.store.op_timeout());
    let read_started = Instant::now();
    let read = inner.store.get(&key.key, inner.store.op_timeout()).await;
    budget.spend(read_started);
    let mut redis_ok = true;
    match read {
        Ok(Some(bytes)) => match decode::<S, R>(&bytes, inner.config.max_value_bytes) {
            Ok(r) => {
                stats.hits.fetch_add(1, Ordering::Relaxed);
                if let Some(flight) = flight {
                    flight.finish(Outcome::Shared(Arc::from(bytes)));
                }
                return r;
            }
            Err(why) => {
                tracing::debug!(function = spec.name, reason = %why, "undecodable cache entry; recomputing");
                stats.misses.fetch_add(1, Ordering::Relaxed);
                corrupt = Some(bytes);
            }
        },
        Ok(None) => {
            stats.misses.fetch_add(1, Ordering::Relaxed);
        }
        Err(Error::WrongType) => {
            stats.misses.fetch_add(1, Ordering::Relaxed);
            corrupt = Some(Vec::new());
        }
        Err(Error::BreakerOpen) => {
            stats.bypass.fetch_add(1, Ordering::Relaxed);
            redis_ok = false;
        }
        Err(_) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            redis_ok = false;
        }
    }
    let started = Instant::now();
    let r = body.await;
    let entry = encode_entry::<S, R>(spec, inner, &r, started.elapsed());
    let mut written = false;
    if let (true, Some(bytes)) = (redis_ok, &entry) {
        written = store_entry(spec, key, bytes, &mut budget).await;
    }
    if let (false, Some(seen), Some(limit)) = (written, corrupt, budget.left()) {
        // Nothing overwrote the bad entry: remove it unless someone replaced it meanwhile.
        let _ = inner.store.repair(&key.key, &seen, limit).await;
    }
    if let Some(flight) = flight {
        // Followers get the result even when Redis is failing: one body run per key.
        flight.finish(match entry {
            Some(bytes) => Outcome::Shared(Arc::from(bytes)),
            None => Outcome::NotShared,
        });
    }
    r
}

/// Companion `peek`: the value a hit would return, without running the body.
///
/// # Errors
/// Redis failed, timed out or the breaker is open; the key could not be computed.
pub async fn peek<S: Shape<R>, R>(key: Result<Key, Error>) -> Result<Option<R>, Error> {
    let key = key?;
    let inner = key.inner;
    match inner.store.get(&key.key, inner.store.op_timeout()).await {
        Ok(Some(bytes)) => Ok(decode::<S, R>(&bytes, inner.config.max_value_bytes).ok()),
        Ok(None) | Err(Error::WrongType) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Companion `evict`: deletes the entry; `true` if one existed.
///
/// # Errors
/// Redis failed, timed out or the breaker is open; the key could not be computed.
pub async fn evict(key: Result<Key, Error>) -> Result<bool, Error> {
    let key = key?;
    key.inner.store.del(&key.key).await
}

/// Companion `key`: the exact Redis key.
///
/// # Errors
/// The cache configuration is invalid or the key could not be computed.
pub fn key_string(key: Result<Key, Error>) -> Result<String, Error> {
    key.map(|k| k.key)
}

/// Companion `refresh`: runs the body and stores its result (write-through), whatever is cached.
pub async fn refresh<S, R, F>(spec: &'static Spec, key: Result<Key, Error>, body: F) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let started = Instant::now();
    let r = body.await;
    match key {
        Ok(key) => {
            let mut budget = Budget::new(key.inner.store.op_timeout());
            if let Some(bytes) = encode_entry::<S, R>(spec, key.inner, &r, started.elapsed()) {
                store_entry(spec, &key, &bytes, &mut budget).await;
            }
        }
        Err(e) => spec.log_key_error(&e),
    }
    r
}

/// Pins the output type of the body block so `?` and `.into()` inside it infer as in the
/// original function.
#[inline(always)]
pub fn body<R, F: Future<Output = R>>(f: F) -> F {
    f
}
