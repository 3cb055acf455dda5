//! Throughput and latency benchmark against a real `redis-server` (started by the test harness on a
//! free port): hits per second and p50/p99 latency at 1, 16, 64 and 256 concurrent tokio tasks
//! (multi-thread runtime, 2 workers), for
//!
//! - (a) a raw redis-rs `GET` of the same bytes through a `ConnectionManager` (the kind of
//!   multiplexed connection memo-redis uses for a single node),
//! - (b) a `#[redis_cache]` hit returning a 5-field struct of ~80 bytes,
//! - (c) the `cached` crate's Redis-backed `#[concurrent_cached]` macro (`AsyncRedisCache`), with
//!   `--features peer-bench` only (CI never builds the `cached` crate),
//! - (d) a near-cache hit: `#[redis_cache(ttl = 300, local = "60s")]` (its own `Cache`, namespace
//!   `near`, so the miss cells' writes never reach its tracking connection),
//!
//! then a hot key (every task reads one key: memo-redis coalesces concurrent reads of it into one
//! `GET` in flight) against raw `GET`s of that key, at 64 and 256 tasks, the miss path (the body
//! returns at once) against a raw `GET` + `SET PX`, and a call with the breaker open against the
//! body called directly. One run prints markdown tables; every ratio
//! is computed within the run. The contenders are interleaved: each round runs every
//! (concurrency, contender) cell for one short slice, rotating the order, so machine noise (a
//! shared 2-core box) hits all of them alike.
//!
//! ```sh
//! cargo bench -p memo-redis-tests --bench throughput --features peer-bench   # full run (~80 s), writes docs/throughput.svg
//! cargo bench -p memo-redis-tests --bench throughput              # the same without the `cached` rows
//! cargo bench -p memo-redis-tests --bench throughput -- --smoke   # tiny counts, for CI
//! ```
//!
//! A second scenario (`throughput/zipf.rs`) reads a Zipf-distributed keyspace (s = 1, 100 000
//! keys) through raw `GET`, `#[redis_cache]`, the near cache, the batch companion `f_many`
//! (against a raw `MGET`) and the `cached` crate; a third (`throughput/conns.rs`) compares one
//! multiplexed connection with several (the removed `max_connections`). Both are interleaved the same way;
//! `MEMO_BENCH_SKIP=zipf,conns` leaves them out.
//!
//! Smoke mode is also selected by `MEMO_BENCH_SMOKE=1` and when the binary runs without the
//! `--bench` flag `cargo bench` passes (e.g. `cargo test --benches`); it writes no chart.
//!
//! In the hit cells each task reads its own key (task `i` reads id `i`, the "spread" run), so
//! memo-redis never coalesces the measured hits: every call is one round trip, as for the other
//! contenders. The hot-key cells are the opposite case.

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
#[cfg(feature = "peer-bench")]
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[cfg(feature = "peer-bench")]
use cached::macros::concurrent_cached;
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{cpu_model, free_port_url, loadavg, RedisServer};
use redis::aio::ConnectionManager;
use tokio::runtime::Runtime;

mod common;
use common::{profile, Profile};
#[path = "throughput/conns.rs"]
mod conns;
#[path = "throughput/scenario.rs"]
mod scenario;
#[path = "throughput/zipf.rs"]
mod zipf;

const CONCURRENCY: [usize; 4] = [1, 16, 64, 256];
/// Concurrencies of the miss comparison.
const MISS_CONCURRENCY: [usize; 2] = [1, 64];
/// Concurrencies of the hot-key comparison.
const HOT_CONCURRENCY: [usize; 2] = [64, 256];
/// The id every task reads in the hot-key cells.
const HOT_ID: u64 = 0;
/// TTL of every entry written here (long enough to outlive the run, short enough not to pile up).
const TTL_SECS: u64 = 300;

struct Plan {
    smoke: bool,
    /// Length of one (contender, concurrency) slice.
    slice: Duration,
    rounds: usize,
    bypass_batches: usize,
    bypass_calls: u64,
}

impl Plan {
    fn from_env() -> Plan {
        let smoke = common::smoke();
        if smoke {
            Plan {
                smoke,
                slice: Duration::from_millis(30),
                rounds: 1,
                bypass_batches: 3,
                bypass_calls: 2_000,
            }
        } else {
            Plan {
                smoke,
                slice: Duration::from_millis(300),
                rounds: 6,
                bypass_batches: 9,
                bypass_calls: 200_000,
            }
        }
    }
}

// --- the value and the contenders -----------------------------------------------------------

/// Body runs of the hit contenders: must not move while hits are measured.
static BODY_RUNS: AtomicU64 = AtomicU64::new(0);

static HOT: Cache = Cache::from_env();

/// (b) `#[redis_cache]` hit.
#[redis_cache(cache = HOT, ttl = 300)]
async fn memo_profile(id: u64) -> Profile {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    profile(id)
}

static NEAR: Cache = Cache::from_env();

