//! The core promise against real Redis, written once and run on two backends: a single
//! `redis-server` per test (`single::`) and one Redis Cluster shared by the whole binary
//! (`cluster::`, three masters and three replicas; tests keep apart by namespace). Miss runs the
//! body, hit does not, the return-type policies, methods, skipped arguments, key layout,
//! companions, codecs, tags, whole-function invalidation and named caches.

mod backend;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use backend::Backend;
use memo_redis::{redis_cache, Cache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

#[derive(Debug, PartialEq)]
struct NotSerde(&'static str);

#[derive(Debug)]
struct AppError;
type AppResult<T> = Result<T, AppError>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    lines: Vec<(String, u32)>,
    note: Option<String>,
}

struct Pool {
    name: &'static str,
}

/// The suite, instantiated once per backend.
macro_rules! suite {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn miss_then_hit_then_expiry() {
                let b = Backend::$backend("miss_then_hit_then_expiry");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                static RUNS: AtomicU32 = AtomicU32::new(0);
                // Long enough that the hit and the PTTL below come before the expiry on a loaded
                // machine (they are sequential calls, but scheduling is not guaranteed).
                #[redis_cache(cache = CACHE, ttl = "1500ms")]
                async fn user(id: u64) -> User {
                    RUNS.fetch_add(1, SeqCst);
                    User {
                        id,
                        name: format!("user-{id}"),
                        tags: vec!["a".into()],
                    }
                }

                let first = user(7).await;
                assert_eq!(RUNS.load(SeqCst), 1, "first call is a miss");
                let second = user(7).await;
                assert_eq!(RUNS.load(SeqCst), 1, "second call is a hit");
                assert_eq!(first, second);
                assert_eq!(second.name, "user-7");

                let key = user_key(&7).unwrap();
                let ttl = b.pttl(&key).await;
                assert!(ttl > 0 && ttl <= 1_500, "PTTL {ttl} must be in (0, 1500]");

                b.wait_gone(&key, Duration::from_secs(5)).await;
                assert_eq!(user(7).await, first);
                assert_eq!(RUNS.load(SeqCst), 2, "after expiry the body runs again");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ttl_forms_and_default() {
                let b = Backend::$backend("ttl_forms_and_default");
                static CACHE: Cache = Cache::from_env();
                CACHE
                    .install(
                        b.config()
                            .default_ttl(Duration::from_secs(42))
                            .build()
                            .unwrap(),
                    )
                    .unwrap();
                #[redis_cache(cache = CACHE, ttl = 90)]
                async fn secs(x: u8) -> u8 {
                    x
                }
                #[redis_cache(cache = CACHE, ttl = "5m")]
                async fn minutes(x: u8) -> u8 {
                    x
                }
                #[redis_cache(cache = CACHE)]
                async fn default_ttl(x: u8) -> u8 {
                    x
                }
                #[redis_cache(cache = CACHE, ttl = "never")]
                async fn forever(x: u8) -> u8 {
                    x
                }
                secs(1).await;
                minutes(1).await;
                default_ttl(1).await;
                forever(1).await;
                let within = |v: i64, max_ms: i64| v > max_ms - 5_000 && v <= max_ms;
                assert!(within(b.pttl(&secs_key(&1).unwrap()).await, 90_000));
                assert!(within(
                    b.pttl(&minutes_key(&1).unwrap()).await,
                    300_000
                ));
                assert!(within(
                    b.pttl(&default_ttl_key(&1).unwrap()).await,
                    42_000
                ));
                assert_eq!(b.pttl(&forever_key(&1).unwrap()).await, -1);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn option_and_result_policies() {
                let b = Backend::$backend("option_and_result_policies");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                static OPT: AtomicU32 = AtomicU32::new(0);
                static OPT_NONE: AtomicU32 = AtomicU32::new(0);
                static RES: AtomicU32 = AtomicU32::new(0);
                static RES_OPT: AtomicU32 = AtomicU32::new(0);
                static IO: AtomicU32 = AtomicU32::new(0);

                #[redis_cache(cache = CACHE, ttl = 60)]
                async fn opt(x: u32) -> Option<u32> {
                    OPT.fetch_add(1, SeqCst);
                    (x > 0).then_some(x)
                }
                #[redis_cache(cache = CACHE, ttl = 60, cache_none = true)]
                async fn opt_none(x: u32) -> Option<u32> {
                    OPT_NONE.fetch_add(1, SeqCst);
                    (x > 0).then_some(x)
                }
                #[redis_cache(cache = CACHE, ttl = 60)]
                async fn res(x: u32) -> Result<u32, NotSerde> {
                    RES.fetch_add(1, SeqCst);
                    if x == 0 {
                        Err(NotSerde("zero"))
                    } else {
                        Ok(x)
                    }
                }
                #[redis_cache(cache = CACHE, ttl = 60, cache_none = true)]
                async fn res_opt(x: u32) -> Result<Option<u32>, NotSerde> {
                    RES_OPT.fetch_add(1, SeqCst);
                    match x {
                        0 => Err(NotSerde("zero")),
                        1 => Ok(None),
                        n => Ok(Some(n)),
                    }
                }
                #[redis_cache(cache = CACHE, ttl = 60)]
                async fn io(x: u32) -> std::io::Result<u32> {
                    IO.fetch_add(1, SeqCst);
                    Ok(x)
                }

                // Option without cache_none: None is never cached, Some is.
                assert_eq!((opt(0).await, opt(0).await), (None, None));
                assert_eq!(OPT.load(SeqCst), 2);
                assert_eq!((opt(5).await, opt(5).await), (Some(5), Some(5)));
                assert_eq!(OPT.load(SeqCst), 3);

                // cache_none: a cached None reads back as a hit returning None.
                assert_eq!((opt_none(0).await, opt_none(0).await), (None, None));
                assert_eq!(OPT_NONE.load(SeqCst), 1);
                assert_eq!(
                    opt_none_peek(&0).await.unwrap(),
                    Some(None),
                    "peek sees the cached None"
                );

                // Result: only Ok is cached; E needs no serde.
                assert_eq!(res(0).await, Err(NotSerde("zero")));
                assert_eq!(res(0).await, Err(NotSerde("zero")));
                assert_eq!(RES.load(SeqCst), 2);
                assert_eq!(b.raw_get(&res_key(&0).unwrap()).await, None);
                assert_eq!((res(3).await, res(3).await), (Ok(3), Ok(3)));
                assert_eq!(RES.load(SeqCst), 3);

                // Result<Option<T>, E>: Err never, Ok(None) with cache_none, Ok(Some) always.
                assert!(res_opt(0).await.is_err());
                assert!(res_opt(0).await.is_err());
                assert_eq!(RES_OPT.load(SeqCst), 2);
                assert_eq!((res_opt(1).await, res_opt(1).await), (Ok(None), Ok(None)));
                assert_eq!(RES_OPT.load(SeqCst), 3);
                assert_eq!(
                    (res_opt(9).await, res_opt(9).await),
                    (Ok(Some(9)), Ok(Some(9)))
                );
                assert_eq!(RES_OPT.load(SeqCst), 4);

                // io::Result<T> alias.
                assert_eq!(io(4).await.unwrap(), 4);
                assert_eq!(io(4).await.unwrap(), 4);
                assert_eq!(IO.load(SeqCst), 1);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn alias_with_shape_override() {
                let b = Backend::$backend("alias_with_shape_override");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                static RUNS: AtomicU32 = AtomicU32::new(0);
                #[redis_cache(cache = CACHE, ttl = 60, shape = result)]
                async fn load(x: u32) -> AppResult<u32> {
                    RUNS.fetch_add(1, SeqCst);
                    if x == 0 {
                        Err(AppError)
                    } else {
                        Ok(x + 1)
                    }
                }
                assert!(load(0).await.is_err());
                assert!(load(0).await.is_err());
                assert_eq!(load(1).await.unwrap(), 2);
                assert_eq!(load(1).await.unwrap(), 2);
                assert_eq!(RUNS.load(SeqCst), 3, "Err twice, Ok once");
            }

            struct Service {
                org: String,
                calls: AtomicU32,
            }

            impl Service {
                #[redis_cache(cache = METHODS, ttl = 60)]
                async fn by_ref(&self, id: u64) -> String {
                    self.calls.fetch_add(1, SeqCst);
                    format!("{}:{id}", self.org)
                }

                #[redis_cache(cache = METHODS, ttl = 60)]
                async fn by_mut(&mut self, id: u64) -> u64 {
                    *self.calls.get_mut() += 1;
                    id * 10
                }

                #[redis_cache(cache = METHODS, ttl = 60)]
                async fn by_arc(self: Arc<Self>, id: u64) -> u64 {
                    self.calls.fetch_add(1, SeqCst);
                    id + 1
                }

                #[redis_cache(cache = METHODS, ttl = 60, key = "org:{self.org}:{id}")]
                async fn per_org(&self, id: u64) -> String {
                    self.calls.fetch_add(1, SeqCst);
                    format!("{}:{id}", self.org)
                }
            }

            static METHODS: Cache = Cache::from_env();

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn methods_and_self() {
                let b = Backend::$backend("methods_and_self");
                b.install(&METHODS);
                let a = Service {
                    org: "acme".into(),
                    calls: AtomicU32::new(0),
                };
                let b = Service {
                    org: "globex".into(),
                    calls: AtomicU32::new(0),
                };

                assert_eq!(a.by_ref(1).await, "acme:1");
                assert_eq!(a.by_ref(1).await, "acme:1");
                assert_eq!(a.calls.load(SeqCst), 1);
                // `self` is not part of the key: another instance hits a's entry.
                assert_eq!(b.by_ref(1).await, "acme:1");
                assert_eq!(b.calls.load(SeqCst), 0);
                assert_eq!(a.by_ref_key(&1).unwrap(), b.by_ref_key(&1).unwrap());
                assert!(
                    a.by_ref_key(&1).unwrap().contains("Service.by_ref"),
                    "default prefix names the type"
                );

                // Unless a template names a field of it.
                assert_eq!(a.per_org(1).await, "acme:1");
                assert_eq!(b.per_org(1).await, "globex:1");
                assert_eq!(a.per_org(1).await, "acme:1");
                assert_eq!(b.per_org(1).await, "globex:1");
                assert_eq!(a.calls.load(SeqCst), 2);
                assert_eq!(b.calls.load(SeqCst), 1);
                assert!(a.per_org_key(&1).unwrap().ends_with(":org:acme:1"));

                let mut m = Service {
                    org: "m".into(),
                    calls: AtomicU32::new(0),
                };
                assert_eq!(m.by_mut(3).await, 30);
                assert_eq!(m.by_mut(3).await, 30);
                assert_eq!(m.calls.load(SeqCst), 1);

                let arc = Arc::new(Service {
                    org: "arc".into(),
                    calls: AtomicU32::new(0),
                });
                assert_eq!(arc.clone().by_arc(3).await, 4);
                assert_eq!(arc.clone().by_arc(3).await, 4);
                assert_eq!(arc.calls.load(SeqCst), 1);
                assert_eq!(arc.clone().by_arc_refresh(3).await, 4);
                assert_eq!(arc.calls.load(SeqCst), 2, "refresh runs the body");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn skipped_args_and_references() {
                let b = Backend::$backend("skipped_args_and_references");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                static RUNS: AtomicU32 = AtomicU32::new(0);
                #[redis_cache(cache = CACHE, ttl = 60)]
                async fn lookup(name: &str, user: &User, #[memo(skip)] pool: &Pool) -> String {
                    RUNS.fetch_add(1, SeqCst);
                    format!("{name}/{}/{}", user.id, pool.name)
                }
                let u = User {
                    id: 1,
                    name: "n".into(),
                    tags: vec![],
                };
                let p1 = Pool { name: "primary" };
                let p2 = Pool { name: "replica" };
                assert_eq!(lookup("x", &u, &p1).await, "x/1/primary");
                assert_eq!(
                    lookup("x", &u, &p2).await,
                    "x/1/primary",
                    "skipped arg does not change the key"
                );
                assert_eq!(RUNS.load(SeqCst), 1);
                let u2 = User {
                    tags: vec!["t".into()],
                    ..u.clone()
                };
                assert_eq!(
                    lookup("x", &u2, &p2).await,
                    "x/1/replica",
                    "every field of a key arg counts"
                );
                assert_eq!(RUNS.load(SeqCst), 2);
                // The companion names the keys the calls stored under (without the skipped
                // pool), one per distinct key tuple.
                let k1 = lookup_key("x", &u).unwrap();
                let k2 = lookup_key("x", &u2).unwrap();
                assert_ne!(k1, k2, "every field of a key arg counts");
                assert!(b.raw_get(&k1).await.is_some(), "stored under {k1}");
                assert!(b.raw_get(&k2).await.is_some(), "stored under {k2}");
                assert_ne!(k1, lookup_key("y", &u).unwrap());
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn key_layout_templates_and_distinct_functions() {
                let b = Backend::$backend("key_layout_templates_and_distinct_functions");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);

                #[redis_cache(cache = CACHE, ttl = 60, prefix = "users", key = "user:{id}:{region}")]
                async fn by_template(id: u64, region: &str) -> u64 {
                    id
                }
                #[redis_cache(cache = CACHE, ttl = 60, prefix = "shared")]
                async fn first(id: u64) -> u64 {
                    id + 1
                }
                #[redis_cache(cache = CACHE, ttl = 60, prefix = "shared")]
                async fn second(id: u64) -> u64 {
                    id + 2
                }
                #[redis_cache(cache = CACHE, ttl = 60, key_fn = tenant_key)]
                async fn custom(tenant: String, id: u64) -> u64 {
                    id
                }
                fn tenant_key(tenant: &String, id: &u64) -> String {
                    format!("tenant={tenant}/{id}")
                }

                by_template(42, "eu-west").await;
                let keys = b.keys(&b.key("users:*")).await;
                assert_eq!(keys.len(), 1, "{keys:?}");
                let parts: Vec<&str> = keys[0].splitn(4, ':').collect();
                assert_eq!(parts[0], b.ns(), "namespace");
                assert_eq!(parts[1], "users", "prefix");
                assert_eq!(parts[2].len(), 12, "fingerprint");
                assert_eq!(parts[3], "user:42:eu-west", "readable template");
                assert_eq!(keys[0], by_template_key(&42, "eu-west").unwrap());

                // `:` inside an argument cannot imitate a separator.
                assert_ne!(
                    by_template_key(&1, "a:b").unwrap(),
                    by_template_key(&1, "a").unwrap()
                );

                // Same prefix, same arguments, different functions: different keys and values.
                assert_eq!((first(1).await, second(1).await), (2, 3));
                assert_eq!((first(1).await, second(1).await), (2, 3));
                assert_ne!(first_key(&1).unwrap(), second_key(&1).unwrap());
                assert_eq!(b.keys(&b.key("shared:*")).await.len(), 2);

                custom("acme".into(), 5).await;
                let k = custom_key(&"acme".to_string(), &5).unwrap();
                assert!(k.ends_with(":tenant=acme/5"), "{k}");
                assert_eq!(b.keys(&k).await, vec![k.clone()]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn changing_the_return_type_never_cross_decodes() {
                let b = Backend::$backend("changing_the_return_type_never_cross_decodes");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                // Two versions of "the same function" (same identity via `name`, same prefix), as before
                // and after a deploy that changed its return type.
                #[redis_cache(cache = CACHE, ttl = 60, name = "app::price", prefix = "price")]
                async fn price_v1(item: u32) -> u32 {
                    item * 100
                }
                #[redis_cache(cache = CACHE, ttl = 60, name = "app::price", prefix = "price")]
                async fn price_v2(item: u32) -> String {
                    format!("{}.00", item)
                }
                #[redis_cache(cache = CACHE, ttl = 60, name = "app::price", prefix = "price", version = 2)]
                async fn price_v3(item: u32) -> u32 {
                    item * 1000
                }
                assert_eq!(price_v1(3).await, 300);
                assert_eq!(price_v2(3).await, "3.00");
                assert_eq!(price_v3(3).await, 3000);
                assert_eq!(price_v1(3).await, 300);
                assert_eq!(price_v2(3).await, "3.00");
                assert_eq!(price_v3(3).await, 3000);
                let keys = [
                    price_v1_key(&3).unwrap(),
                    price_v2_key(&3).unwrap(),
                    price_v3_key(&3).unwrap(),
                ];
                assert_ne!(keys[0], keys[1], "return type is in the fingerprint");
                assert_ne!(keys[0], keys[2], "version is in the fingerprint");
                assert_eq!(b.keys(&b.key("price:*")).await.len(), 3);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn companions() {
                let b = Backend::$backend("companions");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                static RUNS: AtomicU32 = AtomicU32::new(0);
                #[redis_cache(cache = CACHE, ttl = 60)]
                async fn counter(name: String) -> (String, u32) {
                    let n = RUNS.fetch_add(1, SeqCst) + 1;
                    (name, n)
                }
                let name = "c".to_string();
                assert_eq!(
                    counter_peek(&name).await.unwrap(),
                    None,
                    "peek on a cold key"
                );
                assert_eq!(RUNS.load(SeqCst), 0, "peek never runs the body");

                assert_eq!(counter(name.clone()).await.1, 1);
                assert_eq!(counter(name.clone()).await.1, 1);
                assert_eq!(counter_peek(&name).await.unwrap(), Some((name.clone(), 1)));
                assert_eq!(RUNS.load(SeqCst), 1);

                // key: exactly the key in Redis.
                let key = counter_key(&name).unwrap();
                assert_eq!(b.keys(&b.key("*")).await, vec![key.clone()]);

                // evict, then the next call misses.
                assert!(counter_evict(&name).await.unwrap());
                assert!(
                    !counter_evict(&name).await.unwrap(),
                    "nothing left to evict"
                );
                assert_eq!(counter(name.clone()).await.1, 2);

                // refresh: runs the body and stores its result; the next call hits it.
                assert_eq!(counter_refresh(name.clone()).await.1, 3);
                assert_eq!(counter(name.clone()).await.1, 3);
                assert_eq!(RUNS.load(SeqCst), 3);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn codecs_round_trip_and_json_is_readable() {
                let b = Backend::$backend("codecs_round_trip_and_json_is_readable");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                static RUNS: AtomicU32 = AtomicU32::new(0);
                fn order(id: u64) -> Order {
                    RUNS.fetch_add(1, SeqCst);
                    Order {
                        id,
                        lines: vec![("apple".into(), 3)],
                        note: Some("n".into()),
                    }
                }
                #[redis_cache(cache = CACHE, ttl = 60, codec = bincode)]
                async fn with_bincode(id: u64) -> Order {
                    order(id)
                }
                #[redis_cache(cache = CACHE, ttl = 60, codec = json)]
                async fn with_json(id: u64) -> Order {
                    order(id)
                }
                #[redis_cache(cache = CACHE, ttl = 60, codec = msgpack)]
                async fn with_msgpack(id: u64) -> Order {
                    order(id)
                }
                #[redis_cache(cache = CACHE, ttl = 60, codec = postcard)]
                async fn with_postcard(id: u64) -> Order {
                    order(id)
                }
                let want = Order {
                    id: 1,
                    lines: vec![("apple".into(), 3)],
                    note: Some("n".into()),
                };
                for _ in 0..2 {
                    assert_eq!(with_bincode(1).await, want);
                    assert_eq!(with_json(1).await, want);
                    assert_eq!(with_msgpack(1).await, want);
                    assert_eq!(with_postcard(1).await, want);
                }
                assert_eq!(RUNS.load(SeqCst), 4, "each codec: one miss, one hit");
                let json = b.raw_get(&with_json_key(&1).unwrap()).await.unwrap();
                assert_eq!(&json[..2], b"MR");
                let payload: serde_json::Value =
                    serde_json::from_slice(&json[memo_redis::envelope::HEADER_LEN..]).unwrap();
                assert_eq!(payload["lines"][0][0], "apple");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tags_and_whole_function_invalidation() {
                let b = Backend::$backend("tags_and_whole_function_invalidation");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                static RUNS: AtomicU32 = AtomicU32::new(0);
                #[redis_cache(cache = CACHE, ttl = 60, tags = ["user:{id}", "profiles"])]
                async fn profile(id: u64) -> String {
                    RUNS.fetch_add(1, SeqCst);
                    format!("profile-{id}")
                }
                #[redis_cache(cache = CACHE, ttl = 60, key = "orders:{user}:{page}", tags = ["user:{user}"])]
                async fn orders(user: u64, page: u32) -> Vec<u32> {
                    vec![page; 2]
                }
                #[redis_cache(cache = CACHE, ttl = 60)]
                async fn square(x: u64) -> u64 {
                    x * x
                }
                for id in 0..30 {
                    profile(id).await;
                    square(id).await;
                }
                orders(7, 1).await;
                orders(7, 2).await;
                orders(8, 1).await;
                assert_eq!(RUNS.load(SeqCst), 30);

                // One tag: that user's profile and orders, nothing else.
                assert_eq!(CACHE.invalidate_tags(["user:7"]).await.unwrap(), 3);
                assert_eq!(b.raw_get(&profile_key(&7).unwrap()).await, None);
                assert_eq!(b.raw_get(&orders_key(&7, &2).unwrap()).await, None);
                assert!(b.raw_get(&orders_key(&8, &1).unwrap()).await.is_some());
                assert!(b.raw_get(&profile_key(&8).unwrap()).await.is_some());
                assert!(!b.exists(&b.key("tag:user:7")).await, "the tag set is gone");
                profile(7).await;
                assert_eq!(RUNS.load(SeqCst), 31, "recomputed after invalidation");

                // A tag shared by every profile, wherever their keys live.
                assert_eq!(CACHE.invalidate_tags(["profiles"]).await.unwrap(), 30);
                let prefix = profile_key(&0).unwrap();
                let prefix = &prefix[..prefix.rfind(':').unwrap()];
                assert!(b.keys(&format!("{prefix}:*")).await.is_empty());
                assert!(b.raw_get(&orders_key(&8, &1).unwrap()).await.is_some());

                // Whole function: every argument tuple of `square`, no other function.
                assert_eq!(square_invalidate_all().await.unwrap(), 30);
                let head = square_key(&0).unwrap();
                let head = &head[..head.rfind(':').unwrap()];
                assert!(b.keys(&format!("{head}:*")).await.is_empty());
                assert!(b.raw_get(&orders_key(&8, &1).unwrap()).await.is_some());

                // Pattern, scoped to the namespace.
                assert_eq!(CACHE.invalidate_pattern("orders:*").await.unwrap(), 0, "template keys sit under the prefix");
                let n = CACHE.invalidate_pattern("*orders:8:*").await.unwrap();
                assert_eq!(n, 1);
                let left: Vec<String> = b.keys(&b.key("*")).await;
                assert!(
                    left.iter().all(|k| k.starts_with(&b.key("tag:"))),
                    "only tag sets with expired members may be left: {left:?}"
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn named_caches_coexist() {
                let b = Backend::$backend("named_caches_coexist");
                // Two caches in one process: another namespace, another default TTL, each function pointed
                // at its own.
                static SESSIONS: Cache = Cache::from_env();
                static REPORTS: Cache = Cache::from_env();
                SESSIONS
                    .install(
                        b.config()
                            .namespace(format!("{}_sessions", b.ns()))
                            .default_ttl(Duration::from_secs(30))
                            .build()
                            .unwrap(),
                    )
                    .unwrap();
                REPORTS
                    .install(
                        b.config()
                            .namespace(format!("{}_reports", b.ns()))
                            .default_ttl(Duration::ZERO)
                            .build()
                            .unwrap(),
                    )
                    .unwrap();
                static RUNS: AtomicU32 = AtomicU32::new(0);
                #[redis_cache(cache = SESSIONS)]
                async fn session(id: u64) -> String {
                    RUNS.fetch_add(1, SeqCst);
                    format!("s{id}")
                }
                #[redis_cache(cache = REPORTS)]
                async fn report(id: u64) -> String {
                    RUNS.fetch_add(1, SeqCst);
                    format!("r{id}")
                }
                for _ in 0..2 {
                    assert_eq!(session(1).await, "s1");
                    assert_eq!(report(1).await, "r1");
                }
                assert_eq!(RUNS.load(SeqCst), 2, "each cache: one miss, one hit");
                let sk = session_key(&1).unwrap();
                let rk = report_key(&1).unwrap();
                assert!(sk.starts_with(&format!("{}_sessions:", b.ns())), "{sk}");
                assert!(rk.starts_with(&format!("{}_reports:", b.ns())), "{rk}");
                let ttl = b.pttl(&sk).await;
                assert!(ttl > 25_000 && ttl <= 30_000, "{ttl}");
                assert_eq!(b.pttl(&rk).await, -1, "REPORTS: no expiry");

                // Invalidating one cache leaves the other alone.
                assert_eq!(SESSIONS.invalidate_pattern("*").await.unwrap(), 1);
                assert!(!b.exists(&sk).await);
                assert!(b.exists(&rk).await);
                assert_eq!(report(1).await, "r1");
                assert_eq!(RUNS.load(SeqCst), 2);
            }

        }
    };
}

suite!(single);
suite!(cluster);
