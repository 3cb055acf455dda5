//! A background worker (no HTTP) whose expensive results survive restarts.
//!
//! The example runs the same worker twice, as two separate processes (it re-executes itself), the
//! way a deployment restarts a worker: the first process computes every job and stores the
//! results in Redis; the second process, started afterwards with an empty memory, gets them from
//! Redis in about a millisecond each. Each result records which process computed it.
//!
//! Run: `cargo run --example worker` (starts a throwaway redis-server unless `REDIS_URL` is set).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memo_redis::{redis_cache, Config, StatsTable};
use memo_redis_examples::{init_logging, DemoRedis};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex};

/// Set (to the run number) in the worker processes the supervisor starts.
const RUN_ENV: &str = "MEMO_WORKER_RUN";
/// The jobs each run processes; 11 comes twice.
const JOBS: [u64; 5] = [11, 12, 13, 14, 11];
/// Worker tasks per process.
const CONCURRENCY: usize = 2;
const NAMESPACE: &str = "memo-worker";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Summary {
    input: u64,
    checksum: u64,
    computed_by_pid: u32,
    computed_at_ms: u64,
}

/// The expensive computation: pretend 400 ms of I/O, then a little arithmetic.
#[redis_cache(ttl = "10m", prefix = "summaries")]
async fn summarize(input: u64) -> Summary {
    tokio::time::sleep(Duration::from_millis(400)).await;
    let checksum = (0..100_000u64).fold(input, |acc, i| splitmix64(acc ^ i));
    Summary {
        input,
        checksum,
        computed_by_pid: std::process::id(),
        computed_at_ms: now_ms(),
    }
}

/// A 64-bit mixer (SplitMix64's finaliser): stands in for real work.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn config(url: &str) -> Result<Config, memo_redis::ConfigError> {
    Config::builder().url(url).namespace(NAMESPACE).build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    match std::env::var(RUN_ENV) {
        Ok(run) => worker_process(&run).await,
        Err(_) => supervisor().await,
    }
}

/// Starts Redis, then the worker twice, one process after the other.
async fn supervisor() -> Result<(), Box<dyn std::error::Error>> {
    let redis = DemoRedis::start();
    println!("memo-redis worker — redis: {}\n", redis.describe());

    // Start from a cold cache even against a shared REDIS_URL.
    memo_redis::init(config(&redis.url)?)?;
    for job in JOBS {
        summarize_evict(&job).await?;
    }
    memo_redis::shutdown().await;

    let exe = std::env::current_exe()?;
    let mut walls = Vec::new();
    for run in ["1", "2"] {
        let started = Instant::now();
        let status = tokio::process::Command::new(&exe)
            .env(RUN_ENV, run)
            .env("REDIS_URL", &redis.url)
            .status()
            .await?;
        if !status.success() {
            return Err(format!("worker run {run} failed: {status}").into());
        }
        walls.push(started.elapsed());
        println!();
    }
    println!(
        "run 1 (cold cache): {:>7.1} ms    run 2 (after the restart): {:>7.1} ms",
        walls[0].as_secs_f64() * 1e3,
        walls[1].as_secs_f64() * 1e3
    );
    Ok(())
}

/// One lifetime of the worker: a queue, `CONCURRENCY` tasks draining it, then a clean exit.
async fn worker_process(run: &str) -> Result<(), Box<dyn std::error::Error>> {
    // REDIS_URL was set by the supervisor, so this reuses its server.
    let redis = DemoRedis::start();
    memo_redis::init(config(&redis.url)?)?;
    let pid = std::process::id();
    println!("[run {run}] worker process {pid} started, {CONCURRENCY} tasks, jobs {JOBS:?}");

    let (tx, rx) = mpsc::channel::<(usize, u64)>(JOBS.len());
    let rx = Arc::new(Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let rx = Arc::clone(&rx);
        let run = run.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some((n, input)) = rx.lock().await.recv().await else {
                    break;
                };
                let started = Instant::now();
                let summary = summarize(input).await;
                let took = started.elapsed();
                let origin = if summary.computed_by_pid == pid {
                    "this process".to_string()
                } else {
                    format!("process {} (before the restart)", summary.computed_by_pid)
                };
                println!(
                    "[run {run}] job {n}: summarize({input}) {:>7.1} ms  checksum {:016x}, computed by {origin}, {} ms ago",
                    took.as_secs_f64() * 1e3,
                    summary.checksum,
                    now_ms().saturating_sub(summary.computed_at_ms)
                );
            }
        }));
    }
    for (n, job) in JOBS.into_iter().enumerate() {
        tx.send((n + 1, job)).await?;
    }
    drop(tx);
    for task in tasks {
        task.await?;
    }

    print!("[run {run}] stats:\n{}", StatsTable(memo_redis::stats()));
    // Waits for background work and closes the connection before the process exits.
    memo_redis::shutdown().await;
    Ok(())
}
