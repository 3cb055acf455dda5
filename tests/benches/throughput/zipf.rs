//! The Zipf scenario of the throughput bench: what a service with a realistic popularity curve
//! runs. Keys are drawn from a Zipf distribution (exponent s = 1 over 100 000 keys: the most
//! popular key gets 8.3 % of the calls, the top 100 keys 43 %, the tail half of the keyspace
//! 6 %), every key primed beforehand so that every measured call is a hit, for
//!
//! - a raw redis-rs `GET` of memo-redis's entry through a `ConnectionManager`,
//! - a `#[redis_cache]` hit (`memo_profile`, the 5-field struct of the main scenario),
//! - a near-cache hit (`near_profile`, `local = "60s"`, every key in the local tier),
//! - the batch companion `memo_profile_many` of [`BATCH`] keys drawn the same way (duplicates and
//!   all, as a worker's batch would have them), against a raw `MGET` of as many keys,
//! - the `cached` crate's `#[concurrent_cached]` (`AsyncRedisCache`), with `--features peer-bench`.
//!
//! Throughput is counted in keys per second (a batch call serves [`BATCH`] keys); latency is per
//! call. Each task draws from its own generator, seeded by (round, task), so every contender
//! of a round sees the same key sequences. Interleaved like the main scenario: each round runs
//! every (concurrency, contender) cell for one slice, rotating the order.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::runtime::Runtime;

use super::scenario::{self, Rng, Task};
use super::{fmt_dur, fmt_rate, ratio, spread, Cell, Plan};
use super::{memo_profile, memo_profile_key, memo_profile_many, memo_profile_stats};
use super::{near_profile, near_profile_many, near_profile_stats, BODY_RUNS, NEAR};
use crate::common::profile;

/// Keys of the full run's keyspace.
const KEYS: u64 = 100_000;
/// Keys of the smoke run's keyspace (CI: priming 100 000 keys in a debug build costs seconds).
const SMOKE_KEYS: u64 = 1_000;
/// The Zipf exponent.
const S: f64 = 1.0;
/// Keys per batch call (`f_many`, raw `MGET`).
pub const BATCH: usize = 32;
/// Concurrencies of the scenario.
const CONCURRENCY: [usize; 2] = [64, 256];

/// An inverse-CDF Zipf sampler over ranks `0..n` (rank 0 the most popular): `P(k) ∝ 1/(k+1)^s`.
/// A binary search in the cumulative table (17 steps for 100 000 keys, ≈ 50 ns): the same cost
/// for every contender, small next to a round trip.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    /// The probability of rank `k`.
    pub fn p(&self, k: usize) -> f64 {
        self.cdf[k] - if k == 0 { 0.0 } else { self.cdf[k - 1] }
    }

    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Z {
    Raw,
    Memo,
    Near,
    Batch,
    RawMget,
    Cached,
}

#[cfg(feature = "peer-bench")]
const CONTENDERS: &[Z] = &[Z::Raw, Z::Memo, Z::Near, Z::Batch, Z::RawMget, Z::Cached];
#[cfg(not(feature = "peer-bench"))]
const CONTENDERS: &[Z] = &[Z::Raw, Z::Memo, Z::Near, Z::Batch, Z::RawMget];

impl Z {
    fn label(self) -> &'static str {
        match self {
            Z::Raw => "raw redis-rs GET (ConnectionManager)",
            Z::Memo => "`#[redis_cache]` hit",
            Z::Near => "`#[redis_cache(local = \"60s\")]` near-cache hit",
            Z::Batch => "`f_many` batch of 32 (one MGET)",
            Z::RawMget => "raw redis-rs MGET of 32",
            Z::Cached => "`cached` 4.1 `#[concurrent_cached]` (AsyncRedisCache) hit",
        }
    }
}

impl scenario::Contender for Z {
    type Ctx = Ctx;

    fn conn(self, ctx: &Ctx, _: u64) -> ConnectionManager {
        ctx.raw.clone()
    }

