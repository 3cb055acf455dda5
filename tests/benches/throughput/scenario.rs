//! The interleaved runner of the extra scenarios (`zipf.rs`, `conns.rs`): like the main
//! scenario's `run_cells`, for contenders that draw their keys themselves and may serve several
//! keys per call (a batch).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::runtime::Runtime;

use super::{process_cpu, Cell, Plan};

/// SplitMix64: a tiny, good-enough generator for picking keys (no `rand` in this crate's tree).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one task of a slice owns: its index, its raw connection (a clone, taken once per slice,
/// as an application task would hold one) and its key generator.
pub struct Task {
    pub index: u64,
    pub conn: ConnectionManager,
    pub rng: Rng,
}

/// A contender of a scenario: one call serves some keys.
pub trait Contender: Copy + Send + Sync + 'static {
    type Ctx: Send + Sync + 'static;
    /// The raw connection task `index` uses.
    fn conn(self, ctx: &Self::Ctx, index: u64) -> ConnectionManager;
    /// One call; the number of keys it served.
    fn call<'a>(
        self,
        ctx: &'a Self::Ctx,
        task: &'a mut Task,
    ) -> impl Future<Output = u64> + Send + 'a;
}

/// Runs `c` with `tasks` tasks for `slice`; task `t` of round `round` draws from seed (round, t),
/// so every contender of a round sees the same key sequences.
async fn run_slice<C: Contender>(
    ctx: &Arc<C::Ctx>,
    c: C,
    tasks: usize,
    round: u64,
    slice: Duration,
    cell: &mut Cell,
) {
    let cpu_start = process_cpu();
    let start = Instant::now();
    let deadline = start + slice;
    let handles: Vec<_> = (0..tasks as u64)
        .map(|index| {
            let ctx = Arc::clone(ctx);
            tokio::spawn(async move {
                let mut task = Task {
                    index,
                    conn: c.conn(&ctx, index),
                    rng: Rng::new((round << 32) ^ index),
                };
                let mut lat = Vec::with_capacity(1024);
                let mut keys = 0;
                loop {
                    let t = Instant::now();
                    if t >= deadline {
                        break;
                    }
                    keys += c.call(&ctx, &mut task).await;
                    lat.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
                }
                (keys, lat)
            })
        })
        .collect();
    let mut ops = 0;
    for h in handles {
        let (keys, lat) = h.await.expect("a benchmark task panicked");
        ops += keys;
        cell.lat_ns.extend(lat);
    }
    let wall = start.elapsed();
    cell.cpu += process_cpu().saturating_sub(cpu_start);
    cell.ops += ops;
    cell.wall += wall;
    cell.per_round.push(ops as f64 / wall.as_secs_f64());
}

/// A short unrecorded pass of every contender (connections, allocator, caches), then every
/// (concurrency, contender) cell `plan.rounds` times, interleaved with a rotating order.
pub fn run_cells<C: Contender>(
    rt: &Runtime,
    ctx: &Arc<C::Ctx>,
    plan: &Plan,
    contenders: &[C],
    concurrency: &[usize],
) -> Vec<Vec<Cell>> {
    for &c in contenders {
        rt.block_on(run_slice(
            ctx,
            c,
            concurrency[0],
            u64::from(u32::MAX),
            plan.slice.min(Duration::from_millis(100)) / 2,
            &mut Cell::default(),
        ));
    }
    let mut cells: Vec<Vec<Cell>> = concurrency
        .iter()
        .map(|_| contenders.iter().map(|_| Cell::default()).collect())
        .collect();
    for round in 0..plan.rounds {
        for (ci, &tasks) in concurrency.iter().enumerate() {
            // An unrecorded lead-in at this concurrency, as in the main scenario.
            let first = (round + ci) % contenders.len();
            rt.block_on(run_slice(
                ctx,
                contenders[first],
                tasks,
                round as u64,
                plan.slice / 6,
                &mut Cell::default(),
            ));
            for k in 0..contenders.len() {
                let i = (k + round + ci) % contenders.len();
                rt.block_on(run_slice(
                    ctx,
                    contenders[i],
                    tasks,
                    round as u64,
                    plan.slice,
                    &mut cells[ci][i],
                ));
            }
        }
    }
    cells
}
