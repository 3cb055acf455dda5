//! TLS (`rediss://`) against a real redis-server serving TLS with a CA and a server certificate
//! generated at run time (rcgen, pure Rust): caching works with the right CA, a wrong (or no) CA is
//! refused and every call fails open, `REDIS_TLS_CA_CERT` / `REDIS_SSL` work, and the password of
//! a `rediss://user:pass@` URL never shows in `Debug`, `Display`, errors or logs.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{capture_logs, stats_of};
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{RedisServer, TlsFiles};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Generous: a TLS handshake in an unoptimised build on a loaded 2-core machine is slow, and the
/// first call of a test must not turn into an error because of it.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Short timeout for the refused-handshake tests, where every call fails anyway.
const REFUSED_OP_TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack on a loaded machine.
const MARGIN: Duration = Duration::from_millis(700);
/// Upper bound of every "wait until" loop.
const DEADLINE: Duration = Duration::from_secs(10);

/// A CA and a server certificate it issued for `127.0.0.1` and `localhost`.
struct Pki {
    /// The CA certificate, PEM (what clients must trust).
    ca_pem: String,
    /// Server certificate, key and CA for the harness.
    files: TlsFiles,
}

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

/// A CA plus a server certificate for `127.0.0.1`/`localhost` signed by it.
fn new_pki() -> Pki {
    let (ca, ca_key) = new_ca("memo-redis test CA");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "memo-redis test server");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().expect("server key");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    Pki {
        ca_pem: ca.pem(),
        files: TlsFiles {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
            ca_pem: ca.pem().into_bytes(),
        },
    }
}

/// A redis-server serving TLS (and plain TCP on [`RedisServer::port`]) with a fresh PKI, checked
/// to answer `PING` over TLS with a raw redis-rs client trusting the CA.
async fn tls_server() -> (RedisServer, Pki) {
    let pki = new_pki();
    let server = RedisServer::builder().tls(pki.files.clone()).start();
    let mut conn = tls_conn(&server, &pki.ca_pem).await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    (server, pki)
}

