//! The memo-redis demo: MISS → HIT with timings, an eviction, then Redis stops and the call
//! still answers (fail-open).
//!
//! Run: `cargo run --example demo` (starts a throwaway redis-server unless `REDIS_URL` is set).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memo_redis::redis_cache;
use memo_redis_examples::DemoRedis;
use serde::{Deserialize, Serialize};

static BODY_RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Report {
    customer: u64,
    total_cents: u64,
    lines: Vec<String>,
}

/// Pretend this is a slow query: 300 ms.
#[redis_cache(ttl = "5m", prefix = "reports")]
async fn monthly_report(customer: u64, month: &str) -> Option<Report> {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Some(Report {
        customer,
        total_cents: customer * 1_234,
        lines: vec![format!("{month}: 3 invoices")],
    })
}

/// (hits, misses, bypass + errors) of `monthly_report` so far, from its `_stats()` companion.
fn outcomes() -> (u64, u64, u64) {
    let s = monthly_report_stats();
    (s.hits, s.misses, s.bypass + s.errors)
}

async fn timed_call(label: &str) -> Option<Report> {
    let runs_before = BODY_RUNS.load(Ordering::SeqCst);
    let before = outcomes();
    let start = Instant::now();
    let report = monthly_report(42, "2026-11").await;
    let took = start.elapsed();
    let ran = BODY_RUNS.load(Ordering::SeqCst) > runs_before;
    let after = outcomes();
    // The outcome memo-redis counted for this call (see `monthly_report_stats()`).
    let outcome = match (after.0 - before.0, after.1 - before.1, after.2 - before.2) {
        (1, _, _) => "HIT  (from redis)",
        (_, 1, _) => "MISS (body ran)",
        (_, _, 1) if ran => "BYPASS/ERROR (redis unusable: body ran)",
        _ => "?",
    };
    println!(
        "{label:<26} {outcome:<40} {:>9.3} ms",
        took.as_secs_f64() * 1e3
    );
    report
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis = DemoRedis::start_global("memo-redis demo")?;
    // Start clean even against a shared REDIS_URL.
    monthly_report_evict(&42, "2026-11").await?;

    let first = timed_call("1. first call").await;
    let second = timed_call("2. same arguments").await;
    assert_eq!(
        first.as_ref().map(|r| r.total_cents),
        second.as_ref().map(|r| r.total_cents)
    );
    println!("   key in redis: {}", monthly_report_key(&42, "2026-11")?);

    let evicted = monthly_report_evict(&42, "2026-11").await?;
    println!("3. monthly_report_evict(..) -> removed an entry: {evicted}");
    timed_call("4. after eviction").await;
    timed_call("5. again").await;

    match redis.server.as_ref() {
        Some(server) => {
            server.stop();
            println!("\n   redis-server stopped — the cache is gone, the function is not:");
            let answer = timed_call("6. redis down").await;
            timed_call("7. redis still down").await;
            println!(
                "   answered with customer {} — fail-open: the body ran, no error surfaced",
                answer.map(|r| r.customer).unwrap_or_default()
            );
        }
        None => println!("\n   (REDIS_URL set: not stopping a server this demo did not start)"),
    }
    memo_redis::shutdown().await;
    println!(
        "\nbody ran {} times in all",
        BODY_RUNS.load(Ordering::SeqCst)
    );
    Ok(())
}
