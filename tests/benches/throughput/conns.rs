//! The connections scenario (issue 17, `REDIS_MAX_CONNECTIONS`): does spreading the calls over
//! several multiplexed connections raise hit throughput, or is one connection enough? Raw
//! redis-rs `GET`s through 1, 2 and 4 `ConnectionManager`s (task `i` uses connection `i mod n`),
//! and `#[redis_cache]` hits on the main scenario's cache (one connection), each task reading its
//! own key as in the main scenario, at 64 and 256 tasks, interleaved. (A prototype of
//! `max_connections(4)` as four round-robin connections, measured as a sixth row here, served
//! 0.51–0.80× the hits of one connection: the setting was removed; docs/benchmarks.md.)

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::runtime::Runtime;

use super::scenario::{self, Task};
use super::{fmt_dur, fmt_rate, memo_profile, memo_profile_key, ratio, spread, Cell, Plan};

const CONCURRENCY: [usize; 2] = [64, 256];
/// Connections of the widest raw contender.
const MAX_CONNS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum C {
    /// Raw `GET`s over this many connections.
    Raw(usize),
    Memo,
}

const CONTENDERS: &[C] = &[C::Raw(1), C::Raw(2), C::Raw(MAX_CONNS), C::Memo];

impl C {
    fn label(self) -> String {
        match self {
            C::Raw(1) => "raw redis-rs GET, 1 connection".into(),
            C::Raw(n) => {
                format!("raw redis-rs GET, {n} connections (task i: connection i mod {n})")
            }
            C::Memo => "`#[redis_cache]` hit (1 connection)".into(),
        }
    }
}

struct Ctx {
    raws: Vec<ConnectionManager>,
    /// memo-redis's key of each task's id.
    keys: Vec<Arc<str>>,
}

impl scenario::Contender for C {
    type Ctx = Ctx;

    fn conn(self, ctx: &Ctx, index: u64) -> ConnectionManager {
        let n = match self {
            C::Raw(n) => n,
            C::Memo => 1,
        };
        ctx.raws[index as usize % n].clone()
    }

    async fn call<'a>(self, ctx: &'a Ctx, task: &'a mut Task) -> u64 {
        match self {
            C::Raw(_) => {
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg(&*ctx.keys[task.index as usize])
                    .query_async(&mut task.conn)
                    .await
                    .expect("raw GET of a primed key");
                black_box(bytes);
            }
            C::Memo => {
                black_box(memo_profile(task.index).await);
            }
        }
        1
    }
}

/// What the scenario measured, printed by [`Report::print`].
pub struct Report {
    rounds: usize,
    slice: Duration,
    cells: Vec<Vec<Cell>>,
}

/// Runs the cells on the main scenario's primed keys (ids `0..256`).
pub fn run(rt: &Runtime, plan: &Plan, url: &str) -> Report {
    let tasks = *CONCURRENCY.iter().max().unwrap_or(&256) as u64;
    let ctx = rt.block_on(async {
        let mut raws = Vec::new();
        for _ in 0..MAX_CONNS {
            let client = redis::Client::open(url).expect("client");
            raws.push(
                ConnectionManager::new(client)
                    .await
                    .expect("raw connection"),
            );
        }
        let keys = (0..tasks)
            .map(|id| Arc::from(memo_profile_key(&id).expect("key")))
            .collect();
        Arc::new(Ctx { raws, keys })
    });
    Report {
        rounds: plan.rounds,
        slice: plan.slice,
        cells: scenario::run_cells(rt, &ctx, plan, CONTENDERS, &CONCURRENCY),
    }
}

impl Report {
    pub fn print(&mut self) {
        println!(
            "## Connections: one multiplexed connection or several ({} rounds × {} ms per cell, \
             interleaved; each task reads its own key)\n",
            self.rounds,
            self.slice.as_millis()
        );
        println!(
            "| contender | tasks | calls/s | per-round calls/s | p50 | p99 | client CPU/call |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (ci, &tasks) in CONCURRENCY.iter().enumerate() {
            for (i, &c) in CONTENDERS.iter().enumerate() {
                let cell = &mut self.cells[ci][i];
                println!(
                    "| {} | {tasks} | {} | {} | {} | {} | {} |",
                    c.label(),
                    fmt_rate(cell.ops_per_sec()),
                    spread(&cell.per_round),
                    fmt_dur(cell.pct(50.0)),
                    fmt_dur(cell.pct(99.0)),
                    fmt_dur(cell.cpu_per_call())
                );
            }
        }
        let idx = |c: C| CONTENDERS.iter().position(|&x| x == c);
        println!("\n| tasks | raw, 2 connections / 1 | raw, {MAX_CONNS} connections / 1 | `#[redis_cache]` / raw, 1 connection |");
        println!("|---:|---:|---:|---:|");
        for (ci, &tasks) in CONCURRENCY.iter().enumerate() {
            let cells = &self.cells[ci];
            println!(
                "| {tasks} | {} | {} | {} |",
                ratio(cells, idx(C::Raw(2)), idx(C::Raw(1))),
                ratio(cells, idx(C::Raw(MAX_CONNS)), idx(C::Raw(1))),
                ratio(cells, idx(C::Memo), idx(C::Raw(1))),
            );
        }
        println!();
    }
}
