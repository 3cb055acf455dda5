//! Redis Cluster topology: reads served by replicas (`REDIS_READ_FROM_REPLICAS`) and slots moved
//! between masters under load (resharding), each on a private 3-master/3-replica cluster.
//!
//! - Which node serves what is counted by the servers themselves (`INFO commandstats`, reset
//!   with `CONFIG RESETSTAT` before each phase), so the assertions are exact counts, not timings.
//! - The reshard moves every slot of one master to another with the `CLUSTER SETSLOT …
//!   IMPORTING` / `MIGRATING`, `MIGRATE`, `SETSLOT … NODE` steps while tasks call cached
//!   functions on keys in the moving slots; it asserts outcomes (no wrong value, no error, hits
//!   after the move, the per-master breakers' map naming the new owners), never a duration.
//! - The hit throughput with and without replica reads is `#[ignore]`d (load-dependent):
//!   `cargo test -p memo-redis-tests --test cluster_topology -- --ignored --nocapture`

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{RedisCluster, RedisServer};
use redis::aio::MultiplexedConnection;

fn config(cluster: &RedisCluster, namespace: &str, replicas: bool) -> Config {
    Config::builder()
        .cluster(true)
        .url(cluster.url())
        .namespace(namespace)
        // Generous: the assertions count exact outcomes, and a loaded 2-core machine running
        // six nodes must not turn a slow reply into an error.
        .op_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .read_from_replicas(replicas)
        .build()
        .expect("valid cluster config")
}

/// `INFO <section>` of one node.
async fn info(node: &RedisServer, section: &str) -> String {
    let mut c = node.conn().await;
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut c)
        .await
        .expect("INFO")
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// `CLUSTER INFO` of one node.
async fn cluster_info(node: &RedisServer) -> String {
    let mut c = node.conn().await;
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut c)
        .await
        .unwrap_or_default()
}