/// (d) near-cache hit: served from the in-process tier once a Redis hit has filled it.
#[redis_cache(cache = NEAR, ttl = 300, local = "60s")]
async fn near_profile(id: u64) -> Profile {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    profile(id)
}

#[cfg(feature = "peer-bench")]
static CACHED_URL: OnceLock<String> = OnceLock::new();

/// (c) the `cached` crate: an `AsyncRedisCache` (a redis-rs multiplexed connection, its default)
/// built on first use, keyed by the id, TTL 300 s, no refresh on hit.
#[cfg(feature = "peer-bench")]
#[concurrent_cached(
    map_error = r##"|e| format!("{e:?}")"##,
    ty = "cached::AsyncRedisCache<u64, Profile>",
    create = r##" {
        cached::AsyncRedisCache::builder("memo-bench-cached")
            .ttl(Duration::from_secs(TTL_SECS))
            .connection_string(CACHED_URL.get().expect("CACHED_URL set in main"))
            .build()
            .await
            .expect("cached AsyncRedisCache")
    } "##,
    key = "u64",
    convert = r##"{ id }"##
)]
async fn cached_profile(id: u64) -> Result<Profile, String> {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    Ok(profile(id))
}

static MISS: Cache = Cache::from_env();

/// The miss path: every call has a new id; the body returns at once.
#[redis_cache(cache = MISS, ttl = 300)]
async fn miss_profile(id: u64) -> Profile {
    profile(id)
}

static DEAD: Cache = Cache::from_env();

#[inline(always)]
fn work(x: u64) -> u64 {
    black_box(x)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
}

async fn direct(x: u64) -> u64 {
    work(x)
}

#[redis_cache(cache = DEAD, ttl = 60)]
async fn bypassed(x: u64) -> u64 {
    work(x)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Raw,
    Memo,
    Cached,
    Near,
    RawMiss,
    MemoMiss,
    HotRaw,
    HotMemo,
}

/// The hit contenders.
#[cfg(feature = "peer-bench")]
const HIT_CONTENDERS: &[Contender] = &[
    Contender::Raw,
    Contender::Memo,
    Contender::Cached,
    Contender::Near,
];
/// The hit contenders (the `cached` crate only with `--features peer-bench`).
#[cfg(not(feature = "peer-bench"))]
const HIT_CONTENDERS: &[Contender] = &[Contender::Raw, Contender::Memo, Contender::Near];
const MISS_CONTENDERS: &[Contender] = &[Contender::RawMiss, Contender::MemoMiss];
/// The hot-key contenders: every task reads [`HOT_ID`].
const HOT_CONTENDERS: &[Contender] = &[Contender::HotRaw, Contender::HotMemo];

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Raw => "raw redis-rs GET (ConnectionManager)",
            Contender::Memo => "`#[redis_cache]` hit",
            Contender::Cached => "`cached` 4.1 `#[concurrent_cached]` (AsyncRedisCache) hit",
            Contender::Near => "`#[redis_cache(local = \"60s\")]` near-cache hit",
            Contender::RawMiss => "raw redis-rs GET (nil) + SET PX",
            Contender::MemoMiss => "`#[redis_cache]` miss (body returns at once)",
            Contender::HotRaw => "raw redis-rs GET of one hot key",
            Contender::HotMemo => "`#[redis_cache]` hit of one hot key",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Contender::Raw => "raw GET",
            Contender::Memo => "#[redis_cache] hit",
            Contender::Cached => "cached crate hit",
            Contender::Near => "near-cache hit",
            Contender::RawMiss => "raw GET+SET",
            Contender::MemoMiss => "#[redis_cache] miss",
            Contender::HotRaw => "raw GET, hot key",
            Contender::HotMemo => "#[redis_cache], hot key",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Contender::Raw => "#444444",
            Contender::Memo => "#1f77b4",
            Contender::Cached => "#ff7f0e",
            Contender::Near => "#2ca02c",
            Contender::RawMiss => "#999999",
            Contender::MemoMiss => "#9467bd",
            Contender::HotRaw => "#bbbbbb",
            Contender::HotMemo => "#17becf",
        }
    }

    /// One call; `task` is the caller's task index (its key), `seq` a run-wide counter for misses.
    async fn call(self, ctx: &Ctx, conn: &mut ConnectionManager, task: u64) {
        match self {
            Contender::Raw => {
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg(&*ctx.hit_keys[task as usize])
                    .query_async(conn)
                    .await
                    .expect("raw GET of a primed key");
                black_box(bytes);
            }
            Contender::Memo => {
                black_box(memo_profile(task).await);
            }
            Contender::Cached => {
                #[cfg(feature = "peer-bench")]
                black_box(cached_profile(task).await.expect("cached hit"));
            }
            Contender::Near => {
                black_box(near_profile(task).await);
            }
            Contender::RawMiss => {
                let id = ctx.next_miss.fetch_add(1, Ordering::Relaxed);
                let key = format!("{}{id:032x}", ctx.raw_miss_prefix);
                let old: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(conn)
                    .await
                    .expect("raw GET");
                assert!(old.is_none(), "raw miss keys are fresh");
                let () = redis::cmd("SET")
                    .arg(&key)
                    .arg(&*ctx.miss_bytes)
                    .arg("PX")
                    .arg(TTL_SECS * 1000)
                    .query_async(conn)
                    .await
                    .expect("raw SET");
            }
            Contender::MemoMiss => {
                let id = ctx.next_miss.fetch_add(1, Ordering::Relaxed);
                black_box(miss_profile(id).await);
            }
            Contender::HotRaw => {
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg(&*ctx.hit_keys[HOT_ID as usize])
                    .query_async(conn)
                    .await
                    .expect("raw GET of the hot key");
                black_box(bytes);
            }
            Contender::HotMemo => {
                black_box(memo_profile(HOT_ID).await);
            }
        }
    }
}

