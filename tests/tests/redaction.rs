//! Credentials are never printed: nothing between a URL's scheme (or its start) and its last
//! `@`, nor `REDIS_USERNAME`/`REDIS_PASSWORD`, appears in any `Display`/`Debug` of the
//! configuration, its builder, its errors, a `Cache`, an `Error`, or in the log at TRACE —
//! whatever characters the credentials hold.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

use memo_redis::{redis_cache, BreakerState, Cache, Config, ConfigError, Error};
use memo_redis_tests::{free_port, RedisServer};
use proptest::prelude::*;

/// Markers around every generated secret: a leak of the whole secret, or of any prefix or suffix
/// of it (what a parser cutting at a `/`, `:` or `@` inside it would show), contains one.
const MARKERS: [&str; 4] = ["Uk4", "Uw2", "Pq7", "Zx9"];

fn user_of(random: &str) -> String {
    format!("Uk4{random}Uw2")
}

fn password_of(random: &str) -> String {
    format!("Pq7{random}Zx9")
}

#[track_caller]
fn assert_clean(what: &str, shown: &str) {
    for m in MARKERS {
        assert!(
            !shown.contains(m),
            "{what} shows a credential ({m}): {shown}"
        );
    }
}

/// What `Cache::lazy` builds next (a `fn` pointer cannot capture).
static NEXT: Mutex<Option<Config>> = Mutex::new(None);
static NEXT_URL: Mutex<String> = Mutex::new(String::new());

fn lazy_from_next_url() -> Result<Config, ConfigError> {
    let url = NEXT_URL.lock().unwrap().clone();
    Config::builder().url(url).build()
}

fn leaked_lazy_cache() -> &'static Cache {
    Box::leak(Box::new(Cache::lazy(lazy_from_next_url)))
}

/// Every way memo-redis may print a configuration built from `builder`, and the logs it causes
/// (an invalid configuration's ERROR line; a valid one's failed operation against a closed port).
fn check_everything(
    rt: &tokio::runtime::Runtime,
    logs: &common::Logs,
    label: &str,
    builder: memo_redis::ConfigBuilder,
    url: Option<&str>,
) {
    assert_clean(
        &format!("{label}: builder Debug"),
        &format!("{builder:?} {builder:#?}"),
    );
    match builder.build() {
        Ok(config) => {
            assert_clean(
                &format!("{label}: Config"),
                &format!("{config:?} {config:#?} {config} {}", config.redacted_url()),
            );
            *NEXT.lock().unwrap() = Some(config.clone());
            if !config.is_cluster() {
                let cache: &'static Cache = Box::leak(Box::new(Cache::from_env()));
                if let Err(e) = cache.install(config) {
                    assert_clean(&format!("{label}: install error"), &format!("{e} {e:?}"));
                }
                let got = rt.block_on(cache.get::<u32>("k"));
                if let Err(e) = got {
                    assert_clean(&format!("{label}: operation error"), &format!("{e} {e:?}"));
                }
                assert_clean(
                    &format!("{label}: Cache Debug"),
                    &format!("{cache:?} {cache:#?}"),
                );
            }
        }
        Err(e) => {
            let wrapped = Error::from(e.clone());
            assert_clean(
                &format!("{label}: ConfigError / Error"),
                &format!("{e} {e:?} {e:#?} {wrapped} {wrapped:?}"),
            );
        }
    }
    if let Some(url) = url {
        *NEXT_URL.lock().unwrap() = url.to_string();
        let cache = leaked_lazy_cache();
        let _ = cache.config();
        if let Some(e) = cache.config_error() {
            assert_clean(
                &format!("{label}: lazy config error"),
                &format!("{e} {e:?}"),
            );
        }
        assert_clean(&format!("{label}: lazy Cache Debug"), &format!("{cache:?}"));
    }
    assert_clean(&format!("{label}: logs"), &logs.text());
}