/// `calls` of `cmdstat_<command>` on one node (0 when the command never ran).
async fn calls(node: &RedisServer, command: &str) -> u64 {
    let stats = info(node, "commandstats").await;
    field(&stats, &format!("cmdstat_{command}"))
        .and_then(|v| v.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn is_replica(node: &RedisServer) -> bool {
    field(&info(node, "replication").await, "role") == Some("slave")
}

/// (masters, replicas) among the running nodes, by their own `INFO replication`.
async fn roles(cluster: &RedisCluster) -> (Vec<&RedisServer>, Vec<&RedisServer>) {
    let (mut masters, mut replicas) = (Vec::new(), Vec::new());
    for n in cluster.nodes().iter().filter(|n| n.is_running()) {
        if is_replica(n).await {
            replicas.push(n);
        } else {
            masters.push(n);
        }
    }
    (masters, replicas)
}

/// Sum of `cmdstat_<command>` calls over `nodes`.
async fn total(nodes: &[&RedisServer], command: &str) -> u64 {
    let mut sum = 0;
    for n in nodes {
        sum += calls(n, command).await;
    }
    sum
}

async fn reset_stats(cluster: &RedisCluster) {
    for n in cluster.nodes() {
        let mut c = n.conn().await;
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut c)
            .await
            .expect("CONFIG RESETSTAT");
    }
}

/// Waits (bounded) until every replica has applied everything its master has written, so a
/// read on a replica finds what was just written on the master.
async fn replicas_caught_up(cluster: &RedisCluster) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut offsets: HashMap<u16, u64> = HashMap::new();
        let mut lagging = Vec::new();
        let (masters, replicas) = roles(cluster).await;
        for m in &masters {
            let i = info(m, "replication").await;
            let offset = field(&i, "master_repl_offset").and_then(|v| v.parse().ok());
            offsets.insert(m.port(), offset.unwrap_or(u64::MAX));
        }
        for r in &replicas {
            let i = info(r, "replication").await;
            let master: Option<u16> = field(&i, "master_port").and_then(|v| v.parse().ok());
            let applied: u64 = field(&i, "slave_repl_offset")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let wanted = master.and_then(|p| offsets.get(&p)).copied().unwrap_or(0);
            if applied < wanted || field(&i, "master_link_status") != Some("up") {
                lagging.push((r.port(), applied, wanted));
            }
        }
        if lagging.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replicas still behind their masters: {lagging:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until every node's `CLUSTER SLOTS` names a replica for each slot range:
/// right after `--cluster create` some nodes have not heard of every replica yet (gossip), and
/// redis-rs learns the replicas from the one node it asks when it connects.
async fn every_node_knows_the_replicas(cluster: &RedisCluster) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut missing = Vec::new();
        for n in cluster.nodes() {
            let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut n.conn().await)
                .await
                .expect("CLUSTER SLOTS");
            // first, last, master, replicas…
            if slots.len() != 3 || slots.iter().any(|range| range.len() < 4) {
                missing.push(n.port());
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nodes {missing:?} still see a slot range without its replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Hits are served by replicas only with the flag; writes, `GETEX` (`sliding`) and the lock's
/// reads stay on the masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_replicas_serve_hits_on_replicas_and_nothing_else() {
    let cluster = RedisCluster::start();
    every_node_knows_the_replicas(&cluster).await;
    static ON: Cache = Cache::from_env();
    static OFF: Cache = Cache::from_env();
    ON.install(config(&cluster, "on", true)).unwrap();
    OFF.install(config(&cluster, "off", false)).unwrap();

    static RUNS_ON: AtomicU64 = AtomicU64::new(0);
    static RUNS_OFF: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = ON, ttl = 600)]
    async fn on(x: u64) -> u64 {
        RUNS_ON.fetch_add(1, SeqCst);
        x * 7
    }
    #[redis_cache(cache = OFF, ttl = 600)]
    async fn off(x: u64) -> u64 {
        RUNS_OFF.fetch_add(1, SeqCst);
        x * 7
    }
    #[redis_cache(cache = ON, ttl = 600, sliding = true)]
    async fn slide(x: u64) -> u64 {
        x + 1
    }
    static RUNS_LOCKED: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = ON, ttl = 600, lock = true)]
    async fn locked(x: u64) -> u64 {
        RUNS_LOCKED.fetch_add(1, SeqCst);
        x + 2
    }
    const N: u64 = 300;
    for x in 0..N {
        assert_eq!(on(x).await, x * 7);
        assert_eq!(off(x).await, x * 7);
        assert_eq!(slide(x).await, x + 1);
    }
    replicas_caught_up(&cluster).await;
    let (masters, replicas) = roles(&cluster).await;
    assert_eq!((masters.len(), replicas.len()), (3, 3));

    // Without the flag: every hit is a GET on a master, none on a replica.
    reset_stats(&cluster).await;
    for x in 0..N {
        assert_eq!(off(x).await, x * 7);
    }
    assert_eq!(RUNS_OFF.load(SeqCst), N, "all hits");
    assert_eq!(total(&replicas, "get").await, 0, "no read on a replica");
    assert_eq!(total(&masters, "get").await, N);

    // With it: every hit is a GET on a replica (each of the three serves some), none on a master.
    reset_stats(&cluster).await;
    for x in 0..N {
        assert_eq!(on(x).await, x * 7);
    }
    assert_eq!(RUNS_ON.load(SeqCst), N, "all hits, on replicas");
    assert_eq!(total(&masters, "get").await, 0, "no read on a master");
    assert_eq!(total(&replicas, "get").await, N);
    for r in &replicas {
        assert!(
            calls(r, "get").await > 0,
            "replica {} served hits",
            r.port()
        );
    }

    // `sliding` reads with GETEX, a write: on the masters.
    reset_stats(&cluster).await;
    for x in 0..N {
        assert_eq!(slide(x).await, x + 1);
    }
    assert_eq!(total(&masters, "getex").await, N);
    assert_eq!(total(&replicas, "getex").await, 0);
    assert_eq!(total(&replicas, "get").await, 0);

    // A miss with `lock`: the first read may go to a replica, the lock (SET NX + GET) and the
    // re-read after taking it go to the master (where the previous holder wrote); the write too.
    reset_stats(&cluster).await;
    for x in 0..N {
        assert_eq!(locked(x).await, x + 2);
    }
    assert_eq!(RUNS_LOCKED.load(SeqCst), N);
    assert_eq!(
        total(&replicas, "get").await,
        N,
        "only the first read of each call on a replica"
    );
    // The lock's pipelined GET and the re-read (the release script's GET may be counted too).
    assert!(total(&masters, "get").await >= 2 * N);
    assert_eq!(total(&masters, "set").await, 2 * N, "lock and value");
}

