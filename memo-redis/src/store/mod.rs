//! The Redis side: one lazily created, auto-reconnecting multiplexed connection per cache (a
//! `ConnectionManager` for a single node, a cluster-aware `ClusterConnection` for Redis Cluster),
//! every operation bounded by the operation timeout and accounted on the circuit breaker.

use std::sync::RwLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, RedisFuture, Script, Value};

use crate::breaker::{Admit, Breaker};
use crate::config::Config;
use crate::error::Error;
use crate::log::RateLimited;

/// Deletes the entry only if it still holds the bytes we judged corrupt, or if it is not a
/// string at all (a list or hash planted under our key). A fresh value written meanwhile by
/// another caller survives.
const REPAIR_LUA: &str = r"
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return 0 end
if t ~= 'string' then return redis.call('DEL', KEYS[1]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The connection of one cache: one node, or a whole Redis Cluster. Both are cheap to clone
/// (multiplexed) and route every command themselves; on a cluster a command goes to the master
/// of its first key's slot, and multi-key `DEL`/`UNLINK` are split per slot by redis-rs.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where a cluster-only command goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Any node (cluster metadata such as `CLUSTER SHARDS`).
    Random,
    /// The node at this address (a master's `SCAN`).
    Node(String, u16),
}

pub(crate) struct Store {
    pub(crate) client: redis::Client,
    manager_config: ConnectionManagerConfig,
    cluster: Option<ClusterClient>,
    /// Serializes the creation of the cluster connection (an async handshake).
    cluster_init: tokio::sync::Mutex<()>,
    /// When the cluster connection was last dropped for a rebuild (ms since `created`).
    cluster_rebuilt_ms: std::sync::atomic::AtomicU64,
    created: std::time::Instant,
    conn: RwLock<Option<Conn>>,
    op_timeout: Duration,
    pub(crate) breaker: Breaker,
    errors_log: RateLimited,
    /// One rate-limited warning per refused error code (`NOPERM`, `READONLY`, `OOM`, …).
    refusals_log: std::sync::Mutex<Vec<(String, std::sync::Arc<RateLimited>)>>,
    /// `GETEX` was refused (read-only replica, ACL): sliding reads use `GET`.
    getex_refused: Refusal,
    repair: Script,
    release: Script,
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
pub(crate) fn open_client(config: &Config) -> Result<redis::Client, Error> {
    // If the application also enables another rustls provider, rustls cannot pick one by
    // itself and redis-rs would panic on the first TLS connect; installing ours first (a no-op
    // when one is installed already) prevents that.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &config.tls_ca_cert {
        Some(ca) => Ok(redis::Client::build_with_tls(
            config.connection.clone(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            },
        )?),
        None => Ok(redis::Client::open(config.connection.clone())?),
    }
}

#[cfg(not(feature = "tls"))]
pub(crate) fn open_client(config: &Config) -> Result<redis::Client, Error> {
    Ok(redis::Client::open(config.connection.clone())?)
}

/// Least time between two rebuilds of the cluster connection.
const CLUSTER_REBUILD_INTERVAL: Duration = Duration::from_millis(250);

/// A failure that may mean the cluster's topology changed (a master died or failed over).
fn needs_topology_refresh<T>(
    result: &Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> bool {
    match result {
        Ok(Ok(_)) => false,
        Err(_) => true,
        Ok(Err(e)) => {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || matches!(
                    e.code(),
                    // `READONLY`: a write reached a master demoted during a failover.
                    Some("CLUSTERDOWN" | "MOVED" | "TRYAGAIN" | "MASTERDOWN" | "READONLY")
                )
        }
    }
}

/// What a Redis error says about Redis, which decides what the circuit breaker does with it.
/// The table is in docs/when-redis-fails.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Redis cannot be used right now (timeouts, refused or reset connections, I/O errors, a
    /// loading or failing-over server, a cluster that is down, a server busy in a script): counted
    /// on the breaker, which opens after the threshold.
    Unreachable,
    /// The connection's credentials are refused (`NOAUTH`, `WRONGPASS`, a failed `AUTH`): every
    /// command will fail until an operator fixes it, so the breaker opens at once.
    Denied,
    /// The server answered and refused this one command (`NOPERM`, `READONLY`, `NOSCRIPT`,
    /// `WRONGTYPE`, `OOM`, `ERR`, …): only that operation fails; Redis is reachable, so this counts
    /// as a success on the breaker. Logged once per interval per error code.
    Refused,
}