/// Shared state of the measured calls.
struct Ctx {
    raw: ConnectionManager,
    /// memo-redis's key for each task's id (what the raw contender GETs).
    hit_keys: Vec<Arc<str>>,
    next_miss: AtomicU64,
    /// The raw miss keys: this prefix + 32 hex digits, as long as memo-redis's keys.
    raw_miss_prefix: String,
    /// What the raw miss SETs: an entry as memo-redis writes it.
    miss_bytes: Vec<u8>,
}

/// Latencies (ns) and counts of one (contender, concurrency) cell over all rounds.
#[derive(Default)]
struct Cell {
    ops: u64,
    wall: Duration,
    lat_ns: Vec<u32>,
    /// Throughput of each round's slice, ops/s.
    per_round: Vec<f64>,
    /// CPU time this process spent (all threads, user + system) during the slices.
    cpu: Duration,
}

impl Cell {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    fn sorted(&mut self) -> &[u32] {
        self.lat_ns.sort_unstable();
        &self.lat_ns
    }
    fn pct(&mut self, p: f64) -> Duration {
        let v = self.sorted();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
        Duration::from_nanos(u64::from(v[rank.clamp(1, v.len()) - 1]))
    }
    /// Client-side CPU per call (this process only; redis-server is another process).
    fn cpu_per_call(&self) -> Duration {
        self.cpu / u32::try_from(self.ops.max(1)).unwrap_or(u32::MAX)
    }
    fn mean(&self) -> Duration {
        if self.lat_ns.is_empty() {
            return Duration::ZERO;
        }
        let sum: u64 = self.lat_ns.iter().map(|&n| u64::from(n)).sum();
        Duration::from_nanos(sum / self.lat_ns.len() as u64)
    }
}

/// Runs `contender` with `tasks` concurrent tasks for `slice`; adds to `cell`.
async fn run_slice(
    ctx: &Arc<Ctx>,
    contender: Contender,
    tasks: usize,
    slice: Duration,
    cell: &mut Cell,
) {
    let cpu_start = process_cpu();
    let start = Instant::now();
    let deadline = start + slice;
    let handles: Vec<_> = (0..tasks as u64)
        .map(|task| {
            let ctx = Arc::clone(ctx);
            tokio::spawn(async move {
                let mut conn = ctx.raw.clone();
                let mut lat = Vec::with_capacity(4096);
                loop {
                    let t = Instant::now();
                    if t >= deadline {
                        break;
                    }
                    contender.call(&ctx, &mut conn, task).await;
                    lat.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
                }
                lat
            })
        })
        .collect();
    let mut ops = 0;
    for h in handles {
        let lat = h.await.expect("a benchmark task panicked");
        ops += lat.len() as u64;
        cell.lat_ns.extend(lat);
    }
    let wall = start.elapsed();
    cell.cpu += process_cpu().saturating_sub(cpu_start);
    cell.ops += ops;
    cell.wall += wall;
    cell.per_round.push(ops as f64 / wall.as_secs_f64());
}

/// Runs every (concurrency, contender) cell `plan.rounds` times, interleaved.
fn run_cells(
    rt: &Runtime,
    ctx: &Arc<Ctx>,
    plan: &Plan,
    contenders: &[Contender],
    concurrency: &[usize],
) -> Vec<Vec<Cell>> {
    let mut cells: Vec<Vec<Cell>> = concurrency
        .iter()
        .map(|_| contenders.iter().map(|_| Cell::default()).collect())
        .collect();
    for round in 0..plan.rounds {
        for (ci, &tasks) in concurrency.iter().enumerate() {
            // An unrecorded lead-in at this concurrency (the previous cell ran another task
            // count; parked workers wake), so the first recorded cell pays no switching cost.
            let first = (round + ci) % contenders.len();
            rt.block_on(run_slice(
                ctx,
                contenders[first],
                tasks,
                plan.slice / 6,
                &mut Cell::default(),
            ));
            for k in 0..contenders.len() {
                // Rotate the order per round and concurrency: no contender always goes first.
                let i = (k + round + ci) % contenders.len();
                rt.block_on(run_slice(
                    ctx,
                    contenders[i],
                    tasks,
                    plan.slice,
                    &mut cells[ci][i],
                ));
            }
        }
    }
    cells
}

