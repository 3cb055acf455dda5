//! A fleet of processes with a near cache: what `CLIENT TRACKING ... BCAST` costs Redis against
//! per-key tracking (default mode, `REDIRECT` to a RESP3 push connection), as the fleet grows.
//!
//! ```sh
//! cargo bench -p memo-redis-tests --bench fleet                      # 50 processes, 1 k and 5 k writes/s
//! cargo bench -p memo-redis-tests --bench fleet -- --clients 10,50 --rates 5000 --secs 10
//! cargo bench -p memo-redis-tests --bench fleet -- --smoke           # tiny, for CI (< 2 s)
//! ```
//!
//! Options (comma lists run every combination): `--clients N,..`, `--rates W,..` (writes/s),
//! `--modes none,bcast,keys,own`, `--keyspace K`, `--working-set S`, `--secs T` (the window).
//! Figures and the projection to 500 processes: docs/near-cache.md, "A fleet".
//!
//! Smoke mode is also selected by `MEMO_BENCH_SMOKE=1`, and when the binary is run without the
//! `--bench` flag that `cargo bench` passes (e.g. by `cargo test --benches`).
//!
//! Each run starts its own `redis-server` (a free port, never 6379; a fresh one per run, because
//! Redis frees a disconnected client's tracking entries only lazily), fills a keyspace of
//! `ns:k0 … ns:k{K-1}`, then spawns N client processes (this binary again, `--fleet-client`).
//! Each client holds what a memo-redis process with a near cache holds:
//!
//! - a RESP3 connection that receives the invalidation pushes, and
//! - a RESP2 multiplexed data connection, from which it reads its working set (`S` random keys,
//!   one `GET` each) and re-reads a working-set key whenever its invalidation arrives (what the
//!   near cache's next call does).
//!
//! Modes:
//!
//! - `bcast`: `CLIENT TRACKING ON BCAST PREFIX ns:` on the push connection (what memo-redis does):
//!   every write to the namespace is pushed to every client;
//! - `keys`: `CLIENT TRACKING ON REDIRECT <push connection id>` on the data connection: Redis
//!   remembers which keys each client read and pushes only those, once per read;
//! - `own`: per-key tracking as well, but `CLIENT TRACKING ON` on the push connection and every
//!   read sent over it (no `REDIRECT`, no second connection in the tracking);
//! - `none`: the same connections and reads without tracking (the baseline: the writer's cost).
//!
//! The writer (in this process) `SET`s uniformly random keys at a fixed rate, each value being the
//! wall-clock time of its send in nanoseconds; a client measures the invalidation delay of a
//! working-set key as the time its push arrived minus the value it then re-reads (a key rewritten
//! in between gives a negative delay, dropped; at these rates it is rare).
//!
//! After a warm-up, the window measures redis-server CPU (`/proc/<pid>/stat`, all threads), the
//! clients' CPU, pushes and keys received, invalidation delays (p50/p99 over every working-set
//! key of every client), and `INFO` (`tracking_total_items`, `used_memory`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memo_redis_tests::{cpu_model, loadavg, RedisServer};
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};

mod common;

const NS: &str = "ns";

/// What one run measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    None,
    Bcast,
    Keys,
    Own,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Bcast => "bcast",
            Mode::Keys => "keys",
            Mode::Own => "own",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        match s {
            "none" => Some(Mode::None),
            "bcast" => Some(Mode::Bcast),
            "keys" => Some(Mode::Keys),
            "own" => Some(Mode::Own),
            _ => None,
        }
    }
}