/// Classifies a redis-rs error (see [`Fault`]).
pub(crate) fn classify(e: &redis::RedisError) -> Fault {
    use redis::{ErrorKind, ServerErrorKind};
    if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
    {
        return Fault::Denied;
    }
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return Fault::Unreachable;
    }
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => Fault::Unreachable,
        // A script running too long blocks every command on that server.
        _ if matches!(e.code(), Some("BUSY")) => Fault::Unreachable,
        ErrorKind::Server(_) | ErrorKind::UnexpectedReturnType => Fault::Refused,
        // Any other error code is the server's answer to this command (`MISCONF`, a module's …).
        _ if e.code().is_some() => Fault::Refused,
        // Client-side and protocol failures: the connection cannot be trusted.
        _ => Fault::Unreachable,
    }
}

/// Remembers for a while that the server refuses a command (e.g. `GETEX` on a read-only
/// replica), so later operations use their fallback directly; asked again after
/// [`REFUSAL_MEMORY`], in case the server was promoted or the ACL changed.
#[derive(Debug, Default)]
pub(crate) struct Refusal {
    /// ms after the store's creation until which the command is not tried (0: try).
    until_ms: std::sync::atomic::AtomicU64,
}

/// How long a refused command is not tried again.
const REFUSAL_MEMORY: Duration = Duration::from_secs(60);