// --- helpers ----------------------------------------------------------------------------------

/// CPU time consumed by this process so far (every thread, user + system).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
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

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    format!("{:.1}–{:.1}k", min / 1e3, max / 1e3)
}

/// `a / b` over all rounds, with the range of the per-round ratios (same round = same noise).
fn ratio(cells: &[Cell], a: Option<usize>, b: Option<usize>) -> String {
    let (Some(a), Some(b)) = (a, b) else {
        return "—".into();
    };
    let (ca, cb) = (&cells[a], &cells[b]);
    let per: Vec<f64> = ca
        .per_round
        .iter()
        .zip(&cb.per_round)
        .map(|(x, y)| x / y)
        .collect();
    let min = per.iter().copied().fold(f64::INFINITY, f64::min);
    let max = per.iter().copied().fold(0.0, f64::max);
    format!(
        "{:.2}× ({min:.2}–{max:.2})",
        ca.ops_per_sec() / cb.ops_per_sec()
    )
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

// --- bypass -----------------------------------------------------------------------------------

/// Median ns/call of (direct, bypassed) over alternating batches on a current-thread runtime.
fn bench_bypass(plan: &Plan) -> (f64, f64, bool) {
    DEAD.install(
        Config::builder()
            .url(free_port_url())
            .breaker_cooldown(Duration::from_secs(3600))
            .build()
            .expect("config"),
    )
    .expect("install DEAD");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread runtime");
    rt.block_on(async {
        let mut tries = 0;
        while !DEAD.breaker_open() {
            tries += 1;
            assert!(tries <= 100, "breaker still closed after {tries} calls");
            assert_eq!(bypassed(tries).await, work(tries));
        }
    });
    let n = plan.bypass_calls;
    let run = |cached: bool| {
        rt.block_on(async {
            let started = Instant::now();
            for i in 0..n {
                if cached {
                    black_box(bypassed(black_box(i)).await);
                } else {
                    black_box(direct(black_box(i)).await);
                }
            }
            started.elapsed().as_nanos() as f64 / n as f64
        })
    };
    run(false);
    run(true);
    let before = bypassed_stats();
    let (mut d, mut c) = (Vec::new(), Vec::new());
    for batch in 0..plan.bypass_batches {
        let first = batch % 2 == 0;
        for cached in [!first, first] {
            let ns = run(cached);
            if cached {
                c.push(ns);
            } else {
                d.push(ns);
            }
        }
    }
    let after = bypassed_stats();
    let calls = n * plan.bypass_batches as u64;
    let all_bypassed = after.bypass - before.bypass == calls && DEAD.breaker_open();
    d.sort_by(f64::total_cmp);
    c.sort_by(f64::total_cmp);
    (d[d.len() / 2], c[c.len() / 2], all_bypassed)
}

// --- chart ------------------------------------------------------------------------------------

/// A small hand-written SVG: throughput (y, linear) against concurrency (x, log scale).
fn svg(contenders: &[Contender], cells: &[Vec<Cell>], caption: &str) -> String {
    let (w, h) = (720.0, 420.0);
    let (left, right, top, bottom) = (80.0, 250.0, 40.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let max = cells
        .iter()
        .flatten()
        .map(Cell::ops_per_sec)
        .fold(1.0, f64::max);
    let min = cells
        .iter()
        .flatten()
        .map(Cell::ops_per_sec)
        .fold(max, f64::min)
        .max(1.0);
    // Linear from 0 to a round maximum (1, 2, 2.5 or 5 × 10^k); log (whole decades) when the
    // values span more than 20× (a near cache next to round trips).
    let log = max / min > 20.0;
    let mag = 10f64.powf(max.log10().floor());
    let ymax = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&v| v >= max)
        .unwrap_or(10.0 * mag);
    let (dlo, dhi) = (
        min.log10().floor(),
        max.log10().ceil().max(min.log10().floor() + 1.0),
    );
    let lmax = (*CONCURRENCY.last().unwrap_or(&256) as f64).ln();
    let x = |c: usize| left + pw * (c as f64).ln() / lmax;
    let y = |v: f64| {
        if log {
            top + ph * (1.0 - (v.max(1.0).log10() - dlo) / (dhi - dlo))
        } else {
            top + ph * (1.0 - v / ymax)
        }
    };
    let ticks: Vec<f64> = if log {
        let mut t = Vec::new();
        let mut d = dlo;
        while d <= dhi + 1e-9 {
            for m in [1.0, 2.0, 5.0] {
                let v = m * 10f64.powf(d);
                if v <= 10f64.powf(dhi) * 1.0001 {
                    t.push(v);
                }
            }
            d += 1.0;
        }
        t
    } else {
        (0..=5).map(|i| ymax * f64::from(i) / 5.0).collect()
    };
    let tick_label = |v: f64| {
        if v >= 1e6 {
            format!("{}M", v / 1e6)
        } else {
            format!("{}k", v / 1e3)
        }
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="14" font-weight="bold">Hit throughput vs concurrent tasks (higher is better)</text>"#,
        left
    );
    for &v in &ticks {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            yy + 4.0,
            tick_label(v)
        );
    }
    for &c in &CONCURRENCY {
        let xx = x(c);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{:.1}" stroke="#eeeeee"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{c}</text>"##,
            top + ph,
            top + ph + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="black"/>"##,
        top + ph,
        left + pw,
        top + ph,
        top + ph
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">concurrent tokio tasks (log scale)</text>"#,
        left + pw / 2.0,
        h - 22.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">calls per second{}</text>"#,
        top + ph / 2.0,
        top + ph / 2.0,
        if log { " (log scale)" } else { "" }
    );
    for (i, &c) in contenders.iter().enumerate() {
        let points: Vec<String> = CONCURRENCY
            .iter()
            .enumerate()
            .map(|(ci, &n)| format!("{:.1},{:.1}", x(n), y(cells[ci][i].ops_per_sec())))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            points.join(" "),
            c.color()
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                s,
                r#"<circle cx="{px}" cy="{py}" r="3" fill="{}"/>"#,
                c.color()
            );
        }
        let ly = top + 10.0 + 22.0 * i as f64;
        let lx = left + pw + 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 24.0,
            c.color(),
            lx + 30.0,
            ly + 4.0,
            c.short()
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="{:.1}" font-size="10" fill="#666666">{caption}</text>"##,
        h - 6.0
    );
    s.push_str("</svg>\n");
    s
}

