//! The encode and decode guards, with every codec, against a real redis-server:
//! - a value nested too deeply is returned and not stored, an entry nested too deeply is a miss
//!   that gets repaired — neither overflows a Tokio worker's stack (issue 12, point 1);
//! - a value whose encoding does not decode back to itself is returned and not stored, so the
//!   next call never returns another value than the body did (issue 12, point 2).
//!
//! Tokio's multi-thread runtime gives its workers 2 MiB stacks: every test runs on one, in
//! whatever profile the tests are built (debug by default).

mod common;

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::raw_get;
use memo_redis::envelope::{self, MAGIC};
use memo_redis::{redis_cache, Cache, CodecKind, Config, Error, Stats};
use memo_redis_tests::RedisServer;
use serde::{Deserialize, Serialize};

static CACHE: Cache = Cache::from_env();

/// Redis time budget per call: generous, so that a loaded machine cannot turn an expected hit
/// into a timeout (nothing here tests timeouts).
const BUDGET: Duration = Duration::from_secs(3);

/// One server and one installed cache for this binary's macro-path tests.
fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = RedisServer::start();
        let config = Config::builder()
            .url(server.url())
            .namespace("t")
            .op_timeout(BUDGET)
            .build()
            .unwrap();
        CACHE.install(config).unwrap();
        server
    })
}

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

/// The warnings logged by this binary.
fn logs() -> &'static Buf {
    static LOGS: OnceLock<Buf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Buf::default();
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buf
    })
}

fn warnings_naming(function: &str) -> usize {
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains("WARN") && l.contains(function) && l.contains("not cached"))
        .count()
}

// ---------------------------------------------------------------------------------------------
// Point 1: depth

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Node {
    v: u32,
    next: Option<Box<Node>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(mut node) = next {
            next = node.next.take();
        }
    }
}

fn chain(nodes: u32) -> Node {
    let mut node = Node { v: 0, next: None };
    for v in 1..nodes {
        node = Node {
            v,
            next: Some(Box::new(node)),
        };
    }
    node
}

fn len(mut node: &Node) -> u32 {
    let mut n = 1;
    while let Some(next) = &node.next {
        node = next;
        n += 1;
    }
    n
}

/// A valid envelope header for `codec`, then `nodes` nested `Node`s as `codec` writes them,
/// built byte by byte.
fn hostile_entry(codec: CodecKind, nodes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    envelope::write_header(&mut out, codec, 0, 0, 0);
    match codec {
        CodecKind::Json => {
            out.extend_from_slice("{\"v\":0,\"next\":".repeat(nodes).as_bytes());
            out.extend_from_slice(b"null");
            out.extend_from_slice("}".repeat(nodes).as_bytes());
        }
        CodecKind::MsgPack => {
            for _ in 0..nodes {
                out.extend_from_slice(b"\x82\xa1v\x00\xa4next");
            }
            out.push(0xc0);
        }
        // bincode and postcard: `v = 0`, then `Some`; finally `v = 0`, `None`.
        _ => {
            out.extend_from_slice(&[0, 1].repeat(nodes));
            out.extend_from_slice(&[0, 0]);
        }
    }
    out
}

macro_rules! deep_fns {
    ($($name:ident: $codec:ident;)*) => {$(
        #[redis_cache(cache = CACHE, ttl = 60, codec = $codec)]
        async fn $name(nodes: u32) -> Node {
            chain(nodes)
        }
    )*};
}

deep_fns! {
    deep_bincode: bincode;
    deep_json: json;
    deep_msgpack: msgpack;
    deep_postcard: postcard;
    planted_bincode: bincode;
    planted_json: json;
    planted_msgpack: msgpack;
    planted_postcard: postcard;
}

/// The counters of the function with identity `function` (`module::name`).
fn stats_of(function: &str) -> Stats {
    memo_redis::stats()
        .into_iter()
        .find(|f| f.function == function)
        .map(|f| f.stats)
        .unwrap_or_default()
}

