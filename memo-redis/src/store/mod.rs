//! The Redis side: one lazily created, auto-reconnecting multiplexed connection per cache (a
//! `ConnectionManager` for a single node, a cluster-aware `ClusterConnection` for Redis Cluster),
//! every operation bounded by the operation timeout and accounted on the circuit breaker.
//!
//! Here: the [`Store`] and how one operation runs (breaker, timeout, retry on a dropped
//! connection, topology refresh, logging). Beside it: the connection and client (`conn.rs`), what
//! a failure means (`fault.rs`), the typed commands and scripts (`commands.rs`, `lock.rs`), one
//! call's time budget (`budget.rs`) and the health probe (`probe.rs`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Script};

use crate::breaker::{Admit, Breaker};
use crate::cluster_api::ClusterClient;
use crate::config::Config;
use crate::error::Error;
use crate::log::RateLimited;
use breakers::Breakers;

mod breakers;
mod budget;
pub(crate) mod cluster;
mod coalesce;
mod commands;
mod conn;
mod fault;
mod lock;
mod probe;

pub(crate) use budget::Budget;
use coalesce::{Reads, Writing};
pub(crate) use commands::{evalsha, WriteFailed};
use conn::needs_topology_refresh;
use conn::query_cmd;
pub(crate) use conn::{open_client, Conn, Target};
use fault::Refusal;
pub(crate) use fault::{classify, Fault};

