//! Tests of the test harness itself, against real `redis-server` processes.

use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use memo_redis_tests::{free_port, free_port_url, Blackhole, Nginx, RedisServer};
use redis::AsyncConnectionConfig;

/// Upper bound for every "wait until" loop in this file.
const DEADLINE: Duration = Duration::from_secs(10);

async fn ping(conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<String> {
    redis::cmd("PING").query_async(conn).await
}

/// Polls `check` every 10 ms until it returns true, failing after
/// [`DEADLINE`].
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn refuses_tcp(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_ping() {
    let server = RedisServer::start();
    assert!(server.is_running());
    assert_eq!(server.addr(), format!("127.0.0.1:{}", server.port()));
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );

    let mut conn = server.conn().await;
    assert_eq!(ping(&mut conn).await.expect("PING"), "PONG");

    // Persistence is off and the server runs in its temp dir.
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query_async(&mut conn)
        .await
        .expect("CONFIG GET save");
    assert_eq!(save, ["save", ""]);
    let aof: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut conn)
        .await
        .expect("CONFIG GET appendonly");
    assert_eq!(aof, ["appendonly", "no"]);

    // The synchronous client works too.
    let mut sync = server.client().get_connection().expect("sync connection");
    let pong: String = redis::cmd("PING").query(&mut sync).expect("sync PING");
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_refuses_connections_and_restart_reuses_port() {
    let server = RedisServer::start();
    let port = server.port();
    let mut conn = server.conn().await;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let pid = server.pid().expect("running server has a pid");

    server.kill();
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    // SIGKILL, not a graceful shutdown: the log has no shutdown message.
    assert!(
        !server.log().contains("ready to exit"),
        "kill() must be a real SIGKILL; log:\n{}",
        server.log()
    );
    // The process is gone (reaped, so kill(pid, 0) fails).
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

    // The old connection is broken and new ones are refused.
    assert!(ping(&mut conn).await.is_err());
    let err = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect_err("connecting to a killed server must fail");
    assert!(err.is_connection_refusal(), "expected refusal, got {err:?}");
    assert!(refuses_tcp(port));

    server.restart();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), Some(pid));
    let mut conn = server.conn().await;
    assert_eq!(ping(&mut conn).await.expect("PING after restart"), "PONG");
    // Persistence is off: the data set is empty after a restart.
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(v, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_graceful_and_restart_keeps_args() {
    let server = RedisServer::builder().arg("--maxmemory").arg("1mb").start();
    let maxmemory = |server: &RedisServer| {
        let mut c = server.client().get_connection().expect("connection");
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory")
            .query(&mut c)
            .expect("CONFIG GET maxmemory");
        v
    };
    assert_eq!(maxmemory(&server), ["maxmemory", "1048576"]);

    server.stop();
    assert!(!server.is_running());
    assert!(refuses_tcp(server.port()));
    assert!(
        server.log().contains("ready to exit"),
        "stop() should shut redis down gracefully; log:\n{}",
        server.log()
    );
    server.stop(); // idempotent

    server.restart();
    assert_eq!(maxmemory(&server), ["maxmemory", "1048576"]);

    // restart() on a running server stops it first.
    let pid = server.pid();
    server.restart();
    assert_ne!(server.pid(), pid);
    assert_eq!(maxmemory(&server), ["maxmemory", "1048576"]);

    let other = RedisServer::start_with_args(["--databases", "4"]);
    let mut c = other.client().get_connection().expect("connection");
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("databases")
        .query(&mut c)
        .expect("CONFIG GET databases");
    assert_eq!(v, ["databases", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_blocks_commands_until_it_ends() {
    let server = RedisServer::start();
    let config =
        AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(100)));
    // Connect before pausing: the connection handshake would be paused too.
    let mut conn = server
        .client()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect");
    let get = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        async move {
            redis::cmd("GET")
                .arg("missing")
                .query_async::<Option<String>>(&mut conn)
                .await
        }
    };
    assert_eq!(get(&mut conn).await.expect("GET before pause"), None);

    let pause = Duration::from_millis(1000);
    let paused_at = Instant::now();
    server.pause(pause);
    let err = get(&mut conn)
        .await
        .expect_err("GET during the pause must time out");
    assert!(err.is_timeout(), "expected a timeout, got {err:?}");

    // Poll until commands are served again.
    let answered = loop {
        match get(&mut conn).await {
            Ok(v) => break v,
            Err(e) if e.is_timeout() => {
                assert!(
                    paused_at.elapsed() < DEADLINE,
                    "server still paused after {DEADLINE:?}"
                );
            }
            Err(e) => panic!("unexpected error while paused: {e:?}"),
        }
    };
    assert_eq!(answered, None);
    assert!(
        paused_at.elapsed() >= pause - Duration::from_millis(50),
        "the pause ended early: {:?}",
        paused_at.elapsed()
    );
    // New connections work again too.
    let mut fresh = server.conn().await;
    assert_eq!(ping(&mut fresh).await.expect("PING"), "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_never_answers() {
    let hole = Blackhole::start();
    assert_eq!(hole.url(), format!("redis://{}/", hole.addr()));
    let client = redis::Client::open(hole.url()).expect("client");
    let attempt = tokio::time::timeout(Duration::from_millis(200), async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        ping(&mut conn).await
    })
    .await;
    assert!(
        attempt.is_err(),
        "connect+PING to a blackhole must time out, got {attempt:?}"
    );
    // The TCP connection itself was accepted (it is the reply that never comes).
    wait_until("the blackhole to accept", || hole.accepted() >= 1).await;

    // The same with the client's own timeouts.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_response_timeout(Some(Duration::from_millis(200)));
    let err = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map(|_| ())
        .expect_err("blackhole must not complete a redis handshake");
    assert!(err.is_timeout(), "expected a timeout, got {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_port_url_refuses() {
    let url = free_port_url();
    assert!(url.starts_with("redis://127.0.0.1:") && url.ends_with('/'));
    let err = redis::Client::open(url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .map(|_| ())
        .expect_err("nothing listens on a free port");
    assert!(err.is_connection_refusal(), "expected refusal, got {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_is_readable() {
    let server = RedisServer::start();
    assert!(server
        .log_path()
        .starts_with(server.dir().canonicalize().expect("dir")));
    let log = server.log();
    assert!(
        log.contains("Ready to accept connections"),
        "unexpected log:\n{log}"
    );
    assert!(log.contains(&format!("{}", server.port())) || log.contains("Running mode"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_uses_scan() {
    let server = RedisServer::start();
    let mut conn = server.conn().await;
    let mut pipe = redis::pipe();
    for i in 0..2500 {
        pipe.set(format!("memo:{i:04}"), i).ignore();
    }
    pipe.set("other", 1).ignore();
    let _: () = pipe.query_async(&mut conn).await.expect("populate");

    let keys = server.keys("memo:*").await;
    assert_eq!(keys.len(), 2500);
    assert_eq!(keys.first().map(String::as_str), Some("memo:0000"));
    assert_eq!(keys.last().map(String::as_str), Some("memo:2499"));
    assert_eq!(server.keys("other").await, ["other"]);
    assert!(server.keys("nothing:*").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_kills_the_process() {
    let server = RedisServer::start();
    let port = server.port();
    let pid = server.pid().expect("pid");
    let dir = server.dir().to_owned();
    drop(server);
    assert!(refuses_tcp(port));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!dir.exists(), "temp dir must be removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_can_be_shared_between_tasks() {
    let server = std::sync::Arc::new(RedisServer::start());
    let killer = {
        let server = std::sync::Arc::clone(&server);
        tokio::task::spawn_blocking(move || server.kill())
    };
    killer.await.expect("kill task");
    wait_until("the server to be gone", || !server.is_running()).await;
    assert!(refuses_tcp(server.port()));
}

#[test]
#[should_panic(expected = "exited during startup")]
fn startup_failure_panics_with_log() {
    let _server = RedisServer::start_with_args(["--no-such-option", "x"]);
}

/// One HTTP/1.0 GET over a std socket: the whole answer as text.
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).expect("connect to nginx");
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").expect("write");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
}

#[test]
fn nginx_proxies_through_its_cache_and_dies_on_drop() {
    // Nothing listens upstream: nginx answers 502 itself, through the cached location.
    let upstream: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let a = Nginx::proxy_cache(upstream);
    let b = Nginx::proxy_cache(upstream);
    assert_ne!(a.addr(), b.addr(), "each nginx has its own port");
    assert_eq!(a.upstream(), upstream);
    let config = a.config();
    for line in [
        "daemon off;",
        "master_process off;",
        "proxy_cache memo_redis_test;",
    ] {
        assert!(config.contains(line), "{line} missing from:\n{config}");
    }
    let reply = http_get(a.addr(), "/anything");
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("x-proxy-cache: miss"),
        "{reply}"
    );
    assert!(
        a.access_log()
            .contains("GET /anything HTTP/1.0 502 cache=MISS"),
        "{}",
        a.access_log()
    );
    assert!(
        a.error_log().contains("connect() failed"),
        "{}",
        a.error_log()
    );
    let port = a.addr().port();
    drop(a);
    assert!(refuses_tcp(port), "nginx still listening after drop");
    assert!(http_get(b.addr(), "/").starts_with("HTTP/1.1 502"));
}
