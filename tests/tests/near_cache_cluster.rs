//! The near cache (`local = ...`) on Redis Cluster: local hits happen, and the two-process
//! coherence promises of `near_cache.rs` hold for keys on every master (one tracking link per
//! master), across a master failover (the promoted replica's writes reach the local copy) and
//! across resharding (a slot moved to another master) and a manual failover (the old master stays
//! up as a replica).

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_near_live, warm_local_by};
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{stale_for, RedisCluster};
use redis::cluster_async::ClusterConnection;

/// The staleness bound promised (and documented) on loopback, as on a single node.
const BOUND: Duration = Duration::from_millis(100);

fn config(cluster: &RedisCluster, namespace: &str) -> Config {
    Config::builder()
        .cluster(true)
        .url(cluster.url())
        .namespace(namespace)
        .op_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("valid cluster config")
}

/// A cluster-aware raw connection (another client: `redis-cli` in production).
async fn raw(cluster: &RedisCluster) -> ClusterConnection {
    let nodes: Vec<String> = cluster
        .nodes()
        .iter()
        .filter(|n| n.is_running())
        .map(|n| format!("redis://{}", n.addr()))
        .collect();
    redis::cluster::ClusterClient::new(nodes)
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("cluster connection")
}

/// The first ids whose keys (`key_of`) land on each master, one per master.
fn one_id_per_master(cluster: &RedisCluster, key_of: impl Fn(u32) -> String) -> Vec<u32> {
    let masters = cluster.masters().len();
    assert_eq!(masters, 3);
    let mut ports = Vec::new();
    let mut ids = Vec::new();
    for id in 0..1000 {
        let port = cluster
            .master_port_for_slot(cluster.slot_of(&key_of(id)))
            .expect("every slot has a master");
        if !ports.contains(&port) {
            ports.push(port);
            ids.push(id);
        }
        if ids.len() == masters {
            return ids;
        }
    }
    panic!("no key on every master among 1000 ids");
}

/// Data commands (`GET`, `SET`, …) every master has processed, summed per command (the tracking
/// links' `PING` and the topology watch's `CLUSTER SLOTS` excluded).
async fn data_commands(cluster: &RedisCluster) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = Vec::new();
    for m in cluster.masters() {
        for (name, calls) in common::data_commands(m).await {
            if name.starts_with("cluster") {
                continue;
            }
            match all.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += calls,
                None => all.push((name, calls)),
            }
        }
    }
    all.sort();
    all
}

static A: Cache = Cache::from_env();
static B: Cache = Cache::from_env();
static VERSION: AtomicU32 = AtomicU32::new(1);
static RUNS_A: AtomicU32 = AtomicU32::new(0);

// The same identity on two caches = the same Redis key: `B` stands for another process.
#[redis_cache(cache = A, name = "nearc::profile", ttl = 300, local = "60s")]
async fn profile_a(id: u32) -> String {
    RUNS_A.fetch_add(1, SeqCst);
    format!("{id}-v{}", VERSION.load(SeqCst))
}

