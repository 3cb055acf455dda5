//! Redis Cluster over TLS: `rediss://` seed nodes with a private CA (`REDIS_TLS_CA_CERT`) against
//! a local cluster whose six nodes serve TLS (`--tls-cluster yes --tls-replication yes`), with a
//! CA and server certificate generated at run time (rcgen, as in `tls.rs`): cached calls miss
//! then hit on every master, the near cache serves local hits (tracking links over TLS); with a
//! wrong CA every call fails open.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use memo_redis::{redis_cache, BreakerState, Cache, Config};
use memo_redis_tests::{RedisCluster, TlsFiles};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A TLS handshake per node in an unoptimised build on a loaded 2-core machine is slow.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// A fresh self-signed CA: its certificate and key pair.
fn new_ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-signed CA");
    (cert, key)
}

/// A CA plus a certificate for `127.0.0.1`/`localhost` signed by it, usable by the nodes both as
/// servers and as clients of each other (cluster bus, replication).
fn new_pki() -> (String, TlsFiles) {
    let (ca, ca_key) = new_ca("memo-redis test cluster CA");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("node params");
    params
        .distinguished_name
        .push(DnType::CommonName, "memo-redis test cluster node");
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().expect("node key");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("node certificate");
    (
        ca.pem(),
        TlsFiles {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
            ca_pem: ca.pem().into_bytes(),
        },
    )
}

fn config(url: String, namespace: &str, ca_pem: &str) -> Config {
    Config::builder()
        .cluster(true)
        .url(url)
        .namespace(namespace)
        .op_timeout(OP_TIMEOUT)
        .connect_timeout(OP_TIMEOUT)
        .tls_ca_cert_pem(ca_pem.as_bytes().to_vec())
        .build()
        .expect("a TLS cluster configuration is accepted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_on_a_tls_cluster_with_a_private_ca() {
    let (ca_pem, files) = new_pki();
    let cluster = RedisCluster::start_tls(files);

    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(cluster.tls_url(), "tls", &ca_pem))
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn over_tls(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 3
    }
    for x in 0..60 {
        assert_eq!(over_tls(x).await, x * 3);
    }
    assert_eq!(RUNS.load(SeqCst), 60, "first round: misses");
    for x in 0..60 {
        assert_eq!(over_tls(x).await, x * 3);
    }
    assert_eq!(RUNS.load(SeqCst), 60, "second round: hits over TLS");
    // The entries are spread over every master (read on the plain admin ports).
    let mut per_master = Vec::new();
    for m in cluster.masters() {
        per_master.push(m.keys("tls:*").await.len());
    }
    assert_eq!(per_master.len(), 3);
    assert!(per_master.iter().all(|n| *n > 0), "{per_master:?}");
    assert_eq!(per_master.iter().sum::<usize>(), 60);
    assert_eq!(CACHE.breaker_state(), BreakerState::Closed);
    let nodes = CACHE.breaker_nodes();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    // The masters are known by their TLS ports.
    for n in &nodes {
        let port: u16 = n.node.rsplit_once(':').unwrap().1.parse().unwrap();
        assert!(
            cluster.nodes().iter().any(|s| s.tls_port() == Some(port)),
            "{n:?}"
        );
    }
    let health = CACHE.health().await;
    assert!(health.reachable && health.cluster, "{health}");

    // The near cache over TLS: a tracking link to every master (their TLS ports, the seed's CA).
    #[redis_cache(cache = CACHE, ttl = 60, local = "60s")]
    async fn near_tls(x: u64) -> u64 {
        x * 5
    }
    for x in 0..30 {
        assert_eq!(near_tls(x).await, x * 5);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Every key (spread over the three masters) ends up served locally.
    for x in 0..30 {
        let before = near_tls_stats().local_hits;
        while near_tls_stats().local_hits == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no local hit over TLS for {x}: {:?}",
                CACHE.near_cache()
            );
            assert_eq!(near_tls(x).await, x * 5);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(CACHE
        .near_cache()
        .is_some_and(|n| n.live && n.entries >= 30));

    // `REDIS_SSL=true` with `REDIS_CLUSTER=true` and one seed given by host and port.
    static FIELDS: Cache = Cache::from_env();
    let seed = cluster.nodes()[0].tls_port().expect("TLS node");
    FIELDS
        .install(
            Config::builder()
                .cluster(true)
                .host("127.0.0.1")
                .port(u32::from(seed))
                .ssl(true)
                .namespace("tlsfields")
                .op_timeout(OP_TIMEOUT)
                .connect_timeout(OP_TIMEOUT)
                .tls_ca_cert_pem(ca_pem.as_bytes().to_vec())
                .build()
                .expect("REDIS_SSL with REDIS_CLUSTER is accepted"),
        )
        .unwrap();
    static FIELD_RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = FIELDS, ttl = 60)]
    async fn by_fields(x: u64) -> u64 {
        FIELD_RUNS.fetch_add(1, SeqCst);
        x + 7
    }
    for _ in 0..2 {
        for x in 0..30 {
            assert_eq!(by_fields(x).await, x + 7);
        }
    }
    assert_eq!(FIELD_RUNS.load(SeqCst), 30, "the second round hits");

    // A cache trusting another CA cannot connect: every call runs its body, none fails.
    let (other_ca, _) = new_pki();
    static WRONG: Cache = Cache::from_env();
    let wrong = Config::builder()
        .cluster(true)
        .url(cluster.tls_url())
        .namespace("tlswrong")
        .op_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .tls_ca_cert_pem(other_ca.into_bytes())
        .build()
        .unwrap();
    WRONG.install(wrong).unwrap();
    static WRONG_RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = WRONG, ttl = 60)]
    async fn wrong_ca(x: u64) -> u64 {
        WRONG_RUNS.fetch_add(1, SeqCst);
        x + 1
    }
    for _ in 0..3 {
        assert_eq!(wrong_ca(1).await, 2);
    }
    assert_eq!(
        WRONG_RUNS.load(SeqCst),
        3,
        "no hit without a trusted server"
    );
}
