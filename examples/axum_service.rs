//! An axum service using memo-redis two ways:
//!
//! * `GET /users/{id}` calls a `#[redis_cache]` function, `load_user`; `PUT /users/{id}` renames
//!   the user and calls the generated `load_user_refresh` (write-through), `DELETE /users/{id}`
//!   calls `load_user_evict`.
//! * `GET /reports/{month}` is cached as a whole HTTP response by
//!   `memo_redis::axum::ResponseCacheLayer` (`X-Cache: MISS` / `HIT` / `BYPASS`, `ETag`,
//!   `304 Not Modified`, `downstream_max_age` letting browsers keep it too).
//! * `GET /me` is a per-user page cached per `session` cookie (`vary_by_cookie`): each user gets
//!   their own entry, other cookies do not split it, and it goes out `Vary: cookie`,
//!   `Cache-Control: private`. A cookie sent to `/reports` (which is not keyed by cookies) makes
//!   the request pass through uncached.
//!
//! * `GET /health` reports whether Redis is reachable (`memo_redis::health()`): 200 or 503.
//!
//! The server listens on 127.0.0.1:0, sends a few raw HTTP/1.1 requests to itself, prints what
//! came back, stops Redis (when it started it) to show fail-open, and exits.
//!
//! Run: `cargo run --example axum_service` (starts a throwaway redis-server unless `REDIS_URL`
//! is set).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use memo_redis::axum::ResponseCacheLayer;
use memo_redis::{redis_cache, Config};
use memo_redis_examples::{init_logging, DemoRedis};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Stands in for a database table.
static USERS: Mutex<Option<HashMap<u64, String>>> = Mutex::new(None);
static DB_READS: AtomicU32 = AtomicU32::new(0);
static REPORT_RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn db<R>(f: impl FnOnce(&mut HashMap<u64, String>) -> R) -> R {
    let mut guard = USERS.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(|| HashMap::from([(1, "Ada".to_string())])))
}

/// The "slow query" (40 ms), memoized in Redis for 5 minutes.
#[redis_cache(ttl = "5m", prefix = "users")]
async fn load_user(id: u64) -> Option<User> {
    DB_READS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(40)).await;
    db(|t| {
        t.get(&id).map(|name| User {
            id,
            name: name.clone(),
        })
    })
}

async fn get_user(Path(id): Path<u64>) -> Result<Json<User>, StatusCode> {
    load_user(id).await.map(Json).ok_or(StatusCode::NOT_FOUND)
}

/// Renames the user, then stores the fresh value in Redis (write-through).
async fn put_user(Path(id): Path<u64>, name: String) -> Result<Json<User>, StatusCode> {
    db(|t| t.insert(id, name.trim().to_string()));
    load_user_refresh(id)
        .await
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

/// Deletes the user and drops the cached entry (an error only means Redis is unavailable; the
/// entry then expires with its ttl).
async fn delete_user(Path(id): Path<u64>) -> StatusCode {
    db(|t| t.remove(&id));
    if let Err(e) = load_user_evict(&id).await {
        tracing::warn!(error = %e, "could not evict the cached user");
    }
    StatusCode::NO_CONTENT
}

/// An expensive page (150 ms); its whole response is cached by the layer.
async fn report(Path(month): Path<String>) -> String {
    let run = REPORT_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(150)).await;
    format!("report for {month}: 3 invoices, 1234.00 EUR (computed by run {run})\n")
}

fn reports_layer() -> ResponseCacheLayer {
    // The handler sets no Cache-Control; without `downstream_max_age` the layer would add none.
    ResponseCacheLayer::new(Duration::from_secs(60))
        .prefix("reports")
        .downstream_max_age(Duration::from_secs(60))
}

/// A per-user page: depends on the `session` cookie only.
async fn me(headers: HeaderMap) -> String {
    let session = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("session="))
        .unwrap_or("anonymous")
        .to_string();
    format!("the account page of {session}\n")
}

fn me_layer() -> ResponseCacheLayer {
    ResponseCacheLayer::new(Duration::from_secs(60))
        .prefix("me")
        .vary_by_cookie("session")
}

/// `GET /health`: 200 when Redis answers and the cached calls use it, 503 otherwise (the service
/// itself still works: memo-redis is fail-open), with the probe's one-line report as the body.
async fn health() -> (StatusCode, String) {
    let health = memo_redis::health().await;
    let status = if health.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{health}\n"))
}

fn app() -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/users/{id}",
            get(get_user).put(put_user).delete(delete_user),
        )
        // Only these routes go through the response cache.
        .route("/reports/{month}", get(report).layer(reports_layer()))
        .route("/me", get(me).layer(me_layer()))
}