pub(crate) struct Store {
    pub(crate) client: redis::Client,
    manager_config: ConnectionManagerConfig,
    cluster: Option<ClusterClient>,
    /// Serializes the creation of the cluster connection (an async handshake).
    cluster_init: Arc<tokio::sync::Mutex<()>>,
    /// How long a background rebuild of the cluster connection may take.
    rebuild_limit: Duration,
    /// When the cluster connection was last dropped for a rebuild (ms since `created`).
    cluster_rebuilt_ms: std::sync::atomic::AtomicU64,
    created: std::time::Instant,
    conn: Arc<RwLock<Option<Conn>>>,
    op_timeout: Duration,
    pub(crate) breaker: Breakers,
    errors_log: RateLimited,
    /// One rate-limited warning per refused error code (`NOPERM`, `READONLY`, `OOM`, …).
    refusals_log: std::sync::Mutex<Vec<(String, std::sync::Arc<RateLimited>)>>,
    /// `GETEX` was refused (read-only replica, ACL): sliding reads use `GET`.
    getex_refused: Refusal,
    /// A cluster whose reads go to replicas (`REDIS_READ_FROM_REPLICAS`).
    replica_reads: bool,
    /// When the slot map was last (re-)read or a re-read was started (ms since `created`).
    slot_map_ms: std::sync::atomic::AtomicU64,
    repair: Script,
    release: Script,
    url: String,
    /// Plain `GET`s in flight, shared by concurrent callers of one key (`coalesce.rs`).
    reads: Reads,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Where one operation goes, for the breaker it is accounted on (cluster only; ignored on a
/// single node).
#[derive(Clone, Copy)]
pub(crate) enum Route<'a> {
    /// No single master (keyless or multi-key): the cache-wide breaker.
    Any,
    /// The master of this key's slot.
    Key(&'a [u8]),
    /// The master of this command's key (see `cluster::routing_key`).
    Cmd(&'a Cmd),
    /// The node at this address.
    Node(&'a str, u16),
}

/// One Redis operation as data, for [`Store::run`]: the typed commands differ only in their
/// operation and reply type, so the code that sends it (breaker, connection, timeout, retry,
/// redirect) is compiled once instead of once per command and reply type.
#[derive(Clone, Copy)]
pub(crate) enum Op<'a> {
    /// One command; on the master of this key's slot when given (see `conn::query_cmd`).
    Cmd(&'a Cmd, Option<&'a [u8]>),
    /// A pipeline (not a transaction); on the master of this key's slot when given (see
    /// `conn::query_pipe`).
    Pipe(&'a redis::Pipeline, Option<&'a [u8]>),
    /// A pipeline as redis-rs sends it (no redirect followed: single-node callers).
    PipeAsIs(&'a redis::Pipeline),
    /// A prepared script invocation (`EVALSHA`, loading the script on `NOSCRIPT`).
    Invoke(&'a redis::ScriptInvocation<'a>),
    /// One command on the cluster node `Target` names (a single node: the node).
    On(&'a Cmd, &'a Target),
}

/// An operation's outcome before [`Store::settle`]: Redis's reply, or the deadline passed.
type Sent<T> = Result<redis::RedisResult<T>, tokio::time::error::Elapsed>;

/// The breaker an operation is accounted on, and the master's address on a cluster.
#[derive(Clone, Copy)]
struct Picked<'a> {
    breaker: &'a Breaker,
    node: Option<&'a str>,
}

/// Least time between two rebuilds of the cluster connection.
const CLUSTER_REBUILD_INTERVAL: Duration = Duration::from_millis(250);

/// Longest time the per-master breakers' slot map goes without a re-read while operations run.
/// redis-rs follows `MOVED` redirects and re-reads its own slot map without telling us, so after
/// a reshard (or a manual failover) the breakers would keep accounting moved slots on their old
/// master; a re-read at this age bounds that (one `CLUSTER SLOTS` per cache per interval, in the
/// background, only while the cache is used).
pub(crate) const SLOT_MAP_MAX_AGE: Duration = Duration::from_secs(2);

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
        let replica_reads = config.read_from_replicas && !config.cluster_nodes.is_empty();
        let cluster = if config.cluster_nodes.is_empty() {
            None
        } else {
            let builder =
                cluster::with_tls(ClusterClient::builder(config.cluster_nodes.clone()), config);
            let builder = match replica_reads {
                true => crate::cluster_api::read_from_replicas(builder),
                false => builder,
            };
            Some(
                builder
                    .connection_timeout(config.connect_timeout)
                    // One node's reply, including redis-rs's own slot refresh after a node
                    // failed, which blocks every request of the connection while it waits on
                    // the failed node: a quarter of the operation timeout, so a refresh stalled
                    // on a dead master leaves the calls on the healthy ones time to finish.
                    .response_timeout(cluster::response_timeout(config.op_timeout))
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
            cluster_init: Arc::new(tokio::sync::Mutex::new(())),
            rebuild_limit: config.connect_timeout.saturating_add(config.op_timeout),
            cluster_rebuilt_ms: std::sync::atomic::AtomicU64::new(0),
            created: std::time::Instant::now(),
            conn: Arc::new(RwLock::new(None)),
            op_timeout: config.op_timeout,
            breaker: Breakers::new(
                config.breaker_threshold,
                config.breaker_cooldown,
                !config.cluster_nodes.is_empty(),
            ),
            errors_log: RateLimited::new(),
            refusals_log: std::sync::Mutex::new(Vec::new()),
            getex_refused: Refusal::default(),
            replica_reads,
            slot_map_ms: std::sync::atomic::AtomicU64::new(0),
            repair: Script::new(commands::REPAIR_LUA),
            release: Script::new(lock::RELEASE_LUA),
            url: config.display_url.clone(),
            reads: Reads::default(),
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
            let mut guard = self.conn.write().map_err(|_| {
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
            let mut c = cluster.get_async_connection().await?;
            if let Some(nodes) = &self.breaker.nodes {
                cluster::read_slot_map(&mut c, nodes).await;
                self.slot_map_read();
            }
            let c = Conn::Cluster(c);
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
        let route = match target {
            Target::Random => Route::Any,
            Target::Node(host, port) => Route::Node(host, *port),
        };
        self.run(route, self.op_timeout, Op::On(cmd, target)).await
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
    ///
    /// The command may write any key: when it is over, reads in flight take no new followers
    /// (see `coalesce.rs`). Reads use [`Store::read_within`].
    pub(crate) async fn query_within<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        limit: Duration,
    ) -> Result<T, Error> {
        let _writing = Writing {
            reads: &self.reads,
            key: None,
        };
        self.read_within(cmd, limit).await
    }

    /// [`Store::query_within`] for a command that writes nothing.
    pub(crate) async fn read_within<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        limit: Duration,
    ) -> Result<T, Error> {
        self.run(Route::Cmd(cmd), limit, Op::Cmd(cmd, None)).await
    }

    /// Whether an operation on `key` (full key) would bypass Redis now: the breaker of the
    /// master serving it is open (on a single node: the breaker is). No side effect, lock-free;
    /// for a caller that wants to skip a call's Redis work up front.
    #[allow(dead_code)]
    #[inline]
    pub(crate) fn bypassing_key(&self, key: &str) -> bool {
        self.pick(Route::Key(key.as_bytes())).breaker.bypassing()
    }

    /// The master whose breaker accounts operations on `key` (full key); `None` on a single
    /// node or while the slot map does not name the slot's master.
    pub(crate) fn breaker_node_of(&self, key: &str) -> Option<String> {
        self.pick(Route::Key(key.as_bytes()))
            .node
            .map(str::to_string)
    }

    /// The breaker an operation is accounted on: the single node's; on a cluster, the breaker of
    /// the master its key's slot maps to, or the cache-wide one when it has no single key (or
    /// the map does not name the slot's master yet).
    #[inline]
    fn pick(&self, route: Route<'_>) -> Picked<'_> {
        let whole = Picked {
            breaker: &self.breaker.whole,
            node: None,
        };
        let Some(nodes) = &self.breaker.nodes else {
            return whole;
        };
        let node = match route {
            Route::Any => None,
            Route::Key(key) => nodes.for_key(key),
            Route::Cmd(cmd) => cluster::routing_key(cmd).and_then(|k| nodes.for_key(k)),
            Route::Node(host, port) => nodes.for_addr(host, port),
        };
        match node {
            Some(n) => Picked {
                breaker: &n.breaker,
                node: Some(&n.addr),
            },
            None => whole,
        }
    }

    /// Runs one operation under the breaker and `limit`, counting its outcome on the breaker;
    /// its reply converted to `T` (a reply of the wrong type is the server's refusal of this
    /// command, as with redis-rs's typed queries).
    ///
    /// Everything but the conversion is [`Store::exec`], compiled once for every operation and
    /// reply type (see [`Op`]).
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        route: Route<'_>,
        limit: Duration,
        op: Op<'_>,
    ) -> Result<T, Error> {
        let (picked, result) = crate::outline::Outlined::new(self.exec(route, limit, op)).await?;
        let result = result.map(|r| {
            r.and_then(|v| redis::from_redis_value::<T>(v).map_err(redis::RedisError::from))
        });
        self.settle(picked, result, limit)
    }

    /// [`Store::run`] up to the reply: breaker, connection, `limit`, the retry; the outcome is
    /// for [`Store::settle`] (`Err` when the operation never reached Redis, already settled).
    async fn exec<'s>(
        &'s self,
        route: Route<'_>,
        limit: Duration,
        op: Op<'_>,
    ) -> Result<(Picked<'s>, Sent<redis::Value>), Error> {
        let (picked, conn, deadline) = self.begin(route, limit).await?;
        let mut result = tokio::time::timeout_at(deadline, op.send(conn)).await;
        if let Some(conn) = self.retry_conn(&result, deadline) {
            result = tokio::time::timeout_at(deadline, op.send(conn)).await;
        }
        if self.cluster.is_some() && needs_topology_refresh(&result) {
            self.rebuild_cluster_connection();
        }
        Ok((picked, result))
    }

    /// [`Store::run`] for an operation that is code rather than data (a fallback within the
    /// operation): `op` makes the operation's future, once more for the retry.
    async fn run_op<T, F, Fut>(&self, route: Route<'_>, limit: Duration, op: F) -> Result<T, Error>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let (picked, conn, deadline) =
            crate::outline::Outlined::new(self.begin(route, limit)).await?;
        let mut result = tokio::time::timeout_at(deadline, op(conn)).await;
        if let Some(conn) = self.retry_conn(&result, deadline) {
            result = tokio::time::timeout_at(deadline, op(conn)).await;
        }
        if self.cluster.is_some() && needs_topology_refresh(&result) {
            self.rebuild_cluster_connection();
        }
        self.settle(picked, result, limit)
    }

    /// The start of every operation: the runtime check, the breaker, the connection; and the
    /// deadline, counted from now: one deadline for the connection, the command and a retry.
    async fn begin(
        &self,
        route: Route<'_>,
        limit: Duration,
    ) -> Result<(Picked<'_>, Conn, tokio::time::Instant), Error> {
        // Not a Redis failure: the breaker is left alone.
        crate::runtime::check()?;
        let picked = self.pick(route);
        if picked.breaker.allow() == Admit::No {
            return Err(Error::BreakerOpen);
        }
        let total = limit;
        let started = std::time::Instant::now();
        if self.breaker.nodes.is_some() {
            self.refresh_slot_map_if_old(started);
        }
        // The connection is there on every call but the first: no await, no time spent.
        let (conn, waited) = match self.cached_connection() {
            Some(c) => (c, false),
            None => match self.connection(limit).await {
                Ok(c) => (c, true),
                Err(e) => {
                    self.failed(picked, &e);
                    return Err(e);
                }
            },
        };
        let deadline = tokio::time::Instant::from_std(started) + limit;
        let left = match waited {
            true => limit.saturating_sub(started.elapsed()),
            false => limit,
        };
        if left < Duration::from_millis(1) {
            let e = Error::Timeout(total);
            self.failed(picked, &e);
            return Err(e);
        }
        Ok((picked, conn, deadline))
    }

    /// A connection that died while idle (server restarted) fails the first command with an I/O
    /// error and makes the manager reconnect at once; one retry on the fresh connection, within
    /// the same deadline, lets the first call after Redis returns be served.
    fn retry_conn<T>(&self, result: &Sent<T>, deadline: tokio::time::Instant) -> Option<Conn> {
        match result {
            Ok(Err(e))
                if (e.is_io_error() || e.is_connection_dropped())
                    && deadline.saturating_duration_since(tokio::time::Instant::now())
                        >= Duration::from_millis(1) =>
            {
                self.cached_connection()
            }
            _ => None,
        }
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
            self.rebuild_in_background();
        }
    }

    /// Starts a re-read of the slot map when the last one is older than [`SLOT_MAP_MAX_AGE`]
    /// (lock-free: one atomic load on the way of every operation, a compare-exchange when due).
    fn refresh_slot_map_if_old(&self, now: std::time::Instant) {
        use std::sync::atomic::Ordering;
        let now = u64::try_from(now.saturating_duration_since(self.created).as_millis())
            .unwrap_or(u64::MAX);
        let last = self.slot_map_ms.load(Ordering::Relaxed);
        let age = u64::try_from(SLOT_MAP_MAX_AGE.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < age {
            return;
        }
        if self
            .slot_map_ms
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.reread_slot_map();
        }
    }

    /// Notes that the slot map was just read (by a connection build).
    fn slot_map_read(&self) {
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.slot_map_ms
            .store(now.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs a one-key command on the master of `key`'s slot (see `conn::Routed::master`); the same as
    /// [`Store::query_within`] unless the cache reads from replicas.
    pub(crate) async fn query_master<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        key: &[u8],
        limit: Duration,
    ) -> Result<T, Error> {
        if !self.replica_reads {
            return self.read_within(cmd, limit).await;
        }
        self.run(Route::Key(key), limit, Op::Cmd(cmd, Some(key)))
            .await
    }

    /// Reads the slot map again through the current connection, in a task of its own.
    fn reread_slot_map(&self) {
        let (Some(nodes), Some(Conn::Cluster(mut conn)), Ok(runtime)) = (
            self.breaker.nodes.clone(),
            self.cached_connection(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let limit = self.op_timeout;
        runtime.spawn(async move {
            let _ = tokio::time::timeout(limit, cluster::read_slot_map(&mut conn, &nodes)).await;
        });
    }

    /// Builds the new cluster connection (and reads the slot map) in a task of its own and swaps
    /// it in when ready; until then the old connection keeps serving the healthy masters, so a
    /// master that hangs on connect delays no call on the others. Without a runtime to spawn on:
    /// the connection is dropped and the next operation builds one.
    #[cfg_attr(
        not(feature = "cluster"),
        allow(
            unreachable_code,
            unused_variables,
            reason = "without the `cluster` feature no cluster client exists (see cluster_api)"
        )
    )]
    fn rebuild_in_background(&self) {
        let (Some(client), Ok(runtime)) = (&self.cluster, tokio::runtime::Handle::try_current())
        else {
            self.close();
            return;
        };
        let client = client.clone();
        let init = Arc::clone(&self.cluster_init);
        let slot = Arc::clone(&self.conn);
        let nodes = self.breaker.nodes.clone();
        let limit = self.rebuild_limit;
        let url = self.url.clone();
        runtime.spawn(async move {
            let built = tokio::time::timeout(limit, async {
                let _init = init.lock().await;
                let mut c = client.get_async_connection().await?;
                if let Some(nodes) = &nodes {
                    cluster::read_slot_map(&mut c, nodes).await;
                }
                if let Ok(mut guard) = slot.write() {
                    *guard = Some(Conn::Cluster(c));
                }
                Ok::<(), redis::RedisError>(())
            })
            .await;
            match built {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(url = %url, error = %e, "rebuilding the cluster connection failed; the old one keeps serving");
                }
                Err(_) => {
                    tracing::debug!(url = %url, "rebuilding the cluster connection timed out; the old one keeps serving");
                }
            }
        });
    }

    fn settle<T>(&self, picked: Picked<'_>, result: Sent<T>, limit: Duration) -> Result<T, Error> {
        match result {
            Ok(Ok(v)) => {
                self.reachable(picked);
                Ok(v)
            }
            Ok(Err(e)) => Err(self.settle_error(picked, e)),
            Err(_) => {
                let e = Error::Timeout(limit);
                self.failed(picked, &e);
                Err(e)
            }
        }
    }

    /// [`Store::settle`] of a failed operation (not generic: compiled once).
    fn settle_error(&self, picked: Picked<'_>, e: redis::RedisError) -> Error {
        match classify(&e) {
            Fault::Denied => {
                // Wrong credentials do not heal by retrying every call: open the breaker at
                // once (one log line) and let the probes find out when an operator fixed it.
                let e = Error::from(e);
                if picked.breaker.trip() {
                    self.opened(picked);
                    tracing::error!(
                        url = %self.url,
                        node = picked.node,
                        error = %e,
                        "redis refused access (credentials); circuit breaker opened, cached functions run their bodies directly"
                    );
                }
                e
            }
            Fault::Refused => {
                // The server answered: it is reachable, only this command was refused.
                self.reachable(picked);
                self.refused(&e);
                if e.code() == Some("WRONGTYPE") {
                    // Foreign data under our key: the caller repairs it.
                    return Error::WrongType;
                }
                Error::from(e)
            }
            Fault::Unreachable if picked.node.is_some() && cluster::is_redirect(&e) => {
                // The slot is moving (a reshard) and redis-rs ran out of redirects: the
                // master answered at once and serves its other slots; opening its breaker
                // would bypass all of them for a cooldown. Not counted, as `CLUSTERDOWN`.
                let e = Error::from(e);
                self.errors_log.hit(|suppressed| {
                    tracing::warn!(url = %self.url, node = picked.node, error = %e, suppressed, "redis cluster slot moving; cached calls run their bodies, explicit operations return the error");
                });
                e
            }
            Fault::Unreachable if picked.node.is_some() && cluster::is_cluster_down(&e) => {
                // The whole cluster refuses (a master failed and its replica is not promoted
                // yet): this master answered at once and will serve again the moment the
                // cluster is. Opening its breaker would bypass it for a whole cooldown after
                // that; a fast refusal costs no wait, so it is not counted.
                let e = Error::from(e);
                self.errors_log.hit(|suppressed| {
                    tracing::warn!(url = %self.url, node = picked.node, error = %e, suppressed, "redis cluster down; cached calls run their bodies, explicit operations return the error");
                });
                e
            }
            Fault::Unreachable => {
                let e = Error::from(e);
                self.failed(picked, &e);
                e
            }
        }
    }

    /// Redis answered: reset the failure count, and close an open breaker (this was its probe).
    fn reachable(&self, picked: Picked<'_>) {
        if picked.breaker.success() {
            self.transition(picked, false);
            tracing::info!(url = %self.url, node = picked.node, "redis reachable again; circuit breaker closed");
        }
    }

    /// A breaker opened: gauges, and the count of open masters on a cluster.
    fn opened(&self, picked: Picked<'_>) {
        self.transition(picked, true);
    }

    fn transition(&self, picked: Picked<'_>, open: bool) {
        use std::sync::atomic::Ordering;
        match (picked.node, &self.breaker.nodes) {
            (Some(node), Some(nodes)) => {
                if open {
                    nodes.open.fetch_add(1, Ordering::AcqRel);
                } else {
                    // Saturating: never below 0 whatever the interleaving.
                    let _ = nodes
                        .open
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                            Some(n.saturating_sub(1))
                        });
                }
                crate::breaker::node_gauge(&self.url, node, open);
                if !open {
                    // The probe may have been served by a promoted replica (redis-rs follows
                    // `MOVED` by itself) while our map still names the failed master: read it
                    // again so per-master states name the masters that serve.
                    self.reread_slot_map();
                }
                crate::breaker::gauge(
                    &self.url,
                    self.breaker.state() == crate::breaker::BreakerState::Open,
                );
            }
            _ => crate::breaker::gauge(&self.url, open),
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

    fn failed(&self, picked: Picked<'_>, e: &Error) {
        if picked.breaker.failure() {
            self.opened(picked);
            tracing::warn!(
                url = %self.url,
                node = picked.node,
                error = %e,
                "redis failing; circuit breaker opened, cached functions run their bodies directly"
            );
        } else {
            self.errors_log.hit(|suppressed| {
                tracing::warn!(url = %self.url, node = picked.node, error = %e, suppressed, "redis operation failed; cached calls run their bodies, explicit operations return the error");
            });
        }
    }
}