fn check_credentials(
    rt: &tokio::runtime::Runtime,
    logs: &common::Logs,
    user: &str,
    password: &str,
) {
    let port = free_port();
    let forms = [
        format!("redis://{user}:{password}@127.0.0.1:{port}/"),
        format!("redis://:{password}@127.0.0.1:{port}"),
        format!("rediss://{user}:{password}@127.0.0.1:{port}/0"),
        format!("{user}:{password}@127.0.0.1:{port}"),
        format!("redis://{user}:{password}@127.0.0.1:{port}/?protocol=9"),
        // A password a parser cuts at `/` or `?` leaves its tail in the query.
        format!("redis://127.0.0.1:{port}/?protocol={user}:{password}@x"),
    ];
    for url in &forms {
        check_everything(
            rt,
            logs,
            url,
            Config::builder().url(url.as_str()),
            Some(url),
        );
    }
    let list = format!(
        "redis://{user}:{password}@127.0.0.1:{port}, 127.0.0.1:{}",
        port + 1
    );
    check_everything(
        rt,
        logs,
        "cluster list",
        Config::builder().cluster(true).url(list.as_str()),
        None,
    );
    let fields = Config::builder()
        .host("127.0.0.1")
        .port(u32::from(port))
        .username(user)
        .password(password);
    check_everything(rt, logs, "fields", fields, None);
    // Credentials put where the host goes.
    let host = format!("{user}:{password}@127.0.0.1");
    check_everything(
        rt,
        logs,
        "credentials in REDIS_HOST",
        Config::builder().host(host).port(u32::from(port)),
        None,
    );
    let from_env = Config::from_lookup(|n| match n {
        "REDIS_HOST" => Some("127.0.0.1".into()),
        "REDIS_PORT" => Some(port.to_string()),
        "REDIS_USERNAME" => Some(user.to_string()),
        "REDIS_PASSWORD" => Some(password.to_string()),
        "REDIS_DB" => Some("x".into()),
        _ => None,
    });
    if let Err(e) = from_env {
        assert_clean("from_lookup error", &format!("{e} {e:?}"));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The cases of issue 12: `/` in the password, no scheme, `@` and `:` in the password.
#[test]
fn the_reported_urls_are_redacted() {
    let logs = common::capture_logs();
    let rt = runtime();
    check_credentials(&rt, &logs, "app", "PWSLASH/abc+def");
    check_credentials(&rt, &logs, "", "p@ss:w/rd");
    check_credentials(&rt, &logs, "a:b", "#?%@/:,");
    let config = Config::builder()
        .url("redis://app:PWSLASH/abc+def@127.0.0.1:16379")
        .build();
    let shown = match config {
        Ok(c) => c.to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        !shown.contains("PWSLASH") && !shown.contains("abc+def"),
        "{shown}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Generated credentials over every printable ASCII character (`@`, `/`, `:`, `#`, `?`, `%`,
    /// `,`, space, …).
    #[test]
    fn generated_credentials_are_never_printed(user in "[ -~]{0,12}", password in "[ -~]{0,12}") {
        let logs = common::capture_logs();
        let rt = runtime();
        check_credentials(&rt, &logs, &user_of(&user), &password_of(&password));
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A real server whose `requirepass` holds such characters: the right password (as a field)
/// works; a wrong one (percent-encoded in the URL, so it reaches `AUTH` intact) is refused and
/// the breaker opens, and neither password is printed anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_refusing_a_wrong_password_of_special_characters() {
    let logs = common::capture_logs();
    let right = password_of(" p@ss:w/rd#?%,&=");
    let wrong = password_of("/wr@ng:#?%");
    let server = RedisServer::start();
    // Set after start: the harness's readiness probe does not authenticate.
    let mut admin = server.conn().await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(right.as_str())
        .query_async(&mut admin)
        .await
        .unwrap();

    static GOOD: Cache = Cache::from_env();
    let good = Config::builder()
        .host("127.0.0.1")
        .port(u32::from(server.port()))
        .password(right.as_str())
        .namespace("red")
        .build()
        .unwrap();
    GOOD.install(good).unwrap();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = GOOD, ttl = 60)]
    async fn f(x: u32) -> u32 {
        RUNS.fetch_add(1, SeqCst);
        x + 1
    }
    assert_eq!(f(1).await, 2);
    assert_eq!(f(1).await, 2);
    assert_eq!(RUNS.load(SeqCst), 1, "the right password works: a hit");

    static BAD: Cache = Cache::from_env();
    let url = format!(
        "redis://app:{}@127.0.0.1:{}/",
        percent_encode(&wrong),
        server.port()
    );
    let bad = Config::builder()
        .url(url.as_str())
        .breaker_cooldown(Duration::from_secs(60))
        .build()
        .unwrap();
    BAD.install(bad).unwrap();
    #[redis_cache(cache = BAD, ttl = 60)]
    async fn g(x: u32) -> u32 {
        x + 2
    }
    assert_eq!(g(1).await, 3);
    let err = BAD.get::<u32>("k").await.unwrap_err();
    assert_eq!(
        BAD.breaker_state(),
        BreakerState::Open,
        "WRONGPASS opens the breaker"
    );
    let port = server.port();
    let refused = logs
        .text()
        .lines()
        .filter(|l| l.contains(&format!(":{port}/")) && l.contains("refused access"))
        .count();
    assert_eq!(refused, 1, "the refusal is logged:\n{}", logs.text());
    assert_clean(
        "real server",
        &format!("{err} {err:?} {BAD:?} {GOOD:?} {}", logs.text()),
    );
}
