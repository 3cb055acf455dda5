//! The typed handle (`Cache::get`, `set`, `evict`, `has`, `get_or_set_with`, `get_and_extend`,
//! `expire_at`, `ttl`, `set_with_tags`, `invalidate_tags` and the fail-open variants) against a real
//! redis-server and on Redis Cluster (the same test bodies, `single::` and `cluster::`), including
//! interop with cached functions; Redis being down on a single node.

mod backend;
mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant, SystemTime};

use backend::Backend;
use memo_redis::{redis_cache, Cache, Config, Error};
use memo_redis_tests::RedisServer;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: u64,
    roles: Vec<String>,
}

fn session(user: u64) -> Session {
    Session {
        user,
        roles: vec!["admin".into(), "dev".into()],
    }
}

/// The tag list keys of handle key `key` (`{ns}:tags:{slot tag}{ns}:{key}`), for assertions.
async fn tag_lists(b: &Backend, key: &str) -> Vec<String> {
    b.keys(&format!("{}:tags:*{}", b.ns(), b.key(key))).await
}

/// Milliseconds since `t`, rounded up: the most a TTL set after `t` can have dropped by (PTTL
/// lower bounds are taken from a measured instant, not from an assumed scheduling delay).
fn ms_since(t: Instant) -> i64 {
    i64::try_from(t.elapsed().as_millis()).unwrap_or(i64::MAX) + 1
}