#[redis_cache(cache = B, name = "nearc::profile", ttl = 300, local = "60s")]
async fn profile_b(id: u32) -> String {
    format!("{id}-v{}", VERSION.load(SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_hits_and_another_process_write_delete_and_expiry_on_every_master() {
    let cluster = RedisCluster::shared();
    A.install(config(cluster, "nearc")).unwrap();
    B.install(config(cluster, "nearc")).unwrap();
    let ids = one_id_per_master(cluster, |id| profile_a_key(&id).unwrap());
    assert_eq!(profile_a_key(&1).unwrap(), profile_b_key(&1).unwrap());

    // Miss (stores), Redis hit (kept locally), then local hits that never reach Redis, on
    // keys of all three masters.
    for &id in &ids {
        assert_eq!(profile_a(id).await, format!("{id}-v1"));
    }
    wait_near_live(&A, Duration::from_secs(10)).await;
    for &id in &ids {
        warm_local_by("profile", profile_a_stats, || profile_a(id)).await;
    }
    let before = profile_a_stats();
    let commands_before = data_commands(cluster).await;
    for _ in 0..100 {
        for &id in &ids {
            assert_eq!(profile_a(id).await, format!("{id}-v1"));
        }
    }
    let after = profile_a_stats();
    assert_eq!(after.local_hits - before.local_hits, 300, "{after:?}");
    assert_eq!(RUNS_A.load(SeqCst), 3);
    assert_eq!(
        data_commands(cluster).await,
        commands_before,
        "local hits reach Redis"
    );
    let state = A.near_cache().expect("a near cache on the cluster");
    assert!(state.live && state.entries >= 3, "{state:?}");

    let mut raw = raw(cluster).await;
    for &id in &ids {
        // 1. Another process overwrites the value (write-through on its own connection).
        let runs = RUNS_A.load(SeqCst);
        let v = VERSION.fetch_add(1, SeqCst) + 1;
        assert_eq!(profile_b_refresh(id).await, format!("{id}-v{v}"));
        let written = Instant::now();
        let want = format!("{id}-v{v}");
        let took = stale_for(written, Duration::from_secs(2), &want, || profile_a(id)).await;
        println!("key {id}: overwritten value served {took:?} after the write");
        assert!(
            took <= BOUND,
            "key {id}: the overwritten value was still served {took:?} after the write"
        );
        assert_eq!(RUNS_A.load(SeqCst), runs, "A read the new value from Redis");

        // 2. A raw client deletes the key: A stops serving its copy and recomputes.
        warm_local_by("profile", profile_a_stats, || profile_a(id)).await;
        let local_before = profile_a_stats().local_hits;
        assert_eq!(profile_a(id).await, want);
        assert_eq!(
            profile_a_stats().local_hits,
            local_before + 1,
            "the copy about to go stale is served locally"
        );
        let v = VERSION.fetch_add(1, SeqCst) + 1;
        let key = profile_a_key(&id).unwrap();
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .unwrap();
        let deleted = Instant::now();
        let want = format!("{id}-v{v}");
        let took = stale_for(deleted, Duration::from_secs(2), &want, || profile_a(id)).await;
        println!("key {id}: deleted value served {took:?} after the delete");
        assert!(
            took <= BOUND,
            "key {id}: the deleted value was still served {took:?} after the delete"
        );
        assert_eq!(
            RUNS_A.load(SeqCst),
            runs + 1,
            "the deleted value was recomputed"
        );

        // 3. The key expires in Redis (a raw PEXPIRE, far shorter than A's 60 s local cap).
        warm_local_by("profile", profile_a_stats, || profile_a(id)).await;
        let local_before = profile_a_stats().local_hits;
        assert_eq!(profile_a(id).await, want);
        assert_eq!(profile_a_stats().local_hits, local_before + 1);
        let v = VERSION.fetch_add(1, SeqCst) + 1;
        let _: () = redis::cmd("PEXPIRE")
            .arg(&key)
            .arg(50)
            .query_async(&mut raw)
            .await
            .unwrap();
        let pexpired = Instant::now();
        let want = format!("{id}-v{v}");
        let served_for = stale_for(pexpired, Duration::from_secs(2), &want, || profile_a(id)).await;
        let late = served_for.saturating_sub(Duration::from_millis(50));
        assert!(
            late <= BOUND,
            "key {id}: the expired value was still served {late:?} after the expiry"
        );
    }
}

static C: Cache = Cache::from_env();
static D: Cache = Cache::from_env();
static FAILOVER_VERSION: AtomicU32 = AtomicU32::new(1);

#[redis_cache(cache = C, name = "nearc::account", ttl = 300, local = "60s")]
async fn account_c(id: u32) -> String {
    format!("{id}-v{}", FAILOVER_VERSION.load(SeqCst))
}

#[redis_cache(cache = D, name = "nearc::account", ttl = 300, local = "60s")]
async fn account_d(id: u32) -> String {
    format!("{id}-v{}", FAILOVER_VERSION.load(SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_and_a_resharding_writes_on_the_new_masters_reach_the_local_copy() {
    let cluster = RedisCluster::start();
    C.install(config(&cluster, "nearf")).unwrap();
    D.install(config(&cluster, "nearf")).unwrap();
    let ids = one_id_per_master(&cluster, |id| account_c_key(&id).unwrap());
    for &id in &ids {
        assert_eq!(account_c(id).await, format!("{id}-v1"));
    }
    wait_near_live(&C, Duration::from_secs(10)).await;
    for &id in &ids {
        warm_local_by("account", account_c_stats, || account_c(id)).await;
    }

    // The master of the first key dies; its replica takes over.
    let slot = cluster.slot_of(&account_c_key(&ids[0]).unwrap());
    let killed = cluster.kill_master_for_slot(slot);
    let cluster = Arc::new(cluster);
    let promoted = tokio::task::spawn_blocking({
        let cluster = Arc::clone(&cluster);
        move || cluster.wait_for_failover(slot, killed, Duration::from_secs(30))
    })
    .await
    .unwrap();
    println!("master {killed} killed; replica {promoted} promoted");
    // Whatever C serves now is what Redis holds (v1: no write happened).
    for &id in &ids {
        assert_eq!(account_c(id).await, format!("{id}-v1"));
    }

    // The tier comes back (a tracking link to the promoted master), and local hits resume on
    // every master's keys, the promoted one's included.
    wait_near_live(&C, Duration::from_secs(15)).await;
    for &id in &ids {
        warm_local_by("account", account_c_stats, || account_c(id)).await;
    }

    // Another process writes every key, the promoted master's first: each write reaches C's
    // local copy within the bound.
    FAILOVER_VERSION.store(2, SeqCst);
    for &id in &ids {
        let want = format!("{id}-v2");
        // D's connection may still be finding the new master: a write that failed (the call
        // still returns the value, fail-open) changes nothing in Redis, so retry until stored.
        let deadline = Instant::now() + Duration::from_secs(15);
        let written = loop {
            let at = Instant::now();
            assert_eq!(account_d_refresh(id).await, want);
            if account_d_peek(&id).await.ok().flatten().as_deref() == Some(want.as_str()) {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "key {id}: D's write never landed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let took = stale_for(written, Duration::from_secs(5), &want, || account_c(id)).await;
        assert!(
            took <= BOUND,
            "key {id}: the overwritten value was still served {took:?} after the write (killed master {killed})"
        );
    }
    // And the new values are served locally again.
    for &id in &ids {
        warm_local_by("account", account_c_stats, || account_c(id)).await;
        assert_eq!(account_c(id).await, format!("{id}-v2"));
    }

    // Resharding: the second key's slot moves to the third key's master (`CLUSTER SETSLOT`
    // steps and `MIGRATE`, as `redis-cli --cluster reshard` does). Another process's write to
    // the key on its new master reaches C's local copy.
    let key = account_c_key(&ids[1]).unwrap();
    let slot = cluster.slot_of(&key);
    let to = cluster
        .master_port_for_slot(cluster.slot_of(&account_c_key(&ids[2]).unwrap()))
        .unwrap();
    move_slot(&cluster, slot, to).await;
    println!("slot {slot} of key {} moved to {to}", ids[1]);
    wait_near_live(&C, Duration::from_secs(15)).await;
    warm_local_by("account", account_c_stats, || account_c(ids[1])).await;
    FAILOVER_VERSION.store(3, SeqCst);
    let want = format!("{}-v3", ids[1]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let written = loop {
        let at = Instant::now();
        assert_eq!(account_d_refresh(ids[1]).await, want);
        if account_d_peek(&ids[1]).await.ok().flatten().as_deref() == Some(want.as_str()) {
            break at;
        }
        assert!(Instant::now() < deadline, "D's write never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = stale_for(written, Duration::from_secs(5), &want, || account_c(ids[1])).await;
    assert!(
        took <= BOUND,
        "after resharding, the overwritten value was still served {took:?} after the write"
    );

    // A manual failover (`CLUSTER FAILOVER` on a replica): the old master stays up, now a
    // replica, and its tracking link with it; writes go to the promoted node.
    let key = account_c_key(&ids[2]).unwrap();
    let slot = cluster.slot_of(&key);
    let old_master = cluster.master_port_for_slot(slot).unwrap();
    let replica = replica_of(&cluster, old_master).await;
    warm_local_by("account", account_c_stats, || account_c(ids[2])).await;
    let mut c = cluster
        .nodes()
        .iter()
        .find(|n| n.port() == replica)
        .unwrap()
        .conn()
        .await;
    // A manual failover that times out (the replica not caught up yet) is asked for again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut asked = Instant::now() - Duration::from_secs(10);
    while cluster.master_port_for_slot(slot) != Some(replica) {
        assert!(Instant::now() < deadline, "manual failover not done");
        if asked.elapsed() >= Duration::from_secs(3) {
            let () = redis::cmd("CLUSTER")
                .arg("FAILOVER")
                .query_async(&mut c)
                .await
                .unwrap();
            asked = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("manual failover: {replica} took over from {old_master}");
    FAILOVER_VERSION.store(4, SeqCst);
    let want = format!("{}-v4", ids[2]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let written = loop {
        let at = Instant::now();
        assert_eq!(account_d_refresh(ids[2]).await, want);
        if account_d_peek(&ids[2]).await.ok().flatten().as_deref() == Some(want.as_str()) {
            break at;
        }
        assert!(Instant::now() < deadline, "D's write never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = stale_for(written, Duration::from_secs(5), &want, || account_c(ids[2])).await;
    assert!(
        took <= BOUND,
        "after a manual failover, the overwritten value was still served {took:?} after the write"
    );
    wait_near_live(&C, Duration::from_secs(15)).await;
    warm_local_by("account", account_c_stats, || account_c(ids[2])).await;
}

/// The port of a replica of the master at `master` (`INFO replication`).
async fn replica_of(cluster: &RedisCluster, master: u16) -> u16 {
    let node = cluster.nodes().iter().find(|n| n.port() == master).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut node.conn().await)
            .await
            .unwrap();
        let port = info
            .lines()
            .find(|l| l.starts_with("slave0:") && l.contains("state=online"))
            .and_then(|l| l.split(',').find_map(|f| f.strip_prefix("port=")))
            .and_then(|p| p.parse().ok());
        if let Some(port) = port {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "no online replica of {master}:\n{info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Moves `slot` (and its keys) to the master at port `to`: `IMPORTING` on the target,
/// `MIGRATING` on the source, `MIGRATE` of its keys, then `SETSLOT … NODE` on every master.
async fn move_slot(cluster: &RedisCluster, slot: u16, to: u16) {
    let from = cluster.master_port_for_slot(slot).expect("slot served");
    assert_ne!(from, to);
    let node = |port: u16| {
        cluster
            .nodes()
            .iter()
            .find(|n| n.port() == port)
            .expect("a node of the cluster")
    };
    let mut src = node(from).conn().await;
    let mut dst = node(to).conn().await;
    let myid = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        async move {
            redis::cmd("CLUSTER")
                .arg("MYID")
                .query_async::<String>(&mut c)
                .await
                .unwrap()
        }
    };
    let (src_id, dst_id) = (myid(&mut src).await, myid(&mut dst).await);
    let () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&src_id)
        .query_async(&mut dst)
        .await
        .unwrap();
    let () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&dst_id)
        .query_async(&mut src)
        .await
        .unwrap();
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query_async(&mut src)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        let () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(to)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys)
            .query_async(&mut src)
            .await
            .unwrap();
    }
    for m in cluster.masters() {
        let mut c = m.conn().await;
        let () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&dst_id)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.master_port_for_slot(slot) != Some(to) {
        assert!(Instant::now() < deadline, "slot {slot} not moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