/// A raw redis-rs connection over TLS trusting `ca_pem`, polled (bounded) until the handshake
/// succeeds: the harness's readiness probe only checked the plain port.
async fn tls_conn(server: &RedisServer, ca_pem: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::build_with_tls(
        server.tls_url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca_pem.as_bytes().to_vec()),
        },
    )
    .expect("TLS client");
    let started = Instant::now();
    loop {
        match client.get_multiplexed_async_connection().await {
            Ok(conn) => return conn,
            Err(e) => assert!(
                started.elapsed() < DEADLINE,
                "no TLS connection to {} within {DEADLINE:?}: {e}\n{}",
                server.tls_url(),
                server.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Number of keys in the server, asked over the plain port (behind the TLS client's back).
async fn dbsize(server: &RedisServer) -> u64 {
    let mut conn = server.conn().await;
    redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_over_tls_with_the_right_ca() {
    let (server, pki) = tls_server().await;
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            Config::builder()
                .url(server.tls_url())
                .tls_ca_cert_pem(pki.ca_pem.as_bytes())
                .op_timeout(OP_TIMEOUT)
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn over_tls(x: u64) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("tls-{}", x * x)
    }

    assert_eq!(over_tls(12).await, "tls-144");
    assert_eq!(RUNS.load(SeqCst), 1, "first call is a miss");
    assert_eq!(over_tls(12).await, "tls-144");
    assert_eq!(RUNS.load(SeqCst), 1, "second call is a hit");
    let s = stats_of("over_tls");
    assert_eq!(
        (s.misses, s.hits, s.errors, s.bypass),
        (1, 1, 0, 0),
        "{s:?}"
    );

    // The entry is really in this server: seen over the plain port and over TLS.
    let key = over_tls_key(&12).unwrap();
    let mut plain = server.conn().await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut plain)
        .await
        .unwrap();
    assert!(exists, "{key} is stored");
    let mut tls = tls_conn(&server, &pki.ca_pem).await;
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut tls)
        .await
        .unwrap();
    assert!(raw.is_some_and(|b| b.starts_with(b"MR")), "an envelope");
    assert_eq!(
        over_tls_peek(&12).await.unwrap().as_deref(),
        Some("tls-144")
    );
    assert!(over_tls_evict(&12).await.unwrap());
    assert_eq!(over_tls(12).await, "tls-144");
    assert_eq!(RUNS.load(SeqCst), 2, "evicted, so the body ran again");
    assert!(!CACHE.breaker_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_ca_is_refused_and_fails_open() {
    let logs = capture_logs();
    let (server, _pki) = tls_server().await;
    let (other_ca, _) = new_ca("some other CA");
    // The refusal is the certificate check: a raw client trusting the other CA is refused too.
    let raw = redis::Client::build_with_tls(
        server.tls_url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(other_ca.pem().into_bytes()),
        },
    )
    .unwrap();
    let refused = raw.get_multiplexed_async_connection().await.err();
    assert!(
        refused
            .as_ref()
            .is_some_and(|e| e.to_string().contains("certificate")),
        "{refused:?}"
    );

    static WRONG: Cache = Cache::from_env();
    WRONG
        .install(
            Config::builder()
                .url(server.tls_url())
                .tls_ca_cert_pem(other_ca.pem())
                .op_timeout(REFUSED_OP_TIMEOUT)
                .breaker_cooldown(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
        .unwrap();
    // No CA configured: the platform's roots, which do not know the test CA either.
    static PLATFORM: Cache = Cache::from_env();
    PLATFORM
        .install(
            Config::builder()
                .url(server.tls_url())
                .op_timeout(REFUSED_OP_TIMEOUT)
                .breaker_cooldown(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = WRONG, ttl = 60)]
    async fn wrong_ca(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x + 1000
    }
    #[redis_cache(cache = PLATFORM, ttl = 60)]
    async fn platform_roots(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x + 2000
    }

    const CALLS: u64 = 20;
    let mut slowest = Duration::ZERO;
    for i in 0..CALLS {
        let x = i % 2; // repeated arguments: a working cache would answer from Redis
        let started = Instant::now();
        assert_eq!(wrong_ca(x).await, x + 1000, "call {i}");
        assert_eq!(platform_roots(x).await, x + 2000, "call {i}");
        let took = started.elapsed();
        assert!(
            took < (REFUSED_OP_TIMEOUT + MARGIN) * 2,
            "call {i} (two functions) took {took:?}"
        );
        slowest = slowest.max(took);
    }
    assert_eq!(RUNS.load(SeqCst), 2 * CALLS, "the body runs on every call");
    for name in ["wrong_ca", "platform_roots"] {
        let s = stats_of(name);
        assert_eq!((s.hits, s.misses), (0, 0), "{name}: {s:?}");
        assert_eq!(s.errors + s.bypass, CALLS, "{name}: {s:?}");
        assert!(
            s.errors >= 1,
            "{name}: handshake failures are errors: {s:?}"
        );
    }
    assert!(wrong_ca_peek(&0).await.is_err(), "peek reports the failure");
    assert_eq!(dbsize(&server).await, 0, "nothing was written");
    let log_text = logs.text();
    assert!(
        log_text.contains("UnknownIssuer"),
        "the cache's failures are certificate rejections:\n{log_text}"
    );
    eprintln!(
        "wrong/missing CA: slowest pair of calls {slowest:?}; {:?} / {:?}",
        stats_of("wrong_ca"),
        stats_of("platform_roots")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_and_ssl_fields_from_env_lookup() {
    let (server, _pki) = tls_server().await;
    let ca_path = server
        .tls_ca_cert_path()
        .expect("TLS server")
        .to_str()
        .expect("UTF-8 temp path")
        .to_string();
    let port = server.tls_port().expect("TLS server").to_string();
    let tls_url = server.tls_url();
    let vars = |extra: &[(&'static str, String)]| {
        let mut vars = vec![
            ("REDIS_TLS_CA_CERT", ca_path.clone()),
            ("REDIS_SOCKET_TIMEOUT", OP_TIMEOUT.as_secs_f64().to_string()),
        ];
        vars.extend_from_slice(extra);
        vars
    };
    let lookup = |vars: Vec<(&'static str, String)>| {
        Config::from_lookup(move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap()
    };

    static BY_URL: Cache = Cache::from_env();
    BY_URL
        .install(lookup(vars(&[("REDIS_URL", tls_url)])))
        .unwrap();
    static BY_FIELDS: Cache = Cache::from_env();
    BY_FIELDS
        .install(lookup(vars(&[
            ("REDIS_HOST", "127.0.0.1".to_string()),
            ("REDIS_PORT", port),
            ("REDIS_SSL", "true".to_string()),
        ])))
        .unwrap();
    assert!(BY_FIELDS
        .config()
        .unwrap()
        .redacted_url()
        .starts_with("rediss://"));

    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = BY_URL, ttl = 60)]
    async fn env_url(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 5
    }
    #[redis_cache(cache = BY_FIELDS, ttl = 60)]
    async fn env_fields(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 7
    }
    for _ in 0..2 {
        assert_eq!(env_url(3).await, 15);
        assert_eq!(env_fields(3).await, 21);
    }
    assert_eq!(RUNS.load(SeqCst), 2, "one miss each, then hits");
    for name in ["env_url", "env_fields"] {
        let s = stats_of(name);
        assert_eq!(
            (s.misses, s.hits, s.errors, s.bypass),
            (1, 1, 0, 0),
            "{name}: {s:?}"
        );
    }
    assert_eq!(dbsize(&server).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_in_rediss_url_is_never_shown() {
    const PASSWORD: &str = "Tls-S3cret-Passw0rd";
    const WRONG_PASSWORD: &str = "N0t-The-Passw0rd";
    let logs = capture_logs();
    let (server, pki) = tls_server().await;
    // An ACL user, created over the plain port.
    let mut admin = server.conn().await;
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("alice")
        .arg("on")
        .arg(format!(">{PASSWORD}"))
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .unwrap();
    let port = server.tls_port().unwrap();
    let url = format!("rediss://alice:{PASSWORD}@127.0.0.1:{port}/");
    let wrong_url = format!("rediss://alice:{WRONG_PASSWORD}@127.0.0.1:{port}/");

    let builder = Config::builder()
        .url(&url)
        .tls_ca_cert_pem(pki.ca_pem.as_bytes())
        .op_timeout(OP_TIMEOUT);
    let config = builder.clone().build().unwrap();
    let shown = [
        format!("{config:?}"),
        format!("{config:#?}"),
        config.to_string(),
        config.redacted_url().to_string(),
        format!("{builder:?}"),
    ];
    for text in &shown {
        assert!(!text.contains(PASSWORD), "password shown in {text}");
    }
    assert_eq!(
        config.redacted_url(),
        format!("rediss://***@127.0.0.1:{port}/")
    );
    assert!(config.to_string().contains("rediss://***@"), "{config}");

    static GOOD: Cache = Cache::from_env();
    GOOD.install(config).unwrap();
    static BAD: Cache = Cache::from_env();
    BAD.install(
        Config::builder()
            .url(&wrong_url)
            .tls_ca_cert_pem(pki.ca_pem.as_bytes())
            .op_timeout(REFUSED_OP_TIMEOUT)
            .breaker_threshold(3)
            // No probe during the assertions below: exactly 3 errors, then bypass.
            .breaker_cooldown(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = GOOD, ttl = 60)]
    async fn as_alice(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x << 4
    }
    #[redis_cache(cache = BAD, ttl = 60)]
    async fn wrong_password(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x << 8
    }

    // The right password works over TLS ...
    assert_eq!(as_alice(3).await, 48);
    assert_eq!(as_alice(3).await, 48);
    assert_eq!(RUNS.load(SeqCst), 1, "miss then hit as alice over TLS");
    // ... the wrong one fails open, opens the breaker and is never printed either.
    for i in 0..6u64 {
        assert_eq!(wrong_password(i % 2).await, (i % 2) << 8);
    }
    assert_eq!(RUNS.load(SeqCst), 7);
    assert!(
        BAD.breaker_open(),
        "an authentication failure opens the breaker at once"
    );
    let s = stats_of("wrong_password");
    assert_eq!(
        (s.errors, s.bypass, s.hits, s.misses),
        (1, 5, 0, 0),
        "{s:?}"
    );
    let evict_err = wrong_password_evict(&1).await.unwrap_err();

    let mut texts = vec![
        format!("{GOOD:?}"),
        format!("{BAD:?}"),
        evict_err.to_string(),
        format!("{evict_err:?}"),
    ];
    let log_text = logs.text();
    texts.push(log_text.clone());
    for text in &texts {
        for secret in [PASSWORD, WRONG_PASSWORD] {
            assert!(!text.contains(secret), "password shown in: {text}");
        }
    }
    assert!(
        log_text.contains("circuit breaker opened"),
        "the breaker warning was captured, so the log check saw real output:\n{log_text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cache_recovers_after_kill_and_restart() {
    let (server, pki) = tls_server().await;
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            Config::builder()
                .url(server.tls_url())
                .tls_ca_cert_pem(pki.ca_pem.as_bytes())
                .op_timeout(OP_TIMEOUT)
                .breaker_threshold(1)
                .breaker_cooldown(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn tls_restart(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 11
    }
    assert_eq!(tls_restart(1).await, 11);
    assert_eq!(tls_restart(1).await, 11);
    assert_eq!(RUNS.load(SeqCst), 1);

    let tls_port = server.tls_port();
    server.kill();
    assert_eq!(
        tls_restart(1).await,
        11,
        "fails open while the server is down"
    );
    server.restart();
    assert_eq!(
        server.tls_port(),
        tls_port,
        "the TLS port survives a restart"
    );
    let _ = tls_conn(&server, &pki.ca_pem).await; // the TLS listener is back

    // The data set is empty after the restart: poll until a value written now is a hit.
    let started = Instant::now();
    let mut x = 100;
    loop {
        x += 1;
        assert_eq!(tls_restart(x).await, x * 11);
        let runs = RUNS.load(SeqCst);
        assert_eq!(tls_restart(x).await, x * 11);
        if RUNS.load(SeqCst) == runs {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no TLS cache hit within {DEADLINE:?} after the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut plain = server.conn().await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(tls_restart_key(&x).unwrap())
        .query_async(&mut plain)
        .await
        .unwrap();
    assert!(exists, "written to the restarted server over TLS");
    eprintln!(
        "tls restart: hits again {:?} after the restart",
        started.elapsed()
    );
}
