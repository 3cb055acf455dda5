//! Memory benchmark: pushes 1M distinct keys through a `#[redis_cache]` function — every key
//! once as a miss (read, body, write), then every key once more as a hit — and reports this
//! process's resident set size (`VmRSS` of `/proc/self/status`) along the way, plus whether the
//! runtime's internal tables are empty afterwards (the single-flight table, `Cache::in_flight()`).
//! Then the same for a near-cache function (`local = "60s"`, its own `Cache`), whose in-process
//! tier is bounded by `local_max_bytes` (default 64 MiB): RSS may grow by that bound, no more.
//!
//! ```sh
//! cargo bench -p memo-redis-tests --bench memory              # 1M keys, twice (~35 s after the build)
//! cargo bench -p memo-redis-tests --bench memory -- --smoke   # 5k keys, for CI
//! MEMO_BENCH_KEYS=200000 cargo bench -p memo-redis-tests --bench memory   # another count
//! ```
//!
//! Redis is a real `redis-server` from the test harness with room for every entry (`maxmemory
//! 2gb`, `allkeys-lru`, entries with a 10-minute TTL): its memory is its own process's, not
//! measured here, and an eviction would show up as a miss in the hit phase (checked).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;

mod common;
use common::{profile, Profile};

/// Concurrent tasks pushing keys.
const TASKS: u64 = 64;

static MEM: Cache = Cache::from_env();

#[redis_cache(cache = MEM, ttl = "10m")]
async fn mem_profile(id: u64) -> Profile {
    profile(id)
}

static MEM_NEAR: Cache = Cache::from_env();

#[redis_cache(cache = MEM_NEAR, ttl = "10m", local = "60s")]
async fn near_profile(id: u64) -> Profile {
    profile(id)
}

/// The function a phase calls.
#[derive(Clone, Copy)]
enum Which {
    Plain,
    Near,
}

impl Which {
    async fn call(self, id: u64) -> Profile {
        match self {
            Which::Plain => mem_profile(id).await,
            Which::Near => near_profile(id).await,
        }
    }
}