/// The master a node replicates from, or itself for a master; its id.
async fn node_id(node: &RedisServer) -> String {
    let mut c = node.conn().await;
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(&mut c)
        .await
        .expect("CLUSTER MYID")
}

/// The slots a master serves, from its own line in `CLUSTER NODES`.
async fn own_slots(node: &RedisServer) -> Vec<u16> {
    let mut c = node.conn().await;
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut c)
        .await
        .expect("CLUSTER NODES");
    let line = nodes
        .lines()
        .find(|l| l.contains("myself"))
        .expect("own line");
    let mut slots = Vec::new();
    for field in line.split_whitespace().skip(8) {
        if field.starts_with('[') {
            continue; // a slot already importing/migrating
        }
        let (a, b) = field.split_once('-').unwrap_or((field, field));
        let (a, b): (u16, u16) = (a.parse().unwrap(), b.parse().unwrap());
        slots.extend(a..=b);
    }
    slots.sort_unstable();
    slots
}

/// A connection for the reshard's own commands: no response timeout (thousands of pipelined
/// `CLUSTER SETSLOT`s, each saving the node's cluster config, take longer than redis-rs's
/// default 500 ms).
async fn admin(node: &RedisServer) -> MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    node.client()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("admin connection")
}

/// `CLUSTER SETSLOT <slot> <args…>` for every slot, pipelined 32 at a time: each `SETSLOT`
/// saves (and fsyncs) the node's cluster config, so thousands in one pipeline would block the
/// node for seconds, which no real reshard does (and which would time the test's calls out).
async fn setslot_all(
    c: &mut MultiplexedConnection,
    slots: &[u16],
    args: &[&str],
) -> Result<(), String> {
    for chunk in slots.chunks(32) {
        let mut pipe = redis::pipe();
        for s in chunk {
            pipe.cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(*s)
                .arg(args)
                .ignore();
        }
        pipe.query_async::<()>(c).await.map_err(|e| {
            let e = e.to_string();
            e.chars().take(300).collect::<String>()
        })?;
    }
    Ok(())
}

/// Moves `slots` from `from` to `to`, the way `redis-cli --cluster reshard` does, slot by slot
/// for the keys: `IMPORTING` on the target, `MIGRATING` on the source, `MIGRATE` of each slot's
/// keys, then `SETSLOT … NODE` on the target, the source and every other master. Returns how
/// many keys moved.
async fn move_slots(
    from: &RedisServer,
    to: &RedisServer,
    others: &[&RedisServer],
    slots: &[u16],
) -> usize {
    let slots = slots.to_vec();
    let (from_id, to_id) = (node_id(from).await, node_id(to).await);
    let (mut src, mut dst) = (admin(from).await, admin(to).await);
    let started = Instant::now();
    setslot_all(&mut dst, &slots, &["IMPORTING", &from_id])
        .await
        .expect("IMPORTING");
    setslot_all(&mut src, &slots, &["MIGRATING", &to_id])
        .await
        .expect("MIGRATING");
    let mut count = redis::pipe();
    for s in &slots {
        count.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(*s);
    }
    let counts: Vec<u64> = count.query_async(&mut src).await.expect("COUNTKEYSINSLOT");
    let mut moved = 0;
    // A slot that is empty now stays empty: while it migrates, the source sends writes of keys
    // it does not hold to the target (`ASK`).
    for (s, n) in slots.iter().zip(counts) {
        if n == 0 {
            continue;
        }
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(*s)
                .arg(100)
                .query_async(&mut src)
                .await
                .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            moved += keys.len();
            let () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to.port())
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query_async(&mut src)
                .await
                .map(|_: redis::Value| ())
                .expect("MIGRATE");
        }
    }
    let node = ["NODE", to_id.as_str()];
    setslot_all(&mut dst, &slots, &node)
        .await
        .expect("NODE on the target");
    // The source and the other masters also learn it from the target (gossip, a higher config
    // epoch), and the source, left without slots, turns into the target's replica meanwhile
    // (replica migration), refusing `SETSLOT` from then on: best effort, like redis-cli.
    if let Err(e) = setslot_all(&mut src, &slots, &node).await {
        println!("SETSLOT NODE on the source: {e}");
    }
    for o in others {
        if let Err(e) = setslot_all(&mut admin(o).await, &slots, &node).await {
            println!("SETSLOT NODE on {}: {e}", o.port());
        }
    }
    println!(
        "moved {} slots and {moved} keys in {:?}",
        slots.len(),
        started.elapsed()
    );
    moved
}