impl Store {
    pub(crate) fn new(config: &Config) -> Result<Store, Error> {
        let client = open_client(config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            // No response timeout in redis-rs: every operation runs under our own timeout (which
            // also bounds waiting for a reconnect); a second timer per command would only cost.
            .set_response_timeout(None)
            // Fail a reconnect attempt fast; the breaker decides when to try again, so a dead
            // server costs a probe per cooldown instead of a retry loop per call.
            .set_number_of_retries(0);
        let cluster = if config.cluster_nodes.is_empty() {
            None
        } else {
            Some(
                ClusterClient::builder(config.cluster_nodes.clone())
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.op_timeout)
                    // A MOVED/ASK redirect during resharding or failover needs a retry; the
                    // operation timeout bounds the total either way.
                    .retries(2)
                    .min_retry_wait(5)
                    .max_retry_wait(50)
                    .build()?,
            )
        };
        Ok(Store {
            client,
            manager_config,
            cluster,
            cluster_init: tokio::sync::Mutex::new(()),
            cluster_rebuilt_ms: std::sync::atomic::AtomicU64::new(0),
            created: std::time::Instant::now(),
            conn: RwLock::new(None),
            op_timeout: config.op_timeout,
            breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown),
            errors_log: RateLimited::new(),
            refusals_log: std::sync::Mutex::new(Vec::new()),
            getex_refused: Refusal::default(),
            repair: Script::new(REPAIR_LUA),
            release: Script::new(RELEASE_LUA),
            url: config.display_url.clone(),
        })
    }

    fn cached_connection(&self) -> Option<Conn> {
        self.conn.read().ok().and_then(|guard| guard.clone())
    }

    /// The connection, created on first use. A single node's manager connects lazily by
    /// itself; a cluster connection is created here (discovering the slot map), within `limit`.
    async fn connection(&self, limit: Duration) -> Result<Conn, Error> {
        if let Some(c) = self.cached_connection() {
            return Ok(c);
        }
        let Some(cluster) = &self.cluster else {
            let mut guard = self
                .conn
                .write()
                .map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Client, "connection lock poisoned"))
                })?;
            if let Some(c) = guard.as_ref() {
                return Ok(c.clone());
            }
            let c = Conn::Single(ConnectionManager::new_lazy_with_config(
                self.client.clone(),
                self.manager_config.clone(),
            )?);
            *guard = Some(c.clone());
            return Ok(c);
        };
        let created = tokio::time::timeout(limit, async {
            let _init = self.cluster_init.lock().await;
            if let Some(c) = self.cached_connection() {
                return Ok(c);
            }
            let c = Conn::Cluster(cluster.get_async_connection().await?);
            if let Ok(mut guard) = self.conn.write() {
                *guard = Some(c.clone());
            }
            Ok::<Conn, Error>(c)
        })
        .await;
        match created {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(limit)),
        }
    }

    /// Whether this store talks to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// Runs `cmd` on one cluster node chosen by `target` (a single node: the only node).
    pub(crate) async fn query_on<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        target: &Target,
    ) -> Result<T, Error> {
        self.run_op(self.op_timeout, move |mut conn| async move {
            match &mut conn {
                Conn::Single(_) => cmd.query_async::<T>(&mut conn).await,
                Conn::Cluster(c) => {
                    let routing = match target {
                        Target::Random => SingleNodeRoutingInfo::Random,
                        Target::Node(host, port) => SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        },
                    };
                    let value = c
                        .route_command(cmd.clone(), RoutingInfo::SingleNode(routing))
                        .await?;
                    T::from_redis_value(value).map_err(redis::RedisError::from)
                }
            }
        })
        .await
    }

    /// Drops the connection; the next operation creates a new one.
    pub(crate) fn close(&self) {
        if let Ok(mut guard) = self.conn.write() {
            guard.take();
        }
    }

    /// The configured per-operation timeout.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// Runs one command under the breaker and the operation timeout.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        self.query_within(cmd, self.op_timeout).await
    }

    /// Runs one command under the breaker, waiting at most `limit`.
    pub(crate) async fn query_within<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        limit: Duration,
    ) -> Result<T, Error> {
        self.run_op(limit, move |mut conn| async move {
            cmd.query_async::<T>(&mut conn).await
        })
        .await
    }

    /// Runs one operation under the breaker and `limit`, counting its outcome on the breaker.
    ///
    /// A connection that died while idle (server restarted) fails the first command with an I/O
    /// error and makes the manager reconnect at once; one retry on the fresh connection, within
    /// the same limit, lets the first call after Redis returns be served.
    async fn run_op<T, F, Fut>(&self, limit: Duration, op: F) -> Result<T, Error>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        // Not a Redis failure: the breaker is left alone.
        crate::runtime::check()?;
        if self.breaker.allow() == Admit::No {
            return Err(Error::BreakerOpen);
        }
        let total = limit;
        let started = std::time::Instant::now();
        let conn = match self.connection(limit).await {
            Ok(c) => c,
            Err(e) => {
                self.failed(&e);
                return Err(e);
            }
        };
        // `limit` counts from `started`: one deadline for the connection, the command and a retry.
        let deadline = tokio::time::Instant::from_std(started) + limit;
        if limit.saturating_sub(started.elapsed()) < Duration::from_millis(1) {
            let e = Error::Timeout(total);
            self.failed(&e);
            return Err(e);
        }
        let mut result = tokio::time::timeout_at(deadline, op(conn)).await;
        if let Ok(Err(e)) = &result {
            if (e.is_io_error() || e.is_connection_dropped())
                && deadline.saturating_duration_since(tokio::time::Instant::now())
                    >= Duration::from_millis(1)
            {
                if let Some(conn) = self.cached_connection() {
                    result = tokio::time::timeout_at(deadline, op(conn)).await;
                }
            }
        }
        if self.cluster.is_some() && needs_topology_refresh(&result) {
            self.rebuild_cluster_connection();
        }
        self.settle(result, total)
    }

    /// Drops the cluster connection (at most once per [`CLUSTER_REBUILD_INTERVAL`]) so that the
    /// next operation discovers the slot map afresh from the seed nodes. redis-rs reconnects to a
    /// dead node's address but does not re-read the slot map on I/O errors, so without this a
    /// failed-over master's slots would stay routed to the dead node.
    fn rebuild_cluster_connection(&self) {
        use std::sync::atomic::Ordering;
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.cluster_rebuilt_ms.load(Ordering::Acquire);
        let interval = u64::try_from(CLUSTER_REBUILD_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < interval {
            return;
        }
        if self
            .cluster_rebuilt_ms
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::debug!(url = %self.url, "rebuilding the cluster connection (topology refresh)");
            self.close();
        }
    }

    fn settle<T>(
        &self,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
        limit: Duration,
    ) -> Result<T, Error> {
        match result {
            Ok(Ok(v)) => {
                self.reachable();
                Ok(v)
            }
            Ok(Err(e)) => match classify(&e) {
                Fault::Denied => {
                    // Wrong credentials do not heal by retrying every call: open the breaker at
                    // once (one log line) and let the probes find out when an operator fixed it.
                    let e = Error::from(e);
                    if self.breaker.trip() {
                        crate::breaker::gauge(&self.url, true);
                        tracing::error!(
                            url = %self.url,
                            error = %e,
                            "redis refused access (credentials); circuit breaker opened, cached functions run their bodies directly"
                        );
                    }
                    Err(e)
                }
                Fault::Refused => {
                    // The server answered: it is reachable, only this command was refused.
                    self.reachable();
                    self.refused(&e);
                    if e.code() == Some("WRONGTYPE") {
                        // Foreign data under our key: the caller repairs it.
                        return Err(Error::WrongType);
                    }
                    Err(Error::from(e))
                }
                Fault::Unreachable => {
                    let e = Error::from(e);
                    self.failed(&e);
                    Err(e)
                }
            },
            Err(_) => {
                let e = Error::Timeout(limit);
                self.failed(&e);
                Err(e)
            }
        }
    }

    /// Redis answered: reset the failure count, and close an open breaker (this was its probe).
    fn reachable(&self) {
        if self.breaker.success() {
            crate::breaker::gauge(&self.url, false);
            tracing::info!(url = %self.url, "redis reachable again; circuit breaker closed");
        }
    }

    /// Logs a command the server refused, at most once per interval per error code.
    pub(crate) fn refused(&self, e: &redis::RedisError) {
        // Foreign data under a key is repaired by the caller and logged there.
        let code = e.code().unwrap_or("other");
        if code == "WRONGTYPE" {
            return;
        }
        let limiter = {
            let Ok(mut logs) = self.refusals_log.lock() else {
                return;
            };
            match logs.iter().find(|(c, _)| c == code) {
                Some((_, l)) => std::sync::Arc::clone(l),
                // Error codes come from the server: bound the table, share one limiter beyond.
                None if logs.len() >= 16 => std::sync::Arc::clone(&logs[15].1),
                None => {
                    let l = std::sync::Arc::new(RateLimited::new());
                    logs.push((code.to_string(), std::sync::Arc::clone(&l)));
                    l
                }
            }
        };
        limiter.hit(|suppressed| {
            if code == "OOM" {
                tracing::warn!(url = %self.url, error = %e, suppressed, "redis refused a write (out of memory); the result was not cached");
            } else {
                tracing::warn!(url = %self.url, code, error = %e, suppressed, "redis refused a command; only that operation failed, the circuit breaker is unaffected");
            }
        });
    }

    fn failed(&self, e: &Error) {
        if self.breaker.failure() {
            crate::breaker::gauge(&self.url, true);
            tracing::warn!(
                url = %self.url,
                error = %e,
                "redis failing; circuit breaker opened, cached functions run their bodies directly"
            );
        } else {
            self.errors_log.hit(|suppressed| {
                tracing::warn!(url = %self.url, error = %e, suppressed, "redis operation failed; cached calls run their bodies, explicit operations return the error");
            });
        }
    }

    pub(crate) async fn get(&self, key: &str, limit: Duration) -> Result<Option<Vec<u8>>, Error> {
        self.query_within(redis::cmd("GET").arg(key), limit).await
    }

    /// `GET` and `PTTL` in one round trip (for a read whose result may be kept locally).
    pub(crate) async fn get_pttl(
        &self,
        key: &str,
        limit: Duration,
    ) -> Result<(Option<Vec<u8>>, i64), Error> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let pipe = &pipe;
        self.run_op(limit, move |mut conn| async move {
            pipe.query_async::<(Option<Vec<u8>>, i64)>(&mut conn).await
        })
        .await
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        limit: Duration,
    ) -> Result<(), Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        self.query_within::<()>(&cmd, limit).await
    }

    pub(crate) async fn del(&self, key: &str) -> Result<bool, Error> {
        let n: u64 = self.query(redis::cmd("DEL").arg(key)).await?;
        Ok(n > 0)
    }

    /// Compare-and-delete of a corrupt entry (see [`REPAIR_LUA`]).
    pub(crate) async fn repair(
        &self,
        key: &str,
        seen: &[u8],
        limit: Duration,
    ) -> Result<bool, Error> {
        let script = &self.repair;
        let n: u64 = self
            .run_op(limit, move |mut conn| async move {
                script
                    .key(key)
                    .arg(seen)
                    .invoke_async::<u64>(&mut conn)
                    .await
            })
            .await?;
        Ok(n > 0)
    }
}

