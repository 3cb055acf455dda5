//! The per-function specification `#[redis_cache]` emits (one `static` per function, reached by
//! the function and its companions): its options, the head of its keys, its counters, and the
//! registry [`stats`] reads. Counting is in `spec/count.rs`, key building in `spec/key.rs`.

pub(crate) mod count;
pub(crate) mod key;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::cache::{Cache, Inner};
use crate::codec::CodecKind;
use crate::error::Error;
use crate::log::RateLimited;
use crate::observe::FnMetrics;
use crate::schema::ShapeFn;
use crate::stats::{Counters, FunctionStats, Stats};

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
    pub(crate) stats: Counters,
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
    /// `local` functions: keys by the exact bytes of their arguments (see `spec/key.rs`).
    pub(crate) key_memo: OnceLock<key::KeyMemo>,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) metrics: FnMetrics,
}

#[derive(Debug)]
pub(crate) struct Head {
    self_ty: &'static str,
    pub(crate) identity: String,
    text: String,
}

/// Every function that has been called (or refreshed) at least once, for [`stats`].
static REGISTRY: Mutex<Vec<&'static Spec>> = Mutex::new(Vec::new());

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

impl Spec {
    /// A spec for function `name` in `module`; the rest are builder-style `const fn`s.
    pub const fn new(module: &'static str, name: &'static str, ret: &'static str) -> Spec {
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
            cache: &crate::global::GLOBAL,
            head: OnceLock::new(),
            stats: Counters::new(),
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
            key_memo: OnceLock::new(),
            metrics: FnMetrics::new(),
        }
    }
    /// `cache = STATIC`: the cache of this function (default: the global cache).
    pub const fn cache(mut self, cache: &'static Cache) -> Spec {
        self.cache = cache;
        self
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
    pub fn stats(&self) -> Stats {
        self.stats.snapshot()
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
            Some(d) => crate::key::shaped_fingerprint(&identity, self.ret, self.version, d),
            None => {
                warn_untraced(&identity, traced.error.as_deref().unwrap_or(""));
                crate::key::fingerprint(&identity, self.ret, self.version)
            }
        };
        let text = format!("{}:{prefix}:{fp}:", inner.config.namespace);
        (identity.into_owned(), text)
    }

    /// Adds this spec to the registry read by [`stats`], once.
    pub(crate) fn register(&'static self) {
        // A plain load first: every call passes here, and only the first may write.
        if !self.registered.load(Ordering::Relaxed)
            && !self.registered.swap(true, Ordering::Relaxed)
            && let Ok(mut r) = REGISTRY.lock()
        {
            r.push(self);
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

/// The one warning per function whose cached type's shape cannot be traced (a generic impl's
/// instantiations render heads of their own).
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
