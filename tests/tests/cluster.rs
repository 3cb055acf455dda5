//! Redis Cluster (`REDIS_CLUSTER=true`) against a real local cluster of six nodes (three masters,
//! one replica each): the core memoization behaviours, keys spread over every master,
//! invalidation reaching every master, tags, events, and a master failover under load.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memo_redis::envelope::{FORMAT_VERSION, MAGIC};
use memo_redis::{redis_cache, Cache, Config, Event};
use memo_redis_tests::RedisCluster;
use redis::cluster_async::ClusterConnection;

fn config(cluster: &RedisCluster, op_timeout: Duration) -> Config {
    Config::builder()
        .cluster(true)
        .url(cluster.url())
        .namespace("t")
        .op_timeout(op_timeout)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("valid cluster config")
}

/// A cluster-aware connection for assertions (routes each key to its master).
async fn conn(cluster: &RedisCluster) -> ClusterConnection {
    let nodes: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| format!("redis://{}", n.addr()))
        .collect();
    redis::cluster::ClusterClient::new(nodes)
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("cluster connection")
}

async fn raw_get(c: &mut ClusterConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query_async(c)
        .await
        .expect("GET")
}

/// Keys matching `pattern` on every master (SCAN per master), with the per-master counts.
async fn keys_per_master(cluster: &RedisCluster, pattern: &str) -> (Vec<String>, Vec<usize>) {
    let mut all = Vec::new();
    let mut counts = Vec::new();
    for m in cluster.masters() {
        let k = m.keys(pattern).await;
        counts.push(k.len());
        all.extend(k);
    }
    all.sort();
    (all, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memoization_invalidation_tags_and_events_on_a_cluster() {
    let cluster = RedisCluster::start();
    assert_eq!(cluster.masters().len(), 3);
    static CACHE: Cache = Cache::from_env();
    // A 2 s operation timeout: this test counts body runs and stored keys exactly (10k writes
    // from 16 tasks), so one operation timing out on a loaded 2-core machine running six nodes
    // would fail it with nothing wrong. Timeouts themselves are tested in `fail_open.rs`.
    CACHE
        .install(config(&cluster, Duration::from_secs(2)))
        .unwrap();
    let mut c = conn(&cluster).await;

    // Miss, then hit.
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn user(id: u64) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("user-{id}")
    }
    for id in 0..20 {
        assert_eq!(user(id).await, format!("user-{id}"));
    }
    assert_eq!(RUNS.load(SeqCst), 20);
    for id in 0..20 {
        assert_eq!(user(id).await, format!("user-{id}"));
    }
    assert_eq!(RUNS.load(SeqCst), 20, "second round is all hits");

    // Option / Result policies.
    static OPT: AtomicU32 = AtomicU32::new(0);
    static RES: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn opt(x: u32) -> Option<u32> {
        OPT.fetch_add(1, SeqCst);
        (x > 0).then_some(x)
    }
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn res(x: u32) -> Result<u32, String> {
        RES.fetch_add(1, SeqCst);
        if x == 0 {
            Err("zero".into())
        } else {
            Ok(x)
        }
    }
    assert_eq!((opt(0).await, opt(0).await), (None, None));
    assert_eq!((opt(5).await, opt(5).await), (Some(5), Some(5)));
    assert_eq!(OPT.load(SeqCst), 3, "None is not cached, Some is");
    assert!(res(0).await.is_err() && res(0).await.is_err());
    assert_eq!((res(3).await, res(3).await), (Ok(3), Ok(3)));
    assert_eq!(RES.load(SeqCst), 3, "Err is not cached, Ok is");
    assert_eq!(raw_get(&mut c, &res_key(&0).unwrap()).await, None);

    // Template keys, visible with SCAN on the master that holds them.
    #[redis_cache(cache = CACHE, ttl = 60, prefix = "users", key = "user:{id}:{region}")]
    async fn by_template(id: u64, region: &str) -> u64 {
        id
    }
    by_template(42, "eu-west").await;
    let (keys, _) = keys_per_master(&cluster, "t:users:*").await;
    assert_eq!(keys, vec![by_template_key(&42, "eu-west").unwrap()]);
    assert!(keys[0].ends_with(":user:42:eu-west"), "{keys:?}");

    // Companions.
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn counter(name: String) -> (String, u32) {
        (name, COUNTER.fetch_add(1, SeqCst) + 1)
    }
    let name = "c".to_string();
    assert_eq!(counter_peek(&name).await.unwrap(), None);
    assert_eq!(counter(name.clone()).await.1, 1);
    assert_eq!(counter(name.clone()).await.1, 1);
    assert_eq!(counter_peek(&name).await.unwrap(), Some((name.clone(), 1)));
    assert!(raw_get(&mut c, &counter_key(&name).unwrap())
        .await
        .is_some());
    assert!(counter_evict(&name).await.unwrap());
    assert!(!counter_evict(&name).await.unwrap());
    assert_eq!(counter(name.clone()).await.1, 2);
    assert_eq!(counter_refresh(name.clone()).await.1, 3);
    assert_eq!(counter(name.clone()).await.1, 3);

    // A corrupt entry is recomputed and overwritten; a foreign type is repaired.
    static WORD: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn word(x: u32) -> String {
        WORD.fetch_add(1, SeqCst);
        format!("word {x}")
    }
    let wk = word_key(&1).unwrap();
    let () = redis::cmd("SET")
        .arg(&wk)
        .arg(b"#garbage".as_slice())
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(word(1).await, "word 1");
    let repaired = raw_get(&mut c, &wk).await.expect("overwritten");
    assert!(repaired[0..2] == MAGIC && repaired[2] == FORMAT_VERSION);
    assert_eq!(word(1).await, "word 1");
    assert_eq!(WORD.load(SeqCst), 1);
    let wk2 = word_key(&2).unwrap();
    let _: u64 = redis::cmd("RPUSH")
        .arg(&wk2)
        .arg("foreign")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(word(2).await, "word 2");
    assert_eq!(word(2).await, "word 2");

    // 10k distinct calls spread over all three masters.
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn spread(x: u32) -> u32 {
        x * 2 + 1
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..16u32)
        .map(|t| {
            tokio::spawn(async move {
                for x in (t..10_000).step_by(16) {
                    assert_eq!(spread(x).await, x * 2 + 1);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (keys, counts) = keys_per_master(&cluster, "t:cluster.spread:*").await;
    println!(
        "10k calls in {:?}; keys per master {counts:?}",
        started.elapsed()
    );
    assert_eq!(keys.len(), 10_000);
    assert_eq!(counts.len(), 3);
    assert!(counts.iter().all(|n| *n > 2_500), "{counts:?}");

    // Events: subscribe (one node), then invalidations published through the cluster.
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&seen);
    CACHE
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

    // invalidate_all reaches every master.
    assert_eq!(spread_invalidate_all().await.unwrap(), 10_000);
    let (keys, _) = keys_per_master(&cluster, "t:cluster.spread:*").await;
    assert!(keys.is_empty(), "{} spread keys left", keys.len());
    assert_eq!(user(1).await, "user-1");
    assert_eq!(RUNS.load(SeqCst), 20, "other functions untouched");

    // Pattern invalidation reaches every master.
    let n = CACHE.invalidate_pattern("cluster.user:*").await.unwrap();
    assert_eq!(n, 20);
    let (keys, _) = keys_per_master(&cluster, "t:cluster.user:*").await;
    assert!(keys.is_empty(), "{keys:?}");
    wait_for(Event::Pattern("t:cluster.user:*".into())).await;

    // Tags: tag sets and entries in different slots.
    static PROFILE: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, tags = ["user:{id}", "profiles"])]
    async fn profile(id: u64) -> String {
        PROFILE.fetch_add(1, SeqCst);
        format!("profile-{id}")
    }
    #[redis_cache(cache = CACHE, ttl = 60, key = "orders:{user}:{page}", tags = ["user:{user}"])]
    async fn orders(user: u64, page: u32) -> Vec<u32> {
        vec![page; user as usize % 5]
    }
    for id in 0..50 {
        profile(id).await;
    }
    orders(42, 1).await;
    orders(42, 2).await;
    orders(43, 1).await;
    assert_eq!(CACHE.invalidate_tags(["user:42"]).await.unwrap(), 3);
    assert_eq!(raw_get(&mut c, &profile_key(&42).unwrap()).await, None);
    assert_eq!(raw_get(&mut c, &orders_key(&42, &2).unwrap()).await, None);
    assert!(raw_get(&mut c, &orders_key(&43, &1).unwrap())
        .await
        .is_some());
    assert!(raw_get(&mut c, &profile_key(&43).unwrap()).await.is_some());
    wait_for(Event::Tags(vec!["user:42".into()])).await;
    assert_eq!(CACHE.invalidate_tags(["profiles"]).await.unwrap(), 49);
    let (keys, _) = keys_per_master(&cluster, "t:cluster.profile:*").await;
    assert!(keys.is_empty(), "{keys:?}");
    let (keys, _) = keys_per_master(&cluster, "t:tag:profiles").await;
    assert!(keys.is_empty(), "the tag set is gone too");
    profile(1).await;
    assert_eq!(PROFILE.load(SeqCst), 51, "recomputed after invalidation");

    // Tags are used as written: a `{..}` in one is a hash tag choosing its set's slot, and `-`,
    // `:`, spaces or unicode are matched as the caller writes them.
    #[redis_cache(cache = CACHE, ttl = 60, key = "in:{region}", tags = ["region:{region}"])]
    async fn in_region(region: String) -> String {
        region
    }
    for region in ["{eu}-west", "eu-west", "us {east}", "日本"] {
        in_region(region.to_string()).await;
    }
    for region in ["{eu}-west", "eu-west", "us {east}", "日本"] {
        let tag = format!("region:{region}");
        assert_eq!(CACHE.invalidate_tags([&tag]).await.unwrap(), 1, "{tag}");
        let key = in_region_key(&region.to_string()).unwrap();
        assert_eq!(raw_get(&mut c, &key).await, None, "{tag}");
    }

    CACHE.publish("hello").await.unwrap();
    wait_for(Event::Custom("hello".into())).await;

    // The typed handle works on the cluster too: its entry and tag list share a slot (a hash tag
    // in the list key). Every operation is covered per backend in typed_handle.rs.
    for i in 0..10 {
        let key = format!("h{i}");
        CACHE
            .set_with_tags(&key, &i, None, &["handle"])
            .await
            .unwrap();
        assert_eq!(CACHE.get::<u32>(&key).await.unwrap(), Some(i));
    }
    assert!(CACHE.evict("h0").await.unwrap());
    assert_eq!(CACHE.invalidate_tags(["handle"]).await.unwrap(), 9);
    let before = PROFILE.load(SeqCst);
    profile(1).await;
    assert_eq!(PROFILE.load(SeqCst), before, "still a hit: breaker closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_failover_under_load_never_fails_a_call() {
    let cluster = RedisCluster::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(&cluster, Duration::from_millis(500)))
        .unwrap();
    static BODY: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn square(x: u64) -> u64 {
        BODY.fetch_add(1, SeqCst);
        x * x
    }
    // Warm up 1000 keys.
    for x in 0..1000 {
        assert_eq!(square(x).await, x * x);
    }
    let victim_key = square_key(&7).unwrap();
    let slot = cluster.slot_of(&victim_key);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            let stop = Arc::clone(&stop);
            let calls = Arc::clone(&calls);
            tokio::spawn(async move {
                let mut x = t;
                while !stop.load(SeqCst) {
                    // Never an error, never a wrong value (fail-open).
                    assert_eq!(square(x).await, x * x);
                    calls.fetch_add(1, SeqCst);
                    x = (x + 64) % 1000;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Watch the (per-cache) breaker and the function's outcomes through the failover.
    let square_stats = || {
        memo_redis::stats()
            .into_iter()
            .find(|f| f.function.ends_with("square"))
            .expect("square registered")
            .stats
    };
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn({
        let watching = Arc::clone(&watching);
        async move {
            let (mut samples, mut open, mut openings, mut was_open) = (0u64, 0u64, 0u64, false);
            while watching.load(SeqCst) {
                let now_open = CACHE.breaker_open();
                samples += 1;
                open += u64::from(now_open);
                openings += u64::from(now_open && !was_open);
                was_open = now_open;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (samples, open, openings)
        }
    });
    let before_kill = square_stats();
    let killed_at = Instant::now();
    let killed = cluster.kill_master_for_slot(slot);
    let cluster = Arc::new(cluster);
    let promoted = tokio::task::spawn_blocking({
        let cluster = Arc::clone(&cluster);
        move || cluster.wait_for_failover(slot, killed, Duration::from_secs(20))
    })
    .await
    .unwrap();
    println!(
        "master {killed} killed; replica {promoted} promoted after {:?}",
        killed_at.elapsed()
    );

    // Hits resume on the slot range: the entry is readable again (peek never runs the body).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert_eq!(square(7).await, 49);
        let peeked = square_peek(&7).await;
        if matches!(peeked, Ok(Some(49))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no hits on slot {slot} after failover: {peeked:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bypass = killed_at.elapsed();
    let during = square_stats();
    watching.store(false, SeqCst);
    let (samples, open, openings) = sampler.await.unwrap();
    println!(
        "during the window: breaker open in {:.0}% of {samples} samples ({openings} openings); \
         hits {}, misses {}, bypassed {}, errors {}",
        100.0 * open as f64 / samples.max(1) as f64,
        during.hits - before_kill.hits,
        during.misses - before_kill.misses,
        during.bypass - before_kill.bypass,
        during.errors - before_kill.errors,
    );
    stop.store(true, SeqCst);
    for t in tasks {
        t.await.expect("no call failed or returned a wrong value");
    }
    println!(
        "bypass window (kill to hits on the failed-over slot): {bypass:?}; {} calls under load",
        calls.load(SeqCst)
    );
    // The whole cache serves hits again.
    let before = BODY.load(SeqCst);
    for x in 0..100 {
        assert_eq!(square(x).await, x * x);
    }
    for x in 0..100 {
        assert_eq!(square(x).await, x * x);
    }
    assert!(
        BODY.load(SeqCst) - before <= 100,
        "the second round must be hits"
    );
}