/// A debug build overflowed an 8 MiB stack at 20 000 levels before the guard (issue 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_results_are_returned_and_not_stored() {
    server();
    logs();
    macro_rules! check {
        ($($f:ident),*) => {$(
            let name = concat!("codec_guards::", stringify!($f));
            for _ in 0..3 {
                let node = $f(20_000).await;
                assert_eq!(len(&node), 20_000, "{name}: the body's value");
            }
            let s = stats_of(name);
            assert_eq!((s.misses, s.hits, s.skipped_too_deep), (3, 0, 3), "{name}: {s:?}");
            assert_eq!(warnings_naming(name), 1, "{name}: warned once");
            // Shallow values of the same function are cached as usual.
            assert_eq!(len(&$f(10).await), 10);
            assert_eq!(len(&$f(10).await), 10);
            assert_eq!(stats_of(name).hits, 1, "{name}");
        )*};
    }
    check!(deep_bincode, deep_json, deep_msgpack, deep_postcard);
}

#[redis_cache(cache = CACHE, ttl = 60)]
async fn length_of(list: Node) -> u32 {
    len(&list)
}

/// The key digest serializes the arguments: a deep one bypasses the cache for that call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_arguments_bypass_the_cache() {
    server();
    assert_eq!(length_of(chain(20_000)).await, 20_000);
    assert_eq!(length_of(chain(5)).await, 5);
    assert_eq!(length_of(chain(5)).await, 5);
    let s = stats_of("codec_guards::length_of");
    assert_eq!((s.bypass, s.misses, s.hits), (1, 1, 1), "{s:?}");
}

/// A valid header followed by 20 000 levels of nesting (the 40 KB payload) aborted the
/// process on decode with bincode before the guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_entries_are_misses_and_get_repaired() {
    let server = server();
    let mut conn = server.conn().await;
    macro_rules! check {
        ($($codec:expr => $f:ident, $key:ident;)*) => {$(
            let codec = $codec;
            let key = $key(&3).unwrap();
            let planted = hostile_entry(codec, 20_000);
            assert!(planted.len() > 40_000, "{codec}: {} bytes", planted.len());
            let () = redis::cmd("SET")
                .arg(&key)
                .arg(&planted)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!($f(3).await, chain(3), "{codec}: the body's value");
            let stored = raw_get(server, &key).await.expect("repaired");
            assert_eq!(&stored[..2], &MAGIC, "{codec}");
            assert!(stored.len() < 100, "{codec}: overwritten by the body's value");
            let hits = stats_of(concat!("codec_guards::", stringify!($f))).hits;
            assert_eq!($f(3).await, chain(3), "{codec}: a hit now");
            assert_eq!(stats_of(concat!("codec_guards::", stringify!($f))).hits, hits + 1);
        )*};
    }
    check! {
        CodecKind::Bincode => planted_bincode, planted_bincode_key;
        CodecKind::Json => planted_json, planted_json_key;
        CodecKind::MsgPack => planted_msgpack, planted_msgpack_key;
        CodecKind::Postcard => planted_postcard, planted_postcard_key;
    }
    // The typed handle reports such an entry as corrupt, and computes over it.
    let key = planted_bincode_key(&4).unwrap();
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(hostile_entry(CodecKind::Bincode, 20_000))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        CACHE.get::<Node>(&key).await,
        Err(Error::Codec(_))
    ));
    let v = CACHE
        .get_or_set_with(&key, None, || async { chain(2) })
        .await
        .unwrap();
    assert_eq!(len(&v), 2);
    assert_eq!(len(&CACHE.get::<Node>(&key).await.unwrap().unwrap()), 2);
}

