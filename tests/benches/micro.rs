//! CPU micro-benchmarks (criterion): what a cached call computes besides the Redis round trip.
//!
//! ```sh
//! cargo bench -p memo-redis-tests --bench micro              # full run (~20 s after the build)
//! cargo bench -p memo-redis-tests --bench micro -- --test    # criterion's test mode: each once
//! ```
//!
//! - `key/*`: the full key of a digest-keyed function, exactly as the macro builds it (the
//!   generated `<fn>_key(&args)` companion: head + SHA-256 of the bincode of the arguments, as a
//!   `String`), for 1, 3 and 8 arguments (with a `String` and a struct); `digest/*` is the
//!   argument digest alone (`memo_redis::key::push_digest` into a reused `String`).
//! - `envelope/*`: encode and decode (header parse + bincode) of a 5-field struct of ~80 bytes.
//! - `guard/*`: what the miss path's encode guards add (decode what was encoded and compare
//!   canonical forms, see `guard.rs`): a plain encode next to the guarded one, for the 5-field
//!   struct, a 100-element `Vec` of it and a 100-entry `HashMap<String, u64>` (whose canonical
//!   forms differ in order, so it also pays the sorted comparison), with bincode and JSON.
//! - `hit/*`: the CPU part of a hit with the Redis reply already fetched: key (digest) + breaker
//!   check + envelope parse + shape-tag check + decode + stats (`memo_redis::__private::bench::hit`).
//! - `compress/*`: the payload compression of `REDIS_COMPRESS_MIN_BYTES` / `compress = ...`
//!   (LZ4 through `lz4_flex`, `memo_redis::envelope::compress` and `Envelope::decompressed`)
//!   against zstd (levels 1 and 3, the `zstd` crate's bulk API; `--features compare-zstd`) on JSON of 1 KB, 100 KB and 1 MB
//!   of records; each ratio is printed once. `cargo bench -p memo-redis-tests --bench micro --
//!   compress`.
//! - `schema/*`: the structural fingerprint's one-time cost (tracing a type's serde shape and
//!   writing its description, what the first call of a function pays once per value type) and its
//!   steady state (the cached lookup every decode does).
//!
//! No Redis is contacted: the cache points at a port nothing listens on, and nothing here does
//! I/O (a `Key` only borrows the cache's lazily connecting store).

// The 8-argument function's generated companions (`eight_key`, ...) have 8 parameters too.
#![allow(clippy::too_many_arguments)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use memo_redis::__private::{bench, digest_key, shape_fn_of, Plain, Spec, Ttl, NO_SELF};
use memo_redis::{envelope, redis_cache, Cache, CodecKind, Config};
use serde::Serialize;

mod common;
use common::{profile, Profile};

static MICRO: Cache = Cache::lazy(|| {
    Config::builder()
        .url(memo_redis_tests::free_port_url())
        .build()
});

/// A small struct argument (a query filter).
#[derive(Debug, Clone, Serialize)]
struct Filter {
    region: &'static str,
    min_score: u32,
    active: bool,
}

fn filter() -> Filter {
    Filter {
        region: "eu-west",
        min_score: 3,
        active: true,
    }
}

#[redis_cache(cache = MICRO, ttl = 300)]
async fn one(id: u64) -> u64 {
    id
}

#[redis_cache(cache = MICRO, ttl = 300)]
async fn three(id: u64, name: String, filter: Filter) -> u64 {
    let _ = (name, filter);
    id
}

#[redis_cache(cache = MICRO, ttl = 300)]
async fn eight(
    id: u64,
    page: u32,
    name: String,
    filter: Filter,
    since: i64,
    lang: Option<String>,
    ids: Vec<u16>,
    exact: bool,
) -> u64 {
    let _ = (page, name, filter, since, lang, ids, exact);
    id
}

/// The spec a `#[redis_cache(cache = MICRO, ttl = 300)] async fn hit_profile(id: u64) ->
/// Profile` emits (`Spec` is what the macro puts in a `static`).
static HIT_SPEC: Spec = Spec::new(module_path!(), "hit_profile", "(u64) -> Profile")
    .cache(&MICRO)
    .ttl(Ttl::Millis(300_000));

