//! Garbage under a function's key — foreign bytes, truncated or future-format envelopes, an
//! unknown codec, a value of another Redis type — is a miss: the body runs, the right result is
//! returned, and the entry is overwritten (or, when there is nothing to store, removed unless
//! someone replaced it meanwhile).

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use memo_redis::envelope::{self, FORMAT_VERSION, MAGIC};
use memo_redis::{redis_cache, Cache, CodecKind, Config};
use memo_redis_tests::RedisServer;
use redis::aio::MultiplexedConnection;

fn install(cache: &Cache, server: &RedisServer) {
    let config = Config::builder().url(server.url()).build().unwrap();
    cache.install(config).unwrap();
}

/// What to put under a key.
enum Plant {
    Bytes(Vec<u8>),
    /// A Redis list: GET answers WRONGTYPE.
    List,
}

async fn plant(conn: &mut MultiplexedConnection, key: &str, what: &Plant) {
    let () = redis::cmd("DEL").arg(key).query_async(conn).await.unwrap();
    match what {
        Plant::Bytes(b) => redis::cmd("SET").arg(key).arg(b).query_async(conn).await,
        Plant::List => {
            redis::cmd("RPUSH")
                .arg(key)
                .arg("foreign")
                .arg("data")
                .query_async(conn)
                .await
        }
    }
    .unwrap_or_else(|e| panic!("cannot plant under {key}: {e}"))
}

async fn raw_get(conn: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

async fn key_type(conn: &mut MultiplexedConnection, key: &str) -> String {
    redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap()
}

fn assert_valid_envelope(bytes: &[u8], what: &str) {
    assert!(
        bytes.len() >= envelope::HEADER_LEN && bytes[0..2] == MAGIC && bytes[2] == FORMAT_VERSION,
        "{what}: not a valid envelope: {bytes:?}"
    );
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// Deterministic bytes that do not start with the magic.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut out: Vec<u8> = (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect();
    out[0] = b'#';
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_entries_are_recomputed_and_overwritten() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn word(x: u32) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("word number {x}")
    }
    let mut conn = server.conn().await;

    // A real entry to damage.
    assert_eq!(word(0).await, "word number 0");
    let real = raw_get(&mut conn, &word_key(&0).unwrap())
        .await
        .expect("entry stored");
    assert_valid_envelope(&real, "the real entry");
    let with_byte = |at: usize, value: u8| {
        let mut v = real.clone();
        v[at] = value;
        v
    };
    let cached_none = envelope::encode::<String>(CodecKind::Bincode, None, now_ms(), 0).unwrap();

    let cases = [
        ("random bytes", Plant::Bytes(random_bytes(64))),
        ("empty string", Plant::Bytes(Vec::new())),
        ("header cut", Plant::Bytes(real[..10].to_vec())),
        ("payload cut", Plant::Bytes(real[..real.len() - 1].to_vec())),
        ("version 99", Plant::Bytes(with_byte(2, 99))),
        ("unknown codec 200", Plant::Bytes(with_byte(3, 200))),
        ("unknown flag", Plant::Bytes(with_byte(4, 0x80))),
        ("cached None under a plain fn", Plant::Bytes(cached_none)),
        ("list (WRONGTYPE)", Plant::List),
    ];
    for (i, (what, planted)) in cases.iter().enumerate() {
        let x = u32::try_from(i).unwrap() + 1;
        let key = word_key(&x).unwrap();
        plant(&mut conn, &key, planted).await;
        assert_eq!(
            word_peek(&x).await.unwrap(),
            None,
            "{what}: peek sees no value"
        );

        let runs = RUNS.load(SeqCst);
        assert_eq!(word(x).await, format!("word number {x}"), "{what}");
        assert_eq!(RUNS.load(SeqCst), runs + 1, "{what}: the body ran");

        let stored = raw_get(&mut conn, &key).await;
        assert_valid_envelope(stored.as_deref().unwrap_or_default(), what);

        assert_eq!(word(x).await, format!("word number {x}"), "{what}");
        assert_eq!(
            RUNS.load(SeqCst),
            runs + 1,
            "{what}: the next call is a hit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_entry_removed_when_body_fails() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static URL: OnceLock<String> = OnceLock::new();
    URL.set(server.url()).unwrap();

    const OK: u8 = 0;
    const FAIL: u8 = 1;
    /// Writes a valid entry (value 777) under its own key, then fails.
    const OVERWRITE_THEN_FAIL: u8 = 2;
    static MODE: AtomicU8 = AtomicU8::new(OK);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn lookup(x: u32) -> Result<u32, String> {
        RUNS.fetch_add(1, SeqCst);
        match MODE.load(SeqCst) {
            OK => Ok(x + 100),
            FAIL => Err(format!("no {x}")),
            _ => {
                let fresh =
                    envelope::encode(CodecKind::Bincode, Some(&777u32), now_ms(), 0).unwrap();
                let client = redis::Client::open(URL.get().unwrap().as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let () = redis::cmd("SET")
                    .arg(lookup_key(&x).unwrap())
                    .arg(fresh)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                Err(format!("no {x}"))
            }
        }
    }
    let mut conn = server.conn().await;
    let garbage = Plant::Bytes(random_bytes(40));

    // Corrupt bytes + Err: nothing to store, so the corrupt entry is deleted.
    let key = lookup_key(&1).unwrap();
    plant(&mut conn, &key, &garbage).await;
    MODE.store(FAIL, SeqCst);
    assert_eq!(lookup(1).await, Err("no 1".to_string()));
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(
        key_type(&mut conn, &key).await,
        "none",
        "corrupt entry removed"
    );

    // A list + Err: foreign types are removed as well.
    let key = lookup_key(&2).unwrap();
    plant(&mut conn, &key, &Plant::List).await;
    assert_eq!(lookup(2).await, Err("no 2".to_string()));
    assert_eq!(RUNS.load(SeqCst), 2);
    assert_eq!(key_type(&mut conn, &key).await, "none", "list removed");

    // Corrupt bytes, then a valid value written while the body ran: compare-and-delete keeps it.
    let key = lookup_key(&3).unwrap();
    plant(&mut conn, &key, &garbage).await;
    MODE.store(OVERWRITE_THEN_FAIL, SeqCst);
    assert_eq!(lookup(3).await, Err("no 3".to_string()));
    assert_eq!(RUNS.load(SeqCst), 3);
    let kept = raw_get(&mut conn, &key).await.expect("fresh entry kept");
    assert_valid_envelope(&kept, "the entry written meanwhile");
    MODE.store(OK, SeqCst);
    assert_eq!(
        lookup(3).await,
        Ok(777),
        "served from the entry written meanwhile"
    );
    assert_eq!(RUNS.load(SeqCst), 3, "a hit");

    // Afterwards the function caches normally: Err is not stored, Ok is.
    MODE.store(FAIL, SeqCst);
    assert_eq!(lookup(4).await, Err("no 4".to_string()));
    assert_eq!(key_type(&mut conn, &lookup_key(&4).unwrap()).await, "none");
    MODE.store(OK, SeqCst);
    assert_eq!(lookup(4).await, Ok(104));
    assert_eq!(lookup(4).await, Ok(104));
    assert_eq!(RUNS.load(SeqCst), 5);
}
