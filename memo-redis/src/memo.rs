//! The call algorithm and the per-function specification the macro emits.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::cache::{Cache, Inner};
use crate::codec::CodecKind;
use crate::error::Error;
use crate::key::{self, KeyDigest, TemplateWriter};
use crate::log::RateLimited;
use crate::schema::ShapeFn;

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
    pub(crate) module: &'static str,
    pub(crate) name: &'static str,
    pub(crate) identity: Option<&'static str>,
    pub(crate) prefix: Option<&'static str>,
    pub(crate) ret: &'static str,
    pub(crate) version: u32,
    pub(crate) ttl: Ttl,
    pub(crate) cache_none: bool,
    pub(crate) codec: Option<CodecKind>,
    /// `compress = ...`: `Some(Some(n))` from `n` bytes, `Some(None)` never, `None`: the
    /// cache's `compress_min_bytes`.
    pub(crate) compress: Option<Option<usize>>,
    pub(crate) cache: &'static Cache,
    pub(crate) head: OnceLock<Head>,
    pub(crate) stats: Stats,
    pub(crate) key_errors: OnceLock<RateLimited>,
    pub(crate) registered: AtomicBool,
    /// Kinds of refused results already warned about (bits, see `count_refused`).
    pub(crate) refusals_warned: AtomicU8,
    pub(crate) single_flight: bool,
    /// Cross-process lock lease (`lock = true` / `lock = "5s"`).
    pub(crate) lock_ms: Option<u64>,
    /// Stale-while-revalidate window (`stale = "30s"`).
    pub(crate) stale_ms: Option<u64>,
    /// XFetch β (`early_refresh = ...`).
    pub(crate) beta: Option<f64>,
    /// `sliding = true`: a hit extends the TTL (GETEX).
    pub(crate) sliding: bool,
    /// `jitter = 0.1`: ±10 % on every TTL.
    pub(crate) jitter: f64,
    /// `none_ttl = ...`: TTL of cached `None` entries.
    pub(crate) none_ttl: Option<Ttl>,
    /// `local = ...`: near-cache lifetime cap in ms (`Some(0)`: the function's TTL).
    pub(crate) local_ms: Option<u64>,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) metrics: crate::observe::FnMetrics,
}

#[derive(Debug)]
pub(crate) struct Head {
    self_ty: &'static str,
    pub(crate) identity: String,
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

/// Stripes of [`Stats`]: threads spread their increments over them, so that two cores counting
/// hits of one hot function do not fight over one cache line.
const STAT_STRIPES: usize = 4;

/// Outcome counters of one function: relaxed atomics, striped per thread (nothing on the hit path
/// waits for them or shares a cache line with another core's); a snapshot sums the stripes.
#[derive(Debug)]
pub(crate) struct Stats {
    stripes: [Counters; STAT_STRIPES],
}

impl Stats {
    const fn new() -> Stats {
        Stats {
            stripes: [const { Counters::new() }; STAT_STRIPES],
        }
    }

    /// This thread's stripe.
    #[inline]
    pub(crate) fn mine(&self) -> &Counters {
        use std::cell::Cell;
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        let i = STRIPE
            .try_with(|s| {
                if s.get() == usize::MAX {
                    s.set(NEXT.fetch_add(1, Ordering::Relaxed) % STAT_STRIPES);
                }
                s.get()
            })
            .unwrap_or(0);
        &self.stripes[i]
    }

