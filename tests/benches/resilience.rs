//! Resilience benchmark: what the cache costs when Redis is gone, how long calls wait when Redis
//! hangs, and what a hit costs next to a raw redis-rs `GET`. One run prints markdown tables.
//!
//! ```sh
//! cargo bench -p memo-redis-tests --bench resilience              # full run
//! cargo bench -p memo-redis-tests --bench resilience -- --smoke   # tiny counts, for CI
//! ```
//!
//! Smoke mode is also selected by `MEMO_BENCH_SMOKE=1`, and when the binary is run without the
//! `--bench` flag that `cargo bench` passes (e.g. by `cargo test --benches`), so a test run never
//! spends the full run's time here.
//!
//! 1. **Breaker-open bypass**: a cached function whose cache points at a port nothing listens on,
//!    with its breaker forced open (and a one-hour cooldown, so no probe happens), against the
//!    same body called directly. Both sides run as a loop of awaits inside one `block_on` of a
//!    current-thread runtime per batch; the median batch is reported.
//! 2. **Blackhole**: a cache pointed at a listener that accepts and never answers (op and connect
//!    timeout 100 ms, breaker threshold 5): 50 sequential calls, then 64 concurrent tasks.
//! 3. **Hit vs raw GET**: hits on a live `redis-server` against a redis-rs `ConnectionManager`
//!    `GET` of the same key (the same stored bytes), in alternating rounds on the same runtime.
//! 4. **Herd behind a failing leader**: 20 concurrent callers of one cold key whose body takes
//!    100 ms and panics, returns `Err` or returns `None` (no `cache_none`), with and without
//!    `lock`: the wall time until the last caller has its result (median of the rounds).

use std::hint::black_box;
use std::time::{Duration, Instant};

use memo_redis::{redis_cache, Cache, Config, Stats};
use memo_redis_tests::{cpu_model, free_port_url, loadavg, Blackhole, RedisServer};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

mod common;

/// Blackhole scenario settings (also printed next to the results).
const HOLE_TIMEOUT: Duration = Duration::from_millis(100);
const HOLE_THRESHOLD: u32 = 5;
const HOLE_CALLS: usize = 50;
const HOLE_TASKS: usize = 64;
/// Target for the added latency of a bypassed call.
const BYPASS_TARGET_NS: f64 = 1000.0;

/// Iteration counts of one run.
struct Plan {
    smoke: bool,
    bypass_batches: usize,
    bypass_calls: u64,
    hit_calls: usize,
    hit_rounds: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let smoke = common::smoke();
        if smoke {
            Plan {
                smoke,
                bypass_batches: 3,
                bypass_calls: 2_000,
                hit_calls: 200,
                hit_rounds: 2,
            }
        } else {
            Plan {
                smoke,
                bypass_batches: 15,
                bypass_calls: 200_000,
                hit_calls: 2_000,
                hit_rounds: 4,
            }
        }
    }
}

// --- the functions under test ---------------------------------------------------------------

/// The trivial body shared by the direct and the cached function.
#[inline(always)]
fn work(x: u64) -> u64 {
    black_box(x)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
}

async fn direct(x: u64) -> u64 {
    work(x)
}

static DEAD: Cache = Cache::from_env();

#[redis_cache(cache = DEAD, ttl = 60)]
async fn bypassed(x: u64) -> u64 {
    work(x)
}

static HOLE_SEQ: Cache = Cache::from_env();

#[redis_cache(cache = HOLE_SEQ, ttl = 60)]
async fn hole_seq(x: u64) -> u64 {
    work(x)
}

static HOLE_CONC: Cache = Cache::from_env();

#[redis_cache(cache = HOLE_CONC, ttl = 60)]
async fn hole_conc(x: u64) -> u64 {
    work(x)
}

/// A small, typical cached record (≈ 80 bytes of bincode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
}

fn profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("user-{id}"),
        tags: vec!["alpha".into(), "beta".into(), "gamma".into()],
        score: 4.25,
    }
}

static LIVE: Cache = Cache::from_env();

#[redis_cache(cache = LIVE, ttl = "1h")]
async fn live_profile(id: u64) -> Profile {
    profile(id)
}

