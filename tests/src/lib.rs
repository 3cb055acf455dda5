//! Integration-test harness for `memo-redis`.
//!
//! This crate starts throw-away `redis-server` processes for the integration
//! tests (modelled after redis-rs's `redis-test/src/server.rs`) and provides a
//! few network helpers for failure-mode tests:
//!
//! * [`RedisServer`] — a private `redis-server` on a free loopback port, with
//!   its own temporary directory and log file. It can be stopped, killed
//!   (`SIGKILL`), restarted on the same port and paused (`CLIENT PAUSE`).
//!   With [`RedisServerBuilder::tls`] it also serves TLS on a second port
//!   ([`RedisServer::tls_url`]), from certificates supplied as [`TlsFiles`].
//! * [`Blackhole`] — a TCP listener that accepts connections and never
//!   answers, for timeout tests.
//! * [`free_port_url`] — a URL on which nothing listens, for
//!   connection-refused tests.
//! * [`Nginx`] — a private `nginx` as a caching reverse proxy
//!   (`proxy_cache`) in front of a test's HTTP server, for tests of what a
//!   shared cache does with the responses (binary overridable with
//!   [`NGINX_BIN_ENV`]).
//! * [`FaultProxy`] — a TCP proxy in front of a real server that delays
//!   chosen commands or drops the connection right after forwarding one
//!   (the server executes it, the client never gets the reply).
//!
//! The binary is `redis-server` from `PATH` unless the environment variable
//! [`SERVER_BIN_ENV`] (`MEMO_REDIS_SERVER_BIN`) names another one; likewise
//! [`RedisCluster`] runs `redis-cli` from `PATH` unless [`CLI_BIN_ENV`]
//! (`MEMO_REDIS_CLI_BIN`) names another one. `scripts/test-compat` uses both to
//! run the suites against Redis 6.2 and Valkey (docs/compatibility.md).
//!
//! Everything here is meant for tests: setup failures panic with a message
//! that says what went wrong (including the server log where there is one).
//!
//! The harness is Unix-only (it sends `SIGTERM`/`SIGKILL` to its children).
//!
//! ```no_run
//! # async fn example() {
//! use memo_redis_tests::RedisServer;
//!
//! let server = RedisServer::start();
//! let mut conn = server.conn().await;
//! let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
//! assert_eq!(pong, "PONG");
//!
//! server.kill(); // real `kill -9`
//! server.restart(); // same port, same arguments
//! # }
//! ```

#![warn(missing_docs)]

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Environment variable that overrides the `redis-server` binary to run.
///
/// It may name a wrapper script; the server runs in its own process group and
/// signals go to the whole group, but [`RedisServer::is_running`] and
/// [`RedisServer::pid`] only see the directly spawned process, so wrappers
/// should `exec` the server.
pub const SERVER_BIN_ENV: &str = "MEMO_REDIS_SERVER_BIN";

/// Binary run when [`SERVER_BIN_ENV`] is not set.
const DEFAULT_SERVER_BIN: &str = "redis-server";

/// Environment variable that overrides the `redis-cli` binary that
/// [`RedisCluster::start`] runs for `redis-cli --cluster create` (e.g. the
/// `redis-cli` shipped with the server named by [`SERVER_BIN_ENV`]).
pub const CLI_BIN_ENV: &str = "MEMO_REDIS_CLI_BIN";

/// Binary run when [`CLI_BIN_ENV`] is not set.
const DEFAULT_CLI_BIN: &str = "redis-cli";

/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long a freshly spawned server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop()` waits after `SIGTERM` before falling back to `SIGKILL`.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect / read / write timeout of the raw readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// Fresh ports tried by [`RedisServerBuilder::start`] before giving up.
const START_ATTEMPTS: usize = 5;
/// Attempts (spaced by [`RESTART_RETRY_DELAY`]) to re-bind the same port in
/// [`RedisServer::restart`].
const RESTART_ATTEMPTS: usize = 30;
/// Delay between two re-bind attempts in [`RedisServer::restart`].
const RESTART_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Name of the redis log file inside the server's temporary directory.
const LOG_FILE: &str = "redis.log";
/// Name of the file receiving the child's stdout/stderr (early startup
/// errors, before redis opens its log file, end up there).
const STDIO_FILE: &str = "redis.stdio";
/// Names of the TLS files written into the server's temporary directory.
const TLS_CERT_FILE: &str = "tls-server.crt";
/// See [`TLS_CERT_FILE`].
const TLS_KEY_FILE: &str = "tls-server.key";
/// See [`TLS_CERT_FILE`].
const TLS_CA_FILE: &str = "tls-ca.crt";

/// Locks a mutex, ignoring poisoning (a panicking test must not make the
/// `Drop` of a server panic a second time).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Returns a loopback port that was free a moment ago.
///
/// The port is obtained by binding `127.0.0.1:0` and dropping the listener,
/// so nothing prevents another process from taking it before the caller
/// uses it. [`RedisServer`] copes with that race by retrying; other callers
/// should expect it to be (rarely) lost.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the local address of a listener: {e}"))
        .port()
}

/// Returns a `redis://127.0.0.1:P/` URL on which nothing listens.
///
/// The port comes from [`free_port`]: it is free when this returns, but a
/// concurrently started server could in principle grab it later.
/// Connecting to it is expected to fail with "connection refused".
pub fn free_port_url() -> String {
    format!("redis://127.0.0.1:{}/", free_port())
}

/// A `kB` field of `/proc/self/status` (`"VmRSS"`, `"VmHWM"`…) in KiB; `None` where the
/// file or the field is missing (not Linux).
///
/// ```
/// if let Some(rss) = memo_redis_tests::proc_status_kib("VmRSS") {
///     assert!(rss > 0);
/// }
/// ```
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The CPU model from `/proc/cpuinfo`, for benchmark reports (`"unknown"` elsewhere).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg`, for benchmark reports.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Builder for a [`RedisServer`] with extra `redis-server` arguments.
///
/// Extra arguments are appended after the harness's own ones, so they can
/// override them (redis applies later options last):
///
/// ```no_run
/// let server = memo_redis_tests::RedisServer::builder()
///     .arg("--maxmemory")
///     .arg("1mb")
///     .start();
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "call `.start()` to start the server"]
pub struct RedisServerBuilder {
    args: Vec<OsString>,
    tls: Option<TlsFiles>,
}

impl RedisServerBuilder {
    /// Appends one extra command-line argument for `redis-server`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several extra command-line arguments for `redis-server`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Also serves TLS, with the server certificate, key and CA in `files`.
    ///
    /// The server then listens on two loopback ports: the plain one
    /// ([`RedisServer::port`], [`RedisServer::url`]), which the harness uses
    /// for its readiness probe and which tests can use to look behind the TLS
    /// client's back, and a TLS one ([`RedisServer::tls_port`],
    /// [`RedisServer::tls_url`]). Clients are not asked for certificates
    /// (`--tls-auth-clients no`). The PEM files are written into the
    /// server's temporary directory; both ports survive
    /// [`RedisServer::restart`].
    ///
    /// The certificate must be valid for `127.0.0.1` (the host of
    /// [`RedisServer::tls_url`]); the `redis-server` binary must be built
    /// with TLS support (Debian's is).
    ///
    /// ```no_run
    /// # fn pem() -> Vec<u8> { Vec::new() }
    /// use memo_redis_tests::{RedisServer, TlsFiles};
    ///
    /// let server = RedisServer::builder()
    ///     .tls(TlsFiles {
    ///         cert_pem: pem(),
    ///         key_pem: pem(),
    ///         ca_pem: pem(),
    ///     })
    ///     .start();
    /// assert!(server.tls_url().starts_with("rediss://127.0.0.1:"));
    /// ```
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// Starts the server and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// If the binary cannot be found or run, if no free port could be bound
    /// after a few attempts, or if the server does not become ready within
    /// 10 seconds (the message then includes the server log).
    pub fn start(self) -> RedisServer {
        match self.tls {
            None => RedisServer::start_inner(self.args, &mut free_port),
            Some(files) => RedisServer::start_tls_inner(self.args, &files),
        }
    }
}