/// Waits (bounded) until every running node agrees that `owner` serves `slot` and reports
/// `cluster_state:ok`.
async fn converged(cluster: &RedisCluster, slot: u16, owner: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut ok = cluster.master_port_for_slot(slot) == Some(owner);
        for n in cluster.nodes().iter().filter(|n| n.is_running()) {
            ok &= field(&cluster_info(n).await, "cluster_state") == Some("ok");
        }
        if ok {
            return;
        }
        if Instant::now() >= deadline {
            let mut states = Vec::new();
            for n in cluster.nodes() {
                let mut c = n.conn().await;
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                states.push(format!(
                    "{}: {:?}\n{nodes}",
                    n.port(),
                    field(&cluster_info(n).await, "cluster_state")
                ));
            }
            panic!(
                "cluster did not converge on slot {slot} -> {owner} (owner per the harness: \
                 {:?}):\n{}",
                cluster.master_port_for_slot(slot),
                states.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Slots move from one master to another while tasks call cached functions on keys in them
/// (`$drain`: every slot of the source, which then turns into a replica of the target; else the
/// slots holding the test's keys on the source): every result is right, hits resume afterwards,
/// the per-master breakers account the moved keys on their new master, and (`$strict`) no call
/// saw an error or bypassed Redis.
macro_rules! reshard_test {
    ($(#[$attr:meta])* $name:ident, drain = $drain:expr, strict = $strict:expr) => {
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            static CACHE: Cache = Cache::from_env();
            static RUNS: AtomicU64 = AtomicU64::new(0);
            #[redis_cache(cache = CACHE, ttl = 600)]
            async fn triple(x: u64) -> u64 {
                RUNS.fetch_add(1, SeqCst);
                x * 3 + 1
            }
            #[redis_cache(cache = CACHE, ttl = 600, lock = true)]
            async fn guarded(x: u64) -> String {
                format!("g{x}")
            }
            let cluster = RedisCluster::start();
            // The store's per-reply timeout on a cluster is a quarter of this (2 s): a reply
            // slowed by a loaded CI machine must not count as an error of the reshard.
            let config = Config::builder()
                .cluster(true)
                .url(cluster.url())
                .namespace("rs")
                .op_timeout(Duration::from_secs(8))
                .connect_timeout(Duration::from_secs(2))
                .build()
                .expect("valid cluster config");
            CACHE.install(config).unwrap();
            let s = Scenario {
                cluster: &cluster,
                cache: &CACHE,
                runs: &RUNS,
                triple: |x| Box::pin(triple(x)),
                guarded: |x| Box::pin(guarded(x)),
                triple_key: |x| triple_key(&x).unwrap(),
                triple_stats,
                guarded_stats,
            };
            reshard_under_load(s, $drain, $strict).await;
        }
    };
}

reshard_test!(
    resharding_under_load_serves_right_values_without_errors,
    drain = false,
    strict = true
);

reshard_test!(
    #[ignore = "load-dependent: cargo test -p memo-redis-tests --test cluster_topology -- --ignored --nocapture draining"]
    draining_a_master_under_load_serves_right_values,
    drain = true,
    strict = false
);

type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// One reshard test's cluster, cache and cached functions.
struct Scenario<'a> {
    cluster: &'a RedisCluster,
    cache: &'static Cache,
    runs: &'static AtomicU64,
    triple: fn(u64) -> Boxed<u64>,
    guarded: fn(u64) -> Boxed<String>,
    triple_key: fn(u64) -> String,
    triple_stats: fn() -> memo_redis::Stats,
    guarded_stats: fn() -> memo_redis::Stats,
}

async fn reshard_under_load(s: Scenario<'_>, drain: bool, strict: bool) {
    let Scenario {
        cluster,
        cache,
        runs,
        triple,
        guarded,
        triple_key,
        triple_stats,
        guarded_stats,
    } = s;
    // `RUST_LOG=memo_redis=debug` shows what the store saw during the move.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    const KEYS: u64 = 600;
    for x in 0..KEYS {
        assert_eq!(triple(x).await, x * 3 + 1);
        assert_eq!(guarded(x).await, format!("g{x}"));
    }
    assert_eq!(runs.load(SeqCst), KEYS);

    // The source: the master of `triple(0)`'s key; the target: another master.
    let slot = cluster.slot_of(&triple_key(0));
    let from_port = cluster.master_port_for_slot(slot).expect("owner");
    let masters = cluster.masters();
    let from = *masters.iter().find(|m| m.port() == from_port).unwrap();
    let to = *masters.iter().find(|m| m.port() != from_port).unwrap();
    let third = *masters
        .iter()
        .find(|m| m.port() != from.port() && m.port() != to.port())
        .unwrap();
    let slots_of: HashMap<u64, u16> = (0..KEYS)
        .map(|x| (x, cluster.slot_of(&triple_key(x))))
        .collect();
    let source_slots = own_slots(from).await;
    let on_source: Vec<u64> = (0..KEYS)
        .filter(|x| source_slots.binary_search(&slots_of[x]).is_ok())
        .collect();
    assert!(
        on_source.len() > KEYS as usize / 5,
        "about a third on the source"
    );
    let moving: Vec<u16> = match drain {
        true => source_slots.clone(),
        false => on_source
            .iter()
            .map(|x| slots_of[x])
            .collect::<BTreeSet<u16>>()
            .into_iter()
            .collect(),
    };
    let before = triple_stats();
    let guarded_before = guarded_stats();
    for &x in &on_source {
        let node = memo_redis::__private::breaker_node_of(cache, &triple_key(x));
        assert_eq!(
            node,
            Some(from.addr()),
            "accounted on the source before the move"
        );
    }

    // Load: tasks calling both functions on keys in the moving slots (and now and then one on
    // another master), checking every result.
    let stop = Arc::new(AtomicBool::new(false));
    // The load stops however this test ends (a failed assertion must not leave it running).
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }
    let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
    let wrong = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let on_source = Arc::new(on_source);
    let tasks: Vec<_> = (0..8usize)
        .map(|t| {
            let (stop, wrong, calls, keys) = (
                Arc::clone(&stop),
                Arc::clone(&wrong),
                Arc::clone(&calls),
                Arc::clone(&on_source),
            );
            tokio::spawn(async move {
                let mut i = t;
                while !stop.load(SeqCst) {
                    let x = keys[i % keys.len()];
                    if triple(x).await != x * 3 + 1 {
                        wrong.fetch_add(1, SeqCst);
                    }
                    if guarded(x).await != format!("g{x}") {
                        wrong.fetch_add(1, SeqCst);
                    }
                    let y = (i as u64 * 7) % KEYS;
                    if triple(y).await != y * 3 + 1 {
                        wrong.fetch_add(1, SeqCst);
                    }
                    calls.fetch_add(3, SeqCst);
                    i += 8;
                }
            })
        })
        .collect();
    // Let the load start before the first slot moves.
    while calls.load(SeqCst) < 300 {
        tokio::task::yield_now().await;
    }
    let calls_before_move = calls.load(SeqCst);
    let moved = move_slots(from, to, &[third], &moving).await;
    let calls_during_move = calls.load(SeqCst) - calls_before_move;
    converged(cluster, slot, to.port()).await;
    // Some more calls on the new layout before the load stops.
    let after_move = calls.load(SeqCst);
    while calls.load(SeqCst) < after_move + 300 {
        tokio::task::yield_now().await;
    }
    stop.store(true, SeqCst);
    for t in tasks {
        t.await.expect("no call panicked");
    }
    let load = triple_stats();
    let guarded_load = guarded_stats();
    println!(
        "moved {moved} keys in {} slots ({} -> {}{}); {} calls under load, {calls_during_move} \
         while slots moved; triple: hits {}, misses {}, errors {}, bypass {}; guarded: hits {}, \
         misses {}, errors {}, bypass {}",
        moving.len(),
        from.port(),
        to.port(),
        if drain { ", the source drained" } else { "" },
        calls.load(SeqCst),
        load.hits - before.hits,
        load.misses - before.misses,
        load.errors - before.errors,
        load.bypass - before.bypass,
        guarded_load.hits - guarded_before.hits,
        guarded_load.misses - guarded_before.misses,
        guarded_load.errors - guarded_before.errors,
        guarded_load.bypass - guarded_before.bypass,
    );
    assert!(moved >= on_source.len(), "the keys moved with their slots");
    assert_eq!(wrong.load(SeqCst), 0, "no wrong value");
    if strict {
        assert_eq!(load.errors, before.errors, "no Redis error on any call");
        assert_eq!(load.bypass, before.bypass, "no call bypassed Redis");
        assert_eq!(guarded_load.errors, guarded_before.errors);
        assert_eq!(guarded_load.bypass, guarded_before.bypass);
        assert_eq!(
            runs.load(SeqCst),
            KEYS,
            "every call was a hit: the entries moved intact"
        );
    }

    // Hits on the moved keys, now served by the target.
    let runs_before = runs.load(SeqCst);
    let hits = triple_stats().hits;
    for &x in on_source.iter() {
        assert_eq!(triple(x).await, x * 3 + 1);
    }
    assert_eq!(runs.load(SeqCst), runs_before, "all hits after the move");
    assert_eq!(triple_stats().hits - hits, on_source.len() as u64);
    let moved_key = triple_key(on_source[0]);
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&moved_key)
        .query_async(&mut to.conn().await)
        .await
        .expect("the target owns the slot now");
    assert!(raw.is_some(), "{moved_key} is on the target");

    // The breakers' slot map follows: the moved keys are accounted on the target (the map is
    // re-read at most `SLOT_MAP_MAX_AGE` after a use); a drained source is no master any more.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert_eq!(triple(0).await, 1);
        let stale: Vec<u64> = on_source
            .iter()
            .copied()
            .filter(|&x| {
                memo_redis::__private::breaker_node_of(cache, &triple_key(x)) != Some(to.addr())
            })
            .collect();
        let view: BTreeSet<String> = cache.breaker_nodes().into_iter().map(|n| n.node).collect();
        let masters_ok = !drain || !view.contains(&from.addr());
        if stale.is_empty() && masters_ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} moved keys still accounted on another master than {}; breakers: {view:?}",
            stale.len(),
            to.addr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Hit throughput with and without replica reads on the same 3+3 cluster, in one run