/// What is left of one call's time for Redis: a cached call waits on Redis at most the operation
/// timeout *in total* — read, re-read, lock, write, tag bookkeeping and repair together — not per
/// operation. Created once when the call starts and passed down; time spent running the body or
/// waiting for another caller's body is not charged, only time spent waiting for Redis.
/// Background work the caller does not wait for (a spawned refresh, a lock released after a
/// cancellation) gets a budget of its own.
#[derive(Debug)]
pub(crate) struct Budget {
    total: Duration,
    left: Duration,
}

impl Budget {
    pub(crate) fn new(total: Duration) -> Budget {
        Budget { total, left: total }
    }

    /// The time left, or `None` once it is too small to be worth a round trip.
    pub(crate) fn left(&self) -> Option<Duration> {
        (self.left >= Duration::from_millis(1)).then_some(self.left)
    }

    pub(crate) fn spend(&mut self, since: std::time::Instant) {
        self.spent(since.elapsed());
    }

    pub(crate) fn spent(&mut self, took: Duration) {
        self.left = self.left.saturating_sub(took);
    }

    /// Runs one Redis operation within what is left (its argument), charging the time it took.
    /// A spent budget fails at once with [`Error::Timeout`], without asking Redis (nor counting
    /// on the breaker).
    pub(crate) async fn run<T, Fut>(&mut self, op: impl FnOnce(Duration) -> Fut) -> Result<T, Error>
    where
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let Some(limit) = self.left() else {
            return Err(Error::Timeout(self.total));
        };
        let started = std::time::Instant::now();
        let result = op(limit).await;
        self.spend(started);
        result
    }
}