/// PEM-encoded TLS material for [`RedisServerBuilder::tls`].
///
/// The harness only writes these to files for `redis-server`
/// (`--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`); generating
/// them (e.g. with `rcgen` in a test) is up to the caller. `Debug` shows only
/// the sizes.
#[derive(Clone, Default)]
pub struct TlsFiles {
    /// The server certificate (optionally followed by intermediates), PEM.
    pub cert_pem: Vec<u8>,
    /// The server certificate's private key, PEM.
    pub key_pem: Vec<u8>,
    /// The CA certificate(s) the server trusts, PEM; normally the issuer of
    /// `cert_pem`.
    pub ca_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = |pem: &[u8]| format!("{} bytes", pem.len());
        f.debug_struct("TlsFiles")
            .field("cert_pem", &size(&self.cert_pem))
            .field("key_pem", &size(&self.key_pem))
            .field("ca_pem", &size(&self.ca_pem))
            .finish()
    }
}

/// Where a TLS-enabled server listens for TLS and finds its files.
#[derive(Debug)]
struct TlsSetup {
    /// The TLS port, chosen afresh on each start attempt, kept on restart.
    port: u16,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// A private `redis-server` process for one test.
///
/// It listens on `127.0.0.1` on a port chosen by the harness, with
/// persistence disabled (`--save "" --appendonly no`) and its working
/// directory and log file in a fresh temporary directory that is removed on
/// drop.
///
/// All methods take `&self`, so a server can be shared (e.g. in an
/// [`Arc`]) between a task exercising the code under test and one that
/// kills or pauses the server. The process-control methods (`start`,
/// `stop`, `kill`, `restart`, `pause`) are synchronous and block for at most
/// a few polling rounds in the normal case; calling them directly from a
/// multi-threaded tokio test is fine.
///
/// Dropping the server kills (`SIGKILL`) and reaps the process. On Linux the
/// child additionally receives `SIGKILL` if the test process dies without
/// running destructors, so no orphan servers are left behind. Do not keep a
/// `RedisServer` in a `static`: statics are never dropped.
#[derive(Debug)]
pub struct RedisServer {
    /// The running child, `None` after `stop()`/`kill()`.
    child: Mutex<Option<Child>>,
    port: u16,
    /// Extra arguments, kept for `restart()`.
    extra_args: Vec<OsString>,
    /// TLS port and files, for servers started with TLS.
    tls: Option<TlsSetup>,
    /// Canonical path of `tempdir` (what redis reports for `CONFIG GET dir`).
    dir: PathBuf,
    log_path: PathBuf,
    /// Kept last so it is removed after the child is gone.
    tempdir: tempfile::TempDir,
}

/// Why one spawn attempt did not produce a ready server (other failures
/// panic directly).
enum SpawnError {
    /// The server exited because its port was already bound.
    PortInUse,
}

/// Outcome of one readiness probe.
enum Probe {
    /// Our server answered `PING` and reported our directory.
    Ready,
    /// Nothing (or nothing useful) answered yet.
    NotReady,
}

impl RedisServer {
    /// Starts a server with the default arguments (the common case).
    ///
    /// # Panics
    ///
    /// See [`RedisServerBuilder::start`].
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Starts a server with extra `redis-server` arguments, e.g.
    /// `RedisServer::start_with_args(&["--maxmemory", "1mb"])`.
    ///
    /// # Panics
    ///
    /// See [`RedisServerBuilder::start`].
    pub fn start_with_args<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::builder().args(args).start()
    }

    /// Returns a builder to add extra `redis-server` arguments.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// Starts a server, taking candidate ports from `next_port`.
    ///
    /// The port is found by binding port 0 and dropping the listener before
    /// redis binds it, which is racy: another process (typically another
    /// test's server) may take it in between. Redis then exits with
    /// "Address already in use" and we retry with a fresh port, up to
    /// [`START_ATTEMPTS`] times. Readiness also checks the answering server's
    /// `dir`, so a foreign server on the same port is never mistaken for ours.
    fn start_inner(extra_args: Vec<OsString>, next_port: &mut dyn FnMut() -> u16) -> Self {
        Self::launch(extra_args, None, next_port)
    }

    /// Starts a server that also serves TLS from `files` (see
    /// [`RedisServerBuilder::tls`]). Both ports are fresh on each attempt; a
    /// TLS port lost to a race makes redis exit like a taken plain port, and
    /// the attempt is retried the same way.
    fn start_tls_inner(extra_args: Vec<OsString>, files: &TlsFiles) -> Self {
        Self::launch(extra_args, Some(files), &mut free_port)
    }

