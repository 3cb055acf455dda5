//! Batch companions (issue 17): a batch of 100 keys — 90 hits, 10 misses — through `f_many`
//! (one `MGET`, the 10 bodies concurrently, one write pipeline) against a loop of 100 single
//! calls of the same function over the same mix, against a real `redis-server` (harness, free
//! port). The body returns at once, so the figure is what the round trips cost.
//!
//! Every measured batch uses ids never read before (its 90 hits are written, untimed, just
//! before it), so each measurement really has 90 hits and 10 misses. The two contenders are
//! interleaved, one batch each in turn, rotating who goes first; the ratio is computed per round
//! and the median of the rounds printed.
//!
//! ```sh
//! cargo bench -p memo-redis-tests --bench batch              # full run (~10 s)
//! cargo bench -p memo-redis-tests --bench batch -- --smoke   # tiny counts, for CI
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{cpu_model, loadavg, RedisServer};

mod common;
use common::{profile, Profile};

const BATCH: u64 = 100;
const MISSES: u64 = 10;

static CACHE: Cache = Cache::from_env();
static BODY_RUNS: AtomicU64 = AtomicU64::new(0);

#[redis_cache(cache = CACHE, ttl = 300)]
async fn batch_profile(id: u64) -> Profile {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    profile(id)
}

/// The ids of one measured batch: `BATCH` fresh ids, the first `BATCH - MISSES` of them written
/// (untimed) so they are hits; misses interleaved with hits in input order.
async fn prepare(next: &mut u64) -> Vec<u64> {
    let ids: Vec<u64> = (*next..*next + BATCH).collect();
    *next += BATCH;
    // Every tenth id is a miss.
    let hits: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| !id.is_multiple_of(10))
        .collect();
    assert_eq!(hits.len() as u64, BATCH - MISSES);
    black_box(batch_profile_many(hits).await);
    ids
}

fn main() {
    let smoke = common::smoke();
    let (rounds, per_round) = if smoke { (1, 2) } else { (7, 40) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = RedisServer::start();
    CACHE
        .install(
            Config::builder()
                .url(server.url())
                .namespace("batch")
                .op_timeout(Duration::from_secs(2))
                .build()
                .expect("config"),
        )
        .expect("installed once");
    rt.block_on(async {
        let mut next = 0u64;
        // Warm the connection and the spec.
        let ids = prepare(&mut next).await;
        black_box(batch_profile_many(ids).await);
        let mut ratios = Vec::new();
        let (mut batch_total, mut loop_total) = (Duration::ZERO, Duration::ZERO);
        for round in 0..rounds {
            let (mut batch_time, mut loop_time) = (Duration::ZERO, Duration::ZERO);
            for i in 0..per_round {
                let batch_first = (round + i) % 2 == 0;
                for contender in 0..2 {
                    let ids = prepare(&mut next).await;
                    let runs = BODY_RUNS.load(Ordering::Relaxed);
                    let started = Instant::now();
                    if (contender == 0) == batch_first {
                        let got = batch_profile_many(ids).await;
                        batch_time += started.elapsed();
                        assert_eq!(got.len() as u64, BATCH);
                    } else {
                        for id in ids {
                            black_box(batch_profile(id).await);
                        }
                        loop_time += started.elapsed();
                    }
                    assert_eq!(
                        BODY_RUNS.load(Ordering::Relaxed) - runs,
                        MISSES,
                        "90 hits and 10 misses"
                    );
                }
            }
            ratios.push(loop_time.as_secs_f64() / batch_time.as_secs_f64());
            batch_total += batch_time;
            loop_total += loop_time;
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        let n = f64::from(rounds * per_round);
        let per = |t: Duration| t.as_secs_f64() * 1e6 / n;
        println!(
            "## Batch of {BATCH} keys ({} hits, {MISSES} misses){}",
            BATCH - MISSES,
            if smoke { " — smoke run, not a figure" } else { "" }
        );
        println!();
        println!("| contender | µs per 100 keys | keys/s |");
        println!("|---|---:|---:|");
        for (name, t) in [("`f_many` (one batch)", batch_total), ("loop of 100 single calls", loop_total)] {
            let us = per(t);
            println!("| {name} | {us:.0} | {:.0} |", 100.0 / us * 1e6);
        }
        println!();
        println!(
            "throughput ratio batch / loop: median {median:.1}× over {rounds} rounds (min {:.1}×, max {:.1}×)",
            ratios[0],
            ratios[ratios.len() - 1]
        );
        println!("machine: {}; load average {}", cpu_model(), loadavg());
    });
}
