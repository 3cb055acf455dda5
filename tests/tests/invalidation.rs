//! Invalidation: tags across functions (with bounded bookkeeping), whole-function and pattern
//! invalidation, and invalidation events reaching other processes.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::install;
use memo_redis::{redis_cache, Cache, Config, Event};
use memo_redis_tests::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_remove_entries_of_every_function_carrying_them() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static PROFILE: AtomicU32 = AtomicU32::new(0);
    static ORDERS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, tags = ["user:{id}", "profiles"])]
    async fn profile(id: u64) -> String {
        PROFILE.fetch_add(1, SeqCst);
        format!("profile-{id}")
    }
    #[redis_cache(cache = CACHE, ttl = 60, key = "orders:{user}:{page}", tags = ["user:{user}"])]
    async fn orders(user: u64, page: u32) -> Vec<u32> {
        ORDERS.fetch_add(1, SeqCst);
        vec![page; user as usize]
    }
    profile(42).await;
    profile(43).await;
    orders(42, 1).await;
    orders(42, 2).await;
    orders(43, 1).await;
    assert_eq!((PROFILE.load(SeqCst), ORDERS.load(SeqCst)), (2, 3));

    let n = CACHE.invalidate_tags(["user:42"]).await.unwrap();
    assert_eq!(n, 3, "profile(42), orders(42, 1), orders(42, 2)");
    assert_eq!(
        common::raw_get(&server, &profile_key(&42).unwrap()).await,
        None
    );
    assert_eq!(
        common::raw_get(&server, &orders_key(&42, &1).unwrap()).await,
        None
    );
    assert!(
        common::raw_get(&server, &profile_key(&43).unwrap())
            .await
            .is_some(),
        "user:43 survives"
    );
    assert!(common::raw_get(&server, &orders_key(&43, &1).unwrap())
        .await
        .is_some());

    // Recomputed after invalidation; untouched entries still hit.
    profile(42).await;
    profile(43).await;
    orders(43, 1).await;
    assert_eq!((PROFILE.load(SeqCst), ORDERS.load(SeqCst)), (3, 3));

    // A tag shared by all profiles.
    assert_eq!(CACHE.invalidate_tags(["profiles"]).await.unwrap(), 2);
    assert_eq!(
        server.keys("t:tag:profiles").await.len(),
        0,
        "the tag set is gone too"
    );
}