fn keys(c: &mut Criterion) {
    let name = String::from("ada.lovelace");
    let f = filter();
    let lang = Some(String::from("en-GB"));
    let ids: Vec<u16> = vec![3, 1, 4, 1, 5, 9, 2, 6];
    // Fail early (and outside the timing) if the key cannot be built.
    assert!(one_key(&42).expect("key").len() > 40);

    let mut g = c.benchmark_group("key");
    g.bench_function("1 arg (u64)", |b| {
        b.iter(|| one_key(black_box(&42)).expect("key"))
    });
    g.bench_function("3 args (u64, String, struct)", |b| {
        b.iter(|| three_key(black_box(&42), black_box(&name), black_box(&f)).expect("key"))
    });
    g.bench_function(
        "8 args (incl. String, struct, Option<String>, Vec<u16>)",
        |b| {
            b.iter(|| {
                eight_key(
                    black_box(&42),
                    &7,
                    black_box(&name),
                    &f,
                    &-5,
                    &lang,
                    &ids,
                    &true,
                )
                .expect("key")
            })
        },
    );
    g.finish();

    let mut g = c.benchmark_group("digest");
    let mut out = String::with_capacity(64);
    g.bench_function("1 arg (u64)", |b| {
        b.iter(|| {
            out.clear();
            memo_redis::key::push_digest(&mut out, black_box(&(&42u64,))).expect("digest");
        })
    });
    g.bench_function("3 args (u64, String, struct)", |b| {
        b.iter(|| {
            out.clear();
            memo_redis::key::push_digest(&mut out, black_box(&(&42u64, &name, &f)))
                .expect("digest");
        })
    });
    g.bench_function(
        "8 args (incl. String, struct, Option<String>, Vec<u16>)",
        |b| {
            b.iter(|| {
                out.clear();
                memo_redis::key::push_digest(
                    &mut out,
                    black_box(&(&42u64, &7u32, &name, &f, &-5i64, &lang, &ids, &true)),
                )
                .expect("digest");
            })
        },
    );
    g.finish();
}

fn envelopes(c: &mut Criterion) {
    let p = profile(42);
    let bytes =
        envelope::encode(CodecKind::Bincode, Some(&p), 1_764_000_000_000, 3).expect("encode");
    let mut g = c.benchmark_group("envelope");
    g.bench_function(
        format!("encode 5-field struct (bincode, {} bytes)", bytes.len()),
        |b| {
            b.iter(|| {
                envelope::encode(
                    CodecKind::Bincode,
                    Some(black_box(&p)),
                    1_764_000_000_000,
                    3,
                )
                .expect("encode")
            })
        },
    );
    g.bench_function(
        format!("decode 5-field struct (bincode, {} bytes)", bytes.len()),
        |b| {
            b.iter(|| {
                let env = envelope::Envelope::parse(black_box(&bytes), 1 << 20).expect("parse");
                env.codec.decode::<Profile>(env.payload).expect("decode")
            })
        },
    );
    g.finish();
}

fn guards(c: &mut Criterion) {
    let one = profile(42);
    let many: Vec<Profile> = (0..100).map(profile).collect();
    let map: HashMap<String, u64> = (0..100).map(|i| (format!("key-{i}"), i)).collect();
    let mut g = c.benchmark_group("guard");
    macro_rules! pair {
        ($what:expr, $codec:expr, $value:expr) => {
            let (codec, value) = ($codec, $value);
            assert!(
                bench::encode_guarded(codec, value).is_ok(),
                "{} passes",
                $what
            );
            g.bench_function(format!("encode {} ({codec})", $what), |b| {
                b.iter(|| {
                    envelope::encode(codec, Some(black_box(value)), 1_764_000_000_000, 3)
                        .expect("encode")
                })
            });
            g.bench_function(format!("encode + verify {} ({codec})", $what), |b| {
                b.iter(|| bench::encode_guarded(codec, black_box(value)).expect("stored"))
            });
        };
    }
    pair!("5-field struct", CodecKind::Bincode, &one);
    pair!("100-element vec", CodecKind::Bincode, &many);
    pair!("100-entry HashMap", CodecKind::Bincode, &map);
    pair!("5-field struct", CodecKind::Json, &one);
    pair!("100-element vec", CodecKind::Json, &many);
    g.finish();
}

fn hits(c: &mut Criterion) {
    let p = profile(42);
    // The reply a GET would return for this function's entry.
    let tag = bench::shape_tag::<Profile>();
    let reply = envelope::encode_shaped(CodecKind::Bincode, Some(&p), tag, 1_764_000_000_000, 3)
        .expect("encode");
    let key = || {
        digest_key(&HIT_SPEC, NO_SELF, shape_fn_of::<Plain, Profile>, |d| {
            d.arg(&black_box(42u64))
        })
    };
    assert_eq!(
        bench::hit::<Plain, Profile>(&HIT_SPEC, key(), &reply),
        Some(p)
    );
    let hits_before = HIT_SPEC.stats().hits;

    let mut g = c.benchmark_group("hit");
    // Criterion calls the closure only when the benchmark is not filtered out (`-- compress`).
    let mut measured = false;
    g.bench_function(
        "full CPU path, reply pre-fetched (key + breaker + envelope + decode + stats)",
        |b| {
            measured = true;
            b.iter(|| {
                bench::hit::<Plain, Profile>(&HIT_SPEC, key(), black_box(&reply)).expect("a hit")
            })
        },
    );
    g.bench_function("key alone (digest_key of 1 u64)", |b| {
        b.iter(|| key().expect("key"))
    });
    g.finish();
    assert!(
        !measured || HIT_SPEC.stats().hits > hits_before,
        "every measured call is counted as a hit"
    );
}

