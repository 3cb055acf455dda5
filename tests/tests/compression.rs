//! Payload compression (`compress = ...`, `REDIS_COMPRESS_MIN_BYTES`) against a real
//! redis-server: what is stored, that every reader decodes every entry whatever its own setting,
//! that the size limit bounds the decompressed payload, and that hostile compressed entries are a
//! miss that is repaired.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use memo_redis::envelope::{self, FORMAT_VERSION, MAGIC};
use memo_redis::{redis_cache, Cache, Config, ConfigBuilder};
use memo_redis_tests::RedisServer;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

/// The flag byte of a compressed entry, as docs/keys-and-failures.md documents it.
const COMPRESSED: u8 = 0b10;

fn base(server: &RedisServer) -> ConfigBuilder {
    Config::builder()
        .url(server.url())
        .namespace("zip")
        .op_timeout(Duration::from_secs(2))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    name: String,
    email: String,
    tags: Vec<String>,
}

/// JSON-like records: compressible (repeated field contents), but not trivially.
fn rows(n: u64) -> Vec<Row> {
    (0..n)
        .map(|id| Row {
            id,
            name: format!("Customer {id}"),
            email: format!("customer.{id}@example.com"),
            tags: vec!["active".into(), "newsletter".into(), "eu-west".into()],
        })
        .collect()
}

