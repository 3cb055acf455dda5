//! Rolling deploys: two builds of one program whose cached types differ *inside* (same names,
//! same functions), running side by side against one real redis-server. Each build must get only
//! values its own body returns, and after its first miss, hits: neither reads nor repairs the
//! other's entries. The builds are `tests/bin/schema_v1.rs` and `schema_v2.rs` (one source,
//! `tests/bin/schema_app.rs`, two type modules), driven over stdin/stdout.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use memo_redis::{key, redis_cache, Cache};
use memo_redis_tests::RedisServer;
use serde::{Deserialize, Serialize};

/// One running build.
struct App {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

#[derive(Debug)]
struct Reply {
    ok: bool,
    hits: u64,
    misses: u64,
    line: String,
}

impl App {
    fn start(name: &'static str, exe: &str, server: &RedisServer) -> App {
        let mut child = Command::new(exe)
            .env("REDIS_URL", server.url())
            .env("REDIS_PREFIX", "schema")
            .env_remove("REDIS_HOST")
            .env_remove("REDIS_PORT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        App {
            name,
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, case: &str, id: u64) -> Reply {
        writeln!(self.stdin, "{case} {id}").expect("write to the build");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the build");
        let line = line.trim().to_string();
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or_else(|| panic!("{}: no `{k}` in {line:?}", self.name))
                .to_string()
        };
        Reply {
            ok: field("ok=") == "true",
            hits: field("hits=").parse().expect("hits"),
            misses: field("misses=").parse().expect("misses"),
            line: format!("{}: {line}", self.name),
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn builds(server: &RedisServer) -> (App, App) {
    (
        App::start("v1", env!("CARGO_BIN_EXE_schema-v1"), server),
        App::start("v2", env!("CARGO_BIN_EXE_schema-v2"), server),
    )
}

/// Every change of the list, one cached function each; calls alternate between the two
/// builds, 4 rounds.
#[test]
fn two_builds_never_read_each_others_entries_and_both_keep_hitting() {
    const CASES: [&str; 7] = [
        "type_change",
        "reorder",
        "field_added",
        "field_removed",
        "variant_added",
        "nested",
        "renamed",
    ];
    const ROUNDS: u64 = 4;
    let server = RedisServer::start();
    let (mut v1, mut v2) = builds(&server);
    let mut failures = Vec::new();
    for case in CASES {
        let mut last = Vec::new();
        for _ in 0..ROUNDS {
            for app in [&mut v1, &mut v2] {
                let r = app.call(case, 7);
                if !r.ok {
                    failures.push(format!("wrong value: {}", r.line));
                }
                last.push(r);
            }
        }
        // Each build missed once (its first call) and hit on every later call.
        for r in &last[last.len() - 2..] {
            if (r.misses, r.hits) != (1, ROUNDS - 1) {
                failures.push(format!(
                    "expected 1 miss and {} hits: {}",
                    ROUNDS - 1,
                    r.line
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The typed handle shares one key between the builds (the key is the caller's): it cannot keep
/// both hitting, but it never returns the other build's value.
#[test]
fn the_typed_handle_never_reads_an_entry_of_another_shape() {
    let server = RedisServer::start();
    let (mut v1, mut v2) = builds(&server);
    let mut failures = Vec::new();
    for _ in 0..3 {
        for (which, case) in [
            (1, "handle"),
            (2, "handle_get"),
            (2, "handle"),
            (1, "handle_get"),
        ] {
            let app = if which == 1 { &mut v1 } else { &mut v2 };
            let r = app.call(case, 9);
            if !r.ok {
                failures.push(format!("wrong value: {}", r.line));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A type that describes itself at run time (an untagged enum, read with JSON) cannot be traced:
/// its function keeps the name-based fingerprint, still caches, and says so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untraceable_type_keeps_the_name_fingerprint_and_warns_once() {
    let logs = common::capture_logs();
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    common::install(&CACHE, &server);

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Loose {
        N(u32),
        S(String),
    }
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, codec = json)]
    async fn loose_value(x: u32) -> Loose {
        RUNS.fetch_add(1, SeqCst);
        if x.is_multiple_of(2) {
            Loose::N(x)
        } else {
            Loose::S(x.to_string())
        }
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Tidy {
        x: u32,
    }
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn tidy_value(x: u32) -> Tidy {
        Tidy { x }
    }

    for _ in 0..3 {
        for x in 0..4u32 {
            let want = if x.is_multiple_of(2) {
                Loose::N(x)
            } else {
                Loose::S(x.to_string())
            };
            assert_eq!(loose_value(x).await, want);
        }
    }
    assert_eq!(
        RUNS.load(SeqCst),
        4,
        "cached as before: one run per argument"
    );

    let k = loose_value_key(&1).unwrap();
    let name_only = key::fingerprint("schema_evolution::loose_value", "(u32) -> Loose", 0);
    assert_eq!(k.split(':').nth(2), Some(name_only.as_str()), "{k}");
    // A traceable type's fingerprint is not the name-only one.
    let k = tidy_value_key(&1).unwrap();
    let name_only = key::fingerprint("schema_evolution::tidy_value", "(u32) -> Tidy", 0);
    assert_ne!(k.split(':').nth(2), Some(name_only.as_str()), "{k}");

    let ours = |l: &&str| l.contains("schema_evolution::loose_value");
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(ours)
        .filter(|l| l.contains("cannot be traced"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("version = N"), "{}", warnings[0]);
    assert!(
        !text
            .lines()
            .any(|l| l.contains("tidy_value") && l.contains("cannot be traced")),
        "{text}"
    );
}