/// The plan of one invocation.
struct Plan {
    smoke: bool,
    clients: Vec<usize>,
    rates: Vec<u64>,
    modes: Vec<Mode>,
    keyspace: usize,
    working_set: usize,
    warmup: Duration,
    window: Duration,
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

impl Plan {
    fn from_args() -> Plan {
        let args: Vec<String> = std::env::args().collect();
        let smoke = common::smoke();
        let mut plan = if smoke {
            Plan {
                smoke,
                clients: vec![2],
                rates: vec![200],
                modes: vec![Mode::Bcast, Mode::Keys],
                keyspace: 2_000,
                working_set: 100,
                warmup: Duration::from_millis(100),
                window: Duration::from_millis(300),
            }
        } else {
            Plan {
                smoke,
                clients: vec![50],
                rates: vec![1_000, 5_000],
                modes: vec![Mode::None, Mode::Bcast, Mode::Keys],
                keyspace: 100_000,
                working_set: 1_000,
                warmup: Duration::from_secs(3),
                window: Duration::from_secs(10),
            }
        };
        if let Some(v) = arg_after(&args, "--clients") {
            plan.clients = list(&v);
        }
        if let Some(v) = arg_after(&args, "--rates") {
            plan.rates = list(&v);
        }
        if let Some(v) = arg_after(&args, "--modes") {
            plan.modes = v.split(',').filter_map(Mode::parse).collect();
        }
        if let Some(v) = arg_after(&args, "--keyspace").and_then(|v| v.parse().ok()) {
            plan.keyspace = v;
        }
        if let Some(v) = arg_after(&args, "--working-set").and_then(|v| v.parse().ok()) {
            plan.working_set = v;
        }
        if let Some(v) = arg_after(&args, "--secs").and_then(|v| v.parse().ok()) {
            plan.window = Duration::from_secs(v);
        }
        plan
    }
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn key(i: usize) -> String {
    format!("{NS}:k{i}")
}

/// xorshift64*: a reproducible working set per client without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// The client process.
// ---------------------------------------------------------------------------------------------

/// What the client's event loop reacts to.
enum Event {
    Push(PushInfo),
    /// A working-set key re-read after its invalidation: when the push arrived, and the value
    /// (the writer's send time).
    Reread(u64, Option<String>),
    Measure,
    Stop,
}

fn client_main(args: &[String]) {
    let [port, mode, seed, keyspace, working_set] = args else {
        eprintln!("usage: --fleet-client PORT MODE SEED KEYSPACE WORKING_SET");
        std::process::exit(2);
    };
    let (Ok(port), Some(mode), Ok(seed), Ok(keyspace), Ok(working_set)) = (
        port.parse::<u16>(),
        Mode::parse(mode),
        seed.parse::<u64>(),
        keyspace.parse::<usize>(),
        working_set.parse::<usize>(),
    ) else {
        eprintln!("fleet client: bad arguments {args:?}");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(client(port, mode, seed, keyspace, working_set));
}

async fn client(port: u16, mode: Mode, seed: u64, keyspace: usize, working_set: usize) {
    let data_client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap_or_else(|e| panic!("client: {e}"));
    let mut data = data_client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("data connection: {e}"));
    let push_client = redis::Client::open(format!("redis://127.0.0.1:{port}/?protocol=resp3"))
        .unwrap_or_else(|e| panic!("client: {e}"));
    let (events, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let (push_tx, mut push_rx) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
    let mut push = push_client
        .get_multiplexed_async_connection_with_config(
            &AsyncConnectionConfig::new().set_push_sender(push_tx),
        )
        .await
        .unwrap_or_else(|e| panic!("push connection: {e}"));
    match mode {
        Mode::None => {}
        Mode::Bcast => redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(format!("{NS}:"))
            .query_async::<()>(&mut push)
            .await
            .unwrap_or_else(|e| panic!("CLIENT TRACKING BCAST: {e}")),
        Mode::Own => redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .query_async::<()>(&mut push)
            .await
            .unwrap_or_else(|e| panic!("CLIENT TRACKING: {e}")),
        Mode::Keys => {
            let id: i64 = redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut push)
                .await
                .unwrap_or_else(|e| panic!("CLIENT ID: {e}"));
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("REDIRECT")
                .arg(id)
                .query_async::<()>(&mut data)
                .await
                .unwrap_or_else(|e| panic!("CLIENT TRACKING REDIRECT: {e}"));
        }
    }
    // `own`: the reads go over the push connection itself (per-key tracking without REDIRECT).
    if mode == Mode::Own {
        data = push.clone();
    }
    // The working set: `working_set` distinct keys, read once (which, per key, is what makes
    // Redis track them in `keys` mode).
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut mine = vec![false; keyspace];
    let mut chosen = Vec::with_capacity(working_set);
    while chosen.len() < working_set.min(keyspace) {
        let i = rng.below(keyspace);
        if !mine[i] {
            mine[i] = true;
            chosen.push(i);
        }
    }
    for chunk in chosen.chunks(200) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.get(key(i));
        }
        pipe.query_async::<Vec<Option<String>>>(&mut data)
            .await
            .unwrap_or_else(|e| panic!("reading the working set: {e}"));
    }
    {
        let events = events.clone();
        tokio::spawn(async move {
            while let Some(p) = push_rx.recv().await {
                if events.send(Event::Push(p)).is_err() {
                    break;
                }
            }
        });
    }
    {
        // Control lines from the orchestrator on stdin (a thread: no `io-std` feature needed).
        let events = events.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let ev = match line.trim() {
                    "measure" => Event::Measure,
                    "stop" => Event::Stop,
                    _ => continue,
                };
                if events.send(ev).is_err() {
                    return;
                }
            }
            let _ = events.send(Event::Stop);
        });
    }
    println!("ready");
    let _ = std::io::stdout().flush();

    let mut measuring = false;
    let mut since = Instant::now();
    let (mut pushes, mut keys, mut ws) = (0u64, 0u64, 0u64);
    let mut delays_us: Vec<u64> = Vec::new();
    let prefix = format!("{NS}:k");
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Push(p) => {
                if p.kind != PushKind::Invalidate {
                    continue;
                }
                let at = wall_ns();
                pushes += 1;
                for v in p.data {
                    let Value::Array(ks) = v else { continue };
                    for k in ks {
                        let Value::BulkString(k) = k else { continue };
                        keys += 1;
                        let idx = std::str::from_utf8(&k)
                            .ok()
                            .and_then(|s| s.strip_prefix(&prefix))
                            .and_then(|s| s.parse::<usize>().ok());
                        if let Some(i) = idx.filter(|&i| i < keyspace && mine[i]) {
                            ws += 1;
                            let mut data = data.clone();
                            let events = events.clone();
                            tokio::spawn(async move {
                                let v = redis::cmd("GET")
                                    .arg(key(i))
                                    .query_async::<Option<String>>(&mut data)
                                    .await
                                    .ok()
                                    .flatten();
                                let _ = events.send(Event::Reread(at, v));
                            });
                        }
                    }
                }
            }
            Event::Reread(at, v) => {
                if let Some(sent) = v.and_then(|v| v.parse::<u64>().ok()) {
                    if measuring && sent > 0 && at >= sent {
                        delays_us.push((at - sent) / 1_000);
                    }
                }
            }
            Event::Measure => {
                measuring = true;
                since = Instant::now();
                (pushes, keys, ws) = (0, 0, 0);
                delays_us.clear();
            }
            Event::Stop => break,
        }
    }
    let secs = since.elapsed().as_secs_f64();
    let delays: Vec<String> = delays_us.iter().map(u64::to_string).collect();
    println!(
        "stats {secs:.4} {pushes} {keys} {ws} {}",
        if delays.is_empty() {
            "-".to_string()
        } else {
            delays.join(",")
        }
    );
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.
// ---------------------------------------------------------------------------------------------