/// Regression (issue 12, point 4): tag values were percent-escaped like key values, so
/// `tags = ["region:{region}"]` with `"eu-west"` stored `region:eu%2Dwest` and
/// `invalidate_tags(["region:eu-west"])` returned `Ok(0)`, leaving the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_match_as_the_caller_writes_them_whatever_the_characters() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, key = "day:{region}", tags = ["region:{region}"])]
    async fn by_region(region: String) -> u32 {
        RUNS.fetch_add(1, SeqCst)
    }
    let values = [
        "eu-west",
        "a:b",
        "50%",
        "new york",
        "日本",
        "{x}",
        "}{",
        "%2D",
        "2026-11-25",
        "x.y_z~",
    ];
    for v in values {
        by_region(v.to_string()).await;
    }
    assert_eq!(RUNS.load(SeqCst), values.len() as u32);
    // Keys stay readable for common characters.
    assert!(by_region_key(&"2026-11-25".to_string())
        .unwrap()
        .ends_with(":day:2026-11-25"));
    assert!(by_region_key(&"x.y_z~".to_string())
        .unwrap()
        .ends_with(":day:x.y_z~"));

    for (i, v) in values.iter().enumerate() {
        let tag = format!("region:{v}");
        assert_eq!(CACHE.invalidate_tags([&tag]).await.unwrap(), 1, "{tag}");
        let key = by_region_key(&v.to_string()).unwrap();
        assert_eq!(common::raw_get(&server, &key).await, None, "{tag}");
        // Every other value's entry is still there.
        for w in &values[i + 1..] {
            let key = by_region_key(&w.to_string()).unwrap();
            assert!(
                common::raw_get(&server, &key).await.is_some(),
                "{tag} took {w}"
            );
        }
    }
    let before = RUNS.load(SeqCst);
    by_region("eu-west".into()).await;
    assert_eq!(
        RUNS.load(SeqCst),
        before + 1,
        "recomputed after invalidation"
    );

    // `invalidate_tags` and the typed handle name groups the same way.
    CACHE
        .set_with_tags("extra", &1u32, None, &["region:eu-west"])
        .await
        .unwrap();
    assert_eq!(CACHE.invalidate_tags(["region:eu-west"]).await.unwrap(), 2);
    assert_eq!(CACHE.get::<u32>("extra").await.unwrap(), None);
    by_region("eu-west".into()).await;
    assert_eq!(RUNS.load(SeqCst), before + 2);

    // A tag longer than a key field may be is named by its digest on both sides.
    let long = "l".repeat(300);
    by_region(long.clone()).await;
    assert_eq!(
        CACHE
            .invalidate_tags([format!("region:{long}")])
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_sets_do_not_keep_dead_members() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    #[redis_cache(cache = CACHE, ttl = "100ms", tags = ["hot"])]
    async fn short(x: u32) -> u32 {
        x
    }
    const WRITES: u32 = 100_000;
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..16u32 {
        handles.push(tokio::spawn(async move {
            for x in (t..WRITES).step_by(16) {
                short(x).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut c = server.conn().await;
    // One more write under the tag right before reading it back: the set's expiry then follows
    // that write, measured from here, rather than from a burst that ended at an unknown time.
    let last_write = Instant::now();
    short(WRITES).await;
    let (members, pttl): (u64, i64) = redis::pipe()
        .cmd("ZCARD")
        .arg("t:tag:hot")
        .cmd("PTTL")
        .arg("t:tag:hot")
        .query_async(&mut c)
        .await
        .unwrap();
    let since_last_write = last_write.elapsed();
    println!(
        "tag bookkeeping: {WRITES} writes of 100 ms entries under one tag in {:?} -> tag set holds {members} members, PTTL {pttl} ms",
        started.elapsed()
    );
    assert!(
        members < u64::from(WRITES) / 10,
        "the tag set kept {members} members for {WRITES} short-lived writes"
    );
    // Alive with at most the newest member's 100 ms left; or already gone if more than 100 ms
    // passed since that write (a stalled machine), but never without an expiry.
    assert!(
        (pttl > 0 || (pttl == -2 && since_last_write >= Duration::from_millis(100)))
            && pttl <= 100,
        "the tag set expires with its newest member: PTTL {pttl}, {since_last_write:?} after the last write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_all_removes_one_function_only() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    #[redis_cache(cache = CACHE, ttl = 60, prefix = "same")]
    async fn a(x: u32) -> u32 {
        x
    }
    #[redis_cache(cache = CACHE, ttl = 60, prefix = "same")]
    async fn b(x: u32) -> u32 {
        x
    }
    for x in 0..50 {
        a(x).await;
        b(x).await;
    }
    assert_eq!(a_invalidate_all().await.unwrap(), 50);
    for x in 0..50 {
        assert_eq!(common::raw_get(&server, &a_key(&x).unwrap()).await, None);
        assert!(common::raw_get(&server, &b_key(&x).unwrap())
            .await
            .is_some());
    }
    assert_eq!(server.keys("t:same:*").await.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_invalidation_deletes_exactly_the_matching_keys() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let mut c = server.conn().await;
    // 100k keys: 40k match, 60k do not (another user, another namespace).
    for chunk in 0..100u32 {
        let mut pipe = redis::pipe();
        for i in 0..1000u32 {
            let n = chunk * 1000 + i;
            let key = match n % 5 {
                0 | 1 => format!("t:users:abc:user:42:{n}"),
                2 | 3 => format!("t:users:abc:user:43:{n}"),
                _ => format!("other:users:abc:user:42:{n}"),
            };
            pipe.cmd("SET").arg(key).arg(n).ignore();
        }
        let () = pipe.query_async(&mut c).await.unwrap();
    }
    let started = Instant::now();
    let n = CACHE.invalidate_pattern("users:*:user:42:*").await.unwrap();
    println!(
        "pattern invalidation: {n} of 100000 keys deleted in {:?}",
        started.elapsed()
    );
    assert_eq!(n, 40_000);
    let size: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, 60_000);
    assert_eq!(server.keys("t:users:*:user:42:*").await.len(), 0);
    assert_eq!(
        server.keys("other:*").await.len(),
        20_000,
        "outside the namespace: untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_events_reach_other_processes_and_survive_restarts() {
    let server = RedisServer::start();
    // Two caches on one namespace stand for two processes.
    static PROCESS_A: Cache = Cache::from_env();
    static PROCESS_B: Cache = Cache::from_env();
    let config = || {
        Config::builder()
            .url(server.url())
            .namespace("ev")
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    PROCESS_A.install(config()).unwrap();
    PROCESS_B.install(config()).unwrap();
    #[redis_cache(cache = PROCESS_B, ttl = 60)]
    async fn f(x: u32) -> u32 {
        x
    }
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&seen);
    PROCESS_A
        .subscribe(move |e| sink.lock().unwrap().push(e.clone()))
        .await
        .expect("subscribed");
    let wait_for = |want: Event| {
        let seen = Arc::clone(&seen);
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !seen.lock().unwrap().contains(&want) {
                assert!(
                    Instant::now() < deadline,
                    "never received {want:?}: {:?}",
                    seen.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };

    f(1).await;
    f_evict(&1).await.unwrap();
    wait_for(Event::Keys(vec![f_key(&1).unwrap()])).await;
    PROCESS_B.invalidate_tags(["t1"]).await.unwrap();
    wait_for(Event::Tags(vec!["t1".into()])).await;
    PROCESS_B.publish("hello").await.unwrap();
    wait_for(Event::Custom("hello".into())).await;

    // The subscriber resubscribes after the server restarts.
    server.kill();
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let msg = format!("after-restart-{n}");
        // Publishing before A has resubscribed is lost (pub/sub has no history): retry.
        let _ = PROCESS_B.publish(msg.clone()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if seen.lock().unwrap().contains(&Event::Custom(msg)) {
            break;
        }
        assert!(Instant::now() < deadline, "no event after restart");
    }
}
