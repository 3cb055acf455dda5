//! The health probe: `PING` and `INFO server` outside the breaker.

use std::time::Duration;

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::FromRedisValue;

use super::{Conn, Store};
use crate::error::Error;

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