    /// [`RedisServer::start_inner`], optionally with TLS.
    fn launch(
        extra_args: Vec<OsString>,
        tls_files: Option<&TlsFiles>,
        next_port: &mut dyn FnMut() -> u16,
    ) -> Self {
        let tempdir = tempfile::Builder::new()
            .prefix("memo-redis-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for redis: {e}"));
        let dir = tempdir.path().canonicalize().unwrap_or_else(|e| {
            panic!(
                "cannot canonicalize temporary directory {}: {e}",
                tempdir.path().display()
            )
        });
        let log_path = dir.join(LOG_FILE);
        let mut server = RedisServer {
            child: Mutex::new(None),
            port: 0,
            extra_args,
            tls: None,
            dir,
            log_path,
            tempdir,
        };
        if let Some(files) = tls_files {
            server.tls = Some(server.write_tls_files(files));
        }
        let mut tried = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = next_port();
            tried.push(port);
            server.port = port;
            if let Some(tls) = &mut server.tls {
                tls.port = free_port();
                tried.push(tls.port);
            }
            match server.spawn_ready() {
                Ok(child) => {
                    *lock(&server.child) = Some(child);
                    return server;
                }
                Err(SpawnError::PortInUse) => continue,
            }
        }
        panic!(
            "redis-server could not bind a free port after {START_ATTEMPTS} attempts \
             (tried {tried:?}); last log:\n{}",
            server.diagnostics()
        );
    }

    /// The TCP port the server listens on (stable across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server address, `127.0.0.1:P`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The connection URL, `redis://127.0.0.1:P/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TLS port, for a server started with [`RedisServerBuilder::tls`]
    /// (stable across restarts); `None` otherwise.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|t| t.port)
    }

    /// The TLS connection URL, `rediss://127.0.0.1:P/` with `P` the
    /// [`tls_port`](RedisServer::tls_port).
    ///
    /// # Panics
    ///
    /// If the server was not started with [`RedisServerBuilder::tls`].
    pub fn tls_url(&self) -> String {
        match self.tls_port() {
            Some(port) => format!("rediss://127.0.0.1:{port}/"),
            None => panic!(
                "the redis-server on port {} was started without TLS; \
                 use RedisServer::builder().tls(..)",
                self.port
            ),
        }
    }

    /// Path of the CA certificate file given to the server
    /// (`--tls-ca-cert-file`), e.g. for `REDIS_TLS_CA_CERT`; `None` without
    /// TLS.
    pub fn tls_ca_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// Path of the server's log file (appended to across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The server's temporary working directory.
    pub fn dir(&self) -> &Path {
        self.tempdir.path()
    }

    /// The process id of the running server, `None` if it is not running.
    pub fn pid(&self) -> Option<u32> {
        let mut child = lock(&self.child);
        reap_if_exited(&mut child);
        child.as_ref().map(Child::id)
    }

    /// Whether the server process is still alive (an exited process is
    /// reaped here).
    pub fn is_running(&self) -> bool {
        let mut child = lock(&self.child);
        reap_if_exited(&mut child);
        child.is_some()
    }

    /// The contents of the server log (all runs, including restarts).
    ///
    /// Returns a placeholder text rather than panicking if the log cannot be
    /// read, since this is mostly used to build failure messages.
    pub fn log(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("<cannot read {}: {e}>", self.log_path.display()),
        }
    }

    /// Gracefully stops the server: sends `SIGTERM` and waits for it to exit
    /// (falling back to `SIGKILL` after 10 seconds). Does nothing if it is
    /// not running.
    pub fn stop(&self) {
        let mut guard = lock(&self.child);
        let Some(mut child) = guard.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        send_signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                _ => {
                    kill_and_reap(&mut child);
                    return;
                }
            }
        }
    }

    /// Kills the server with `SIGKILL` (a real `kill -9`: no shutdown, no
    /// goodbye to clients) and reaps it. Does nothing if it is not running.
    pub fn kill(&self) {
        if let Some(mut child) = lock(&self.child).take() {
            kill_and_reap(&mut child);
        }
    }

    /// Starts the server again on the same port with the same arguments and
    /// waits until it answers `PING`.
    ///
    /// A still-running server is stopped (`SIGTERM`) first. The data set is
    /// empty afterwards (persistence is disabled). Redis sets `SO_REUSEADDR`,
    /// so re-binding the port normally works at once; if it is reported busy
    /// anyway, the bind is retried for about three seconds.
    ///
    /// # Panics
    ///
    /// If the port stays taken, or the server fails to become ready (the
    /// message includes the server log).
    pub fn restart(&self) {
        self.stop();
        let mut guard = lock(&self.child);
        for _ in 0..RESTART_ATTEMPTS {
            match self.spawn_ready() {
                Ok(child) => {
                    *guard = Some(child);
                    return;
                }
                Err(SpawnError::PortInUse) => thread::sleep(RESTART_RETRY_DELAY),
            }
        }
        panic!(
            "redis-server could not re-bind port {} on restart (still in use); log:\n{}",
            self.port,
            self.diagnostics()
        );
    }

    /// Makes the server stop answering commands from all clients for
    /// `duration` (`CLIENT PAUSE <ms> ALL`). Returns once the pause is in
    /// effect; the server resumes on its own afterwards.
    ///
    /// While paused, commands (including the handshake commands sent by a
    /// new `redis` client connection) are held, so open the connections you
    /// need before pausing.
    ///
    /// # Panics
    ///
    /// If the command cannot be sent or the server does not answer `+OK`.
    pub fn pause(&self, duration: Duration) {
        let ms = duration.as_millis().max(1).to_string();
        let reply = raw_command(
            self.port,
            &[b"CLIENT", b"PAUSE", ms.as_bytes(), b"ALL"],
            Duration::from_secs(5),
        );
        match reply {
            Ok(Reply::Simple(ok)) if ok == "OK" => {}
            other => panic!("CLIENT PAUSE {ms} ALL on {} failed: {other:?}", self.addr()),
        }
    }

    /// A `redis::Client` for this server.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url())
            .unwrap_or_else(|e| panic!("invalid redis URL {}: {e}", self.url()))
    }

    /// Opens a fresh multiplexed connection (one per call), for assertions.
    ///
    /// # Panics
    ///
    /// If the connection cannot be established.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        // The harness's own commands (setup, checks, `CLUSTER SETSLOT`, `MIGRATE`) wait as long
        // as a slow machine needs: redis-rs's default response timeout (500 ms) failed a
        // resharding step on a loaded CI machine, where `CLUSTER SETSLOT` also syncs
        // nodes.conf to disk. The code under test has its own timeouts.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(10)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        match self
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => conn,
            Err(e) => panic!("cannot connect to test redis at {}: {e}", self.addr()),
        }
    }

    /// Returns the keys matching `pattern` (glob syntax), sorted and without
    /// duplicates. Uses `SCAN ... MATCH`, never `KEYS`.
    ///
    /// # Panics
    ///
    /// If the connection or a `SCAN` fails.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = self.conn().await;
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("SCAN MATCH {pattern:?} failed: {e}"));
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// The command line used for (re)starting the server.
    fn command(&self) -> Command {
        let bin =
            std::env::var_os(SERVER_BIN_ENV).unwrap_or_else(|| OsString::from(DEFAULT_SERVER_BIN));
        let mut cmd = Command::new(bin);
        // Own process group: signals go to the whole group, so wrappers set
        // via `MEMO_REDIS_SERVER_BIN` cannot leak the real server.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--daemonize")
            .arg("no")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&self.log_path);
        if let Some(tls) = &self.tls {
            cmd.arg("--tls-port")
                .arg(tls.port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .arg("--tls-auth-clients")
                .arg("no");
        }
        cmd.args(&self.extra_args);
        cmd
    }

    /// Writes the PEM files into the server's directory (the key readable by
    /// its owner only) and returns their paths, with the port still unset.
    fn write_tls_files(&self, files: &TlsFiles) -> TlsSetup {
        let write = |name: &str, pem: &[u8], mode: u32| {
            use std::os::unix::fs::OpenOptionsExt;
            let path = self.dir.join(name);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .and_then(|mut f| f.write_all(pem))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        };
        TlsSetup {
            port: 0,
            cert: write(TLS_CERT_FILE, &files.cert_pem, 0o644),
            key: write(TLS_KEY_FILE, &files.key_pem, 0o600),
            ca: write(TLS_CA_FILE, &files.ca_pem, 0o644),
        }
    }

    /// Spawns the server on `self.port` and polls until it is ready.
    ///
    /// Returns `Err(PortInUse)` if the child exited because the port was
    /// taken; panics on any other failure.
    fn spawn_ready(&self) -> Result<Child, SpawnError> {
        let log_offset = std::fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let stdio_path = self.dir.join(STDIO_FILE);
        let stdio = File::create(&stdio_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", stdio_path.display()));
        let stderr = stdio
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone file handle: {e}"));
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(stdio).stderr(stderr);

        let mut child = match spawn(cmd) {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
                "redis-server not found; install it with \
                 `apt-get update && apt-get install -y redis-server` \
                 (or set {SERVER_BIN_ENV}) [tried to run {:?}: {e}]",
                self.command().get_program()
            ),
            Err(e) => panic!("cannot spawn {:?}: {e}", self.command().get_program()),
        };

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    let new_log = self.log_since(log_offset);
                    if new_log.contains("Address already in use")
                        || new_log.contains("Failed listening on port")
                    {
                        return Err(SpawnError::PortInUse);
                    }
                    panic!(
                        "redis-server on port {} exited during startup ({}); log:\n{}",
                        self.port,
                        describe_status(status),
                        self.diagnostics()
                    );
                }
                Err(e) => {
                    kill_and_reap(&mut child);
                    panic!("cannot query the redis-server child process: {e}");
                }
            }
            if let Probe::Ready = probe(self.port, &self.dir) {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                kill_and_reap(&mut child);
                panic!(
                    "redis-server on port {} did not answer PING within {:?}; log:\n{}",
                    self.port,
                    READY_TIMEOUT,
                    self.diagnostics()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The log written after byte `offset` (i.e. by the latest spawn).
    fn log_since(&self, offset: u64) -> String {
        let Ok(bytes) = std::fs::read(&self.log_path) else {
            return String::new();
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// Log plus captured stdout/stderr, for panic messages.
    fn diagnostics(&self) -> String {
        let stdio_path = self.dir.join(STDIO_FILE);
        let stdio = std::fs::read(&stdio_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let mut text = format!("--- {} ---\n{}", self.log_path.display(), self.log());
        if !stdio.trim().is_empty() {
            text.push_str(&format!("\n--- stdout/stderr ---\n{stdio}"));
        }
        text
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut child) = child {
            kill_and_reap(&mut child);
        }
    }
}

/// Replaces an exited child by `None` (reaping it).
fn reap_if_exited(child: &mut Option<Child>) {
    if let Some(c) = child {
        if !matches!(c.try_wait(), Ok(None)) {
            *child = None;
        }
    }
}

/// `SIGKILL` (to the child's whole process group) + `wait`.
fn kill_and_reap(child: &mut Child) {
    send_signal(child, libc::SIGKILL);
    // Belt and braces: `Child::kill` sends SIGKILL to the child itself; it
    // fails only if the process has already exited, which `wait` handles.
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends `signal` to the process group led by a child that has not been
/// reaped yet (so a wrapper script and the `redis-server` it started both get
/// it).
fn send_signal(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: `kill(2)` has no memory-safety preconditions. The child leads
    // its own process group and is not reaped yet, so the group id cannot
    // have been recycled.
    unsafe {
        libc::kill(-pid, signal);
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Spawns `cmd`. On Linux this goes through a process-lifetime thread so the
/// child can get `PR_SET_PDEATHSIG` (which fires when the *spawning thread*
/// exits): the server then dies with the test process even if destructors
/// never run (e.g. the test binary is killed by a timeout).
#[cfg(target_os = "linux")]
fn spawn(mut cmd: Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc;
    use std::sync::OnceLock;

    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();

    let parent = std::process::id();
    // SAFETY: the closure only calls async-signal-safe functions (prctl,
    // getppid, _exit) and does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                libc::_exit(1);
            }
            Ok(())
        });
    }

    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("memo-redis-test-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the redis spawner thread: {e}"));
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    lock(sender)
        .send((cmd, reply_tx))
        .unwrap_or_else(|_| panic!("the redis spawner thread is gone"));
    reply_rx
        .recv()
        .unwrap_or_else(|_| panic!("the redis spawner thread is gone"))
}

/// Spawns `cmd` (no parent-death signal outside Linux).
#[cfg(not(target_os = "linux"))]
fn spawn(mut cmd: Command) -> io::Result<Child> {
    cmd.spawn()
}

/// One attempt to check that *our* server (identified by its `dir`) answers
/// `PING` with `+PONG` on `port`.
fn probe(port: u16, dir: &Path) -> Probe {
    let Ok(mut stream) = connect(port, PROBE_TIMEOUT) else {
        return Probe::NotReady;
    };
    let mut reader = match stream.try_clone() {
        Ok(s) => BufReader::new(s),
        Err(_) => return Probe::NotReady,
    };
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return Probe::NotReady;
    }
    match read_reply(&mut reader) {
        Ok(Reply::Simple(pong)) if pong == "PONG" => {}
        _ => return Probe::NotReady,
    }
    // Make sure the PONG came from our process and not from another server
    // that got the same port: each server has its own temporary dir.
    if stream
        .write_all(&encode(&[b"CONFIG", b"GET", b"dir"]))
        .is_err()
    {
        return Probe::NotReady;
    }
    match read_reply(&mut reader) {
        Ok(Reply::Array(Some(items))) => {
            let ours = items.get(1).is_some_and(
                |v| matches!(v, Reply::Bulk(Some(d)) if d == dir.as_os_str().as_bytes()),
            );
            if ours {
                Probe::Ready
            } else {
                Probe::NotReady
            }
        }
        _ => Probe::NotReady,
    }
}

