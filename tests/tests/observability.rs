//! Observability: one tracing span per call with its outcome, metrics through the facade, and the
//! stats table.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use memo_redis::{redis_cache, Cache, Config, StatsTable};
use memo_redis_tests::{free_port_url, RedisServer};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One global tracing subscriber (span closes at TRACE) and one global metrics recorder for this
/// binary, installed before any cached call.
fn setup() -> (Buf, &'static Snapshotter) {
    static SETUP: OnceLock<(Buf, Snapshotter)> = OnceLock::new();
    let (buf, snap) = SETUP.get_or_init(|| {
        let buf = Buf::default();
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(FmtSpan::CLOSE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("no other recorder");
        (buf, snapshotter)
    });
    (buf.clone(), snap)
}

fn span_outcomes(buf: &Buf, function: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| {
            l.contains("memo_redis.call")
                && l.contains(&format!("function=\"{function}\""))
                && l.contains("close")
        })
        .filter_map(|l| {
            l.split("outcome=\"")
                .nth(1)
                .map(|r| r.split('"').next().unwrap_or("").to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_span_per_call_with_its_outcome() {
    let (buf, _) = setup();
    let server = RedisServer::start();
    static UP: Cache = Cache::from_env();
    UP.install(Config::builder().url(server.url()).build().unwrap())
        .unwrap();
    static DOWN: Cache = Cache::from_env();
    DOWN.install(
        Config::builder()
            .url(free_port_url())
            .breaker_threshold(2)
            .breaker_cooldown(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .unwrap();
    #[redis_cache(cache = UP, ttl = 60)]
    async fn traced_up(x: u32) -> u32 {
        x
    }
    #[redis_cache(cache = DOWN, ttl = 60)]
    async fn traced_down(x: u32) -> u32 {
        x
    }
    traced_up(1).await; // miss
    traced_up(1).await; // hit
    traced_up(1).await; // hit
    for x in 0..4 {
        traced_down(x).await; // error, error (breaker opens), bypass, bypass
    }
    assert_eq!(span_outcomes(&buf, "traced_up"), ["miss", "hit", "hit"]);
    assert_eq!(
        span_outcomes(&buf, "traced_down"),
        ["error", "error", "bypass", "bypass"]
    );
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("traced_up") && l.contains("close"))
        .unwrap();
    assert!(line.contains("key="), "a key digest is recorded: {line}");
    assert!(!line.contains("memo:"), "never the key itself: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_function_and_outcome() {
    let (_, snapshotter) = setup();
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(Config::builder().url(server.url()).build().unwrap())
        .unwrap();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn metered(x: u32) -> u32 {
        x
    }
    metered(1).await;
    metered(1).await;
    metered(2).await;
    metered(2).await;
    metered(2).await;
    let mut hits = 0;
    let mut misses = 0;
    let mut body_samples = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let k = key.key();
        let labels: Vec<(String, String)> = k
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        if !labels
            .iter()
            .any(|(n, v)| n == "fn" && v.ends_with("::metered"))
        {
            continue;
        }
        match (k.name(), &value) {
            ("memo_redis_calls_total", DebugValue::Counter(n)) => {
                if labels.iter().any(|(n, v)| n == "outcome" && v == "hit") {
                    hits = *n;
                }
                if labels.iter().any(|(n, v)| n == "outcome" && v == "miss") {
                    misses = *n;
                }
            }
            ("memo_redis_body_seconds", DebugValue::Histogram(samples)) => {
                body_samples = samples.len()
            }
            _ => {}
        }
    }
    assert_eq!((hits, misses), (3, 2));
    assert_eq!(body_samples, 2, "one body-latency sample per miss");
    let table = StatsTable(memo_redis::stats()).to_string();
    let row = table
        .lines()
        .find(|l| l.contains("::metered"))
        .expect("a row for the function");
    assert!(row.contains("60.0%"), "{table}");
}
