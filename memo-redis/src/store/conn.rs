//! The connection of one cache (a node or a whole cluster), the client it is opened with (TLS
//! when compiled in), and when a failure means the cluster's topology changed.

use redis::aio::ConnectionManager;
use redis::{Cmd, RedisFuture, Value};

use crate::cluster_api::ClusterConnection;
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