    fn sum(&self, field: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.stripes
            .iter()
            .map(|c| field(c).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

/// One stripe of a function's counters, alone on its cache lines.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bypass: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) skipped_too_large: AtomicU64,
    pub(crate) skipped_too_deep: AtomicU64,
    pub(crate) skipped_not_roundtrip: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) local_hits: AtomicU64,
}

impl Counters {
    const fn new() -> Counters {
        Counters {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypass: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            skipped_too_large: AtomicU64::new(0),
            skipped_too_deep: AtomicU64::new(0),
            skipped_not_roundtrip: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            local_hits: AtomicU64::new(0),
        }
    }
}

/// A snapshot of one function's outcome counters.
///
/// Every call ends as exactly one of hit, miss, stale, bypass or error (a call whose body
/// panics never ends, and is not counted).
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
    /// Results not stored because they nest deeper than
    /// [`depth::MAX_DEPTH`](crate::depth::MAX_DEPTH) levels.
    pub skipped_too_deep: u64,
    /// Results not stored because the function's codec cannot encode them, or their encoding
    /// does not decode back to the same value (see the codec section of the guide).
    pub skipped_not_roundtrip: u64,
    /// Hits served by a concurrent identical call's read or body run (single-flight); included
    /// in `hits`.
    pub coalesced: u64,
    /// Served a stale value (within the `stale` window) while a background refresh ran.
    pub stale: u64,
    /// Background refreshes run (stale-while-revalidate and early refresh).
    pub refreshes: u64,
    /// Hits served from the in-process near cache (`local = ...`) without asking Redis;
    /// included in `hits`.
    pub local_hits: u64,
}

impl FnStats {
    /// Calls counted: hits + misses + stale + bypass + errors.
    pub fn calls(&self) -> u64 {
        self.hits + self.misses + self.stale + self.bypass + self.errors
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
            compress: None,
            cache,
            head: OnceLock::new(),
            stats: Stats::new(),
            key_errors: OnceLock::new(),
            registered: AtomicBool::new(false),
            refusals_warned: AtomicU8::new(0),
            single_flight: true,
            lock_ms: None,
            stale_ms: None,
            beta: None,
            sliding: false,
            jitter: 0.0,
            none_ttl: None,
            local_ms: None,
            metrics: crate::observe::FnMetrics::new(),
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
    /// `lock = true` / `lock = "5s"`: lease in ms.
    pub const fn lock(mut self, lease_ms: u64) -> Spec {
        self.lock_ms = Some(lease_ms);
        self
    }
    /// `stale = "30s"`: window in ms.
    pub const fn stale(mut self, window_ms: u64) -> Spec {
        self.stale_ms = Some(window_ms);
        self
    }
    /// `early_refresh = β`.
    pub const fn early_refresh(mut self, beta: f64) -> Spec {
        self.beta = Some(beta);
        self
    }
    /// `local = true` (0: the function's TTL) / `local = "60s"`: near-cache lifetime cap in ms.
    pub const fn local(mut self, cap_ms: u64) -> Spec {
        self.local_ms = Some(cap_ms);
        self
    }
    /// `sliding = true`.
    pub const fn sliding(mut self, on: bool) -> Spec {
        self.sliding = on;
        self
    }
    /// `jitter = f` (fraction, e.g. 0.1).
    pub const fn jitter(mut self, fraction: f64) -> Spec {
        self.jitter = fraction;
        self
    }
    /// `none_ttl = ...`.
    pub const fn none_ttl(mut self, ttl: Ttl) -> Spec {
        self.none_ttl = Some(ttl);
        self
    }
    /// `codec = ...`.
    pub const fn codec(mut self, codec: CodecKind) -> Spec {
        self.codec = Some(codec);
        self
    }
    /// `compress = ...`: compress payloads of at least `min_bytes` (`None`: never).
    pub const fn compress(mut self, min_bytes: Option<usize>) -> Spec {
        self.compress = Some(min_bytes);
        self
    }

    /// The counters of this function.
    pub fn stats(&self) -> FnStats {
        let s = &self.stats;
        FnStats {
            hits: s.sum(|c| &c.hits),
            misses: s.sum(|c| &c.misses),
            bypass: s.sum(|c| &c.bypass),
            errors: s.sum(|c| &c.errors),
            skipped_too_large: s.sum(|c| &c.skipped_too_large),
            skipped_too_deep: s.sum(|c| &c.skipped_too_deep),
            skipped_not_roundtrip: s.sum(|c| &c.skipped_not_roundtrip),
            coalesced: s.sum(|c| &c.coalesced),
            stale: s.sum(|c| &c.stale),
            refreshes: s.sum(|c| &c.refreshes),
            local_hits: s.sum(|c| &c.local_hits),
        }
    }

    pub(crate) fn head(
        &self,
        inner: &Inner,
        self_ty: &'static str,
        shape: ShapeFn,
    ) -> Cow<'_, str> {
        let head = self.head.get_or_init(|| {
            let (identity, text) = self.render_head(inner, self_ty, shape);
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
            Cow::Owned(self.render_head(inner, self_ty, shape).1)
        }
    }

    fn render_head(&self, inner: &Inner, self_ty: &str, shape: ShapeFn) -> (String, String) {
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
        // Traced once per value type (a process-wide table), and the head once per spec.
        let traced = shape();
        let fp = match &traced.digest {
            Some(d) => key::shaped_fingerprint(&identity, self.ret, self.version, d),
            None => {
                warn_untraced(&identity, traced.error.as_deref().unwrap_or(""));
                key::fingerprint(&identity, self.ret, self.version)
            }
        };
        let text = format!("{}:{prefix}:{fp}:", inner.config.namespace);
        (identity.into_owned(), text)
    }

    /// Adds this (main) spec to the registry read by [`stats`], once.
    pub(crate) fn register(&'static self) {
        // A plain load first: every call passes here, and only the first may write.
        if !self.registered.load(Ordering::Relaxed)
            && !self.registered.swap(true, Ordering::Relaxed)
        {
            if let Ok(mut r) = REGISTRY.lock() {
                r.push(self);
            }
        }
    }

    pub(crate) fn codec_for(&self, inner: &Inner) -> CodecKind {
        self.codec.unwrap_or(inner.config.codec)
    }

    /// The size from which this function's payloads are compressed (`None`: never).
    pub(crate) fn compress_for(&self, inner: &Inner) -> Option<usize> {
        self.compress.unwrap_or(inner.config.compress_min_bytes)
    }

    /// The function's identity (as in [`stats`]), for log lines.
    pub(crate) fn identity_for_logs(&self) -> String {
        self.head
            .get()
            .map(|h| h.identity.clone())
            .unwrap_or_else(|| format!("{}::{}", self.module, self.name))
    }

    pub(crate) fn log_key_error(&self, e: &Error) {
        self.warn_limited(&e.to_string(), "memo-redis: cache bypassed for this call");
    }

    /// A warning about this function, at most one line per interval.
    pub(crate) fn warn_limited(&self, detail: &str, what: &'static str) {
        self.key_errors
            .get_or_init(RateLimited::new)
            .hit(|suppressed| {
                tracing::warn!(function = self.name, detail, suppressed, "{what}");
            });
    }
}

/// The one warning per function (its companions have specs of their own) whose cached type's
/// shape cannot be traced.
fn warn_untraced(identity: &str, reason: &str) {
    static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if warned.iter().any(|w| w == identity) {
        return;
    }
    warned.push(identity.to_string());
    tracing::warn!(
        function = %identity,
        reason,
        "memo-redis: the cached type's serde shape cannot be traced, so its keys only change \
         with the return type's name; after changing the type, bump `version = N` on the \
         function so old entries are not read as the new type"
    );
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
    pub(crate) inner: &'static Arc<Inner>,
    pub(crate) key: String,
    pub(crate) tags: Vec<String>,
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
    shape: ShapeFn,
) -> Result<(&'static Arc<Inner>, String), Error> {
    let inner = spec.cache.inner().map_err(|e| Error::Config(e.clone()))?;
    let head = spec.head(inner, self_ty, shape);
    let mut key = String::with_capacity(head.len() + 32);
    key.push_str(&head);
    Ok((inner, key))
}

/// Key from the SHA-256 digest of the arguments, which `args` feeds one by one (in parameter
/// order) to [`KeyDigest::arg`](crate::key::KeyDigest::arg).
///
/// # Errors
/// The cache configuration is invalid, or an argument failed to serialize.
pub fn digest_key(
    spec: &'static Spec,
    self_ty: &'static str,
    shape: ShapeFn,
    args: impl FnOnce(&mut KeyDigest),
) -> Result<Key, Error> {
    let (inner, mut key) = start_key(spec, self_ty, shape)?;
    let mut digest = KeyDigest::new();
    args(&mut digest);
    digest.finish(&mut key).map_err(Error::Key)?;
    Ok(Key {
        inner,
        key,
        tags: Vec::new(),
    })
}

/// Key from a `key = "..."` template.
///
/// # Errors
/// The cache configuration is invalid.
pub fn template_key(
    spec: &'static Spec,
    self_ty: &'static str,
    shape: ShapeFn,
    render: impl FnOnce(&mut TemplateWriter<'_>),
) -> Result<Key, Error> {
    let (inner, mut key) = start_key(spec, self_ty, shape)?;
    let mut w = TemplateWriter::new(&mut key);
    render(&mut w);
    w.finish();
    Ok(Key {
        inner,
        key,
        tags: Vec::new(),
    })
}

/// Key from a `key_fn = ...` builder's output.
///
/// # Errors
/// The cache configuration is invalid, or the builder returned an empty string.
pub fn custom_key(
    spec: &'static Spec,
    self_ty: &'static str,
    shape: ShapeFn,
    custom: impl AsRef<str>,
) -> Result<Key, Error> {
    let custom = custom.as_ref();
    if custom.is_empty() {
        return Err(Error::Key("key_fn returned an empty key".into()));
    }
    template_key(spec, self_ty, shape, |w| w.lit(custom))
}