/// A larger record: nested structs, an enum with data in its variants, a recursive type.
#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Account {
    id: u64,
    owner: Profile,
    plan: Plan,
    history: Vec<Event>,
    limits: std::collections::BTreeMap<String, (u32, Option<f64>)>,
    tree: Node,
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
enum Plan {
    Free,
    Team { seats: u32, admin: String },
    Enterprise(Box<Plan>, Vec<String>),
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
enum Event {
    Created(u64),
    Renamed { from: String, to: String },
    Closed,
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Node {
    label: String,
    children: Vec<Node>,
}

fn schema(c: &mut Criterion) {
    let mut g = c.benchmark_group("schema");
    g.bench_function(
        "trace 5-field struct (one-time, first call per type)",
        |b| b.iter(|| memo_redis::schema::describe::<Profile>().expect("traceable")),
    );
    g.bench_function(
        "trace 6-field struct with 3 enums/recursion (one-time, first call per type)",
        |b| b.iter(|| memo_redis::schema::describe::<Account>().expect("traceable")),
    );
    let _ = bench::shape_tag::<Profile>();
    g.bench_function("cached lookup (steady state, every decode)", |b| {
        b.iter(|| black_box(bench::shape_tag::<Profile>()))
    });
    g.finish();
}

/// JSON of `Profile` records (distinct ids, names and e-mails) of at least `bytes` bytes, in an
/// envelope as the miss path stores it.
///
/// The fewest records whose JSON array reaches `bytes`: `[` + the records joined by `,` + `]`,
/// so its length is summed record by record (re-serialising the whole array after each push
/// was quadratic: 108 s of a debug build's smoke run for 1 MB).
fn json_entry(bytes: usize) -> Vec<u8> {
    let mut records = Vec::new();
    let mut len = 2; // `[]`
    while len < bytes {
        let record = profile(records.len() as u64 * 7919 + 1_000_003);
        len += serde_json::to_vec(&record).expect("json").len() + usize::from(!records.is_empty());
        records.push(record);
    }
    debug_assert_eq!(serde_json::to_vec(&records).expect("json").len(), len);
    envelope::encode(CodecKind::Json, Some(&records), 1_764_000_000_000, 3).expect("encode")
}

fn compression(c: &mut Criterion) {
    let mut g = c.benchmark_group("compress");
    for (label, size) in [("1 KB", 1_000), ("100 KB", 100_000), ("1 MB", 1_000_000)] {
        let entry = json_entry(size);
        let payload = &entry[envelope::HEADER_LEN..];
        let lz4 = envelope::compress(entry.clone(), Some(0), usize::MAX);
        let env = envelope::Envelope::parse(&lz4, usize::MAX).expect("parse");
        assert!(env.is_compressed(), "{label}: lz4 shrinks JSON");
        assert_eq!(&env.decompressed(usize::MAX).expect("lz4")[..], payload);
        eprintln!(
            "compress/{label}: payload {} B; lz4_flex {} B (ratio {:.2})",
            payload.len(),
            env.payload.len(),
            payload.len() as f64 / env.payload.len() as f64,
        );
        g.bench_function(format!("lz4_flex encode {label}"), |b| {
            b.iter_batched(
                || entry.clone(),
                |e| envelope::compress(e, Some(0), usize::MAX),
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("lz4_flex decode {label}"), |b| {
            b.iter(|| {
                let env = envelope::Envelope::parse(black_box(&lz4), usize::MAX).expect("parse");
                env.decompressed(usize::MAX).expect("lz4").len()
            })
        });
        #[cfg(feature = "compare-zstd")]
        zstd_rows(&mut g, label, payload);
    }
    g.finish();
}

/// zstd levels 1 and 3 on the same payload (`--features compare-zstd`: a C build).
#[cfg(feature = "compare-zstd")]
fn zstd_rows(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    payload: &[u8],
) {
    let z1 = zstd::bulk::compress(payload, 1).expect("zstd");
    let z3 = zstd::bulk::compress(payload, 3).expect("zstd");
    eprintln!(
        "compress/{label}: zstd-1 {} B ({:.2}); zstd-3 {} B ({:.2})",
        z1.len(),
        payload.len() as f64 / z1.len() as f64,
        z3.len(),
        payload.len() as f64 / z3.len() as f64,
    );
    for (level, packed) in [(1, &z1), (3, &z3)] {
        g.bench_function(format!("zstd-{level} encode {label}"), |b| {
            b.iter(|| zstd::bulk::compress(black_box(payload), level).expect("zstd"))
        });
        g.bench_function(format!("zstd-{level} decode {label}"), |b| {
            b.iter(|| {
                zstd::bulk::decompress(black_box(packed), payload.len())
                    .expect("zstd")
                    .len()
            })
        });
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(40)
        .without_plots()
}

criterion_group! {
    name = micro;
    config = config();
    targets = keys, envelopes, guards, hits, schema, compression
}
criterion_main!(micro);