/// Every test up to `interop_with_a_cached_function`, instantiated per backend.
macro_rules! suite {
    ($backend:ident) => {
        mod $backend {
            use super::*;


            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn full_key_rule() {
                let b = Backend::$backend("full_key_rule");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                let ns = b.ns();
                assert_eq!(CACHE.full_key("user:1").unwrap(), b.key("user:1"));
                assert_eq!(CACHE.full_key(&b.key("user:1")).unwrap(), b.key("user:1"));
                let near = format!("{ns}x:1");
                assert_eq!(CACHE.full_key(&near).unwrap(), b.key(&near));
                let bad_keys = [
                    String::new(),
                    format!("{ns}:"),
                    "tag:x".into(),
                    b.key("tag:x"),
                    format!("tags:{ns}:x"),
                ];
                for bad in &bad_keys {
                    let bad = bad.as_str();
                    assert!(
                        matches!(CACHE.full_key(bad), Err(Error::Key(_))),
                        "`{bad}` must be rejected"
                    );
                    assert!(matches!(CACHE.get::<u32>(bad).await, Err(Error::Key(_))));
                    assert!(matches!(
                        CACHE.set(bad, &1u32, None).await,
                        Err(Error::Key(_))
                    ));
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn set_get_roundtrip_with_ttls() {
                let b = Backend::$backend("set_get_roundtrip_with_ttls");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);

                assert_eq!(CACHE.get::<Session>("s:1").await.unwrap(), None);
                let set_at = Instant::now();
                CACHE
                    .set("s:1", &session(1), Some(Duration::from_secs(5)))
                    .await
                    .unwrap();
                assert_eq!(CACHE.get::<Session>("s:1").await.unwrap(), Some(session(1)));
                let ms = b.pttl(&b.key("s:1")).await;
                let floor = 5_000 - ms_since(set_at);
                assert!(
                    ms >= floor && ms <= 5_000,
                    "PTTL {ms} must be in [{floor}, 5000]"
                );
                let left = CACHE.ttl("s:1").await.unwrap().expect("exists");
                let floor = Duration::from_secs(5).saturating_sub(set_at.elapsed());
                assert!(
                    left + Duration::from_millis(1) >= floor && left <= Duration::from_secs(5),
                    "ttl {left:?} must be in [{floor:?}, 5 s]"
                );

                // `None`: the cache's default TTL (3600 s in the test configuration).
                CACHE.set("s:2", &session(2), None).await.unwrap();
                let ms = b.pttl(&b.key("s:2")).await;
                assert!(ms > 3_590_000 && ms <= 3_600_000, "default TTL, PTTL {ms}");

                // NO_EXPIRY: no TTL at all, reported back as NO_EXPIRY.
                CACHE
                    .set("s:3", &session(3), Some(Cache::NO_EXPIRY))
                    .await
                    .unwrap();
                assert_eq!(b.pttl(&b.key("s:3")).await, -1);
                assert_eq!(CACHE.ttl("s:3").await.unwrap(), Some(Cache::NO_EXPIRY));

                // Sub-millisecond TTLs round up: the entry exists briefly, then is gone.
                CACHE
                    .set("s:4", &1u8, Some(Duration::from_micros(10)))
                    .await
                    .unwrap();
                b.wait_gone(&b.key("s:4"), Duration::from_secs(5)).await;
                assert_eq!(CACHE.ttl("s:4").await.unwrap(), None);

                // Unsized values work too.
                CACHE
                    .set("s:5", "text", Some(Duration::from_secs(5)))
                    .await
                    .unwrap();
                assert_eq!(
                    CACHE.get::<String>("s:5").await.unwrap().as_deref(),
                    Some("text")
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn corrupt_foreign_and_mistyped_entries_are_errors() {
                let b = Backend::$backend("corrupt_foreign_and_mistyped_entries_are_errors");
                static CACHE: Cache = Cache::from_env();
                CACHE
                    .install(
                        b.config()
                            .max_value_bytes(1024)
                            .build()
                            .unwrap(),
                    )
                    .unwrap();
                let () = b
                    .query(redis::cmd("SET").arg(b.key("raw")).arg("not an envelope"))
                    .await;
                assert!(matches!(
                    CACHE.get::<u32>("raw").await,
                    Err(Error::Codec(_))
                ));
                assert_eq!(
                    b.raw_get(&b.key("raw")).await.as_deref(),
                    Some(&b"not an envelope"[..]),
                    "an explicit read never deletes"
                );
                assert!(CACHE.has("raw").await.unwrap(), "has sees any entry");
                assert_eq!(CACHE.get_fail_open::<u32>("raw").await, None);

                let _: u64 = b.query(redis::cmd("RPUSH").arg(b.key("list")).arg("x")).await;
                assert!(matches!(
                    CACHE.get::<u32>("list").await,
                    Err(Error::WrongType)
                ));

                CACHE.set("word", &"hello".to_string(), None).await.unwrap();
                assert!(
                    matches!(CACHE.get::<u64>("word").await, Err(Error::Codec(_))),
                    "a String read back as u64"
                );

                // Over max_value_bytes: not written.
                let big = vec![7u8; 4096];
                assert!(matches!(
                    CACHE.set("big", &big, None).await,
                    Err(Error::Codec(_))
                ));
                assert!(!CACHE.has("big").await.unwrap());
                assert!(!CACHE.set_fail_open("big", &big, None).await);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delete_and_has() {
                let b = Backend::$backend("delete_and_has");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                assert!(!CACHE.has("k").await.unwrap());
                assert!(!CACHE.evict("k").await.unwrap());
                CACHE.set("k", &5u32, None).await.unwrap();
                assert!(CACHE.has("k").await.unwrap());
                assert!(CACHE.evict("k").await.unwrap());
                assert!(!CACHE.has("k").await.unwrap());
                assert!(!b.exists(&b.key("k")).await);
                assert!(!CACHE.evict("k").await.unwrap());
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn get_or_set_with_runs_the_closure_once_for_100_concurrent_callers() {
                let b = Backend::$backend("get_or_set_with_runs_the_closure_once_for_100_concurrent_callers");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                static RUNS: AtomicU32 = AtomicU32::new(0);

                let mut tasks = Vec::new();
                let started = Instant::now();
                for _ in 0..100 {
                    tasks.push(tokio::spawn(async {
                        CACHE
                            .get_or_set_with("report", Some(Duration::from_secs(60)), || async {
                                RUNS.fetch_add(1, SeqCst);
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                session(9)
                            })
                            .await
                    }));
                }
                for t in tasks {
                    assert_eq!(t.await.unwrap().unwrap(), session(9));
                }
                assert_eq!(RUNS.load(SeqCst), 1, "one closure run for 100 callers");
                assert_eq!(CACHE.in_flight(), 0);
                let ms = b.pttl(&b.key("report")).await;
                let floor = 60_000 - ms_since(started);
                assert!(
                    ms >= floor && ms <= 60_000,
                    "stored with the ttl, PTTL {ms} (at least {floor})"
                );

                // Stored: the next call is a hit.
                let again = CACHE
                    .get_or_set_with("report", None, || async {
                        RUNS.fetch_add(1, SeqCst);
                        session(0)
                    })
                    .await
                    .unwrap();
                assert_eq!((again, RUNS.load(SeqCst)), (session(9), 1));

                // A corrupt entry counts as a miss and is overwritten.
                let () = b
                    .query(redis::cmd("SET").arg(b.key("report")).arg("garbage"))
                    .await;
                let fresh = CACHE
                    .get_or_set_with("report", None, || async { session(10) })
                    .await
                    .unwrap();
                assert_eq!(fresh, session(10));
                assert_eq!(
                    CACHE.get::<Session>("report").await.unwrap(),
                    Some(session(10))
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn try_get_or_set_with_stores_ok_only() {
                let b = Backend::$backend("try_get_or_set_with_stores_ok_only");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);

                #[derive(Debug)]
                enum AppError {
                    Db,
                    Cache(Error),
                }
                impl From<Error> for AppError {
                    fn from(e: Error) -> Self {
                        AppError::Cache(e)
                    }
                }

                let failed: Result<u32, AppError> = CACHE
                    .try_get_or_set_with("n", None, || async { Err(AppError::Db) })
                    .await;
                assert!(matches!(failed, Err(AppError::Db)));
                assert!(!CACHE.has("n").await.unwrap(), "an Err is not stored");

                let ok: Result<u32, AppError> = CACHE
                    .try_get_or_set_with("n", None, || async { Ok(41) })
                    .await;
                assert_eq!(ok.unwrap(), 41);
                let hit: Result<u32, AppError> = CACHE
                    .try_get_or_set_with("n", None, || async { Ok(0) })
                    .await;
                assert_eq!(hit.unwrap(), 41);

                let bad: Result<u32, AppError> = CACHE
                    .try_get_or_set_with("", None, || async { Ok(0) })
                    .await;
                assert!(matches!(bad, Err(AppError::Cache(Error::Key(_)))));

                // A corrupt entry that an `Err` leaves in place is removed (compare-and-delete),
                // as a cached function's miss path does: the next call does not decode it again.
                let () = b
                    .query(redis::cmd("SET").arg(b.key("bad")).arg("garbage"))
                    .await;
                let failed: Result<u32, AppError> = CACHE
                    .try_get_or_set_with("bad", None, || async { Err(AppError::Db) })
                    .await;
                assert!(matches!(failed, Err(AppError::Db)));
                assert_eq!(b.raw_get(&b.key("bad")).await, None, "corrupt entry repaired");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn get_and_extend_resets_the_ttl_upward() {
                let b = Backend::$backend("get_and_extend_resets_the_ttl_upward");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                assert_eq!(
                    CACHE
                        .get_and_extend::<u32>("missing", Duration::from_secs(60))
                        .await
                        .unwrap(),
                    None
                );
                assert!(!b.exists(&b.key("missing")).await);

                CACHE
                    .set("sess", &session(5), Some(Duration::from_secs(2)))
                    .await
                    .unwrap();
                let before = b.pttl(&b.key("sess")).await;
                assert!(before <= 2_000);
                let extended_at = Instant::now();
                let got = CACHE
                    .get_and_extend::<Session>("sess", Duration::from_secs(600))
                    .await
                    .unwrap();
                assert_eq!(got, Some(session(5)));
                let after = b.pttl(&b.key("sess")).await;
                let floor = 600_000 - ms_since(extended_at);
                assert!(
                    after >= floor && after <= 600_000,
                    "PTTL reset upward: {before} -> {after} (at least {floor})"
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expire_at_sets_an_absolute_expiry() {
                let b = Backend::$backend("expire_at_sets_an_absolute_expiry");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                let chosen = Instant::now();
                let at = SystemTime::now() + Duration::from_secs(30);
                assert!(!CACHE.expire_at("none", at).await.unwrap());

                CACHE
                    .set("daily", &1u32, Some(Cache::NO_EXPIRY))
                    .await
                    .unwrap();
                assert!(CACHE.expire_at("daily", at).await.unwrap());
                let ms = b.pttl(&b.key("daily")).await;
                // `at` is absolute: the PTTL is what is left of 30 s since it was chosen (the
                // extra millisecond: sub-millisecond parts of `at` are rounded).
                let floor = 30_000 - ms_since(chosen) - 1;
                assert!(ms >= floor && ms <= 30_000, "PTTL {ms} (at least {floor})");

                // A time in the past deletes the entry.
                assert!(CACHE
                    .expire_at("daily", SystemTime::now() - Duration::from_secs(1))
                    .await
                    .unwrap());
                assert!(!CACHE.has("daily").await.unwrap());
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn invalidate_tags_removes_its_members_only() {
                let b = Backend::$backend("invalidate_tags_removes_its_members_only");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                let ttl = Some(Duration::from_secs(60));
                let started = Instant::now();
                CACHE
                    .set_with_tags("a", &1u32, ttl, &["user:42"])
                    .await
                    .unwrap();
                CACHE
                    .set_with_tags("b", &2u32, ttl, &["user:42", "all"])
                    .await
                    .unwrap();
                CACHE
                    .set_with_tags("c", &3u32, ttl, &["user:43", "all"])
                    .await
                    .unwrap();
                let tag_ttl = b.pttl(&b.key("tag:user:42")).await;
                // Scores are wall-clock ms (PEXPIREAT): allow their rounding on top of the
                // time elapsed.
                let floor = 60_000 - ms_since(started) - 2;
                assert!(
                    tag_ttl >= floor && tag_ttl <= 61_000,
                    "the tag set expires with its newest member: {tag_ttl} (at least {floor})"
                );

                assert_eq!(CACHE.invalidate_tags(["user:42"]).await.unwrap(), 2);
                assert!(!CACHE.has("a").await.unwrap());
                assert!(!CACHE.has("b").await.unwrap());
                assert_eq!(
                    CACHE.get::<u32>("c").await.unwrap(),
                    Some(3),
                    "user:43 survives"
                );
                assert!(!b.exists(&b.key("tag:user:42")).await, "the group is gone");
                assert_eq!(CACHE.invalidate_tags(["user:42"]).await.unwrap(), 0);
                assert_eq!(CACHE.invalidate_tags([""]).await.unwrap(), 0, "the handle never writes an empty tag");

                // A plain `set` takes the entry out of its groups; `evict` too.
                CACHE
                    .set_with_tags("d", &4u32, ttl, &["user:43"])
                    .await
                    .unwrap();
                assert_eq!(tag_lists(&b, "c").await.len(), 1, "c has a tag list");
                assert_eq!(tag_lists(&b, "d").await.len(), 1);
                CACHE.set("c", &30u32, ttl).await.unwrap();
                assert!(tag_lists(&b, "c").await.is_empty(), "c's tag list is gone");
                assert!(CACHE.evict("d").await.unwrap());
                assert!(tag_lists(&b, "d").await.is_empty());
                assert_eq!(CACHE.invalidate_tags(["user:43"]).await.unwrap(), 0);
                assert_eq!(CACHE.get::<u32>("c").await.unwrap(), Some(30));

                // Re-tagging replaces the groups.
                CACHE.set_with_tags("e", &5u32, ttl, &["x"]).await.unwrap();
                CACHE.set_with_tags("e", &5u32, ttl, &["y"]).await.unwrap();
                assert_eq!(CACHE.invalidate_tags(["x"]).await.unwrap(), 0);
                assert_eq!(CACHE.invalidate_tags(["y"]).await.unwrap(), 1);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tag_set_drops_expired_members() {
                let b = Backend::$backend("tag_set_drops_expired_members");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                // One long-lived member keeps the tag set itself alive, so only pruning can shrink it.
                CACHE
                    .set_with_tags("anchor", &0u32, Some(Duration::from_secs(60)), &["burst"])
                    .await
                    .unwrap();
                const N: u32 = 2000;
                let started = Instant::now();
                for i in 0..N {
                    CACHE
                        .set_with_tags(
                            &format!("short:{i}"),
                            &i,
                            Some(Duration::from_millis(50)),
                            &["burst"],
                        )
                        .await
                        .unwrap();
                }
                let peak = b.zcard(&b.key("tag:burst")).await;
                let last = b.key(&format!("short:{}", N - 1));
                b.wait_gone(&last, Duration::from_secs(5)).await;
                // Expiry of the tag lists is lazy too; wait past the newest short member's score.
                tokio::time::sleep(Duration::from_millis(20)).await;
                CACHE
                    .set_with_tags(
                        "one-more",
                        &1u32,
                        Some(Duration::from_millis(50)),
                        &["burst"],
                    )
                    .await
                    .unwrap();
                let after = b.zcard(&b.key("tag:burst")).await;
                println!(
                    "{N} writes in {:?}: tag set peaked at {peak} members, {after} after one more write",
                    started.elapsed()
                );
                assert_eq!(
                    after, 2,
                    "the anchor and the new entry: expired members pruned"
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_sliding_entry_stays_in_its_group() {
                let b = Backend::$backend("a_sliding_entry_stays_in_its_group");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                // Long enough that the extension below lands before it on a loaded machine; the
                // waits are measured from the write, so they always pass the original expiry.
                const SHORT: Duration = Duration::from_secs(1);
                let written = Instant::now();
                CACHE
                    .set_with_tags("sess:1", &session(7), Some(SHORT), &["user:7"])
                    .await
                    .unwrap();
                let extended_at = Instant::now();
                CACHE
                    .get_and_extend::<Session>("sess:1", Duration::from_secs(60))
                    .await
                    .unwrap()
                    .expect("present");
                // Past the original expiry: another write prunes the tag set, which must keep sess:1.
                tokio::time::sleep_until((written + SHORT + Duration::from_millis(150)).into()).await;
                CACHE
                    .set_with_tags(
                        "sess:2",
                        &session(7),
                        Some(Duration::from_millis(100)),
                        &["user:7"],
                    )
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(150)).await;
                assert!(
                    b.exists(&b.key("tag:user:7")).await,
                    "the tag set lives as long as its extended member"
                );
                let ms = b.pttl(&b.key("tag:user:7")).await;
                let floor = 60_000 - ms_since(extended_at) - 2;
                assert!(
                    ms >= floor,
                    "tag set PTTL follows the extension: {ms} (at least {floor})"
                );
                assert_eq!(CACHE.invalidate_tags(["user:7"]).await.unwrap(), 1);
                assert!(!CACHE.has("sess:1").await.unwrap());

                // expire_at moves the bookkeeping too.
                let written = Instant::now();
                CACHE
                    .set_with_tags("sess:3", &session(8), Some(SHORT), &["user:8"])
                    .await
                    .unwrap();
                assert!(CACHE
                    .expire_at("sess:3", SystemTime::now() + Duration::from_secs(60))
                    .await
                    .unwrap());
                tokio::time::sleep_until((written + SHORT + Duration::from_millis(150)).into()).await;
                assert!(b.exists(&b.key("tag:user:8")).await);
                assert_eq!(CACHE.invalidate_tags(["user:8"]).await.unwrap(), 1);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn interop_with_a_cached_function() {
                let b = Backend::$backend("interop_with_a_cached_function");
                static CACHE: Cache = Cache::from_env();
                b.install(&CACHE);
                static RUNS: AtomicU32 = AtomicU32::new(0);
                #[redis_cache(cache = CACHE, ttl = 60)]
                async fn f(x: u32) -> u32 {
                    RUNS.fetch_add(1, SeqCst);
                    x * 10
                }
                #[redis_cache(cache = CACHE, ttl = 60, cache_none = true)]
                async fn maybe(x: u32) -> Option<u32> {
                    (x > 0).then_some(x)
                }

                // Written by the handle, served by the function.
                CACHE.set(&f_key(&1).unwrap(), &777u32, None).await.unwrap();
                assert_eq!(f(1).await, 777);
                assert_eq!(RUNS.load(SeqCst), 0, "the body did not run");

                // Written by the function, read by the handle.
                assert_eq!(f(2).await, 20);
                assert_eq!(RUNS.load(SeqCst), 1);
                assert_eq!(
                    CACHE.get::<u32>(&f_key(&2).unwrap()).await.unwrap(),
                    Some(20)
                );
                assert!(CACHE.has(&f_key(&2).unwrap()).await.unwrap());

                // Option<U> functions store U; a cached None reads back as Ok(None).
                assert_eq!(maybe(3).await, Some(3));
                assert_eq!(maybe(0).await, None);
                assert_eq!(
                    CACHE.get::<u32>(&maybe_key(&3).unwrap()).await.unwrap(),
                    Some(3)
                );
                assert!(CACHE.has(&maybe_key(&0).unwrap()).await.unwrap());
                assert_eq!(
                    CACHE.get::<u32>(&maybe_key(&0).unwrap()).await.unwrap(),
                    None
                );

                // get_or_set_with on the function's key fills what the function then serves.
                let v = CACHE
                    .get_or_set_with(&f_key(&3).unwrap(), None, || async { 333u32 })
                    .await
                    .unwrap();
                assert_eq!((v, f(3).await, RUNS.load(SeqCst)), (333, 333, 1));
                assert!(CACHE.evict(&f_key(&3).unwrap()).await.unwrap());
                assert_eq!(f(3).await, 30);
                assert_eq!(RUNS.load(SeqCst), 2);
            }
        }
    };
}

suite!(single);
suite!(cluster);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_explicit_methods_fail_and_fail_open_variants_do_not() {
    const OP_TIMEOUT: Duration = Duration::from_millis(300);
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            Config::builder()
                .url(server.url())
                .namespace("t")
                .op_timeout(OP_TIMEOUT)
                // No probe while the open breaker is asserted below, however slow the machine.
                .breaker_cooldown(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .unwrap();
    CACHE.set("k", &1u32, None).await.unwrap();
    assert!(CACHE.set_fail_open("k", &2u32, None).await);
    assert_eq!(CACHE.get_fail_open::<u32>("k").await, Some(2));
    server.stop();

    let started = Instant::now();
    assert!(CACHE.get::<u32>("k").await.is_err());
    assert!(CACHE.set("k", &1u32, None).await.is_err());
    assert!(CACHE.has("k").await.is_err());
    assert!(CACHE.evict("k").await.is_err());
    assert!(CACHE.ttl("k").await.is_err());
    assert!(CACHE
        .get_and_extend::<u32>("k", Duration::from_secs(1))
        .await
        .is_err());
    assert!(CACHE.expire_at("k", SystemTime::now()).await.is_err());
    assert!(CACHE.set_with_tags("k", &1u32, None, &["g"]).await.is_err());
    assert!(CACHE.invalidate_tags(["g"]).await.is_err());
    assert_eq!(CACHE.get_fail_open::<u32>("k").await, None);
    assert!(!CACHE.set_fail_open("k", &1u32, None).await);
    let v = CACHE
        .get_or_set_with("k", None, || async { 99u32 })
        .await
        .unwrap();
    assert_eq!(v, 99, "the closure's value is served while Redis is down");

    // By now the breaker is open: explicit calls fail at once, without touching the network.
    // Proof: Redis comes back (a fresh server on the same port; the 60 s cooldown keeps the
    // breaker open) and runs none of their commands.
    assert!(CACHE.breaker_open());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "every failure was bounded: {:?}",
        started.elapsed()
    );
    server.restart();
    // The harness's own readiness check is all the fresh server has run.
    let baseline = common::data_commands(&server).await;
    assert!(matches!(
        CACHE.get::<u32>("k").await,
        Err(Error::BreakerOpen)
    ));
    assert!(matches!(
        CACHE.set("k", &1u32, None).await,
        Err(Error::BreakerOpen)
    ));
    assert_eq!(CACHE.get_fail_open::<u32>("k").await, None);
    assert!(!CACHE.set_fail_open("k", &1u32, None).await);
    assert_eq!(
        CACHE
            .get_or_set_with("k", None, || async { 98u32 })
            .await
            .unwrap(),
        98
    );
    assert!(CACHE.breaker_open(), "no probe during the cooldown");
    assert_eq!(
        common::data_commands(&server).await,
        baseline,
        "no I/O while the breaker is open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_is_an_error_and_the_closure_does_not_run() {
    static CACHE: Cache = Cache::lazy(|| Config::builder().port(0).build());
    assert!(matches!(CACHE.full_key("k"), Err(Error::Config(_))));
    assert!(matches!(CACHE.get::<u32>("k").await, Err(Error::Config(_))));
    assert!(matches!(
        CACHE.set("k", &1u32, None).await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        CACHE.invalidate_tags(["g"]).await,
        Err(Error::Config(_))
    ));
    let ran = AtomicU32::new(0);
    let r = CACHE
        .get_or_set_with("k", None, || async {
            ran.fetch_add(1, SeqCst);
            1u32
        })
        .await;
    assert!(matches!(r, Err(Error::Config(_))));
    assert_eq!(ran.load(SeqCst), 0);
    assert_eq!(CACHE.get_fail_open::<u32>("k").await, None);
    assert!(!CACHE.set_fail_open("k", &1u32, None).await);
}

#[test]
fn handle_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    static CACHE: Cache = Cache::from_env();
    assert_send(CACHE.get::<Session>("k"));
    assert_send(CACHE.set("k", &session(1), None));
    assert_send(CACHE.set_with_tags("k", &session(1), None, &["t"]));
    assert_send(CACHE.get_or_set_with("k", None, || async { session(1) }));
    assert_send(CACHE.try_get_or_set_with("k", None, || async { Ok::<_, Error>(session(1)) }));
    assert_send(CACHE.get_and_extend::<Session>("k", Duration::from_secs(1)));
    assert_send(CACHE.expire_at("k", SystemTime::now()));
    assert_send(CACHE.invalidate_tags(["t"]));
    assert_send(CACHE.get_fail_open::<Session>("k"));
    assert_send(CACHE.set_fail_open("k", &session(1), None));
}