    async fn call<'a>(self, ctx: &'a Ctx, task: &'a mut Task) -> u64 {
        let (conn, rng) = (&mut task.conn, &mut task.rng);
        match self {
            Z::Raw => {
                let id = ctx.zipf.sample(rng);
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg(&*ctx.keys[id as usize])
                    .query_async(conn)
                    .await
                    .expect("raw GET of a primed key");
                black_box(bytes);
                1
            }
            Z::Memo => {
                black_box(memo_profile(ctx.zipf.sample(rng)).await);
                1
            }
            Z::Near => {
                black_box(near_profile(ctx.zipf.sample(rng)).await);
                1
            }
            Z::Batch => {
                let ids: Vec<u64> = (0..BATCH).map(|_| ctx.zipf.sample(rng)).collect();
                black_box(memo_profile_many(ids).await);
                BATCH as u64
            }
            Z::RawMget => {
                let mut cmd = redis::cmd("MGET");
                for _ in 0..BATCH {
                    cmd.arg(&*ctx.keys[ctx.zipf.sample(rng) as usize]);
                }
                let values: Vec<Option<Vec<u8>>> = cmd
                    .query_async(conn)
                    .await
                    .expect("raw MGET of primed keys");
                black_box(values);
                BATCH as u64
            }
            Z::Cached => {
                #[cfg(feature = "peer-bench")]
                black_box(
                    super::cached_profile(ctx.zipf.sample(rng))
                        .await
                        .expect("cached hit"),
                );
                1
            }
        }
    }
}

struct Ctx {
    raw: ConnectionManager,
    /// memo-redis's key of each id (what the raw contenders read).
    keys: Vec<Arc<str>>,
    zipf: Zipf,
}

/// What the scenario measured, printed by [`Report::print`].
pub struct Report {
    keys: u64,
    rounds: usize,
    slice: Duration,
    cells: Vec<Vec<Cell>>,
    primed_in: Duration,
    /// (hits, calls) of `memo_profile` (single and batch) during the cells.
    memo: (u64, u64),
    /// (local hits, hits, calls) of `near_profile` during the cells.
    near: (u64, u64, u64),
    body_runs: u64,
    /// The sampler's share of the top key and of the top 100, for the heading.
    top1: f64,
    top100: f64,
    /// The near cache's tier after priming (it also holds the main scenario's keys).
    near_state: Option<memo_redis::NearCacheState>,
}

/// Primes every key of the keyspace in every contender's store, then runs the cells.
pub fn run(rt: &Runtime, plan: &Plan, url: &str) -> Report {
    let n = if plan.smoke { SMOKE_KEYS } else { KEYS };
    let zipf = Zipf::new(n, S);
    let top1 = zipf.p(0);
    let top100 = (0..100.min(n as usize)).map(|k| zipf.p(k)).sum();
    // The sampler draws what it should: the top key's share of 200 000 draws within 5 % of
    // its probability (8.3 % of calls for 100 000 keys: ± 0.4 points).
    let mut rng = Rng::new(7);
    let draws = 200_000;
    let top = (0..draws).filter(|_| zipf.sample(&mut rng) == 0).count();
    let share = top as f64 / f64::from(draws);
    assert!(
        (share / top1 - 1.0).abs() < 0.05,
        "Zipf sampler: top key drawn {share:.4} of the time, expected {top1:.4}"
    );
    let primed = Instant::now();
    let ctx = rt.block_on(async {
        let ids: Vec<u64> = (0..n).collect();
        // Redis entries of both memo-redis functions, 500 keys per batch call.
        for chunk in ids.chunks(500) {
            let got = memo_profile_many(chunk.to_vec()).await;
            assert_eq!(got.len(), chunk.len());
            assert_eq!(got[0], profile(chunk[0]));
            near_profile_many(chunk.to_vec()).await;
        }
        // The near cache's local tier: a Redis hit fills it (the tracking connection is live:
        // the main scenario waited for it).
        // The tier may decline a few fills (its admission policy): up to three passes.
        for _ in 0..3 {
            if NEAR.near_cache().is_some_and(|s| s.entries as u64 >= n) {
                break;
            }
            let mut next = 0;
            while next < n {
                let end = (next + 2_000).min(n);
                let wave: Vec<_> = (next..end)
                    .map(|id| tokio::spawn(async move { near_profile(id).await }))
                    .collect();
                for h in wave {
                    black_box(h.await.expect("near fill"));
                }
                next = end;
            }
        }
        #[cfg(feature = "peer-bench")]
        {
            let mut next = 0;
            while next < n {
                let end = (next + 2_000).min(n);
                let wave: Vec<_> = (next..end)
                    .map(|id| tokio::spawn(async move { super::cached_profile(id).await }))
                    .collect();
                for (h, id) in wave.into_iter().zip(next..end) {
                    assert_eq!(h.await.expect("cached prime"), Ok(profile(id)));
                }
                next = end;
            }
        }
        let client = redis::Client::open(url).expect("client");
        let raw = ConnectionManager::new(client)
            .await
            .expect("raw connection");
        let keys: Vec<Arc<str>> = ids
            .iter()
            .map(|id| Arc::from(memo_profile_key(id).expect("key")))
            .collect();
        Arc::new(Ctx { raw, keys, zipf })
    });
    let primed_in = primed.elapsed();
    let near_state = NEAR.near_cache();

    let runs_before = BODY_RUNS.load(std::sync::atomic::Ordering::Relaxed);
    let (memo_before, near_before) = (memo_profile_stats(), near_profile_stats());
    let cells = scenario::run_cells(rt, &ctx, plan, CONTENDERS, &CONCURRENCY);
    let (memo_after, near_after) = (memo_profile_stats(), near_profile_stats());
    let report = Report {
        keys: n,
        rounds: plan.rounds,
        slice: plan.slice,
        cells,
        primed_in,
        memo: (
            memo_after.hits - memo_before.hits,
            memo_after.calls() - memo_before.calls(),
        ),
        near: (
            near_after.local_hits - near_before.local_hits,
            near_after.hits - near_before.hits,
            near_after.calls() - near_before.calls(),
        ),
        body_runs: BODY_RUNS.load(std::sync::atomic::Ordering::Relaxed) - runs_before,
        top1,
        top100,
        near_state,
    };
    // Every key is primed, so a body run or a call that is not a hit is a Redis operation
    // that outlived the operation timeout (a loaded machine): reported, not fatal; a larger
    // share than 1 in 1000 means the figures are not about hits.
    let missed =
        report.body_runs + (report.memo.1 - report.memo.0) + (report.near.2 - report.near.1);
    assert!(
        missed * 1000 <= report.memo.1 + report.near.2,
        "Zipf cells: {missed} calls were not hits (body runs {}, memo {:?}, near {:?})",
        report.body_runs,
        report.memo,
        report.near
    );
    report
}