/// Herd scenario settings.
const HERD_CALLERS: usize = 20;
const HERD_BODY: Duration = Duration::from_millis(100);

static HERD: Cache = Cache::from_env();

#[redis_cache(cache = HERD, ttl = 60)]
async fn herd_panic(x: u64) -> u64 {
    tokio::time::sleep(HERD_BODY).await;
    panic!("bench: the body panics, x = {x}");
}

#[redis_cache(cache = HERD, ttl = 60, lock = true)]
async fn herd_panic_locked(x: u64) -> u64 {
    tokio::time::sleep(HERD_BODY).await;
    panic!("bench: the body panics, x = {x}");
}

#[redis_cache(cache = HERD, ttl = 60)]
async fn herd_err(x: u64) -> Result<u64, String> {
    tokio::time::sleep(HERD_BODY).await;
    Err(format!("down for {x}"))
}

#[redis_cache(cache = HERD, ttl = 60, lock = true)]
async fn herd_err_locked(x: u64) -> Result<u64, String> {
    tokio::time::sleep(HERD_BODY).await;
    Err(format!("down for {x}"))
}

#[redis_cache(cache = HERD, ttl = 60)]
async fn herd_none(x: u64) -> Option<u64> {
    tokio::time::sleep(HERD_BODY).await;
    (x == u64::MAX).then_some(x)
}

#[redis_cache(cache = HERD, ttl = 60, lock = true)]
async fn herd_none_locked(x: u64) -> Option<u64> {
    tokio::time::sleep(HERD_BODY).await;
    (x == u64::MAX).then_some(x)
}

/// Median herd wall time per scenario.
struct HerdResult {
    rows: Vec<(&'static str, Duration)>,
}

fn bench_herd(plan: &Plan, server: &RedisServer) -> HerdResult {
    HERD.install(Config::builder().url(server.url()).build().expect("config"))
        .expect("install HERD");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("multi-thread runtime");
    let rounds = if plan.smoke { 1 } else { 5 };
    // Twenty panics per round would fill the report with panic messages.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let rows = rt.block_on(async {
        // Connected before the first herd.
        let _ = herd_none(u64::MAX).await;
        let mut rows = Vec::new();
        let mut arg = 0u64;
        macro_rules! scenario {
            ($name:expr, $f:ident) => {{
                let mut walls = Vec::with_capacity(rounds);
                for _ in 0..rounds {
                    arg += 1;
                    let x = arg;
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..HERD_CALLERS).map(|_| tokio::spawn($f(x))).collect();
                    for t in tasks {
                        let _ = black_box(t.await);
                    }
                    walls.push(started.elapsed());
                }
                walls.sort();
                rows.push(($name, walls[walls.len() / 2]));
            }};
        }
        scenario!("body panics", herd_panic);
        scenario!("body panics, `lock = true`", herd_panic_locked);
        scenario!("body returns `Err`", herd_err);
        scenario!("body returns `Err`, `lock = true`", herd_err_locked);
        scenario!("body returns `None` (no `cache_none`)", herd_none);
        scenario!("body returns `None`, `lock = true`", herd_none_locked);
        rows
    });
    std::panic::set_hook(hook);
    HerdResult { rows }
}

// --- helpers --------------------------------------------------------------------------------

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread runtime")
}