/// One raw HTTP/1.1 exchange: (status line, headers, body).
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(String, Vec<(String, String)>, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in extra {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await?;
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map_or("-", |(_, v)| v.as_str())
}

/// Sends a request and prints one line: status, X-Cache, Cache-Control, Vary, time, body.
async fn show(
    addr: SocketAddr,
    label: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Vec<(String, String)>> {
    let started = Instant::now();
    let (status, headers, text) = send(addr, method, path, extra, body).await?;
    let took = started.elapsed().as_secs_f64() * 1e3;
    let status = status.split(' ').skip(1).collect::<Vec<_>>().join(" ");
    println!(
        "{label:<38} {status:<17} X-Cache: {:<6} Cache-Control: {:<20} Vary: {:<6} {took:>7.1} ms  {}",
        header(&headers, "x-cache"),
        header(&headers, "cache-control"),
        header(&headers, "vary"),
        text.trim()
    );
    Ok(headers)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let redis = DemoRedis::start();
    println!("memo-redis axum service — redis: {}", redis.describe());
    memo_redis::init(
        Config::builder()
            .url(redis.url.clone())
            .namespace("memo-axum-demo")
            .build()?,
    )?;
    // Start clean even against a shared REDIS_URL (ignore errors: Redis may be down).
    let _ = load_user_evict(&1).await;
    let _ = reports_layer()
        .evict(&Uri::from_static("/reports/2026-11"), &HeaderMap::new())
        .await;
    for session in ["session=alice", "session=bob"] {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", session.parse()?);
        let _ = me_layer().evict(&Uri::from_static("/me"), &headers).await;
    }

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app()).await });
    println!("listening on http://{addr}\n");

    println!("-- whole-response cache (ResponseCacheLayer on /reports)");
    show(
        addr,
        "GET /reports/2026-11",
        "GET",
        "/reports/2026-11",
        &[],
        "",
    )
    .await?;
    let hit = show(
        addr,
        "GET /reports/2026-11 again",
        "GET",
        "/reports/2026-11",
        &[],
        "",
    )
    .await?;
    let etag = header(&hit, "etag").to_string();
    println!(
        "   ETag: {etag}  Cache-Control: {}",
        header(&hit, "cache-control")
    );
    show(
        addr,
        "GET with If-None-Match: <etag>",
        "GET",
        "/reports/2026-11",
        &[("If-None-Match", &etag)],
        "",
    )
    .await?;
    show(
        addr,
        "GET /reports/2026-12",
        "GET",
        "/reports/2026-12",
        &[],
        "",
    )
    .await?;

    show(
        addr,
        "GET /reports/2026-11 with a cookie",
        "GET",
        "/reports/2026-11",
        &[("Cookie", "session=alice")],
        "",
    )
    .await?;

    println!("\n-- per-user page (ResponseCacheLayer::vary_by_cookie(\"session\") on /me)");
    for (label, cookie) in [
        ("GET /me as alice", "session=alice; _ga=1"),
        ("GET /me as bob", "session=bob; _ga=1"),
        ("GET /me as alice again", "session=alice; _ga=1"),
        ("GET /me as alice, other _ga cookie", "_ga=2; session=alice"),
        ("GET /me as bob again", "session=bob"),
    ] {
        show(addr, label, "GET", "/me", &[("Cookie", cookie)], "").await?;
    }

    println!("\n-- health (memo_redis::health(): PING + INFO server, bounded by the op timeout)");
    show(addr, "GET /health", "GET", "/health", &[], "").await?;

    println!("\n-- #[redis_cache] function behind /users/{{id}}");
    show(addr, "GET /users/1", "GET", "/users/1", &[], "").await?;
    show(addr, "GET /users/1 again", "GET", "/users/1", &[], "").await?;
    show(
        addr,
        "PUT /users/1 (load_user_refresh)",
        "PUT",
        "/users/1",
        &[],
        "Ada Lovelace",
    )
    .await?;
    show(
        addr,
        "GET /users/1 after the PUT",
        "GET",
        "/users/1",
        &[],
        "",
    )
    .await?;
    show(
        addr,
        "DELETE /users/1 (load_user_evict)",
        "DELETE",
        "/users/1",
        &[],
        "",
    )
    .await?;
    show(
        addr,
        "GET /users/1 after the DELETE",
        "GET",
        "/users/1",
        &[],
        "",
    )
    .await?;
    println!(
        "   database reads: {} (the second GET was a memo hit; the PUT re-read and stored)",
        DB_READS.load(Ordering::SeqCst)
    );

    match redis.server.as_ref() {
        Some(redis_server) => {
            redis_server.stop();
            println!("\n-- redis-server stopped: the service keeps answering (fail-open)");
            show(
                addr,
                "GET /reports/2026-11",
                "GET",
                "/reports/2026-11",
                &[],
                "",
            )
            .await?;
            show(
                addr,
                "GET /reports/2026-11 again",
                "GET",
                "/reports/2026-11",
                &[],
                "",
            )
            .await?;
            db(|t| t.insert(1, "Ada".to_string()));
            show(addr, "GET /users/1", "GET", "/users/1", &[], "").await?;
            show(addr, "GET /health", "GET", "/health", &[], "").await?;
        }
        None => println!("\n(REDIS_URL set: not stopping a server this example did not start)"),
    }
    println!(
        "\nreport handler ran {} times, database read {} times",
        REPORT_RUNS.load(Ordering::SeqCst),
        DB_READS.load(Ordering::SeqCst)
    );
    server.abort();
    memo_redis::shutdown().await;
    Ok(())
}
