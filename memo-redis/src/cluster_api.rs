//! The redis-rs Redis Cluster types the store uses, or stand-ins for them when memo-redis is built
//! without its `cluster` feature.
//!
//! redis-rs's async cluster client (its `cluster-async` feature: slot routing, topology discovery,
//! redirects) is the largest part of a release binary that links memo-redis, so it is opt-in. The
//! stand-ins keep the store's code identical in both builds: [`ClusterClient`] and
//! [`ClusterConnection`] have no values, so every cluster branch is statically unreachable, and
//! building a cluster client fails with [`ConfigError::Unsupported`](crate::ConfigError) naming the
//! feature (when `REDIS_CLUSTER_NODES`, a multi-host URL or `Config::cluster_nodes` asks for one).

#[cfg(feature = "cluster")]
pub(crate) use redis::cluster::{ClusterClient, ClusterClientBuilder};
#[cfg(feature = "cluster")]
pub(crate) use redis::cluster_async::ClusterConnection;
#[cfg(feature = "cluster")]
pub(crate) use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

#[cfg(not(feature = "cluster"))]
pub(crate) use off::{
    master_of, read_from_replicas, ClusterClient, ClusterClientBuilder, ClusterConnection,
    RoutingInfo, SingleNodeRoutingInfo,
};

/// `builder` with reads (the commands redis-rs deems read-only: `GET`, `MGET`, `PTTL`, `EXISTS`,
/// …, and pipelines made only of them) sent to a random replica of the key's master; writes and
/// every other command stay on the master. A slot without a replica is read on its master.
#[cfg(feature = "cluster")]
pub(crate) fn read_from_replicas(builder: ClusterClientBuilder) -> ClusterClientBuilder {
    builder.read_routing_strategy(redis::cluster_read_routing::RandomReplicaStrategy)
}

/// The master of `key`'s slot, whatever the read routing.
#[cfg(feature = "cluster")]
pub(crate) fn master_of(key: &[u8]) -> SingleNodeRoutingInfo {
    use redis::cluster_routing::{Route, SlotAddr};
    SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master))
}

#[cfg(not(feature = "cluster"))]
mod off {
    use std::time::Duration;

    use redis::{Cmd, ConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

    use crate::error::{ConfigError, Error};

    /// What a configuration that names cluster nodes gets without the `cluster` feature.
    fn unsupported() -> Error {
        Error::Config(ConfigError::Unsupported(
            "Redis Cluster nodes are configured (REDIS_CLUSTER_NODES, a multi-host REDIS_URL or \
             Config::cluster_nodes) but memo-redis was built without its `cluster` feature; \
             enable it: memo-redis = { version = \"0.1\", features = [\"cluster\"] }"
                .to_owned(),
        ))
    }

    /// Never constructed: [`ClusterClientBuilder::build`] always fails.
    #[derive(Clone, Debug)]
    pub(crate) enum ClusterClient {}

    impl ClusterClient {
        pub(crate) fn builder(_nodes: Vec<ConnectionInfo>) -> ClusterClientBuilder {
            ClusterClientBuilder
        }

        pub(crate) async fn get_async_connection(&self) -> RedisResult<ClusterConnection> {
            match *self {}
        }
    }

    /// Accepts redis-rs's builder settings and fails in [`ClusterClientBuilder::build`].
    pub(crate) struct ClusterClientBuilder;

    impl ClusterClientBuilder {
        pub(crate) fn connection_timeout(self, _: Duration) -> Self {
            self
        }
        pub(crate) fn response_timeout(self, _: Duration) -> Self {
            self
        }
        pub(crate) fn retries(self, _: u32) -> Self {
            self
        }
        pub(crate) fn min_retry_wait(self, _: u64) -> Self {
            self
        }
        pub(crate) fn max_retry_wait(self, _: u64) -> Self {
            self
        }
        pub(crate) fn build(self) -> Result<ClusterClient, Error> {
            Err(unsupported())
        }
    }

    /// Never constructed (no [`ClusterClient`] exists to create one).
    #[derive(Clone)]
    pub(crate) enum ClusterConnection {}

    impl ClusterConnection {
        pub(crate) async fn route_command(
            &mut self,
            _cmd: Cmd,
            _routing: RoutingInfo,
        ) -> RedisResult<Value> {
            match *self {}
        }

        pub(crate) async fn route_pipeline(
            &mut self,
            _pipeline: Pipeline,
            _offset: usize,
            _count: usize,
            _route: SingleNodeRoutingInfo,
        ) -> RedisResult<Vec<Value>> {
            match *self {}
        }
    }

    /// Without a cluster client there are no replicas to read from.
    pub(crate) fn read_from_replicas(builder: ClusterClientBuilder) -> ClusterClientBuilder {
        builder
    }

    /// Never used without a cluster connection.
    pub(crate) fn master_of(_key: &[u8]) -> SingleNodeRoutingInfo {
        SingleNodeRoutingInfo::Random
    }

    impl redis::aio::ConnectionLike for ClusterConnection {
        fn req_packed_command<'a>(&'a mut self, _: &'a Cmd) -> RedisFuture<'a, Value> {
            match *self {}
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a Pipeline,
            _: usize,
            _: usize,
        ) -> RedisFuture<'a, Vec<Value>> {
            match *self {}
        }

        fn get_db(&self) -> i64 {
            match *self {}
        }
    }

    /// Mirrors `redis::cluster_routing::RoutingInfo` (the variant the store uses).
    #[allow(
        dead_code,
        reason = "built by the store's cluster branches, never read without a cluster"
    )]
    pub(crate) enum RoutingInfo {
        SingleNode(SingleNodeRoutingInfo),
    }

    /// Mirrors `redis::cluster_routing::SingleNodeRoutingInfo` (the variants the store uses).
    #[allow(
        dead_code,
        reason = "built by the store's cluster branches, never read without a cluster"
    )]
    #[derive(Clone)]
    pub(crate) enum SingleNodeRoutingInfo {
        Random,
        ByAddress { host: String, port: u16 },
    }
}

#[cfg(all(test, not(feature = "cluster")))]
mod tests {
    use crate::{Cache, Config, ConfigError, Error};

    #[test]
    fn cluster_nodes_without_the_feature_are_refused_naming_it() {
        static CACHE: Cache = Cache::from_env();
        let config = Config::builder()
            .cluster_nodes(["127.0.0.1:7000", "127.0.0.1:7001"])
            .build()
            .expect("a valid cluster configuration");
        let err = CACHE
            .install(config)
            .expect_err("no cluster support compiled in");
        assert!(
            matches!(&err, Error::Config(ConfigError::Unsupported(m)) if m.contains("`cluster` feature")),
            "{err}"
        );
    }
}
