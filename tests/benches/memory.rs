//! Memory benchmark: pushes 1M distinct keys through a `#[redis_cache]` function — every key
//! once as a miss (read, body, write), then every key once more as a hit — and reports this
//! process's resident set size (`VmRSS` of `/proc/self/status`) along the way, plus whether the
//! runtime's internal tables are empty afterwards (the single-flight table, `Cache::in_flight()`).
//!
//! ```sh
//! cargo bench -p memo-redis-tests --bench memory              # 1M keys (~1 min after the build)
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

use memo_redis::{redis_cache, Cache, Config, FnStats};
use memo_redis_tests::RedisServer;
use serde::{Deserialize, Serialize};

/// Concurrent tasks pushing keys.
const TASKS: u64 = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    tags: Vec<String>,
    score: f64,
}

fn profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("Ada Lovelace #{id}"),
        email: format!("ada.lovelace.{id}@example.com"),
        tags: vec!["admin".into(), "beta".into(), "early-adopter".into()],
        score: 4.25,
    }
}

static MEM: Cache = Cache::from_env();

#[redis_cache(cache = MEM, ttl = "10m")]
async fn mem_profile(id: u64) -> Profile {
    profile(id)
}

/// `(VmRSS, VmHWM)` in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn stats() -> FnStats {
    memo_redis::stats()
        .into_iter()
        .find(|f| f.function.ends_with("::mem_profile"))
        .map(|f| f.stats)
        .unwrap_or_default()
}

struct Checkpoint {
    label: String,
    rss: u64,
    calls: u64,
    secs: f64,
}

/// Calls `mem_profile` for ids `0..keys` with `TASKS` tasks; records a checkpoint after each count
/// in `marks` (the tasks pause at each mark so the reading is taken between calls).
async fn phase(keys: u64, marks: &[u64], name: &str, out: &mut Vec<Checkpoint>) {
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
                        let p = mem_profile(id).await;
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke")
        || std::env::var("MEMO_BENCH_SMOKE").is_ok_and(|v| v == "1")
        || !args.iter().any(|a| a == "--bench");
    let keys: u64 = std::env::var("MEMO_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 5_000 } else { 1_000_000 });
    let tenth = keys / 10;

    let server =
        RedisServer::start_with_args(["--maxmemory", "2gb", "--maxmemory-policy", "allkeys-lru"]);
    MEM.install(Config::builder().url(server.url()).build().expect("config"))
        .expect("install MEM");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut points = Vec::new();
    let (evicted, used_memory) = rt.block_on(async {
        // One call first: connection, runtime and lazily built state exist before the baseline.
        let _ = mem_profile(u64::MAX).await;
        let (rss, _) = rss_kib();
        points.push(Checkpoint {
            label: "start (runtime up, connection open, 1 call)".into(),
            rss,
            calls: 0,
            secs: 0.0,
        });
        phase(keys, &[tenth], "misses", &mut points).await;
        phase(keys, &[tenth], "hits", &mut points).await;
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
    let s = stats();
    let in_flight = MEM.in_flight();
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
        "{keys} distinct keys through `#[redis_cache]` (5-field struct), {TASKS} concurrent tasks on a \
         2-worker tokio runtime: every key once as a miss, then once as a hit\n"
    );
    println!("| point | VmRSS | Δ from start | keys/s in the phase |");
    println!("|---|---:|---:|---:|");
    let base = points[0].rss;
    for p in &points {
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
    let after_tenth = points
        .iter()
        .find(|p| p.label == format!("misses: after {tenth} keys"))
        .map_or(base, |p| p.rss);
    let end = points.last().map_or(base, |p| p.rss);
    println!(
        "\npeak VmRSS (VmHWM): {}; growth from {tenth} misses to the end ({} more calls): {:+.1} MiB",
        mib(hwm),
        2 * keys - tenth,
        (end as f64 - after_tenth as f64) / 1024.0
    );
    println!(
        "stats: {} misses, {} hits, {} errors, {} bypass (expected {keys} misses and {} hits: \
         the extra miss is the warm-up call)",
        s.misses, s.hits, s.errors, s.bypass, keys
    );
    println!(
        "single-flight table (`Cache::in_flight()`) after the run: {in_flight} ({})",
        if in_flight == 0 { "empty" } else { "NOT empty" }
    );
    println!("redis: evicted_keys {evicted}, used_memory {used_memory} (its own process)");

    assert_eq!(in_flight, 0, "the single-flight table is empty when idle");
    assert_eq!(
        s.misses,
        keys + 1,
        "every key missed once (plus the warm-up)"
    );
    assert_eq!(s.hits, keys, "every key hit once");
}
