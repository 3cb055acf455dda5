//! Documented promises that had no test, each against a real redis-server:
//!
//! - a connection that died while idle (Redis restarted) is retried within the call, so the first
//!   call after Redis is back can already be a hit (`store/mod.rs` `run_op`);
//! - `Cache::shutdown` waits for background refreshes, including their write;
//! - nested template fields (`{self.org.id}`, `{pair.0}`) render at run time, with escaping.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use common::{eventually, install, raw_get, stats_of};
use memo_redis::{redis_cache, Cache};
use memo_redis_tests::RedisServer;
use tokio::sync::Semaphore;

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_call_after_redis_restarts_can_hit() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 300)]
    async fn durable(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 5
    }

    assert_eq!(durable(3).await, 15);
    let key = durable_key(&3).unwrap();
    let entry = raw_get(&server, &key).await.expect("stored");

    // Redis restarts (the cache's idle connection dies with it); the data set comes back as a
    // restored snapshot would bring it: the same entry under the same key.
    server.restart();
    let mut c = server.conn().await;
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(&entry)
        .query_async(&mut c)
        .await
        .unwrap();

    let before = stats_of("durable");
    assert_eq!(durable(3).await, 15);
    let after = stats_of("durable");
    assert_eq!(
        RUNS.load(SeqCst),
        1,
        "the first call after the restart is a hit"
    );
    assert_eq!(
        (after.hits - before.hits, after.errors - before.errors),
        (1, 0),
        "{after:?}"
    );
    assert!(!CACHE.breaker_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_background_refresh_and_its_write() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static VERSION: AtomicU64 = AtomicU64::new(0);
    static REFRESHING: AtomicU32 = AtomicU32::new(0);
    /// Holds the background refresh's body until the test releases it.
    static GATE: Semaphore = Semaphore::const_new(0);
    static RELEASED: AtomicBool = AtomicBool::new(false);
    #[redis_cache(cache = CACHE, ttl = "200ms", stale = "60s")]
    async fn versioned(x: u64) -> u64 {
        let v = VERSION.fetch_add(1, SeqCst) + 1;
        if v > 1 {
            REFRESHING.fetch_add(1, SeqCst);
            let _permit = GATE.acquire().await.expect("gate open");
        }
        x * 100 + v
    }

    assert_eq!(versioned(1).await, 101);
    let key = versioned_key(&1).unwrap();
    // Stale once the 200 ms TTL has passed (PX is ttl + stale).
    eventually(DEADLINE, "the entry goes stale", || async {
        common::pttl(&server, &key).await < 60_000
    })
    .await;
    assert_eq!(versioned(1).await, 101, "the stale value, refresh started");
    eventually(DEADLINE, "the refresh body runs", || async {
        REFRESHING.load(SeqCst) == 1
    })
    .await;

    let shutdown = tokio::spawn(async {
        let done = CACHE.shutdown(DEADLINE).await;
        (done, RELEASED.load(SeqCst))
    });
    // Not a timing proof: whatever the scheduling, `shutdown` must not have returned while the
    // body is held; it is then checked to have returned only after the release.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown returned during a refresh"
    );
    RELEASED.store(true, SeqCst);
    GATE.add_permits(1);
    let (done, released_before) = shutdown.await.unwrap();
    assert!(done, "background work finished within the timeout");
    assert!(released_before, "shutdown returned only after the refresh");
    // The refresh's write happened before shutdown closed the connection: v2 is stored.
    let entry = raw_get(&server, &key).await.expect("stored");
    assert_eq!(
        entry[entry.len() - 1],
        102,
        "the refreshed value (bincode 102)"
    );
    assert_eq!(stats_of("versioned").refreshes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_background_work_still_running_at_its_deadline() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static VERSION: AtomicU64 = AtomicU64::new(0);
    static REFRESHING: AtomicU32 = AtomicU32::new(0);
    static GATE: Semaphore = Semaphore::const_new(0);
    #[redis_cache(cache = CACHE, ttl = "200ms", stale = "60s")]
    async fn stuck(x: u64) -> u64 {
        let v = VERSION.fetch_add(1, SeqCst) + 1;
        if v > 1 {
            REFRESHING.fetch_add(1, SeqCst);
            let _permit = GATE.acquire().await.expect("gate open");
        }
        x + v
    }

    assert_eq!(stuck(1).await, 2);
    let key = stuck_key(&1).unwrap();
    eventually(DEADLINE, "the entry goes stale", || async {
        common::pttl(&server, &key).await < 60_000
    })
    .await;
    assert_eq!(stuck(1).await, 2);
    eventually(DEADLINE, "the refresh body runs", || async {
        REFRESHING.load(SeqCst) == 1
    })
    .await;
    assert!(
        !CACHE.shutdown(Duration::from_millis(50)).await,
        "a refresh still running at the deadline is reported"
    );
    GATE.add_permits(1);
}

struct Org {
    id: u64,
    name: String,
}

struct Tenant {
    org: Org,
}

static TEMPLATES: Cache = Cache::from_env();
static TEMPLATE_RUNS: AtomicU32 = AtomicU32::new(0);

impl Tenant {
    #[redis_cache(cache = TEMPLATES, ttl = 60, key = "org:{self.org.id}:{self.org.name}:{page}")]
    async fn page(&self, page: u32) -> String {
        TEMPLATE_RUNS.fetch_add(1, SeqCst);
        format!("{}-{page}", self.org.name)
    }
}

#[redis_cache(cache = TEMPLATES, ttl = 60, key = "pair:{pair.0}:{pair.1}")]
async fn pair_sum(pair: (u32, String)) -> usize {
    TEMPLATE_RUNS.fetch_add(1, SeqCst);
    pair.0 as usize + pair.1.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_template_fields_render_at_run_time() {
    let server = RedisServer::start();
    install(&TEMPLATES, &server);
    let acme = Tenant {
        org: Org {
            id: 42,
            name: "a:b c".into(),
        },
    };

    assert_eq!(acme.page(3).await, "a:b c-3");
    let key = acme.page_key(&3).unwrap();
    assert!(
        key.ends_with(":org:42:a%3Ab%20c:3"),
        "self.org.id and self.org.name, escaped: {key}"
    );
    assert!(raw_get(&server, &key).await.is_some(), "stored under {key}");
    assert_eq!(acme.page(3).await, "a:b c-3");
    assert_eq!(TEMPLATE_RUNS.load(SeqCst), 1, "the second call hits");
    // Another receiver state is another key.
    let other = Tenant {
        org: Org {
            id: 43,
            name: "a:b c".into(),
        },
    };
    assert_ne!(other.page_key(&3).unwrap(), key);

    let pair = (7, "x:y".to_string());
    assert_eq!(pair_sum(pair.clone()).await, 10);
    let key = pair_sum_key(&pair).unwrap();
    assert!(key.ends_with(":pair:7:x%3Ay"), "pair.0 and pair.1: {key}");
    assert!(raw_get(&server, &key).await.is_some(), "stored under {key}");
    assert_eq!(pair_sum(pair).await, 10);
    assert_eq!(TEMPLATE_RUNS.load(SeqCst), 2, "the second call hits");
}
