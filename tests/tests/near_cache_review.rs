//! Near cache (`local = ...`) review: staleness bounds that must hold even when the tracking task
//! cannot run (a runtime that is not being polled, or a caller looping on local hits that never
//! yields), and read-your-writes after this process's own typed-handle `set`.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{wait_near_live, warm_local, warm_local_by};
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;

/// The operation timeout of these caches (`REDIS_SOCKET_TIMEOUT`).
const OP_TIMEOUT: Duration = Duration::from_millis(300);
/// The tracking connection's heartbeat interval (docs/near-cache.md).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Documented worst case for a link whose invalidations are not being applied: a local copy is
/// never served more than heartbeat + operation timeout past them.
const WORST: Duration = HEARTBEAT.saturating_add(OP_TIMEOUT);
/// Slack for thread scheduling on a loaded machine.
const SLACK: Duration = Duration::from_millis(250);

fn config(server: &RedisServer) -> Config {
    Config::builder()
        .url(server.url())
        .namespace("review")
        .op_timeout(OP_TIMEOUT)
        .build()
        .expect("valid config")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------------------------------------
// 1. A runtime that is not polled for a while (a sync program calling `block_on` per request):
//    the invalidation push sits unread in the socket; the next call must not serve the old copy.

static IDLE_A: Cache = Cache::from_env();
static IDLE_B: Cache = Cache::from_env();
static IDLE_VERSION: AtomicU32 = AtomicU32::new(1);

#[redis_cache(cache = IDLE_A, name = "review::idle", ttl = 300, local = "60s")]
async fn idle_a(id: u32) -> String {
    format!("{id}-v{}", IDLE_VERSION.load(SeqCst))
}

// Same identity on another cache: the same Redis key, written by "another process".
#[redis_cache(cache = IDLE_B, name = "review::idle", ttl = 300)]
async fn idle_b(id: u32) -> String {
    format!("{id}-v{}", IDLE_VERSION.load(SeqCst))
}

#[test]
fn an_unpolled_runtime_does_not_serve_an_overwritten_copy_on_its_next_call() {
    let server = RedisServer::start();
    IDLE_A.install(config(&server)).unwrap();
    IDLE_B.install(config(&server)).unwrap();
    assert_eq!(idle_a_key(&1).unwrap(), idle_b_key(&1).unwrap());

    let rt = current_thread();
    rt.block_on(async {
        assert_eq!(idle_a(1).await, "1-v1");
        wait_near_live(&IDLE_A, Duration::from_secs(5)).await;
        warm_local_by("idle", idle_a_stats, || idle_a(1)).await;
        assert_eq!(idle_a(1).await, "1-v1");
    });

    // While `rt` is idle, another client overwrites the entry.
    IDLE_VERSION.store(2, SeqCst);
    let other = current_thread();
    assert_eq!(other.block_on(idle_b_refresh(1)), "1-v2");
    let written = Instant::now();
    // The program does other (synchronous) work for longer than the documented worst case; this
    // is elapsed time of the scenario, not synchronisation.
    std::thread::sleep(WORST + SLACK);

    let got = rt.block_on(idle_a(1));
    assert_eq!(
        got,
        "1-v2",
        "the overwritten value was served {:?} after the write",
        written.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A caller on a current-thread runtime looping on local hits never yields (a local hit has no
//    `.await` that suspends), so the tracking task never runs: the copy must still stop being
//    served within the documented worst case.

static SPIN_A: Cache = Cache::from_env();
static SPIN_B: Cache = Cache::from_env();
static SPIN_VERSION: AtomicU32 = AtomicU32::new(1);

#[redis_cache(cache = SPIN_A, name = "review::spin", ttl = 300, local = "60s")]
async fn spin_a(id: u32) -> String {
    format!("{id}-v{}", SPIN_VERSION.load(SeqCst))
}

#[redis_cache(cache = SPIN_B, name = "review::spin", ttl = 300)]
async fn spin_b(id: u32) -> String {
    format!("{id}-v{}", SPIN_VERSION.load(SeqCst))
}

#[test]
fn a_caller_spinning_on_local_hits_stops_getting_an_overwritten_copy_within_the_worst_case() {
    let server = RedisServer::start();
    SPIN_A.install(config(&server)).unwrap();
    SPIN_B.install(config(&server)).unwrap();
    assert_eq!(spin_a_key(&1).unwrap(), spin_b_key(&1).unwrap());

    let rt = current_thread();
    rt.block_on(async {
        assert_eq!(spin_a(1).await, "1-v1");
        wait_near_live(&SPIN_A, Duration::from_secs(5)).await;
        warm_local_by("spin", spin_a_stats, || spin_a(1)).await;
    });

    let mut served_stale_for = Duration::ZERO;
    rt.block_on(async {
        // Write from another thread's runtime, then spin on this one without yielding.
        SPIN_VERSION.store(2, SeqCst);
        let written = std::thread::spawn(|| {
            let other = current_thread();
            assert_eq!(other.block_on(spin_b_refresh(1)), "1-v2");
            Instant::now()
        })
        .join()
        .expect("writer thread");
        let deadline = written + Duration::from_secs(3);
        loop {
            let got = spin_a(1).await;
            if got == "1-v2" {
                return;
            }
            served_stale_for = written.elapsed();
            assert!(
                Instant::now() < deadline,
                "still served {got:?} 3 s after it was overwritten"
            );
        }
    });
    assert!(
        served_stale_for <= WORST + SLACK,
        "the overwritten value was served {served_stale_for:?} after the write"
    );

    // The tier recovers once the tracking task runs again: local hits resume.
    rt.block_on(async {
        warm_local_by("spin", spin_a_stats, || spin_a(1)).await;
        assert_eq!(spin_a(1).await, "1-v2");
    });
}

// ---------------------------------------------------------------------------------------------
// 3. This process's own typed-handle `set` under a `local` function's key: the handle documents
//    that the stored value "is what that function then returns"; a call right after the `set`
//    returned must not serve the previous local copy (as after `f_evict` / `f_refresh`).

static SET_C: Cache = Cache::from_env();
static SET_VERSION: AtomicU32 = AtomicU32::new(0);

#[redis_cache(cache = SET_C, name = "review::set", ttl = 300, local = "60s")]
async fn via_handle(id: u32) -> String {
    format!("{id}-body-v{}", SET_VERSION.load(SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_right_after_this_process_sets_the_key_never_returns_the_previous_value() {
    let server = RedisServer::start();
    SET_C.install(config(&server)).unwrap();
    let key = via_handle_key(&1).unwrap();

    via_handle(1).await;
    wait_near_live(&SET_C, Duration::from_secs(5)).await;
    let mut stale = Vec::new();
    let trials = 200;
    for i in 1..=trials {
        warm_local("set", || via_handle(1)).await;
        let new = format!("1-set-{i}");
        SET_C.set(&key, &new, None).await.unwrap();
        let got = via_handle(1).await;
        if got != new {
            stale.push((i, got));
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {trials} calls right after `set` returned the previous value, e.g. {:?}",
        stale.len(),
        &stale[..stale.len().min(3)]
    );
}