impl Report {
    pub fn print(&mut self) {
        println!(
            "## Zipf keyspace (s = {S}, {} keys: top key {:.1} % of calls, top 100 {:.0} %; every key \
             primed ({:.1} s); {} rounds × {} ms per cell, interleaved)\n",
            self.keys,
            self.top1 * 100.0,
            self.top100 * 100.0,
            self.primed_in.as_secs_f64(),
            self.rounds,
            self.slice.as_millis()
        );
        println!(
            "| contender | tasks | keys/s | per-round keys/s | p50 per call | p99 per call | client CPU/key |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (ci, &tasks) in CONCURRENCY.iter().enumerate() {
            for (i, &z) in CONTENDERS.iter().enumerate() {
                let cell = &mut self.cells[ci][i];
                println!(
                    "| {} | {tasks} | {} | {} | {} | {} | {} |",
                    z.label(),
                    fmt_rate(cell.ops_per_sec()),
                    spread(&cell.per_round),
                    fmt_dur(cell.pct(50.0)),
                    fmt_dur(cell.pct(99.0)),
                    fmt_dur(cell.cpu_per_call())
                );
            }
        }
        let idx = |z: Z| CONTENDERS.iter().position(|&x| x == z);
        println!(
            "\n### Zipf ratios (keys/s, same run; in brackets the range of the {} per-round ratios)\n",
            self.rounds
        );
        println!(
            "| tasks | `#[redis_cache]` / raw GET | near cache / raw GET | `f_many` / raw GET | `f_many` / raw MGET | `#[redis_cache]` / `cached` | `cached` / raw GET |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        for (ci, &tasks) in CONCURRENCY.iter().enumerate() {
            let cells = &self.cells[ci];
            println!(
                "| {tasks} | {} | {} | {} | {} | {} | {} |",
                ratio(cells, idx(Z::Memo), idx(Z::Raw)),
                ratio(cells, idx(Z::Near), idx(Z::Raw)),
                ratio(cells, idx(Z::Batch), idx(Z::Raw)),
                ratio(cells, idx(Z::Batch), idx(Z::RawMget)),
                ratio(cells, idx(Z::Memo), idx(Z::Cached)),
                ratio(cells, idx(Z::Cached), idx(Z::Raw)),
            );
        }
        println!(
            "\n`#[redis_cache]` during the Zipf cells (single and batch): {} hits of {} calls; near \
             cache: {} served locally, {} hits, of {} calls (tier after priming: {:?}); body \
             runs: {}{}\n",
            self.memo.0,
            self.memo.1,
            self.near.0,
            self.near.1,
            self.near.2,
            self.near_state,
            self.body_runs,
            if idx(Z::Cached).is_none() {
                "; the `cached` rows need `--features peer-bench`"
            } else {
                ""
            }
        );
    }
}