/// `(VmRSS, VmHWM)` in KiB.
fn rss_kib() -> (u64, u64) {
    let field = |name| memo_redis_tests::proc_status_kib(name).unwrap_or(0);
    (field("VmRSS"), field("VmHWM"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

struct Checkpoint {
    label: String,
    rss: u64,
    calls: u64,
    secs: f64,
}

/// Calls `mem_profile` for ids `0..keys` with `TASKS` tasks; records a checkpoint after each count
/// in `marks` (the tasks pause at each mark so the reading is taken between calls).
async fn phase(which: Which, keys: u64, marks: &[u64], name: &str, out: &mut Vec<Checkpoint>) {
    let mut from = 0;
    let started = Instant::now();
    for &mark in marks.iter().chain(std::iter::once(&keys)) {
        let mark = mark.min(keys);
        if mark <= from {
            continue;
        }
        let next = Arc::new(AtomicU64::new(from));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let next = Arc::clone(&next);
                tokio::spawn(async move {
                    loop {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        if id >= mark {
                            break;
                        }
                        let p = which.call(id).await;
                        assert_eq!(p.id, id, "a wrong value for key {id}");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("a task panicked");
        }
        from = mark;
        out.push(Checkpoint {
            label: format!("{name}: after {mark} keys"),
            rss: rss_kib().0,
            calls: mark,
            secs: started.elapsed().as_secs_f64(),
        });
    }
}

fn main() {
    let smoke = common::smoke();
    let keys: u64 = std::env::var("MEMO_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 5_000 } else { 1_000_000 });
    let tenth = keys / 10;

    let server =
        RedisServer::start_with_args(["--maxmemory", "2gb", "--maxmemory-policy", "allkeys-lru"]);
    MEM.install(Config::builder().url(server.url()).build().expect("config"))
        .expect("install MEM");
    MEM_NEAR
        .install(
            Config::builder()
                .url(server.url())
                .namespace("memnear")
                .build()
                .expect("config"),
        )
        .expect("install MEM_NEAR");
    let local_max = MEM_NEAR.config().map_or(0, |c| c.local_max_bytes());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut points = Vec::new();
    let mut near_points = Vec::new();
    let (evicted, used_memory) = rt.block_on(async {
        // One call first: connection, runtime and lazily built state exist before the baseline.
        let _ = mem_profile(u64::MAX).await;
        points.push(Checkpoint {
            label: "start (runtime up, connection open, 1 call)".into(),
            rss: rss_kib().0,
            calls: 0,
            secs: 0.0,
        });
        phase(Which::Plain, keys, &[tenth], "misses", &mut points).await;
        phase(Which::Plain, keys, &[tenth], "hits", &mut points).await;

        // The near-cache function: wait for its tracking connection, so hits fill the tier.
        let _ = near_profile(u64::MAX).await;
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !MEM_NEAR.near_cache().is_some_and(|s| s.live) {
            assert!(Instant::now() < deadline, "near cache not live within 10 s");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        near_points.push(Checkpoint {
            label: "near: start (tracking live, 1 call)".into(),
            rss: rss_kib().0,
            calls: 0,
            secs: 0.0,
        });
        phase(Which::Near, keys, &[tenth], "near misses", &mut near_points).await;
        phase(Which::Near, keys, &[tenth], "near hits", &mut near_points).await;

        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("conn");
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await
            .expect("INFO");
        let mem: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .expect("INFO");
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or("?")
                .trim()
                .to_string()
        };
        (
            field(&info, "evicted_keys:"),
            field(&mem, "used_memory_human:"),
        )
    });
    let s = mem_profile_stats();
    let ns = near_profile_stats();
    let tier = MEM_NEAR.near_cache();
    let in_flight = MEM.in_flight() + MEM_NEAR.in_flight();
    let (_, hwm) = rss_kib();
    drop(rt);
    drop(server);

    println!(
        "# memo-redis memory benchmark ({})\n",
        if smoke {
            "SMOKE run: small counts"
        } else {
            "full run"
        }
    );
    println!(
        "{keys} distinct keys through `#[redis_cache]` (5-field struct), {TASKS} concurrent tasks \
         on a 2-worker tokio runtime: every key once as a miss, then once as a hit; then the same \
         through a `local = \"60s\"` function (near cache bounded by {})\n",
        mib(local_max as u64 / 1024)
    );
    println!("| point | VmRSS | Δ from start | keys/s in the phase |");
    println!("|---|---:|---:|---:|");
    let base = points[0].rss;
    for p in points.iter().chain(&near_points) {
        let rate = if p.secs > 0.0 {
            format!("{:.0}", p.calls as f64 / p.secs)
        } else {
            "—".into()
        };
        println!(
            "| {} | {} | {:+.1} MiB | {rate} |",
            p.label,
            mib(p.rss),
            (p.rss as f64 - base as f64) / 1024.0
        );
    }
    let rss_at = |v: &[Checkpoint], label: &str| v.iter().find(|p| p.label == label).map(|p| p.rss);
    let after_tenth = rss_at(&points, &format!("misses: after {tenth} keys")).unwrap_or(base);
    let plain_end = points.last().map_or(base, |p| p.rss);
    let near_start = near_points.first().map_or(plain_end, |p| p.rss);
    let near_end = near_points.last().map_or(near_start, |p| p.rss);
    println!(
        "\nplain function: growth from {tenth} misses to the end of its hits ({} more calls): \
         {:+.1} MiB",
        2 * keys - tenth,
        (plain_end as f64 - after_tenth as f64) / 1024.0
    );
    println!(
        "near-cache function: growth over its {} calls: {:+.1} MiB; tier at the end: {tier:?} \
         (bound {} bytes)",
        2 * keys,
        (near_end as f64 - near_start as f64) / 1024.0,
        local_max
    );
    println!("peak VmRSS (VmHWM): {}", mib(hwm));
    println!(
        "stats: plain {} misses, {} hits, {} errors, {} bypass; near {} misses, {} hits ({} \
         local), {} errors (expected {keys} misses + 1 warm-up and {keys} hits each)",
        s.misses, s.hits, s.errors, s.bypass, ns.misses, ns.hits, ns.local_hits, ns.errors
    );
    println!(
        "single-flight tables (`Cache::in_flight()`) after the run: {in_flight} ({})",
        if in_flight == 0 { "empty" } else { "NOT empty" }
    );
    println!("redis: evicted_keys {evicted}, used_memory {used_memory} (its own process)");

    assert_eq!(in_flight, 0, "the single-flight tables are empty when idle");
    assert_eq!(
        s.misses,
        keys + 1,
        "every key missed once (plus the warm-up)"
    );
    assert_eq!(s.hits, keys, "every key hit once");
    assert_eq!(
        ns.misses,
        keys + 1,
        "every near key missed once (plus the warm-up)"
    );
    assert_eq!(ns.hits, keys, "every near key hit once");
    if let Some(t) = tier {
        assert!(
            t.bytes <= local_max as u64,
            "the tier stays within its bound"
        );
    }
}