/// Releases a lock only if it still holds our token (the lease may have expired and another
/// process may hold it now).
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

impl Store {
    /// `GETEX key PX ttl`: a read that extends the entry's TTL in the same round trip.
    pub(crate) async fn get_ex(
        &self,
        key: &str,
        ttl: Duration,
        limit: Duration,
    ) -> Result<Option<Vec<u8>>, Error> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        if self
            .getex_refused
            .until_ms
            .load(std::sync::atomic::Ordering::Relaxed)
            > now
        {
            return self.get(key, limit).await;
        }
        let getex = redis::cmd("GETEX").arg(key).arg("PX").arg(ms).clone();
        let (getex, get) = (&getex, &redis::cmd("GET").arg(key).clone());
        let refusal = &self.getex_refused;
        self.run_op(limit, move |mut conn| async move {
            match getex.query_async::<Option<Vec<u8>>>(&mut conn).await {
                // A read-only replica (`READONLY`) or an ACL without `GETEX`: serve the read
                // with a plain `GET` on the same connection and deadline; the TTL is not
                // extended. Remembered, so the next reads go straight to `GET`.
                Err(e) if classify(&e) == Fault::Refused => {
                    self.refused(&e);
                    // On a cluster `READONLY` means a stale slot map during a failover (the
                    // connection is rebuilt), not a replica we are stuck with: not remembered.
                    if !(self.is_cluster() && e.code() == Some("READONLY")) {
                        let until = now.saturating_add(
                            u64::try_from(REFUSAL_MEMORY.as_millis()).unwrap_or(u64::MAX),
                        );
                        refusal
                            .until_ms
                            .store(until, std::sync::atomic::Ordering::Relaxed);
                    }
                    get.query_async::<Option<Vec<u8>>>(&mut conn).await
                }
                other => other,
            }
        })
        .await
    }

    /// `SET lock token NX PX lease`: true if we now hold the lock.
    ///
    /// A lock that already holds our token is ours too: when the reply to an earlier attempt
    /// was lost (the connection dropped after the server executed the `SET`, and the operation
    /// was retried), the `SET NX` finds our own lock. A `GET` pipelined behind the `SET` tells
    /// (one round trip; plain commands, so Redis 6.2 and a cluster, where both hit the lock's
    /// slot, work alike).
    pub(crate) async fn try_lock(
        &self,
        lock: &str,
        token: &str,
        lease: Duration,
        limit: Duration,
    ) -> Result<bool, Error> {
        let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(lock)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .cmd("GET")
            .arg(lock);
        let pipe = &pipe;
        let (set, holder): (Option<String>, Option<String>) = self
            .run_op(limit, move |mut conn| async move {
                pipe.query_async(&mut conn).await
            })
            .await?;
        Ok(set.is_some() || holder.as_deref() == Some(token))
    }

    /// Compare-and-delete release of a lock.
    pub(crate) async fn unlock(
        &self,
        lock: &str,
        token: &str,
        limit: Duration,
    ) -> Result<bool, Error> {
        let script = &self.release;
        let n: u64 = self
            .run_op(limit, move |mut conn| async move {
                script
                    .key(lock)
                    .arg(token)
                    .invoke_async::<u64>(&mut conn)
                    .await
            })
            .await?;
        Ok(n > 0)
    }
}