/// One client process, killed on drop (a panicking orchestrator leaves none behind).
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn send(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // `rest` starts at field 3 (state): field k is f[k - 3].
    n(14 - 3) + n(15 - 3)
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn info_field(info: &str, field: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Row {
    mode: Mode,
    clients: usize,
    rate: u64,
    writes_per_s: f64,
    redis_cpu: f64,
    clients_cpu: f64,
    pushes_per_s: f64,
    keys_per_s: f64,
    ws_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    samples: usize,
    tracking_items: u64,
    tracking_keys: u64,
    mem_clients: i64,
    load: String,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn run(plan: &Plan, mode: Mode, clients: usize, rate: u64, rt: &tokio::runtime::Runtime) -> Row {
    let server = RedisServer::builder().start();
    let pid = server
        .pid()
        .unwrap_or_else(|| panic!("redis-server not running"));
    let port = server.port();
    let client = server.client();
    let mut conn = rt.block_on(server.conn());
    let info = |conn: &mut redis::aio::MultiplexedConnection| -> String {
        rt.block_on(redis::cmd("INFO").query_async::<String>(conn))
            .unwrap_or_default()
    };
    rt.block_on(async {
        for chunk in (0..plan.keyspace).collect::<Vec<_>>().chunks(1000) {
            let mut pipe = redis::pipe();
            for &i in chunk {
                pipe.set(key(i), "0").ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("preload: {e}"));
        }
    });
    let mem0 = info_field(&info(&mut conn), "used_memory");

    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let (lines_tx, lines_rx) = mpsc::channel::<(usize, String)>();
    let mut procs: Vec<Proc> = (0..clients)
        .map(|c| {
            let mut child = Command::new(&exe)
                .arg("--fleet-client")
                .arg(port.to_string())
                .arg(mode.name())
                .arg((c as u64 + 1).to_string())
                .arg(plan.keyspace.to_string())
                .arg(plan.working_set.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawning a client: {e}"));
            let stdin = child.stdin.take();
            if let Some(out) = child.stdout.take() {
                let tx = lines_tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if tx.send((c, line)).is_err() {
                            break;
                        }
                    }
                });
            }
            Proc { child, stdin }
        })
        .collect();
    let mut ready = 0;
    while ready < clients {
        match lines_rx.recv_timeout(Duration::from_secs(120)) {
            Ok((_, l)) if l == "ready" => ready += 1,
            Ok(_) => {}
            Err(e) => panic!("clients not ready ({ready}/{clients}): {e}"),
        }
    }
    let after_ready = info(&mut conn);
    let tracking_items = info_field(&after_ready, "tracking_total_items");
    let tracking_keys = info_field(&after_ready, "tracking_total_keys");
    let mem_clients = info_field(&after_ready, "used_memory") as i64 - mem0 as i64;

    // The writer: `rate` SETs per second, each value its send time.
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let client = client.clone();
        let written = Arc::clone(&written);
        let keyspace = plan.keyspace;
        rt.spawn(async move {
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .unwrap_or_else(|e| panic!("writer: {e}"));
            let mut rng = Rng(0x05ee_d0ff_1ee7);
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut sent = 0u64;
            loop {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                while sent < due {
                    sent += 1;
                    let k = key(rng.below(keyspace));
                    let mut c = conn.clone();
                    let written = Arc::clone(&written);
                    tokio::spawn(async move {
                        let v = wall_ns().to_string();
                        if redis::cmd("SET")
                            .arg(k)
                            .arg(v)
                            .query_async::<()>(&mut c)
                            .await
                            .is_ok()
                        {
                            written.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        })
    };
    std::thread::sleep(plan.warmup);

    let pids: Vec<u32> = procs.iter().map(|p| p.child.id()).collect();
    let r0 = cpu_ticks(pid);
    let c0: u64 = pids.iter().map(|&p| cpu_ticks(p)).sum();
    let w0 = written.load(Ordering::Relaxed);
    let t0 = Instant::now();
    for p in &mut procs {
        p.send("measure");
    }
    std::thread::sleep(plan.window);
    let r1 = cpu_ticks(pid);
    let c1: u64 = pids.iter().map(|&p| cpu_ticks(p)).sum();
    let w1 = written.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let load = loadavg();
    for p in &mut procs {
        p.send("stop");
    }
    writer.abort();

    let (mut pushes, mut keys, mut ws) = (0.0, 0.0, 0.0);
    let mut delays: Vec<u64> = Vec::new();
    let mut reported = 0;
    while reported < clients {
        let Ok((_, l)) = lines_rx.recv_timeout(Duration::from_secs(60)) else {
            panic!("clients did not report ({reported}/{clients})");
        };
        let Some(rest) = l.strip_prefix("stats ") else {
            continue;
        };
        reported += 1;
        let f: Vec<&str> = rest.split(' ').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let secs = num(0).max(1e-9);
        pushes += num(1) / secs;
        keys += num(2) / secs;
        ws += num(3) / secs;
        if let Some(d) = f.get(4).filter(|d| **d != "-") {
            delays.extend(d.split(',').filter_map(|v| v.parse::<u64>().ok()));
        }
    }
    drop(procs);
    delays.sort_unstable();
    let tps = ticks_per_sec();
    Row {
        mode,
        clients,
        rate,
        writes_per_s: (w1 - w0) as f64 / elapsed,
        redis_cpu: (r1 - r0) as f64 / tps / elapsed * 100.0,
        clients_cpu: (c1 - c0) as f64 / tps / elapsed * 100.0,
        pushes_per_s: pushes,
        keys_per_s: keys,
        ws_per_s: ws,
        p50_ms: percentile(&delays, 0.50),
        p99_ms: percentile(&delays, 0.99),
        samples: delays.len(),
        tracking_items,
        tracking_keys,
        mem_clients,
        load,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--fleet-client") {
        client_main(&args[2..]);
        return;
    }
    let plan = Plan::from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    println!(
        "# fleet: BCAST vs per-key tracking{}\n\ncpu: {} ({} cores), load average at start: {}\nkeyspace {} keys, working set {} keys per client, warm-up {:?}, window {:?}\n",
        if plan.smoke { " (smoke: numbers not meaningful)" } else { "" },
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        loadavg(),
        plan.keyspace,
        plan.working_set,
        plan.warmup,
        plan.window,
    );
    let mut rows = Vec::new();
    for &rate in &plan.rates {
        for &clients in &plan.clients {
            for &mode in &plan.modes {
                let row = run(&plan, mode, clients, rate, &rt);
                eprintln!(
                    "{} {clients} clients {rate} writes/s: redis CPU {:.1} %, {:.0} keys pushed/s",
                    mode.name(),
                    row.redis_cpu,
                    row.keys_per_s
                );
                rows.push(row);
            }
        }
    }
    println!("| mode | clients | writes/s | redis CPU % | clients CPU % | pushes/s | keys pushed/s | working-set invalidations/s | delay p50 ms | p99 ms | samples | tracking items | keys | used_memory Δ (clients) | load avg |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {:.1} MiB | {} |",
            r.mode.name(),
            r.clients,
            r.writes_per_s,
            r.redis_cpu,
            r.clients_cpu,
            r.pushes_per_s,
            r.keys_per_s,
            r.ws_per_s,
            r.p50_ms,
            r.p99_ms,
            r.samples,
            r.tracking_items,
            r.tracking_keys,
            r.mem_clients as f64 / (1024.0 * 1024.0),
            r.load,
        );
    }
    // Per (rate, clients): ratios and the linear projection to 500 processes.
    println!("\n| writes/s | clients | redis CPU bcast / keys | keys pushed bcast / keys | per process: redis CPU % bcast | keys | at 500 processes: redis CPU % bcast | keys | Redis saturates (one core) at processes: bcast | keys | tracking table (used_memory Δ keys − bcast) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &rate in &plan.rates {
        for &clients in &plan.clients {
            let find = |m: Mode| {
                rows.iter()
                    .find(|r| r.mode == m && r.rate == rate && r.clients == clients)
            };
            let (Some(b), Some(k)) = (find(Mode::Bcast), find(Mode::Keys)) else {
                continue;
            };
            let base = find(Mode::None).map(|r| r.redis_cpu).unwrap_or(0.0);
            let slope = |r: &Row| ((r.redis_cpu - base) / r.clients as f64).max(0.0);
            let at = |r: &Row, n: f64| base + slope(r) * n;
            let sat = |r: &Row| {
                let s = slope(r);
                if s > 0.0 {
                    format!("{:.0}", (100.0 - base) / s)
                } else {
                    "-".into()
                }
            };
            println!(
                "| {rate} | {clients} | {:.2} | {:.1} | {:.3} | {:.3} | {:.0} | {:.0} | {} | {} | {:.2} MiB |",
                b.redis_cpu / k.redis_cpu.max(1e-9),
                b.keys_per_s / k.keys_per_s.max(1e-9),
                slope(b),
                slope(k),
                at(b, 500.0),
                at(k, 500.0),
                sat(b),
                sat(k),
                (k.mem_clients - b.mem_clients) as f64 / (1024.0 * 1024.0),
            );
        }
    }
    println!("\nload average at end: {}", loadavg());
}