async fn raw_get(conn: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

async fn raw_set(conn: &mut MultiplexedConnection, key: &str, bytes: &[u8]) {
    let () = redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .query_async(conn)
        .await
        .unwrap();
}

fn assert_envelope(bytes: &[u8], flags: u8, what: &str) {
    assert!(
        bytes.len() >= envelope::HEADER_LEN && bytes[0..2] == MAGIC && bytes[2] == FORMAT_VERSION,
        "{what}: not a valid envelope"
    );
    assert_eq!(bytes[4], flags, "{what}: flag byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_true_stores_a_compressed_entry_and_hits_return_the_exact_value() {
    assert_eq!(envelope::FLAG_COMPRESSED, COMPRESSED);
    let server = RedisServer::start();
    // The cache itself does not compress: the function's argument decides.
    static CACHE: Cache = Cache::from_env();
    CACHE.install(base(&server).build().unwrap()).unwrap();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, compress = true)]
    async fn packed(n: u64) -> Vec<Row> {
        RUNS.fetch_add(1, SeqCst);
        rows(n)
    }
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn plain(n: u64) -> Vec<Row> {
        rows(n)
    }
    let mut conn = server.conn().await;

    assert_eq!(packed(500).await, rows(500));
    assert_eq!(plain(500).await, rows(500));
    let stored = raw_get(&mut conn, &packed_key(&500).unwrap())
        .await
        .unwrap();
    let uncompressed = raw_get(&mut conn, &plain_key(&500).unwrap()).await.unwrap();
    assert_envelope(&stored, COMPRESSED, "compress = true");
    assert_envelope(&uncompressed, 0, "no compress argument, cache off");
    assert!(
        stored.len() * 3 < uncompressed.len(),
        "compressed {} bytes, uncompressed {}",
        stored.len(),
        uncompressed.len()
    );
    // The header other than the flag is what an uncompressed entry carries (same shape tag).
    assert_eq!(stored[17..25], uncompressed[17..25], "shape tag");

    // Hits decompress to the exact value, without running the body.
    let runs = RUNS.load(SeqCst);
    for _ in 0..3 {
        assert_eq!(packed(500).await, rows(500));
    }
    assert_eq!(RUNS.load(SeqCst), runs, "hits");
    assert_eq!(packed_peek(&500).await.unwrap(), Some(rows(500)));

    // `compress = true` is 1 KiB: a small result stays uncompressed.
    assert_eq!(packed(2).await, rows(2));
    let small = raw_get(&mut conn, &packed_key(&2).unwrap()).await.unwrap();
    assert_envelope(&small, 0, "below 1 KiB");
    assert_eq!(packed(2).await, rows(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_of_the_cache_and_of_the_function() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(base(&server).compress_min_bytes(4096).build().unwrap())
        .unwrap();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn inherits(n: u64) -> Vec<Row> {
        rows(n)
    }
    #[redis_cache(cache = CACHE, ttl = 60, compress = "2KiB")]
    async fn own(n: u64) -> Vec<Row> {
        rows(n)
    }
    #[redis_cache(cache = CACHE, ttl = 60, compress = false)]
    async fn never(n: u64) -> Vec<Row> {
        rows(n)
    }
    let mut conn = server.conn().await;
    // bincode of rows(n) is ~ 80 n bytes: 20 rows ~ 1.6 KB, 40 ~ 3.2 KB, 100 ~ 8 KB.
    let cases: [(&str, u64, u8); 6] = [
        ("cache 4 KiB, 40 rows", 40, 0),
        ("cache 4 KiB, 100 rows", 100, COMPRESSED),
        ("own 2 KiB, 20 rows", 20, 0),
        ("own 2 KiB, 40 rows", 40, COMPRESSED),
        ("never, 100 rows", 100, 0),
        ("never, 500 rows", 500, 0),
    ];
    for (i, (what, n, flags)) in cases.into_iter().enumerate() {
        let key = match i {
            0 | 1 => {
                assert_eq!(inherits(n).await, rows(n), "{what}");
                inherits_key(&n).unwrap()
            }
            2 | 3 => {
                assert_eq!(own(n).await, rows(n), "{what}");
                own_key(&n).unwrap()
            }
            _ => {
                assert_eq!(never(n).await, rows(n), "{what}");
                never_key(&n).unwrap()
            }
        };
        let stored = raw_get(&mut conn, &key).await.unwrap();
        assert_envelope(&stored, flags, what);
    }
    // The typed handle follows the cache: at or above 4 KiB compressed, below not.
    CACHE.set("big", &rows(100), None).await.unwrap();
    CACHE.set("small", &rows(5), None).await.unwrap();
    let big = raw_get(&mut conn, &CACHE.full_key("big").unwrap()).await;
    let small = raw_get(&mut conn, &CACHE.full_key("small").unwrap()).await;
    assert_envelope(&big.unwrap(), COMPRESSED, "handle, 100 rows");
    assert_envelope(&small.unwrap(), 0, "handle, 5 rows");
    assert_eq!(CACHE.get::<Vec<Row>>("big").await.unwrap(), Some(rows(100)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_without_compression_decodes_entries_of_a_compressing_writer() {
    let server = RedisServer::start();
    static WRITER: Cache = Cache::from_env();
    static READER: Cache = Cache::from_env();
    WRITER
        .install(base(&server).compress_min_bytes(0).build().unwrap())
        .unwrap();
    READER.install(base(&server).build().unwrap()).unwrap();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = READER, ttl = 60)]
    async fn report(n: u64) -> Vec<Row> {
        RUNS.fetch_add(1, SeqCst);
        rows(n)
    }
    let mut conn = server.conn().await;

    // Typed handle: written compressed by one cache, read by the other.
    WRITER.set("shared", &rows(300), None).await.unwrap();
    let raw = raw_get(&mut conn, &READER.full_key("shared").unwrap()).await;
    assert_envelope(&raw.unwrap(), COMPRESSED, "writer compresses");
    assert_eq!(
        READER.get::<Vec<Row>>("shared").await.unwrap(),
        Some(rows(300))
    );

    // A function's key, written by the compressing cache: the reader's function hits.
    let key = report_key(&300).unwrap();
    WRITER.set(&key, &rows(300), None).await.unwrap();
    assert_envelope(
        &raw_get(&mut conn, &key).await.unwrap(),
        COMPRESSED,
        "under the function's key",
    );
    assert_eq!(report(300).await, rows(300));
    assert_eq!(RUNS.load(SeqCst), 0, "a hit on the compressed entry");

    // And the other way round: the compressing cache reads the reader's plain entries.
    assert_eq!(report(7).await, rows(7));
    let plain = raw_get(&mut conn, &report_key(&7).unwrap()).await.unwrap();
    assert_envelope(&plain, 0, "reader does not compress");
    assert_eq!(
        WRITER
            .get::<Vec<Row>>(&report_key(&7).unwrap())
            .await
            .unwrap(),
        Some(rows(7))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_compressed_entries_are_a_miss_and_are_repaired() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    static BIG: Cache = Cache::from_env();
    // The reader's size limit (64 KiB) bounds what it decompresses.
    CACHE
        .install(base(&server).max_value_bytes(64 << 10).build().unwrap())
        .unwrap();
    BIG.install(base(&server).compress_min_bytes(0).build().unwrap())
        .unwrap();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn word(x: u32) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("word number {x}")
    }
    let mut conn = server.conn().await;

    assert_eq!(word(0).await, "word number 0");
    let real = raw_get(&mut conn, &word_key(&0).unwrap()).await.unwrap();
    let header = |flags: u8| {
        let mut h = real[..envelope::HEADER_LEN].to_vec();
        h[4] = flags;
        h
    };
    let with = |prefix: u32, block: &[u8]| {
        let mut v = header(COMPRESSED);
        v.extend_from_slice(&prefix.to_be_bytes());
        v.extend_from_slice(block);
        v
    };
    // A valid compressed entry (written by another cache) whose decompressed payload exceeds
    // this reader's limit, though its stored bytes are far below it.
    let long = "z".repeat(200_000);
    BIG.set("long", &long, None).await.unwrap();
    let long_entry = raw_get(&mut conn, &BIG.full_key("long").unwrap())
        .await
        .unwrap();
    assert_envelope(&long_entry, COMPRESSED, "the long entry");
    assert!(long_entry.len() < 4096, "{}", long_entry.len());

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("claims 4 GiB", with(u32::MAX, &[0x1f; 32])),
        ("claims 3 GiB, empty block", with(3 << 30, &[])),
        ("garbage block", with(40, &[0xff; 40])),
        ("no length", header(COMPRESSED)),
        (
            "length shorter than the block",
            with(3, b"\x80word number 1"),
        ),
        ("compressed None", header(COMPRESSED | 1)),
        ("decompresses beyond the reader's limit", long_entry),
    ];
    for (i, (what, planted)) in cases.iter().enumerate() {
        let x = u32::try_from(i).unwrap() + 1;
        let key = word_key(&x).unwrap();
        raw_set(&mut conn, &key, planted).await;
        let peeked = word_peek(&x).await.unwrap();
        assert!(peeked.is_none(), "{what}: peek misses");
        let runs = RUNS.load(SeqCst);
        assert_eq!(word(x).await, format!("word number {x}"), "{what}");
        assert_eq!(RUNS.load(SeqCst), runs + 1, "{what}: the body ran");
        let repaired = raw_get(&mut conn, &key).await.unwrap();
        assert_envelope(&repaired, 0, what);
        assert_eq!(word(x).await, format!("word number {x}"), "{what}");
        assert_eq!(RUNS.load(SeqCst), runs + 1, "{what}: then a hit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_bounds_the_uncompressed_payload() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            base(&server)
                .compress_min_bytes(0)
                .max_value_bytes(16 << 10)
                .build()
                .unwrap(),
        )
        .unwrap();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn text(n: usize) -> String {
        "y".repeat(n)
    }
    let mut conn = server.conn().await;
    // 8 KB: compressed and stored.
    assert_eq!(text(8_000).await.len(), 8_000);
    let stored = raw_get(&mut conn, &text_key(&8_000).unwrap()).await;
    assert_envelope(&stored.unwrap(), COMPRESSED, "8 KB");
    // 32 KB would compress to a few hundred bytes, but exceeds the limit uncompressed: not
    // stored (a reader could not decompress it), and the call still returns it.
    assert_eq!(text(32_000).await.len(), 32_000);
    assert_eq!(raw_get(&mut conn, &text_key(&32_000).unwrap()).await, None);
    // The typed handle refuses it the same way.
    assert!(CACHE.set("long", &"y".repeat(32_000), None).await.is_err());
}