// --- main -------------------------------------------------------------------------------------

fn main() {
    let plan = Plan::from_env();
    let load_start = loadavg();
    let started = Instant::now();
    let server = RedisServer::start();
    #[cfg(feature = "peer-bench")]
    CACHED_URL.set(server.url()).expect("CACHED_URL set once");
    HOT.install(Config::builder().url(server.url()).build().expect("config"))
        .expect("install HOT");
    MISS.install(Config::builder().url(server.url()).build().expect("config"))
        .expect("install MISS");
    NEAR.install(
        Config::builder()
            .url(server.url())
            .namespace("near")
            .build()
            .expect("config"),
    )
    .expect("install NEAR");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("multi-thread runtime");
    let max_tasks = *CONCURRENCY.iter().max().unwrap_or(&256) as u64;

    // Prime every task's entry in both caches (one miss each), check the values, and build the
    // raw side's context.
    let (ctx, redis_version, entry_len, cached_len) = rt.block_on(async {
        for id in 0..max_tasks {
            assert_eq!(memo_profile(id).await, profile(id));
            #[cfg(feature = "peer-bench")]
            assert_eq!(cached_profile(id).await, Ok(profile(id)));
        }
        assert_eq!(memo_profile(7).await, profile(7), "a hit returns the value");
        #[cfg(feature = "peer-bench")]
        assert_eq!(cached_profile(7).await, Ok(profile(7)));
        // The near cache: a miss stores in Redis, and a Redis hit fills the local tier once its
        // tracking connection is live.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for id in 0..max_tasks {
                assert_eq!(near_profile(id).await, profile(id));
            }
            let state = NEAR.near_cache();
            if state.is_some_and(|s| s.live && s.entries as u64 >= max_tasks) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the near cache did not fill within 10 s: {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let client = redis::Client::open(server.url()).expect("client");
        let mut raw = ConnectionManager::new(client)
            .await
            .expect("raw connection");
        let hit_keys: Vec<Arc<str>> = (0..max_tasks)
            .map(|id| Arc::from(memo_profile_key(&id).expect("key")))
            .collect();
        let entry: Vec<u8> = redis::cmd("GET")
            .arg(&*hit_keys[7])
            .query_async(&mut raw)
            .await
            .expect("raw GET");
        assert!(
            entry.starts_with(b"MR"),
            "the raw GET reads the cache entry"
        );
        let cached_keys: Vec<String> = redis::cmd("KEYS")
            .arg("*memo-bench-cached*")
            .query_async(&mut raw)
            .await
            .expect("KEYS");
        let cached_len = match cached_keys.first() {
            Some(k) => {
                let v: Vec<u8> = redis::cmd("GET")
                    .arg(k)
                    .query_async(&mut raw)
                    .await
                    .expect("GET");
                v.len()
            }
            None => 0,
        };
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut raw)
            .await
            .expect("INFO");
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let miss_key = miss_profile_key(&u64::MAX).expect("key");
        let digest_len = 32;
        let ctx = Arc::new(Ctx {
            raw,
            hit_keys,
            next_miss: AtomicU64::new(1 << 40),
            raw_miss_prefix: format!(
                "{}raw-",
                "x".repeat(miss_key.len().saturating_sub(digest_len + 4))
            ),
            miss_bytes: memo_redis::envelope::encode(
                memo_redis::CodecKind::Bincode,
                Some(&profile(1 << 40)),
                1_764_000_000_000,
                0,
            )
            .expect("encode"),
        });
        (ctx, version, entry.len(), cached_len)
    });

    // Warm-up of every path (connections, allocator, branch predictors), not recorded.
    let warm = Plan {
        smoke: true,
        slice: plan.slice.min(Duration::from_millis(100)),
        rounds: 1,
        bypass_batches: 0,
        bypass_calls: 0,
    };
    run_cells(&rt, &ctx, &warm, HIT_CONTENDERS, &[16]);
    run_cells(&rt, &ctx, &warm, MISS_CONTENDERS, &[16]);
    run_cells(&rt, &ctx, &warm, HOT_CONTENDERS, &[16]);

    let runs_before = BODY_RUNS.load(Ordering::Relaxed);
    let memo_before = memo_profile_stats();
    let near_before = near_profile_stats();
    let mut hit_cells = run_cells(&rt, &ctx, &plan, HIT_CONTENDERS, &CONCURRENCY);
    let near_hits = {
        let after = near_profile_stats();
        (
            after.local_hits - near_before.local_hits,
            after.hits - near_before.hits,
            after.calls() - near_before.calls(),
        )
    };
    let near_state = NEAR.near_cache();
    let memo_hits = {
        let after = memo_profile_stats();
        (
            after.hits - memo_before.hits,
            after.calls() - memo_before.calls(),
            after.coalesced - memo_before.coalesced,
        )
    };
    let body_runs = BODY_RUNS.load(Ordering::Relaxed) - runs_before;

    let hot_before = (memo_profile_stats(), BODY_RUNS.load(Ordering::Relaxed));
    let mut hot_cells = run_cells(&rt, &ctx, &plan, HOT_CONTENDERS, &HOT_CONCURRENCY);
    let hot_stats = {
        let after = memo_profile_stats();
        (
            after.hits - hot_before.0.hits,
            after.calls() - hot_before.0.calls(),
            after.coalesced - hot_before.0.coalesced,
            BODY_RUNS.load(Ordering::Relaxed) - hot_before.1,
        )
    };

    let miss_before = miss_profile_stats();
    let mut miss_cells = run_cells(&rt, &ctx, &plan, MISS_CONTENDERS, &MISS_CONCURRENCY);
    let miss_stats = {
        let after = miss_profile_stats();
        (
            after.misses - miss_before.misses,
            after.calls() - miss_before.calls(),
        )
    };
    // `MEMO_BENCH_SKIP=zipf,conns` leaves out the extra scenarios (when iterating on one part).
    let skip = std::env::var("MEMO_BENCH_SKIP").unwrap_or_default();
    let mut zipf_report = (!skip.contains("zipf")).then(|| zipf::run(&rt, &plan, &server.url()));
    let mut conns_report = (!skip.contains("conns")).then(|| conns::run(&rt, &plan, &server.url()));
    let in_flight_after = HOT.in_flight() + MISS.in_flight();
    drop(rt);

    let (direct_ns, bypass_ns, all_bypassed) = bench_bypass(&plan);
    drop(server);

    // --- report ---
    let mode = if plan.smoke {
        "SMOKE run: tiny counts, numbers are not meaningful"
    } else {
        "full run"
    };
    println!("# memo-redis throughput benchmark ({mode})\n");
    println!(
        "machine: {} CPUs ({}), redis-server {}, tokio multi-thread runtime with 2 workers, \
         load average {} at start, {} at end; total {:.1} s\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        redis_version,
        load_start,
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "## Hits ({} rounds × {} ms per cell, interleaved; value: 5-field struct, memo-redis entry \
         {} bytes (17-byte header + bincode), `cached` entry {} bytes (MessagePack))\n",
        plan.rounds,
        plan.slice.as_millis(),
        entry_len,
        cached_len
    );
    println!(
        "| contender | tasks | calls/s | per-round calls/s | p50 | p99 | mean | client CPU/call |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (ci, &tasks) in CONCURRENCY.iter().enumerate() {
        for (i, &c) in HIT_CONTENDERS.iter().enumerate() {
            let cell = &mut hit_cells[ci][i];
            println!(
                "| {} | {tasks} | {} | {} | {} | {} | {} | {} |",
                c.label(),
                fmt_rate(cell.ops_per_sec()),
                spread(&cell.per_round),
                fmt_dur(cell.pct(50.0)),
                fmt_dur(cell.pct(99.0)),
                fmt_dur(cell.mean()),
                fmt_dur(cell.cpu_per_call())
            );
        }
    }
    let idx = |c: Contender| HIT_CONTENDERS.iter().position(|&x| x == c);
    let rate = |cells: &[Vec<Cell>], ci: usize, c: Option<usize>| {
        c.map(|i| cells[ci][i].ops_per_sec()).unwrap_or(f64::NAN)
    };
    let (raw_i, memo_i, cached_i, near_i) = (
        idx(Contender::Raw),
        idx(Contender::Memo),
        idx(Contender::Cached),
        idx(Contender::Near),
    );
    println!(
        "\n### Throughput ratios (same run; in brackets the range of the {} per-round ratios)\n",
        plan.rounds
    );
    println!("| tasks | `#[redis_cache]` / raw GET | `#[redis_cache]` / `cached` | `cached` / raw GET | near cache / raw GET | client CPU/hit over raw |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (ci, &tasks) in CONCURRENCY.iter().enumerate() {
        let near_s = if near_i.is_none() {
            "not measured".to_string()
        } else {
            ratio(&hit_cells[ci], near_i, raw_i)
        };
        let cpu = match (memo_i, raw_i) {
            (Some(m), Some(r)) => format!(
                "{:+.2} µs",
                (hit_cells[ci][m].cpu_per_call().as_secs_f64()
                    - hit_cells[ci][r].cpu_per_call().as_secs_f64())
                    * 1e6
            ),
            _ => "—".into(),
        };
        println!(
            "| {tasks} | {} | {} | {} | {near_s} | {cpu} |",
            ratio(&hit_cells[ci], memo_i, raw_i),
            ratio(&hit_cells[ci], memo_i, cached_i),
            ratio(&hit_cells[ci], cached_i, raw_i)
        );
    }
    println!(
        "\n`#[redis_cache]` calls during the hit cells: {} hits of {} calls ({} coalesced by \
         single-flight); body runs of the hit contenders: {}\n",
        memo_hits.0, memo_hits.1, memo_hits.2, body_runs
    );
    println!(
        "near-cache calls during the hit cells: {} served locally, {} hits, of {} calls; tier \
         after the cells: {near_state:?}\n",
        near_hits.0, near_hits.1, near_hits.2
    );

    println!(
        "## Hot key ({} rounds × {} ms per cell, interleaved; every task reads id {HOT_ID})\n",
        plan.rounds,
        plan.slice.as_millis()
    );
    println!(
        "| contender | tasks | calls/s | per-round calls/s | p50 | p99 | mean | client CPU/call |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (ci, &tasks) in HOT_CONCURRENCY.iter().enumerate() {
        for (i, &c) in HOT_CONTENDERS.iter().enumerate() {
            let cell = &mut hot_cells[ci][i];
            println!(
                "| {} | {tasks} | {} | {} | {} | {} | {} | {} |",
                c.label(),
                fmt_rate(cell.ops_per_sec()),
                spread(&cell.per_round),
                fmt_dur(cell.pct(50.0)),
                fmt_dur(cell.pct(99.0)),
                fmt_dur(cell.mean()),
                fmt_dur(cell.cpu_per_call())
            );
        }
    }
    println!("\n| tasks | hot: `#[redis_cache]` / raw GET | spread: `#[redis_cache]` / raw GET |");
    println!("|---:|---:|---:|");
    for (ci, &tasks) in HOT_CONCURRENCY.iter().enumerate() {
        let spread_ratio = CONCURRENCY
            .iter()
            .position(|&c| c == tasks)
            .map_or_else(|| "—".into(), |si| ratio(&hit_cells[si], memo_i, raw_i));
        println!(
            "| {tasks} | {} | {spread_ratio} |",
            ratio(&hot_cells[ci], Some(1), Some(0))
        );
    }
    println!(
        "\n`#[redis_cache]` calls during the hot-key cells: {} hits of {} calls, {} served by \
         another caller's GET (coalesced); body runs: {}\n",
        hot_stats.0, hot_stats.1, hot_stats.2, hot_stats.3
    );

    println!(
        "## Miss path ({} rounds × {} ms per cell, interleaved; every call a new key)\n",
        plan.rounds,
        plan.slice.as_millis()
    );
    println!("| path | tasks | calls/s | p50 | p99 | mean | client CPU/call |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (ci, &tasks) in MISS_CONCURRENCY.iter().enumerate() {
        for (i, &c) in MISS_CONTENDERS.iter().enumerate() {
            let cell = &mut miss_cells[ci][i];
            println!(
                "| {} | {tasks} | {} | {} | {} | {} | {} |",
                c.label(),
                fmt_rate(cell.ops_per_sec()),
                fmt_dur(cell.pct(50.0)),
                fmt_dur(cell.pct(99.0)),
                fmt_dur(cell.mean()),
                fmt_dur(cell.cpu_per_call())
            );
        }
    }
    for (ci, &tasks) in MISS_CONCURRENCY.iter().enumerate() {
        println!(
            "\n{tasks} tasks: `#[redis_cache]` miss / raw GET+SET calls/s = {} (per-round range in brackets)",
            ratio(&miss_cells[ci], Some(1), Some(0))
        );
    }
    println!(
        "\n`#[redis_cache]` misses: {} of {} calls\n",
        miss_stats.0, miss_stats.1
    );

    if let Some(r) = &mut zipf_report {
        r.print();
    }
    if let Some(r) = &mut conns_report {
        r.print();
    }

    println!(
        "## Breaker open: bypass vs direct call ({} batches × {} calls, median batch, \
         current-thread runtime)\n",
        plan.bypass_batches, plan.bypass_calls
    );
    println!("| path | ns/call |");
    println!("|---|---:|");
    println!("| body called directly | {direct_ns:.1} |");
    println!("| `#[redis_cache]`, breaker open | {bypass_ns:.1} |");
    println!("| **added** | **{:.1}** |", bypass_ns - direct_ns);
    println!(
        "\nall measured calls counted as bypass: {}\n",
        if all_bypassed { "yes" } else { "NO" }
    );

    // Targets (issue 8).
    let at64 = CONCURRENCY.iter().position(|&c| c == 64).unwrap_or(2);
    let memo_raw_64 = rate(&hit_cells, at64, memo_i) / rate(&hit_cells, at64, raw_i);
    let vs_cached: Vec<f64> = (0..CONCURRENCY.len())
        .map(|ci| rate(&hit_cells, ci, memo_i) / rate(&hit_cells, ci, cached_i))
        .collect();
    let worst_vs_cached = vs_cached.iter().copied().fold(f64::INFINITY, f64::min);
    // Client CPU per hit over the raw GET's, at 64 tasks (the whole path: key, single-flight,
    // timeout, breaker, envelope, decode, stats, span), and the latency difference at 1 task.
    let cpu_overhead = memo_i
        .zip(raw_i)
        .map(|(m, r)| {
            hit_cells[at64][m].cpu_per_call().as_secs_f64()
                - hit_cells[at64][r].cpu_per_call().as_secs_f64()
        })
        .unwrap_or(f64::NAN);
    let c1_overhead = memo_i
        .zip(raw_i)
        .map(|(m, r)| hit_cells[0][m].mean().as_secs_f64() - hit_cells[0][r].mean().as_secs_f64())
        .unwrap_or(f64::NAN);
    let miss_ratio_1 =
        miss_cells[0][1].mean().as_secs_f64() / miss_cells[0][0].mean().as_secs_f64();
    let miss_ratio_64 = miss_cells[1][0].ops_per_sec() / miss_cells[1][1].ops_per_sec();
    println!("## Targets (issue 8), this run\n");
    println!("| target | measured | |");
    println!("|---|---:|---|");
    println!(
        "| hit ≥ 0.97× raw GET at 64 tasks | {memo_raw_64:.3}× | {} |",
        met(memo_raw_64 >= 0.97)
    );
    if cached_i.is_some() {
        println!(
            "| hit ≥ `cached` at every concurrency | worst {worst_vs_cached:.3}× | {} |",
            met(worst_vs_cached >= 1.0)
        );
    } else {
        println!(
            "| hit ≥ `cached` at every concurrency | not measured (`--features peer-bench`) | — |"
        );
    }
    println!(
        "| CPU overhead per hit ≤ 1.5 µs | client CPU/call over raw at 64 tasks: {:+.2} µs (mean latency over raw at 1 task: {:+.2} µs; `micro` has the pure CPU path) | {} |",
        cpu_overhead * 1e6,
        c1_overhead * 1e6,
        met(cpu_overhead <= 1.5e-6)
    );
    println!(
        "| miss ≤ raw GET+SET + 10 % | mean latency at 1 task {miss_ratio_1:.3}×; raw/ours calls/s at 64 tasks {miss_ratio_64:.3}× | {} |",
        met(miss_ratio_1 <= 1.10 && miss_ratio_64 <= 1.10)
    );
    println!(
        "| bypass ≤ direct + 1 µs | +{:.1} ns | {} |",
        bypass_ns - direct_ns,
        met(bypass_ns - direct_ns <= 1000.0)
    );
    match near_i {
        Some(n) => {
            let r = rate(&hit_cells, at64, Some(n)) / rate(&hit_cells, at64, raw_i);
            println!(
                "| near cache ≥ 10× raw GET at 64 tasks | {r:.2}× | {} |",
                met(r >= 10.0)
            );
        }
        None => println!("| near cache ≥ 10× raw GET at 64 tasks | not measured | — |"),
    }
    println!(
        "\nsingle-flight table empty after the run: {}",
        if in_flight_after == 0 { "yes" } else { "NO" }
    );

    assert_eq!(body_runs, 0, "no body ran while hits were measured");
    assert_eq!(
        memo_hits.0, memo_hits.1,
        "every measured memo call was a hit"
    );
    assert_eq!(
        near_hits.1, near_hits.2,
        "every measured near-cache call was a hit"
    );
    assert_eq!(
        miss_stats.0, miss_stats.1,
        "every measured miss call was a miss"
    );
    assert_eq!(hot_stats.0, hot_stats.1, "every hot-key call was a hit");
    assert_eq!(hot_stats.3, 0, "no body ran while the hot key was read");

    if !plan.smoke {
        let caption = format!(
            "cargo bench -p memo-redis-tests --bench throughput; {} CPUs, redis-server {}, {} rounds × {} ms per point",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            redis_version,
            plan.rounds,
            plan.slice.as_millis()
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/throughput.svg");
        std::fs::write(path, svg(HIT_CONTENDERS, &hit_cells, &caption)).expect("write the chart");
        println!("\nchart written to docs/throughput.svg");
    }
}