/// Connects to `127.0.0.1:port` with connect/read/write timeouts.
fn connect(port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends one command over a fresh raw connection and reads the reply.
fn raw_command(port: u16, args: &[&[u8]], timeout: Duration) -> io::Result<Reply> {
    let mut stream = connect(port, timeout)?;
    stream.write_all(&encode(args))?;
    read_reply(&mut BufReader::new(stream))
}

/// A minimal RESP2 reply, enough for the harness's own commands.
#[derive(Debug)]
enum Reply {
    Simple(String),
    // Fields are only read through `Debug` (in panic messages).
    #[allow(dead_code)]
    Error(String),
    #[allow(dead_code)]
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Encodes a command as a RESP array of bulk strings.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let line = line
        .strip_suffix("\r\n")
        .ok_or_else(|| protocol_error(format!("unterminated RESP line {line:?}")))?;
    let (kind, rest) = line.split_at_checked(1).unwrap_or(("", ""));
    let int = || {
        rest.parse::<i64>()
            .map_err(|_| protocol_error(format!("bad RESP integer {rest:?}")))
    };
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => Ok(Reply::Integer(int()?)),
        "$" => {
            let Ok(len) = usize::try_from(int()?) else {
                return Ok(Reply::Bulk(None));
            };
            let mut data = vec![0; len + 2];
            reader.read_exact(&mut data)?;
            data.truncate(len);
            Ok(Reply::Bulk(Some(data)))
        }
        "*" => {
            let Ok(len) = usize::try_from(int()?) else {
                return Ok(Reply::Array(None));
            };
            let items = (0..len)
                .map(|_| read_reply(reader))
                .collect::<io::Result<_>>()?;
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(protocol_error(format!("unexpected RESP line {line:?}"))),
    }
}

/// A TCP endpoint that accepts connections and never answers.
///
/// A background thread accepts every connection and keeps the socket open
/// (never reading or writing) until the `Blackhole` is dropped. Clients
/// therefore connect successfully and then wait forever for replies — handy
/// for testing client-side timeouts.
#[derive(Debug)]
pub struct Blackhole {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Blackhole {
    /// Binds `127.0.0.1:0` and starts accepting in the background.
    ///
    /// # Panics
    ///
    /// If the listener cannot be bound or the thread cannot be started.
    pub fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind a blackhole listener: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the blackhole address: {e}"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let shutdown = Arc::new(AtomicBool::new(false));
        let thread = {
            let accepted = Arc::clone(&accepted);
            let shutdown = Arc::clone(&shutdown);
            thread::Builder::new()
                .name("memo-redis-blackhole".into())
                .spawn(move || {
                    // Sockets live here until the thread ends (on drop).
                    let mut held = Vec::new();
                    for stream in listener.incoming() {
                        if shutdown.load(Ordering::SeqCst) {
                            break;
                        }
                        if let Ok(stream) = stream {
                            held.push(stream);
                            accepted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
                .unwrap_or_else(|e| panic!("cannot start the blackhole thread: {e}"))
        };
        Blackhole {
            addr,
            accepted,
            shutdown,
            thread: Some(thread),
        }
    }

    /// The listening address, `127.0.0.1:P`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `redis://127.0.0.1:P/` URL pointing at the blackhole.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// How many connections have been accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // Wake the accept loop with a connection of our own; if that fails
        // the thread cannot be woken, so leave it detached rather than hang.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn resp_round_trip() {
        let bytes = encode(&[b"CONFIG", b"GET", b"dir"]);
        assert_eq!(
            bytes,
            b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$3\r\ndir\r\n".to_vec()
        );
        let mut input: &[u8] = b"*3\r\n$3\r\ndir\r\n$-1\r\n:42\r\n+OK\r\n";
        match read_reply(&mut input) {
            Ok(Reply::Array(Some(items))) => {
                assert!(matches!(&items[0], Reply::Bulk(Some(d)) if d == b"dir"));
                assert!(matches!(items[1], Reply::Bulk(None)));
                assert!(matches!(items[2], Reply::Integer(42)));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(read_reply(&mut input), Ok(Reply::Simple(s)) if s == "OK"));
    }

    /// The first candidate port is occupied by a listener that never
    /// answers; the harness must notice redis failing to bind and move on.
    #[test]
    fn start_retries_on_taken_port() {
        let blocker = Blackhole::start();
        let mut ports = vec![free_port(), blocker.addr().port()];
        let server =
            RedisServer::start_inner(Vec::new(), &mut || ports.pop().unwrap_or_else(free_port));
        assert_ne!(server.port(), blocker.addr().port());
        assert!(matches!(probe(server.port(), &server.dir), Probe::Ready));
        assert!(server.log().contains("Address already in use"));
    }

    /// A server of someone else on "our" port must not count as ready.
    #[test]
    fn probe_rejects_foreign_server() {
        let other = RedisServer::start();
        let elsewhere = tempfile::tempdir().expect("tempdir");
        assert!(matches!(probe(other.port(), &other.dir), Probe::Ready));
        assert!(matches!(
            probe(other.port(), elsewhere.path()),
            Probe::NotReady
        ));
    }
}

/// A throw-away Redis Cluster: six [`RedisServer`]s in cluster mode (three
/// masters, one replica each), created with `redis-cli --cluster create`.
///
/// [`RedisCluster::start`] returns once every node reports
/// `cluster_state:ok` and agrees on three masters with a replica each.
/// Dropping it kills every node.
///
/// ```no_run
/// let cluster = memo_redis_tests::RedisCluster::start();
/// let url = cluster.url(); // redis://127.0.0.1:p1,127.0.0.1:p2,...
/// let killed = cluster.kill_master_for_slot(0);
/// cluster.wait_for_failover(0, killed, std::time::Duration::from_secs(20));
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// Nodes of a [`RedisCluster`]: three masters and three replicas.
const CLUSTER_NODES: usize = 6;
/// How long a fresh cluster may take to agree on its layout.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One line of `CLUSTER NODES`, as seen by some node.
#[derive(Debug, Clone)]
struct NodeLine {
    port: u16,
    flags: Vec<String>,
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }
    fn is_failed(&self) -> bool {
        self.flags.iter().any(|f| f.starts_with("fail"))
    }
    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
    }
}

fn parse_cluster_nodes(text: &str) -> Vec<NodeLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let hostport = fields[1].split(['@', ',']).next().unwrap_or("");
        let Some(port) = hostport
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
        else {
            continue;
        };
        let slots = fields[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|x| (x, x)),
            })
            .collect();
        out.push(NodeLine {
            port,
            flags: fields[2].split(',').map(str::to_string).collect(),
            slots,
        });
    }
    out
}