impl Store {
    /// Runs a prepared script invocation under the breaker and the operation timeout.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        self.invoke_within(invocation, self.op_timeout).await
    }

    /// [`Store::invoke`], waiting at most `limit`.
    pub(crate) async fn invoke_within<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        limit: Duration,
    ) -> Result<T, Error> {
        self.run_op(limit, move |mut conn| async move {
            invocation.invoke_async::<T>(&mut conn).await
        })
        .await
    }
}

/// What one health probe saw: the round trip of a `PING` and the server's `INFO server` text.
pub(crate) struct Probe {
    pub(crate) round_trip: Duration,
    pub(crate) info: String,
}

impl Store {
    /// A health probe outside the breaker: it measures even while the breaker bypasses Redis,
    /// and its outcome does not move the breaker (a health endpoint polled every second must not
    /// close a breaker the calls opened, nor open one). One budget of `limit` covers the
    /// connection, the `PING` and the `INFO server`.
    pub(crate) async fn probe(&self, limit: Duration) -> Result<Probe, Error> {
        let work = async {
            let mut conn = self.connection(limit).await?;
            let started = std::time::Instant::now();
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            let round_trip = started.elapsed();
            let mut info_cmd = redis::cmd("INFO");
            info_cmd.arg("server");
            let info: String = match &mut conn {
                Conn::Single(c) => info_cmd.query_async(c).await?,
                Conn::Cluster(c) => {
                    // `INFO` fans out to every node on a cluster; one node tells the version.
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                    let value = c.route_command(info_cmd, routing).await?;
                    String::from_redis_value(value).map_err(redis::RedisError::from)?
                }
            };
            Ok::<Probe, Error>(Probe { round_trip, info })
        };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    #[test]
    fn refusals_do_not_count_on_the_breaker_connectivity_failures_do() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&io), Fault::Unreachable);
        let server = |k| RedisError::from((ErrorKind::Server(k), "reply"));
        for k in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
        ] {
            assert_eq!(classify(&server(k)), Fault::Unreachable, "{k:?}");
        }
        for k in [
            ServerErrorKind::NoPerm,
            ServerErrorKind::ReadOnly,
            ServerErrorKind::NoScript,
            ServerErrorKind::ResponseError,
            ServerErrorKind::CrossSlot,
            ServerErrorKind::ExecAbort,
        ] {
            assert_eq!(classify(&server(k)), Fault::Refused, "{k:?}");
        }
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert_eq!(classify(&auth), Fault::Denied);
        let client = RedisError::from((ErrorKind::Client, "connection closed"));
        assert_eq!(classify(&client), Fault::Unreachable);
        let typed = RedisError::from((ErrorKind::UnexpectedReturnType, "not a string"));
        assert_eq!(classify(&typed), Fault::Refused);
    }
}