fn delta(after: Stats, before: Stats) -> Stats {
    let mut d = after;
    d.hits -= before.hits;
    d.misses -= before.misses;
    d.bypass -= before.bypass;
    d.errors -= before.errors;
    d.skipped_too_large -= before.skipped_too_large;
    d
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn fmt_dur(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

// --- 1. breaker-open bypass -------------------------------------------------------------------

struct BypassResult {
    direct_ns: Vec<f64>,
    cached_ns: Vec<f64>,
    calls: u64,
    all_bypassed: bool,
}

fn bench_bypass(plan: &Plan) -> BypassResult {
    DEAD.install(
        Config::builder()
            .url(free_port_url())
            .breaker_cooldown(Duration::from_secs(3600))
            .build()
            .expect("config"),
    )
    .expect("install DEAD");
    let rt = runtime();
    rt.block_on(async {
        let mut tries = 0;
        while !DEAD.breaker_open() {
            tries += 1;
            assert!(tries <= 100, "breaker still closed after {tries} calls");
            assert_eq!(bypassed(tries).await, work(tries));
        }
        assert_eq!(bypassed(7).await, direct(7).await);
    });

    let n = plan.bypass_calls;
    let run_direct = |rt: &Runtime| {
        rt.block_on(async {
            let started = Instant::now();
            for i in 0..n {
                black_box(direct(black_box(i)).await);
            }
            started.elapsed().as_nanos() as f64 / n as f64
        })
    };
    let run_cached = |rt: &Runtime| {
        rt.block_on(async {
            let started = Instant::now();
            for i in 0..n {
                black_box(bypassed(black_box(i)).await);
            }
            started.elapsed().as_nanos() as f64 / n as f64
        })
    };
    // Warm-up (caches, branch predictors, the key head's OnceLock), not recorded.
    run_direct(&rt);
    run_cached(&rt);

    let before = bypassed_stats();
    let (mut direct_ns, mut cached_ns) = (Vec::new(), Vec::new());
    for batch in 0..plan.bypass_batches {
        // Alternate which side goes first so drift does not favour one.
        if batch % 2 == 0 {
            direct_ns.push(run_direct(&rt));
            cached_ns.push(run_cached(&rt));
        } else {
            cached_ns.push(run_cached(&rt));
            direct_ns.push(run_direct(&rt));
        }
    }
    let d = delta(bypassed_stats(), before);
    let calls = n * plan.bypass_batches as u64;
    BypassResult {
        direct_ns,
        cached_ns,
        calls,
        all_bypassed: d.bypass == calls && d.calls() == calls && DEAD.breaker_open(),
    }
}

// --- 2. blackhole -----------------------------------------------------------------------------

struct HoleResult {
    label: String,
    latencies: Vec<Duration>,
    stats: Stats,
    wall: Duration,
    accepted: usize,
}

fn hole_config(url: String) -> Config {
    Config::builder()
        .url(url)
        .op_timeout(HOLE_TIMEOUT)
        .connect_timeout(HOLE_TIMEOUT)
        .breaker_threshold(HOLE_THRESHOLD)
        .build()
        .expect("config")
}

fn bench_hole_sequential() -> HoleResult {
    let hole = Blackhole::start();
    HOLE_SEQ
        .install(hole_config(hole.url()))
        .expect("install HOLE_SEQ");
    let rt = runtime();
    let before = hole_seq_stats();
    let started = Instant::now();
    let latencies = rt.block_on(async {
        let mut out = Vec::with_capacity(HOLE_CALLS);
        for i in 0..HOLE_CALLS as u64 {
            let t = Instant::now();
            let v = hole_seq(i).await;
            out.push(t.elapsed());
            assert_eq!(v, work(i), "call {i} returned a wrong value");
        }
        out
    });
    let wall = started.elapsed();
    HoleResult {
        label: format!("sequential, {HOLE_CALLS} calls"),
        latencies,
        stats: delta(hole_seq_stats(), before),
        wall,
        accepted: hole.accepted(),
    }
}

fn bench_hole_concurrent() -> HoleResult {
    let hole = Blackhole::start();
    HOLE_CONC
        .install(hole_config(hole.url()))
        .expect("install HOLE_CONC");
    let rt = runtime();
    let before = hole_conc_stats();
    let started = Instant::now();
    let latencies = rt.block_on(async {
        let tasks: Vec<_> = (0..HOLE_TASKS as u64)
            .map(|t| {
                tokio::spawn(async move {
                    let mut out = Vec::with_capacity(HOLE_CALLS);
                    for i in 0..HOLE_CALLS as u64 {
                        let x = t * 1_000 + i;
                        let s = Instant::now();
                        let v = hole_conc(x).await;
                        out.push(s.elapsed());
                        assert_eq!(v, work(x), "task {t}, call {i} returned a wrong value");
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::with_capacity(HOLE_TASKS * HOLE_CALLS);
        for task in tasks {
            all.extend(task.await.expect("a calling task panicked"));
        }
        all
    });
    let wall = started.elapsed();
    HoleResult {
        label: format!("{HOLE_TASKS} concurrent tasks × {HOLE_CALLS} calls"),
        latencies,
        stats: delta(hole_conc_stats(), before),
        wall,
        accepted: hole.accepted(),
    }
}

// --- 3. hit vs raw GET ------------------------------------------------------------------------

struct HitResult {
    ours: Vec<Duration>,
    raw: Vec<Duration>,
    stored_bytes: usize,
    all_hits: bool,
    redis_version: String,
}

fn bench_hits(plan: &Plan, server: &RedisServer) -> HitResult {
    LIVE.install(Config::builder().url(server.url()).build().expect("config"))
        .expect("install LIVE");
    let rt = runtime();
    rt.block_on(async {
        const ID: u64 = 42;
        let key = live_profile_key(&ID).expect("key");
        // Prime: one miss stores the entry.
        assert_eq!(live_profile(ID).await, profile(ID));
        assert_eq!(
            live_profile_peek(&ID).await.expect("peek"),
            Some(profile(ID))
        );

        let client = redis::Client::open(server.url()).expect("client");
        let mut raw = redis::aio::ConnectionManager::new(client)
            .await
            .expect("raw connection");
        let stored: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .expect("raw GET");
        assert!(
            stored.starts_with(b"MR"),
            "the raw GET reads the cache entry"
        );
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut raw)
            .await
            .expect("INFO");
        let redis_version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_string();

        // Warm-up of both paths.
        for _ in 0..50 {
            black_box(live_profile(ID).await);
            let _: Vec<u8> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut raw)
                .await
                .expect("raw GET");
        }

        let before = live_profile_stats();
        let per_round = plan.hit_calls / plan.hit_rounds;
        let mut ours = Vec::with_capacity(plan.hit_calls);
        let mut raws = Vec::with_capacity(plan.hit_calls);
        for round in 0..plan.hit_rounds {
            for side in [round % 2, 1 - round % 2] {
                for _ in 0..per_round {
                    let t = Instant::now();
                    if side == 0 {
                        black_box(live_profile(black_box(ID)).await);
                        ours.push(t.elapsed());
                    } else {
                        let bytes: Vec<u8> = redis::cmd("GET")
                            .arg(black_box(&key))
                            .query_async(&mut raw)
                            .await
                            .expect("raw GET");
                        raws.push(t.elapsed());
                        black_box(bytes);
                    }
                }
            }
        }
        let d = delta(live_profile_stats(), before);
        HitResult {
            all_hits: d.hits == ours.len() as u64 && d.calls() == d.hits,
            ours,
            raw: raws,
            stored_bytes: stored.len(),
            redis_version,
        }
    })
}

// --- report -----------------------------------------------------------------------------------

fn main() {
    let plan = Plan::from_env();
    let load_start = loadavg();
    let started = Instant::now();

    let bypass = bench_bypass(&plan);
    let seq = bench_hole_sequential();
    let conc = bench_hole_concurrent();
    let server = RedisServer::start();
    let hits = bench_hits(&plan, &server);
    let herd = bench_herd(&plan, &server);
    drop(server);

    println!(
        "# memo-redis resilience benchmark ({})\n",
        if plan.smoke {
            "SMOKE run: tiny counts, numbers are not meaningful"
        } else {
            "full run"
        }
    );
    println!(
        "machine: {} CPUs ({}), redis-server {}, load average {} at start, {} at end; \
         total {:.1} s\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        hits.redis_version,
        load_start,
        loadavg(),
        started.elapsed().as_secs_f64()
    );

    // 1.
    let mut d = bypass.direct_ns.clone();
    let mut c = bypass.cached_ns.clone();
    let (d_med, c_med) = (median(&mut d), median(&mut c));
    let added = c_med - d_med;
    println!(
        "## 1. Breaker open: bypass cost ({} batches × {} calls, median batch; current-thread runtime)\n",
        plan.bypass_batches, plan.bypass_calls
    );
    println!("| path | ns/call (median) | fastest batch | slowest batch |");
    println!("|---|---:|---:|---:|");
    println!(
        "| body called directly | {d_med:.1} | {:.1} | {:.1} |",
        d[0],
        d[d.len() - 1]
    );
    println!(
        "| `#[redis_cache]`, breaker open (dead server) | {c_med:.1} | {:.1} | {:.1} |",
        c[0],
        c[c.len() - 1]
    );
    println!(
        "| **added latency** | **{added:.1}** | target ≤ {BYPASS_TARGET_NS:.0} ns | {} |",
        if added <= BYPASS_TARGET_NS {
            "target met"
        } else {
            "target NOT met"
        }
    );
    println!(
        "\nall {} measured cached calls counted as `bypass` in stats: {}\n",
        bypass.calls,
        if bypass.all_bypassed { "yes" } else { "NO" }
    );

    // 2.
    println!(
        "## 2. Blackhole (accepts, never answers): op_timeout {} ms, connect_timeout {} ms, \
         breaker threshold {}, default cooldown\n",
        HOLE_TIMEOUT.as_millis(),
        HOLE_TIMEOUT.as_millis(),
        HOLE_THRESHOLD
    );
    println!(
        "| scenario | calls | worst | p50 | p99 | waited (timed out) | bypassed (breaker open) | \
         configured timeout | wall time | connections accepted |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in [&seq, &conc] {
        let mut l = r.latencies.clone();
        l.sort();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} ms | {} | {} |",
            r.label,
            l.len(),
            fmt_dur(l[l.len() - 1]),
            fmt_dur(pct(&l, 50.0)),
            fmt_dur(pct(&l, 99.0)),
            r.stats.errors,
            r.stats.bypass,
            HOLE_TIMEOUT.as_millis(),
            fmt_dur(r.wall),
            r.accepted
        );
    }
    let worst = seq
        .latencies
        .iter()
        .chain(&conc.latencies)
        .max()
        .copied()
        .unwrap_or_default();
    println!(
        "\nworst call / configured timeout: {:.2}× (hits or misses, which would be wrong here: {})\n",
        worst.as_secs_f64() / HOLE_TIMEOUT.as_secs_f64(),
        seq.stats.hits + seq.stats.misses + conc.stats.hits + conc.stats.misses
    );

    // 3.
    let mut ours = hits.ours.clone();
    let mut raw = hits.raw.clone();
    ours.sort();
    raw.sort();
    let ratio = |p: f64| pct(&ours, p).as_secs_f64() / pct(&raw, p).as_secs_f64();
    println!(
        "## 3. Hit vs raw redis-rs GET (live redis-server on loopback, {} sequential calls each, \
         {} alternating rounds, entry of {} bytes)\n",
        ours.len(),
        plan.hit_rounds,
        hits.stored_bytes
    );
    println!("| path | p50 | p99 | mean |");
    println!("|---|---:|---:|---:|");
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap_or(1);
    println!(
        "| `#[redis_cache]` hit (key digest + GET + envelope/bincode decode) | {} | {} | {} |",
        fmt_dur(pct(&ours, 50.0)),
        fmt_dur(pct(&ours, 99.0)),
        fmt_dur(mean(&ours))
    );
    println!(
        "| raw `ConnectionManager` GET of the same key | {} | {} | {} |",
        fmt_dur(pct(&raw, 50.0)),
        fmt_dur(pct(&raw, 99.0)),
        fmt_dur(mean(&raw))
    );
    println!(
        "| **ratio ours / raw** | **{:.2}×** | **{:.2}×** | {:.2}× |",
        ratio(50.0),
        ratio(99.0),
        mean(&ours).as_secs_f64() / mean(&raw).as_secs_f64()
    );
    println!(
        "\nevery measured cached call was a hit: {}",
        if hits.all_hits { "yes" } else { "NO" }
    );

    // 4.
    println!(
        "\n## 4. Herd behind a failing leader ({HERD_CALLERS} concurrent callers of one cold key, \
         {} ms body; median wall time until the last caller has its result)\n",
        HERD_BODY.as_millis()
    );
    println!("| the body… | herd wall time | in body runs |");
    println!("|---|---:|---:|");
    for (name, wall) in &herd.rows {
        println!(
            "| {name} | {} | {:.1} |",
            fmt_dur(*wall),
            wall.as_secs_f64() / HERD_BODY.as_secs_f64()
        );
    }
}