// ---------------------------------------------------------------------------------------------
// Point 2: round trips

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Skip {
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<u32>,
    b: u32,
    c: u32,
    d: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inner {
    x: u32,
    y: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Flat {
    id: u32,
    #[serde(flatten)]
    inner: Inner,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    A { x: u32 },
    B { x: u32, y: u32 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Tagged {
    A { x: u32 },
    B { y: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Nested {
    a: Option<Option<u32>>,
    b: Option<Option<u32>>,
    c: Option<Option<u32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Floats {
    nan: f64,
    inf: f64,
    neg_inf: f64,
    neg_zero: f64,
    small: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plain {
    id: u64,
    name: String,
    scores: Vec<f64>,
}

fn skip() -> Skip {
    Skip {
        a: None,
        b: 1,
        c: 5,
        d: vec![7, 0],
    }
}
fn flat() -> Flat {
    Flat {
        id: 1,
        inner: Inner {
            x: 2,
            y: "y".into(),
        },
    }
}
fn untagged_a() -> Untagged {
    Untagged::A { x: 1 }
}
/// `B` serializes as `{x, y}`, which reads back as `A { x }` in self-describing formats.
fn untagged_b() -> Untagged {
    Untagged::B { x: 1, y: 2 }
}
fn tagged() -> Tagged {
    Tagged::B { y: "b".into() }
}
fn nested() -> Nested {
    Nested {
        a: Some(None),
        b: Some(Some(3)),
        c: None,
    }
}
fn floats() -> Floats {
    Floats {
        nan: f64::NAN,
        inf: f64::INFINITY,
        neg_inf: f64::NEG_INFINITY,
        neg_zero: -0.0,
        small: 0.1,
    }
}
fn plain() -> Plain {
    Plain {
        id: 7,
        name: "seven".into(),
        scores: vec![0.5, -1.25, 1e300],
    }
}
fn hash_map() -> HashMap<String, u32> {
    (0..40).map(|i| (format!("key-{i}"), i)).collect()
}
fn hash_set() -> HashSet<String> {
    (0..40).map(|i| format!("member-{i}")).collect()
}

/// How a value is compared: its `Debug`, with hash collections sorted first (and so NaN equals
/// itself, and -0.0 differs from 0.0).
trait Shown {
    fn shown(&self) -> String;
}

macro_rules! shown_by_debug {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                format!("{self:?}")
            }
        }
    )*};
}

shown_by_debug!(Skip, Flat, Untagged, Tagged, Nested, Floats, Plain);

impl Shown for HashMap<String, u32> {
    fn shown(&self) -> String {
        format!(
            "{:?}",
            self.iter().collect::<std::collections::BTreeMap<_, _>>()
        )
    }
}

impl Shown for HashSet<String> {
    fn shown(&self) -> String {
        format!(
            "{:?}",
            self.iter().collect::<std::collections::BTreeSet<_>>()
        )
    }
}

/// One typed-handle cache per codec, on the shared server.
fn handle(codec: CodecKind) -> &'static Cache {
    static CACHES: OnceLock<Vec<(CodecKind, &'static Cache)>> = OnceLock::new();
    let caches = CACHES.get_or_init(|| {
        let server = server();
        [
            CodecKind::Bincode,
            CodecKind::Json,
            CodecKind::MsgPack,
            CodecKind::Postcard,
        ]
        .into_iter()
        .map(|codec| {
            let cache: &'static Cache = Box::leak(Box::new(Cache::from_env()));
            let config = Config::builder()
                .url(server.url())
                .namespace(format!("h{codec}"))
                .codec(codec)
                .op_timeout(BUDGET)
                .build()
                .unwrap();
            cache.install(config).unwrap();
            (codec, cache)
        })
        .collect()
    });
    caches.iter().find(|(c, _)| *c == codec).unwrap().1
}

/// One case on one path: what the body returned, what two calls returned, and the verdict.
#[derive(Debug)]
struct Row {
    what: String,
    expected: String,
    got: [String; 2],
    /// The second call was served from the cache.
    hit: bool,
    /// Counted (macro path) or reported (handle) as not stored.
    refused: bool,
    survives: bool,
}

/// Cases × codecs, and whether each value survives the codec (`true`) or must not be stored.
/// Why: bincode and postcard are not self-describing (no `deserialize_any`: untagged and
/// internally tagged enums cannot be read back; a skipped field shifts the layout; a flattened
/// struct is a map of unknown length); JSON and MessagePack write `None` and `Some(None)` alike
/// (`null` / `nil`); JSON writes NaN and infinities as `null`; an untagged `B { x, y }` reads back
/// as `A { x }` in the self-describing formats. Hash maps and sets survive every codec although
/// they read back in another iteration order.
macro_rules! matrix {
    ($($case:ident: $ty:ty = $make:ident => [$($codec:ident: $ok:literal),*];)*) => {
        $(mod $case {
            use super::*;
            pub static RUNS: AtomicU32 = AtomicU32::new(0);
            $(
                #[redis_cache(cache = CACHE, ttl = 60, codec = $codec)]
                pub async fn $codec(x: u32) -> $ty {
                    let _ = x;
                    RUNS.fetch_add(1, SeqCst);
                    super::$make()
                }
            )*
        })*

        /// Each cached function called twice.
        async fn macro_rows() -> Vec<Row> {
            let mut out = Vec::new();
            $($(
                let function =
                    concat!("codec_guards::", stringify!($case), "::", stringify!($codec));
                let first = $case::$codec(1).await;
                let second = $case::$codec(1).await;
                let stats = stats_of(function);
                assert_eq!(stats.calls(), 2, "{function}: {stats:?}");
                out.push(Row {
                    what: function.to_string(),
                    expected: $make().shown(),
                    got: [first.shown(), second.shown()],
                    hit: stats.hits == 1,
                    refused: stats.skipped_not_roundtrip == 2,
                    survives: $ok,
                });
            )*)*
            out
        }

        /// `Cache::set` then `get`, and `get_or_set_with` twice, with each codec's cache.
        async fn handle_rows() -> Vec<Row> {
            let mut out = Vec::new();
            $($(
                let what = concat!("handle ", stringify!($case), " ", stringify!($codec));
                let cache = handle(stringify!($codec).parse().unwrap());
                let set = cache.set(stringify!($case), &$make(), None).await;
                let read = cache.get::<$ty>(stringify!($case)).await.unwrap();
                match &set {
                    Ok(()) => assert!(read.is_some(), "{what}: set and stored"),
                    Err(Error::Codec(e)) => {
                        assert!(e.contains("does not decode back"), "{what}: {e}");
                        assert!(read.is_none(), "{what}: refused, nothing stored");
                    }
                    Err(e) => panic!("{what}: {e}"),
                }
                if let Some(read) = &read {
                    assert_eq!(read.shown(), $make().shown(), "{what}: get");
                }
                let runs = std::sync::atomic::AtomicU32::new(0);
                let key = concat!(stringify!($case), ":computed");
                let make = || async {
                    runs.fetch_add(1, SeqCst);
                    $make()
                };
                let first: $ty = cache.get_or_set_with(key, None, make).await.unwrap();
                let second: $ty = cache.get_or_set_with(key, None, make).await.unwrap();
                out.push(Row {
                    what: what.to_string(),
                    expected: $make().shown(),
                    got: [first.shown(), second.shown()],
                    hit: runs.load(SeqCst) == 1,
                    refused: set.is_err(),
                    survives: $ok,
                });
            )*)*
            out
        }
    };
}

matrix! {
    skip_if_none: Skip = skip =>
        [bincode: false, json: true, msgpack: true, postcard: false];
    flatten: Flat = flat =>
        [bincode: false, json: true, msgpack: true, postcard: false];
    untagged: Untagged = untagged_a =>
        [bincode: false, json: true, msgpack: true, postcard: false];
    untagged_shadowed: Untagged = untagged_b =>
        [bincode: false, json: false, msgpack: false, postcard: false];
    internally_tagged: Tagged = tagged =>
        [bincode: false, json: true, msgpack: true, postcard: false];
    option_option: Nested = nested =>
        [bincode: true, json: false, msgpack: false, postcard: true];
    float_specials: Floats = floats =>
        [bincode: true, json: false, msgpack: true, postcard: true];
    plain_struct: Plain = plain =>
        [bincode: true, json: true, msgpack: true, postcard: true];
    hash_map: HashMap<String, u32> = hash_map =>
        [bincode: true, json: true, msgpack: true, postcard: true];
    hash_set: HashSet<String> = hash_set =>
        [bincode: true, json: true, msgpack: true, postcard: true];
}

fn check_rows(rows: &[Row]) {
    let mut wrong = Vec::new();
    for row in rows {
        // The promise: every call returns exactly what the body returned.
        if row.got[0] != row.expected || row.got[1] != row.expected {
            wrong.push(format!("{}: returned another value: {row:?}", row.what));
        }
        // And the value is cached exactly when it survives its codec.
        if (row.hit, row.refused) != (row.survives, !row.survives) {
            wrong.push(format!(
                "{}: hit {} refused {}, expected {}",
                row.what,
                row.hit,
                row.refused,
                if row.survives { "cached" } else { "not stored" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_do_not_round_trip_are_not_stored_by_cached_functions() {
    server();
    logs();
    let rows = macro_rows().await;
    check_rows(&rows);
    // One warning per function that refused, naming it and suggesting a codec.
    for row in rows.iter().filter(|r| !r.survives) {
        assert_eq!(warnings_naming(&row.what), 1, "{}", row.what);
    }
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    assert!(
        text.contains("codec = json"),
        "the warning suggests a codec:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_do_not_round_trip_are_refused_by_the_typed_handle() {
    server();
    check_rows(&handle_rows().await);
}
