//! An explicit operation's [`Error::Redis`] keeps the redis-rs error it came from: its kind, its
//! code and its own source (the I/O error) are reachable through `Error::source()`, and the
//! message reads as before (`redis error: …`).

use std::error::Error as _;
use std::time::Duration;

use memo_redis::{redis_cache, Cache, Config, Error};
use memo_redis_tests::RedisServer;

fn config(url: String) -> Config {
    Config::builder()
        .url(url)
        .namespace("t")
        .op_timeout(Duration::from_millis(500))
        .breaker_threshold(100)
        .build()
        .unwrap()
}

/// The redis-rs error behind `e`, found the way an application would: through `source()`.
fn redis_source(e: &Error) -> &redis::RedisError {
    e.source()
        .and_then(|s| s.downcast_ref::<redis::RedisError>())
        .unwrap_or_else(|| panic!("no redis::RedisError behind {e:?}"))
}

/// A command the server refuses (an ACL user without the channel): the error's code and kind
/// are the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_command_keeps_the_server_error_code_and_kind() {
    let server = RedisServer::start();
    let mut admin = server.conn().await;
    let () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                "app",
                "on",
                ">app-pass",
                "~*",
                "resetchannels",
                "+@all",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(format!(
            "redis://app:app-pass@127.0.0.1:{}/",
            server.port()
        )))
        .unwrap();
    let e = CACHE.publish("hello").await.unwrap_err();
    assert!(matches!(e, Error::Redis(_)), "{e:?}");
    let shown = e.to_string();
    assert!(
        shown.starts_with("redis error: ") && shown.contains("no permissions"),
        "{shown}"
    );
    let r = redis_source(&e);
    assert_eq!(r.code(), Some("NOPERM"));
    assert_eq!(
        r.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    );
}

/// A server that went away: the error's kind says I/O, and its own source is the socket's
/// `io::Error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_keeps_the_io_error() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE.install(config(server.url())).unwrap();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn f(x: u32) -> u32 {
        x
    }
    assert!(!f_evict(&1).await.unwrap(), "nothing stored yet");
    server.stop();
    let e = f_evict(&1).await.unwrap_err();
    let Error::Redis(r) = &e else {
        panic!("expected Error::Redis, got {e:?}");
    };
    assert_eq!(r.kind(), redis::ErrorKind::Io, "{r:?}");
    assert!(
        std::ptr::eq(redis_source(&e), r),
        "source() is the kept error"
    );
    // redis-rs keeps the socket's error as its own source (behind an `Arc`).
    let io = r
        .source()
        .unwrap_or_else(|| panic!("no source behind {r:?}"));
    assert_eq!(io.to_string(), r.to_string(), "the I/O error itself");
}
