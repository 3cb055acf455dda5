//! The connection of one cache (a node or a whole cluster), the client it is opened with (TLS
//! when compiled in), and when a failure means the cluster's topology changed.

use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue, RedisFuture, Value};

use crate::cluster_api::{master_of, ClusterConnection, RoutingInfo, SingleNodeRoutingInfo};
use crate::config::Config;
use crate::error::Error;

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

/// A connection whose commands and pipelines all go to one cluster node chosen up front (a
/// single node: the node), whatever redis-rs's routing would pick.
pub(crate) struct Routed<'a> {
    conn: &'a mut Conn,
    route: SingleNodeRoutingInfo,
}

impl<'a> Routed<'a> {
    /// To the master of `key`'s slot, also when the cluster connection reads from replicas: for
    /// the reads that must see a write made a moment ago by another caller (see
    /// `Budget::read_master`), and for the reads of near-cache functions (whose local copies
    /// are invalidated by the masters).
    pub(crate) fn master(conn: &'a mut Conn, key: &[u8]) -> Self {
        Routed {
            conn,
            route: master_of(key),
        }
    }

    /// To the node at `host:port`.
    fn node(conn: &'a mut Conn, host: &str, port: u16) -> Self {
        Routed {
            conn,
            route: SingleNodeRoutingInfo::ByAddress {
                host: host.to_string(),
                port,
            },
        }
    }
}

impl redis::aio::ConnectionLike for Routed<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut *self.conn {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => {
                let routing = RoutingInfo::SingleNode(self.route.clone());
                Box::pin(async move { c.route_command(cmd.clone(), routing).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut *self.conn {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => {
                let route = self.route.clone();
                Box::pin(async move {
                    c.route_pipeline(pipeline.clone(), offset, count, route)
                        .await
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// Whether `e` is a redirect redis-rs gave up on, naming the node to go to (`ASK`: the slot is
/// migrating and the key is on the target already; `MOVED`: the slot has a new owner).
fn names_a_node(e: &redis::RedisError) -> bool {
    e.redirect_node().is_some()
}

/// `cmds` once more after redis-rs gave up on a redirect, as one pipeline to the node the
/// redirect names, `ASKING` in front for an `ASK`.
///
/// redis-rs sends `ASKING` as a request of its own on the target's multiplexed connection, so
/// under concurrency another request can take the one-shot `ASKING` flag first; the redirected
/// command then meets `MOVED` (back to the source), which answers `ASK` again, until redis-rs's
/// retries run out (measured in `tests/tests/cluster_topology.rs`: hundreds of calls failing
/// during a reshard, and their masters' breakers opening). A pipeline is written as one unit,
/// so nothing can come in between. The same ping-pong can end on the `MOVED` of the moment the
/// slot changes owner: that one is followed too.
async fn redirected<T: FromRedisValue>(
    conn: &mut Conn,
    e: redis::RedisError,
    cmds: Vec<Cmd>,
    single: bool,
) -> redis::RedisResult<T> {
    if matches!(conn, Conn::Single(_)) {
        // A single node configured on a cluster's node: nothing to follow.
        return Err(e);
    }
    let ask = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Ask);
    let Some((host, port)) = e
        .redirect_node()
        .and_then(|(addr, _slot)| addr.rsplit_once(':'))
        .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
    else {
        return Err(e);
    };
    let mut pipe = redis::pipe();
    if ask {
        pipe.cmd("ASKING").ignore();
    }
    for cmd in cmds {
        pipe.add_command(cmd);
    }
    let mut routed = Routed::node(conn, &host, port);
    match single {
        true => pipe
            .query_async::<(T,)>(&mut routed)
            .await
            .map(|(value,)| value),
        false => pipe.query_async::<T>(&mut routed).await,
    }
}

/// A future on a rare path (a redirect redis-rs gave up on: a reshard), boxed: the state machine
/// of every operation would otherwise hold it inline, and its drop code, copied wherever an
/// operation's future is dropped, would carry it too.
fn rare<'a, T>(
    future: impl std::future::Future<Output = T> + Send + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>> {
    Box::pin(future)
}

/// One command on `conn` (on the master of `master`'s slot when given), with a redirect redis-rs
/// gave up on followed once more (see [`redirected`]).
pub(crate) async fn query_cmd<T: FromRedisValue + Send>(
    conn: &mut Conn,
    cmd: &Cmd,
    master: Option<&[u8]>,
) -> redis::RedisResult<T> {
    let result = match master {
        Some(key) => cmd.query_async::<T>(&mut Routed::master(conn, key)).await,
        None => cmd.query_async::<T>(conn).await,
    };
    match result {
        Err(e) if names_a_node(&e) => rare(redirected(conn, e, vec![cmd.clone()], true)).await,
        other => other,
    }
}

/// [`query_cmd`] for a pipeline (not a transaction).
pub(crate) async fn query_pipe<T: FromRedisValue + Send>(
    conn: &mut Conn,
    pipe: &redis::Pipeline,
    master: Option<&[u8]>,
) -> redis::RedisResult<T> {
    let result = match master {
        Some(key) => pipe.query_async::<T>(&mut Routed::master(conn, key)).await,
        None => pipe.query_async::<T>(conn).await,
    };
    match result {
        Err(e) if names_a_node(&e) => {
            rare(redirected(
                conn,
                e,
                pipe.cmd_iter().cloned().collect(),
                false,
            ))
            .await
        }
        other => other,
    }
}

impl super::Op<'_> {
    /// Sends the operation on `conn`; the reply untyped (see `Store::run`).
    pub(super) async fn send(self, mut conn: Conn) -> redis::RedisResult<Value> {
        use super::Op;
        match self {
            Op::Cmd(cmd, master) => query_cmd::<Value>(&mut conn, cmd, master).await,
            Op::Pipe(pipe, master) => query_pipe::<Value>(&mut conn, pipe, master).await,
            Op::PipeAsIs(pipe) => pipe.query_async::<Value>(&mut conn).await,
            Op::Invoke(invocation) => invocation.invoke_async::<Value>(&mut conn).await,
            Op::On(cmd, target) => match &mut conn {
                Conn::Single(_) => cmd.query_async::<Value>(&mut conn).await,
                Conn::Cluster(c) => {
                    let routing = match target {
                        Target::Random => SingleNodeRoutingInfo::Random,
                        Target::Node(host, port) => SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        },
                    };
                    c.route_command(cmd.clone(), RoutingInfo::SingleNode(routing))
                        .await
                }
            },
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

/// A failure that may mean the cluster's topology changed (a master died or failed over).
pub(super) fn needs_topology_refresh<T>(
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