/// (alternating rounds). Load-dependent: run by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: cargo test -p memo-redis-tests --release --test cluster_topology -- --ignored --nocapture"]
async fn replica_read_hit_throughput() {
    let cluster = RedisCluster::start();
    every_node_knows_the_replicas(&cluster).await;
    static ON: Cache = Cache::from_env();
    static OFF: Cache = Cache::from_env();
    ON.install(config(&cluster, "on", true)).unwrap();
    OFF.install(config(&cluster, "off", false)).unwrap();
    #[redis_cache(cache = ON, ttl = 600)]
    async fn on(x: u64) -> u64 {
        x * 7
    }
    #[redis_cache(cache = OFF, ttl = 600)]
    async fn off(x: u64) -> u64 {
        x * 7
    }
    const KEYS: u64 = 3000;
    const TASKS: u64 = 64;
    const ROUND: Duration = Duration::from_secs(3);
    const ROUNDS: usize = 4;
    for x in 0..KEYS {
        on(x).await;
        off(x).await;
    }
    replicas_caught_up(&cluster).await;
    let (masters, replicas) = roles(&cluster).await;

    async fn round(replica: bool) -> f64 {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
                tokio::spawn(async move {
                    let mut x = t;
                    while !stop.load(SeqCst) {
                        let v = if replica { on(x).await } else { off(x).await };
                        assert_eq!(v, x * 7);
                        done.fetch_add(1, SeqCst);
                        x = (x + TASKS) % KEYS;
                    }
                })
            })
            .collect();
        let started = Instant::now();
        tokio::time::sleep(ROUND).await;
        stop.store(true, SeqCst);
        let n = done.load(SeqCst);
        let took = started.elapsed();
        for t in tasks {
            t.await.unwrap();
        }
        n as f64 / took.as_secs_f64()
    }

    let (mut with, mut without) = (Vec::new(), Vec::new());
    reset_stats(&cluster).await;
    for _ in 0..ROUNDS {
        without.push(round(false).await);
        with.push(round(true).await);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (w, wo) = (mean(&with), mean(&without));
    println!(
        "hits/s over {ROUNDS} alternating rounds of {ROUND:?}, {TASKS} tasks, {KEYS} keys: \
         masters only {wo:.0} ({without:.0?}), replicas {w:.0} ({with:.0?}); ratio {:.2}",
        w / wo
    );
    println!(
        "GET calls: masters {}, replicas {}",
        total(&masters, "get").await,
        total(&replicas, "get").await
    );
    println!(
        "cpu: {} / load {}",
        memo_redis_tests::cpu_model(),
        memo_redis_tests::loadavg()
    );
}