fn bulk_text(port: u16, args: &[&[u8]]) -> Option<String> {
    match raw_command(port, args, Duration::from_secs(2)) {
        Ok(Reply::Bulk(Some(b))) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

impl RedisCluster {
    /// Starts six cluster-enabled servers on free ports, joins them with
    /// `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`
    /// and waits (bounded) until the cluster is ready.
    ///
    /// # Panics
    ///
    /// If a node cannot start, `redis-cli` fails, or the cluster is not ready
    /// within 30 seconds.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// [`RedisCluster::start`] with TLS: every node serves TLS with `files` on its
    /// [`RedisServer::tls_port`] (clients are not asked for certificates), and the cluster bus and
    /// replication run over TLS too (`--tls-cluster yes --tls-replication yes`); the cluster is
    /// created with `redis-cli --tls --cacert` on the TLS ports, so every node announces its TLS
    /// port to TLS clients. Each node keeps a plain port ([`RedisServer::port`]) for the
    /// harness's own polling (`wait_ready`, `masters`, …); [`RedisCluster::tls_url`] lists the
    /// TLS seeds.
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::start`].
    pub fn start_tls(files: TlsFiles) -> Self {
        Self::start_with(Some(files))
    }

    fn start_with(tls: Option<TlsFiles>) -> Self {
        let nodes: Vec<RedisServer> = (0..CLUSTER_NODES)
            .map(|_| {
                let builder = match &tls {
                    Some(files) => RedisServer::builder().tls(files.clone()).args([
                        "--tls-cluster",
                        "yes",
                        "--tls-replication",
                        "yes",
                    ]),
                    None => RedisServer::builder(),
                };
                builder
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                        "--appendonly",
                        "no",
                        "--save",
                        "",
                        // Replicas sync at once (default: 5 s later), so a failover test can
                        // kill a master right after start.
                        "--repl-diskless-sync-delay",
                        "0",
                    ])
                    .start()
            })
            .collect();
        let cluster = RedisCluster { nodes };
        let cli = std::env::var_os(CLI_BIN_ENV).unwrap_or_else(|| OsString::from(DEFAULT_CLI_BIN));
        let mut cmd = Command::new(&cli);
        if let Some(ca) = cluster.nodes[0].tls_ca_cert_path() {
            cmd.arg("--tls").arg("--cacert").arg(ca);
        }
        cmd.arg("--cluster").arg("create");
        for n in &cluster.nodes {
            match n.tls_port() {
                Some(port) => cmd.arg(format!("127.0.0.1:{port}")),
                None => cmd.arg(n.addr()),
            };
        }
        cmd.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("cannot run {cli:?} --cluster create (or set {CLI_BIN_ENV}): {e}")
        });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ready(CLUSTER_READY_TIMEOUT);
        cluster
    }

    /// Polls until every running node reports `cluster_state:ok` and sees
    /// three non-failed masters serving all 16384 slots, and every running
    /// replica's link to its master is up.
    ///
    /// # Panics
    ///
    /// If that does not happen within `within`.
    pub fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.is_ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ready after {within:?}; CLUSTER NODES of the first running node:\n{}",
                self.running()
                    .next()
                    .and_then(|n| bulk_text(n.port(), &[b"CLUSTER", b"NODES"]))
                    .unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn is_ready(&self) -> bool {
        self.running().all(|n| {
            let ok = bulk_text(n.port(), &[b"CLUSTER", b"INFO"])
                .is_some_and(|info| info.contains("cluster_state:ok"));
            let view = bulk_text(n.port(), &[b"CLUSTER", b"NODES"])
                .map(|t| parse_cluster_nodes(&t))
                .unwrap_or_default();
            let slots: u32 = view
                .iter()
                .filter(|l| l.is_master() && !l.is_failed())
                .flat_map(|l| l.slots.iter())
                .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
                .sum();
            let replica_synced = match bulk_text(n.port(), &[b"INFO", b"replication"]) {
                Some(info) if info.contains("role:slave") => info.contains("master_link_status:up"),
                Some(_) => true,
                None => false,
            };
            ok && replica_synced
                && slots == 16384
                && view
                    .iter()
                    .filter(|l| l.is_master() && !l.is_failed() && !l.slots.is_empty())
                    .count()
                    == 3
        })
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// The cluster's layout as seen by the first running node.
    fn view(&self) -> Vec<NodeLine> {
        self.running()
            .find_map(|n| bulk_text(n.port(), &[b"CLUSTER", b"NODES"]))
            .map(|t| parse_cluster_nodes(&t))
            .unwrap_or_default()
    }

    /// Every node (masters and replicas, running or not).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Comma-separated seed list for `REDIS_CLUSTER=true`:
    /// `redis://127.0.0.1:p1,127.0.0.1:p2,...` (all six nodes).
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(RedisServer::addr).collect();
        format!("redis://{}", addrs.join(","))
    }

    /// Comma-separated TLS seed list of a [`RedisCluster::start_tls`] cluster:
    /// `rediss://127.0.0.1:t1,127.0.0.1:t2,...` (all six nodes' TLS ports).
    ///
    /// # Panics
    ///
    /// If the cluster was started without TLS.
    pub fn tls_url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                let port = n.tls_port().expect("a cluster started with start_tls");
                format!("127.0.0.1:{port}")
            })
            .collect();
        format!("rediss://{}", addrs.join(","))
    }

    /// The running, non-failed masters that serve slots.
    pub fn masters(&self) -> Vec<&RedisServer> {
        let view = self.view();
        self.running()
            .filter(|n| {
                view.iter().any(|l| {
                    l.port == n.port() && l.is_master() && !l.is_failed() && !l.slots.is_empty()
                })
            })
            .collect()
    }

    /// The port of the node serving `slot` as master (per the first running
    /// node's view), if any non-failed master serves it.
    pub fn master_port_for_slot(&self, slot: u16) -> Option<u16> {
        self.view()
            .into_iter()
            .find(|l| l.is_master() && !l.is_failed() && l.serves(slot))
            .map(|l| l.port)
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    ///
    /// # Panics
    ///
    /// If no node answers.
    pub fn slot_of(&self, key: &str) -> u16 {
        self.running()
            .find_map(|n| {
                match raw_command(
                    n.port(),
                    &[b"CLUSTER", b"KEYSLOT", key.as_bytes()],
                    Duration::from_secs(2),
                ) {
                    Ok(Reply::Integer(s)) => u16::try_from(s).ok(),
                    _ => None,
                }
            })
            .unwrap_or_else(|| panic!("no node answered CLUSTER KEYSLOT {key}"))
    }

    /// Kills (`SIGKILL`) the master serving `slot`; returns its port.
    ///
    /// # Panics
    ///
    /// If no master serves the slot.
    pub fn kill_master_for_slot(&self, slot: u16) -> u16 {
        let port = self
            .master_port_for_slot(slot)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"));
        if let Some(node) = self.nodes.iter().find(|n| n.port() == port) {
            node.kill();
        }
        port
    }

    /// Polls (bounded) until a running node other than `killed` is master
    /// for `slot` and every running node reports `cluster_state:ok`; returns
    /// the new master's port.
    ///
    /// # Panics
    ///
    /// If that does not happen within `within`.
    pub fn wait_for_failover(&self, slot: u16, killed: u16, within: Duration) -> u16 {
        let deadline = Instant::now() + within;
        loop {
            let promoted = self.master_port_for_slot(slot).filter(|p| *p != killed);
            if let Some(port) = promoted {
                let all_ok = self.running().all(|n| {
                    bulk_text(n.port(), &[b"CLUSTER", b"INFO"])
                        .is_some_and(|info| info.contains("cluster_state:ok"))
                });
                if all_ok {
                    return port;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no replica promoted for slot {slot} within {within:?}; CLUSTER NODES:\n{}",
                self.running()
                    .next()
                    .and_then(|n| bulk_text(n.port(), &[b"CLUSTER", b"NODES"]))
                    .unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill();
        }
    }
}

impl RedisCluster {
    /// One cluster per test binary, started on first use and shared by every
    /// test in it (tests then keep apart by using distinct namespaces).
    ///
    /// It is plain processes, not tied to any tokio runtime, so tests on
    /// separate runtimes can use it one after another or at once. Statics are
    /// never dropped: the nodes die with the test process (`PR_SET_PDEATHSIG`,
    /// see [`RedisServer`]), and an `atexit` hook kills them and removes their
    /// directories when the binary exits normally. Tests must not kill or
    /// restart nodes of the shared cluster; start a private one for that.
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::start`], in the first caller.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: std::sync::OnceLock<RedisCluster> = std::sync::OnceLock::new();
        extern "C" fn cleanup() {
            if let Some(cluster) = SHARED.get() {
                for node in &cluster.nodes {
                    node.kill();
                    let _ = std::fs::remove_dir_all(node.dir());
                }
            }
        }
        SHARED.get_or_init(|| {
            let cluster = RedisCluster::start();
            // SAFETY: `atexit` only records the function pointer; `cleanup`
            // neither unwinds (it never panics) nor calls `exit`.
            unsafe {
                libc::atexit(cleanup);
            }
            cluster
        })
    }
}

/// Environment variable that overrides the `nginx` binary run by [`Nginx`].
pub const NGINX_BIN_ENV: &str = "MEMO_REDIS_NGINX_BIN";

/// Binary run when [`NGINX_BIN_ENV`] is not set (tried from `PATH`, then at
/// Debian's path, which is not on a normal user's `PATH`).
const DEFAULT_NGINX_BINS: &[&str] = &["nginx", "/usr/sbin/nginx"];

/// Name of nginx's configuration file inside its temporary directory.
const NGINX_CONF_FILE: &str = "nginx.conf";
/// See [`NGINX_CONF_FILE`].
const NGINX_ERROR_LOG: &str = "error.log";
/// See [`NGINX_CONF_FILE`].
const NGINX_ACCESS_LOG: &str = "access.log";
/// The location nginx answers itself with its directory, for readiness.
const NGINX_READY_PATH: &str = "/__memo_redis_nginx_ready";

/// A private `nginx` acting as a shared HTTP cache (`proxy_cache`) in front
/// of one upstream, on a free loopback port, for tests of what a cache in
/// front of an application does with its responses.
///
/// The configuration is written to a temporary directory, which also holds
/// the pid file, the logs, the temp paths and the cache itself. nginx runs in
/// the foreground (`daemon off`) as a single process (`master_process off`,
/// so the process dies with the test like [`RedisServer`]'s children, and no
/// worker switches to another user: it works as root, as CI runs, and as any
/// other user). Dropping it kills and reaps the process.
///
/// The cache follows nginx's defaults, which honour the upstream's headers:
/// there is no `proxy_cache_valid`, so only responses that declare freshness
/// (`Cache-Control: max-age` / `s-maxage`, `Expires`) are stored; responses
/// with `Cache-Control: private`, `no-store` or `no-cache`, `Set-Cookie` or
/// `Vary: *` are not; `Vary` is honoured (since nginx 1.7.7: one variant per
/// distinct value of the varied request headers). Every response carries
/// `X-Proxy-Cache: $upstream_cache_status` (`MISS`, `HIT`, `EXPIRED`, …).
///
/// The binary is `nginx` (from `PATH`, else `/usr/sbin/nginx`) unless
/// [`NGINX_BIN_ENV`] (`MEMO_REDIS_NGINX_BIN`) names another one;
/// `scripts/ensure-nginx` installs Debian's package.
///
/// ```no_run
/// use memo_redis_tests::Nginx;
///
/// let upstream: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
/// let nginx = Nginx::proxy_cache(upstream);
/// println!("send requests to http://{}/", nginx.addr());
/// ```
#[derive(Debug)]
pub struct Nginx {
    child: Option<Child>,
    port: u16,
    upstream: SocketAddr,
    dir: PathBuf,
    /// Kept last so it is removed after the child is gone.
    _tempdir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on a free loopback port, proxying every request to
    /// `upstream` through its cache. Port collisions are retried with fresh
    /// ports like [`RedisServer`]'s.
    ///
    /// # Panics
    ///
    /// If nginx is not installed, does not start, or does not answer within
    /// 10 s (the message includes its error log).
    pub fn proxy_cache(upstream: SocketAddr) -> Self {
        let tempdir = tempfile::Builder::new()
            .prefix("memo-redis-nginx-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for nginx: {e}"));
        let dir = tempdir.path().canonicalize().unwrap_or_else(|e| {
            panic!(
                "cannot canonicalize temporary directory {}: {e}",
                tempdir.path().display()
            )
        });
        let mut nginx = Nginx {
            child: None,
            port: 0,
            upstream,
            dir,
            _tempdir: tempdir,
        };
        let mut tried = Vec::new();
        for _ in 0..START_ATTEMPTS {
            nginx.port = free_port();
            tried.push(nginx.port);
            if let Some(child) = nginx.spawn_ready() {
                nginx.child = Some(child);
                return nginx;
            }
        }
        panic!(
            "nginx could not bind a free port after {START_ATTEMPTS} attempts (tried {tried:?}); \
             error log:\n{}",
            nginx.error_log()
        );
    }

    /// The address nginx listens on, `127.0.0.1:P`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The upstream it proxies to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        read_lossy(&self.dir.join(NGINX_ERROR_LOG))
    }

    /// The access log so far: one line per request,
    /// `<request line> <status> cache=<$upstream_cache_status>`.
    pub fn access_log(&self) -> String {
        read_lossy(&self.dir.join(NGINX_ACCESS_LOG))
    }

    /// The configuration written for the current port.
    pub fn config(&self) -> String {
        // Paths are quoted: a temporary directory may contain spaces.
        let dir = self.dir.display();
        let user = if is_root() { "user root;\n" } else { "" };
        format!(
            "# Written by memo-redis-tests (Nginx::proxy_cache).\n\
             daemon off;\n\
             master_process off;\n\
             {user}\
             pid \"{dir}/nginx.pid\";\n\
             error_log \"{dir}/{NGINX_ERROR_LOG}\" info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             \x20   log_format memo '$request $status cache=$upstream_cache_status';\n\
             \x20   access_log \"{dir}/{NGINX_ACCESS_LOG}\" memo;\n\
             \x20   client_body_temp_path \"{dir}/client_body\";\n\
             \x20   proxy_temp_path \"{dir}/proxy_temp\";\n\
             \x20   fastcgi_temp_path \"{dir}/fastcgi_temp\";\n\
             \x20   uwsgi_temp_path \"{dir}/uwsgi_temp\";\n\
             \x20   scgi_temp_path \"{dir}/scgi_temp\";\n\
             \x20   proxy_cache_path \"{dir}/cache\" levels=1:2 keys_zone=memo_redis_test:1m max_size=64m;\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port};\n\
             \x20       location = {NGINX_READY_PATH} {{ return 200 \"{dir}\"; }}\n\
             \x20       location / {{\n\
             \x20           proxy_pass http://{upstream};\n\
             \x20           proxy_cache memo_redis_test;\n\
             \x20           add_header X-Proxy-Cache $upstream_cache_status always;\n\
             \x20       }}\n\
             \x20   }}\n\
             }}\n",
            port = self.port,
            upstream = self.upstream,
        )
    }

    /// Writes the configuration, spawns nginx and polls until it answers
    /// its readiness location with its own directory. `None` if the port
    /// was taken; panics on any other failure.
    fn spawn_ready(&self) -> Option<Child> {
        let conf = self.dir.join(NGINX_CONF_FILE);
        std::fs::write(&conf, self.config())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let error_log = self.dir.join(NGINX_ERROR_LOG);
        let log_offset = std::fs::metadata(&error_log).map_or(0, |m| m.len());
        let stdio_path = self.dir.join("nginx.stdio");
        let mut child = None;
        let mut tried = Vec::new();
        let bins: Vec<OsString> = match std::env::var_os(NGINX_BIN_ENV) {
            Some(bin) => vec![bin],
            None => DEFAULT_NGINX_BINS.iter().map(OsString::from).collect(),
        };
        for bin in bins {
            let stdio = File::create(&stdio_path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", stdio_path.display()));
            let stderr = stdio
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot clone file handle: {e}"));
            let mut cmd = Command::new(&bin);
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            // `-e`: the log nginx writes before it has read the configuration.
            cmd.arg("-e")
                .arg(&error_log)
                .arg("-p")
                .arg(&self.dir)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(stdio)
                .stderr(stderr);
            match spawn(cmd) {
                Ok(c) => {
                    child = Some(c);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => tried.push(bin),
                Err(e) => panic!("cannot spawn {bin:?}: {e}"),
            }
        }
        let Some(mut child) = child else {
            panic!(
                "nginx not found (tried {tried:?}); install it with `scripts/ensure-nginx` \
                 (Debian's nginx package) or set {NGINX_BIN_ENV}"
            );
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    let log = read_lossy(&error_log);
                    let new_log = log.get(log_offset as usize..).unwrap_or(&log);
                    if new_log.contains("Address already in use") {
                        return None;
                    }
                    panic!(
                        "nginx on port {} exited during startup ({}); error log:\n{log}\n\
                         --- stdout/stderr ---\n{}\n--- {NGINX_CONF_FILE} ---\n{}",
                        self.port,
                        describe_status(status),
                        read_lossy(&stdio_path),
                        self.config()
                    );
                }
                Err(e) => {
                    kill_and_reap(&mut child);
                    panic!("cannot query the nginx child process: {e}");
                }
            }
            if self.answers_ready() {
                return Some(child);
            }
            if Instant::now() >= deadline {
                kill_and_reap(&mut child);
                panic!(
                    "nginx on port {} did not answer within {READY_TIMEOUT:?}; error log:\n{}",
                    self.port,
                    self.error_log()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Whether *our* nginx (it names its directory) answers on our port.
    fn answers_ready(&self) -> bool {
        let Ok(mut stream) = connect(self.port, PROBE_TIMEOUT) else {
            return false;
        };
        let request = format!("GET {NGINX_READY_PATH} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut reply = Vec::new();
        if io::Read::read_to_end(&mut stream, &mut reply).is_err() {
            return false;
        }
        let reply = String::from_utf8_lossy(&reply);
        reply.starts_with("HTTP/1.1 200") && reply.ends_with(self.dir.to_string_lossy().as_ref())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}

fn is_root() -> bool {
    // SAFETY: `geteuid(2)` has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// What a [`FaultProxy`] does to a command matching one of its rules.
#[derive(Debug, Clone)]
enum Fault {
    /// Hold the command (and everything sent after it on that connection) for this long
    /// before forwarding it.
    Delay(Duration),
    /// Forward the command, then close the client's connection before its reply (or any later
    /// one) reaches the client.
    Drop,
}

#[derive(Debug)]
struct FaultRule {
    /// Upper-case text the command (its arguments joined by spaces) must contain.
    pattern: String,
    fault: Fault,
    /// How many more commands the rule applies to (`usize::MAX`: no limit).
    times: usize,
}

#[derive(Debug, Default)]
struct ProxyState {
    rules: Mutex<Vec<FaultRule>>,
    dropped: AtomicUsize,
    delayed: AtomicUsize,
    /// Both sockets of every live connection, shut down when the proxy is dropped.
    sockets: Mutex<Vec<TcpStream>>,
}

/// A TCP proxy in front of a real `redis-server` that injects faults per command.
///
/// Every client connection gets its own upstream connection. The proxy parses the commands
/// the client sends (RESP arrays, as redis-rs sends them) and, for a command whose text (its
/// arguments joined by spaces, compared upper-case) contains a rule's pattern, either delays
/// it ([`FaultProxy::delay_matching`]) or forwards it and closes the client connection before
/// the reply gets back ([`FaultProxy::drop_after_matching`]): the server executed the command,
/// the client never hears of it. Replies are passed through unparsed.
///
/// ```no_run
/// # async fn example() {
/// use std::time::Duration;
/// use memo_redis_tests::{FaultProxy, RedisServer};
///
/// let server = RedisServer::start();
/// let proxy = FaultProxy::start(&server);
/// proxy.drop_after_matching(" NX", 1); // the next `SET … NX` executes, its reply is lost
/// proxy.delay_matching("GET", Duration::from_millis(300), usize::MAX);
/// let client = redis::Client::open(proxy.url()).unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `server`.
    ///
    /// # Panics
    ///
    /// If the listener cannot be bound or the thread cannot be started.
    pub fn start(server: &RedisServer) -> Self {
        let upstream: SocketAddr = server
            .addr()
            .parse()
            .unwrap_or_else(|e| panic!("bad server address {}: {e}", server.addr()));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind a proxy listener: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the proxy address: {e}"));
        let state = Arc::new(ProxyState::default());
        let shutdown = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let shutdown = Arc::clone(&shutdown);
            thread::Builder::new()
                .name("memo-redis-proxy".into())
                .spawn(move || {
                    for client in listener.incoming() {
                        if shutdown.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(client) = client else { continue };
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue; // the client sees its connection closed
                        };
                        proxy_connection(client, server, &state);
                    }
                })
                .unwrap_or_else(|e| panic!("cannot start the proxy thread: {e}"))
        };
        FaultProxy {
            addr,
            state,
            shutdown,
            thread: Some(thread),
        }
    }

    /// The listening address, `127.0.0.1:P`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `redis://127.0.0.1:P/` URL pointing at the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Delays the next `times` commands containing `pattern` (case-insensitive) by `delay`
    /// each, before forwarding them; later commands of the same connection wait behind them,
    /// as on a slow link.
    pub fn delay_matching(&self, pattern: &str, delay: Duration, times: usize) {
        self.add(pattern, Fault::Delay(delay), times);
    }

    /// Forwards the next `times` commands containing `pattern` (case-insensitive), then closes
    /// the client connection before their replies reach the client (the server has executed
    /// them).
    pub fn drop_after_matching(&self, pattern: &str, times: usize) {
        self.add(pattern, Fault::Drop, times);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        lock(&self.state.rules).clear();
    }

    /// How many connections were closed by a drop rule so far.
    pub fn dropped(&self) -> usize {
        self.state.dropped.load(Ordering::SeqCst)
    }

    /// How many commands were delayed so far.
    pub fn delayed(&self) -> usize {
        self.state.delayed.load(Ordering::SeqCst)
    }

    fn add(&self, pattern: &str, fault: Fault, times: usize) {
        lock(&self.state.rules).push(FaultRule {
            pattern: pattern.to_uppercase(),
            fault,
            times,
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for s in lock(&self.state.sockets).drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The fault, if any, a command's text triggers (consuming one use of the rule).
fn fault_for(state: &ProxyState, text: &str) -> Option<Fault> {
    let mut rules = lock(&state.rules);
    let i = rules
        .iter()
        .position(|r| r.times > 0 && text.contains(&r.pattern))?;
    let rule = &mut rules[i];
    if rule.times != usize::MAX {
        rule.times -= 1;
    }
    Some(rule.fault.clone())
}

/// Reads one command sent by a client: its raw bytes and its text (arguments joined by spaces,
/// upper-case). A line that is not a RESP array is passed on as is.
fn read_command(reader: &mut impl BufRead) -> io::Result<(Vec<u8>, String)> {
    let mut raw = Vec::new();
    if reader.read_until(b'\n', &mut raw)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let header = String::from_utf8_lossy(&raw).trim_end().to_string();
    let Some(n) = header
        .strip_prefix('*')
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return Ok((raw, header.to_uppercase()));
    };
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let start = raw.len();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = String::from_utf8_lossy(&raw[start..])
            .trim_end()
            .to_string();
        let len = line
            .strip_prefix('$')
            .and_then(|l| l.parse::<usize>().ok())
            .ok_or_else(|| protocol_error(format!("unexpected RESP line {line:?}")))?;
        let start = raw.len();
        raw.resize(start + len + 2, 0);
        reader.read_exact(&mut raw[start..])?;
        args.push(String::from_utf8_lossy(&raw[start..start + len]).to_uppercase());
    }
    Ok((raw, args.join(" ")))
}

/// Runs the two directions of one proxied connection on their own threads.
fn proxy_connection(client: TcpStream, server: TcpStream, state: &Arc<ProxyState>) {
    let (Ok(client_w), Ok(server_r), Ok(c2), Ok(s2)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    lock(&state.sockets).extend([c2, s2]);
    // Set by the request side before forwarding a command whose reply must not arrive; the
    // reply side then closes the client instead of passing on anything more.
    let cut = Arc::new(AtomicBool::new(false));
    {
        let state = Arc::clone(state);
        let cut = Arc::clone(&cut);
        let mut server_w = server;
        let client_shut = client_w.try_clone().ok();
        let _ = thread::Builder::new()
            .name("memo-redis-proxy-req".into())
            .spawn(move || {
                let mut reader = BufReader::new(client);
                while let Ok((raw, text)) = read_command(&mut reader) {
                    match fault_for(&state, &text) {
                        Some(Fault::Delay(d)) => {
                            state.delayed.fetch_add(1, Ordering::SeqCst);
                            thread::sleep(d);
                        }
                        Some(Fault::Drop) => {
                            cut.store(true, Ordering::SeqCst);
                            let _ = server_w.write_all(&raw);
                            // Nothing after it is forwarded; the reply side closes the client
                            // once the server has answered it.
                            return;
                        }
                        None => {}
                    }
                    if server_w.write_all(&raw).is_err() {
                        break;
                    }
                }
                let _ = server_w.shutdown(std::net::Shutdown::Both);
                if let Some(c) = client_shut {
                    let _ = c.shutdown(std::net::Shutdown::Both);
                }
            });
    }
    let state = Arc::clone(state);
    let _ = thread::Builder::new()
        .name("memo-redis-proxy-rep".into())
        .spawn(move || {
            let mut server_r = server_r;
            let mut client_w = client_w;
            let mut buf = [0u8; 16 * 1024];
            let mut closed = false;
            loop {
                let n = match io::Read::read(&mut server_r, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if cut.load(Ordering::SeqCst) {
                    // Replies from here on are not passed on: close the client (the server
                    // still executes the dropped command, its connection stays open) and
                    // drain the server's side until the proxy goes.
                    if !std::mem::replace(&mut closed, true) {
                        state.dropped.fetch_add(1, Ordering::SeqCst);
                        let _ = client_w.shutdown(std::net::Shutdown::Both);
                    }
                    continue;
                }
                if client_w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = client_w.shutdown(std::net::Shutdown::Both);
            let _ = server_r.shutdown(std::net::Shutdown::Both);
        });
}

/// Near-cache staleness (tests/near_cache.rs, tests/near_cache_cluster.rs): calls `f` until it returns `want` (bounded by `within`), and returns how long after `since`
/// the old value was last served: the end of the last call that returned something else (zero
/// if none did). That is the staleness the bound is about; the call that finally returns `want`
/// (a Redis round trip, possibly a body run) and the pause between calls are not counted, so
/// scheduling delays of this polling loop do not inflate the measurement.
pub async fn stale_for<F, Fut>(since: Instant, within: Duration, want: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut last_stale = since;
    loop {
        let got = f().await;
        if got == want {
            return last_stale.saturating_duration_since(since);
        }
        last_stale = Instant::now();
        assert!(
            since.elapsed() < within,
            "still served {got:?} after {within:?} (wanted {want:?})"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
