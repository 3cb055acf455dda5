//! The near cache on Redis Cluster: one tracking link per master, under a topology watch.
//!
//! `CLIENT TRACKING … BCAST` is per node: a master pushes invalidations for the keys written on
//! it, whichever slot they are in. So the tier needs a tracking link to every master, and to know
//! when the set of masters changes. The watch reads `CLUSTER SLOTS` once per heartbeat (and at
//! once when the store's own slot map changes, after a `MOVED` or a failed node), on a connection
//! of its own to any node (the masters it knows first, then the seed nodes):
//!
//! - a master that appears (a promoted replica, a node given slots) gets a link before a master
//!   that left is dropped, so the tier stays dark until the new link is up and in sync;
//! - any change of the map (masters, or slots moving between them) flushes the whole tier: a
//!   local copy of a key whose slot moved may have been read from a node that no longer sees its
//!   writes. Flushing everything is simpler than flushing per slot and costs one round of misses
//!   per change, which is rare;
//! - the watch is itself a link of the tier: each successful read is its sync point, a failed
//!   read takes it down (flush, dark) until a read succeeds again. So a master that took over
//!   without our noticing is never trusted past heartbeat + operation timeout.
//!
//! Each master's link is `track::link` without the epoch key: a cluster has only database 0 and
//! refuses `SWAPDB`, so there is no swap to detect; the heartbeat pings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo};

use super::track::{link, Running};
use super::{Near, HEARTBEAT};
use crate::config::Config;
use crate::store::cluster::{parse_slots, Nodes};
use crate::store::open_client;

/// The tracking links of the masters, each a task; dropping this stops them all.
struct Links {
    near: Arc<Near>,
    by_addr: HashMap<String, (u64, tokio::task::JoinHandle<()>)>,
}

impl Links {
    fn start(&mut self, addr: &str, config: Config) {
        let id = self.near.add_link();
        let near = Arc::clone(&self.near);
        let task = tokio::spawn(async move { link(&near, &config, id, false).await });
        self.by_addr.insert(addr.to_string(), (id, task));
    }

    /// Stops and forgets the links of masters not in `masters`.
    fn keep_only(&mut self, masters: &[&str]) {
        let near = &self.near;
        self.by_addr.retain(|addr, (id, task)| {
            let keep = masters.contains(&addr.as_str());
            if !keep {
                task.abort();
                near.remove_link(*id);
            }
            keep
        });
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.keep_only(&[]);
    }
}

/// The configuration of one node at `host:port`: the seed's scheme, credentials and TLS
/// settings with the node's address (as `CLUSTER SLOTS` announces it). `None` for an address
/// that does not parse or a seed that is not TCP.
fn node_config(config: &Config, addr: &str) -> Option<Config> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let seed: &ConnectionInfo = config.cluster_nodes.first()?;
    let mut at = seed.addr().clone();
    let scheme = match &mut at {
        ConnectionAddr::Tcp(h, p) => {
            *h = host.to_string();
            *p = port;
            "redis"
        }
        ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            *h = host.to_string();
            *p = port;
            "rediss"
        }
        _ => return None,
    };
    let mut node = config.clone();
    node.connection = seed.clone().set_addr(at);
    node.display_url = format!("{scheme}://{addr}");
    Some(node)
}

/// Where the watch reads the slot map: a connection to one node, moving on to the next
/// candidate when it fails.
struct Watch {
    conn: Option<redis::aio::MultiplexedConnection>,
    /// Index of the next candidate to try.
    next: usize,
}

impl Watch {
    /// The slot map as `(first, last, master)` ranges, sorted; `None` when no candidate answered
    /// within the operation timeout.
    async fn read(
        &mut self,
        config: &Config,
        known: &[(u16, u16, String)],
    ) -> Option<Vec<(u16, u16, String)>> {
        if self.conn.is_none() {
            self.conn = self.connect(config, known).await;
        }
        let conn = self.conn.as_mut()?;
        let reply = tokio::time::timeout(
            config.op_timeout,
            redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<redis::Value>(conn),
        )
        .await;
        match reply {
            Ok(Ok(value)) => {
                let mut ranges = parse_slots(&value);
                if ranges.is_empty() {
                    // A node that knows no slots (just restarted, not joined yet): ask another.
                    self.conn = None;
                    return None;
                }
                ranges.sort();
                Some(ranges)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "near cache: reading the cluster's slot map failed");
                self.conn = None;
                None
            }
            Err(_) => {
                self.conn = None;
                None
            }
        }
    }

    /// Connects to the next candidate that answers: the masters of the last map, then the
    /// seed nodes (one pass, each within the connect timeout).
    async fn connect(
        &mut self,
        config: &Config,
        known: &[(u16, u16, String)],
    ) -> Option<redis::aio::MultiplexedConnection> {
        let mut candidates: Vec<Config> = Vec::new();
        for (_, _, addr) in known {
            if let Some(c) = node_config(config, addr)
                && !candidates.iter().any(|o| o.display_url == c.display_url)
            {
                candidates.push(c);
            }
        }
        for seed in &config.cluster_nodes {
            let mut c = config.clone();
            c.connection = seed.clone();
            candidates.push(c);
        }
        let total = candidates.len();
        for _ in 0..total {
            let Some(candidate) = candidates.get(self.next % total) else {
                break;
            };
            self.next = self.next.wrapping_add(1);
            let Ok(client) = open_client(candidate) else {
                continue;
            };
            let conn_config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.op_timeout));
            if let Ok(Ok(conn)) = tokio::time::timeout(
                config.connect_timeout,
                client.get_multiplexed_async_connection_with_config(&conn_config),
            )
            .await
            {
                return Some(conn);
            }
        }
        None
    }
}

/// Waits for the store's notice that its slot map changed (never, without one).
async fn map_changed(nodes: Option<&Arc<Nodes>>) {
    match nodes {
        Some(nodes) => nodes.changed.notified().await,
        None => std::future::pending().await,
    }
}

/// The cluster's tracking task: the topology watch and one link per master, for as long as it
/// runs (dropping it stops every link and darkens the tier).
pub(super) async fn track(near: Arc<Near>, config: Config, nodes: Option<Arc<Nodes>>) {
    let _running = Running(Arc::clone(&near));
    let mut links = Links {
        near: Arc::clone(&near),
        by_addr: HashMap::new(),
    };
    let watch_link = near.add_link();
    let mut watch = Watch {
        conn: None,
        next: 0,
    };
    let mut known: Vec<(u16, u16, String)> = Vec::new();
    let mut watch_up = false;
    let mut backoff = Duration::ZERO;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {}
            () = map_changed(nodes.as_ref()) => {}
        }
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
        }
        let sent = Instant::now();
        let Some(ranges) = watch.read(&config, &known).await else {
            if watch_up {
                near.link_down(watch_link);
                tracing::debug!(
                    "near cache: the cluster's slot map cannot be read; local tier flushed"
                );
                watch_up = false;
            }
            backoff = (backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(2));
            continue;
        };
        backoff = Duration::ZERO;
        if ranges != known {
            if !known.is_empty() {
                near.flush();
                tracing::debug!("near cache: the cluster's slot map changed; local tier flushed");
            }
            let mut masters: Vec<&str> = ranges.iter().map(|(_, _, a)| a.as_str()).collect();
            masters.sort_unstable();
            masters.dedup();
            // New masters' links first: the tier stays dark until they are up.
            for addr in &masters {
                if !links.by_addr.contains_key(*addr) {
                    match node_config(&config, addr) {
                        Some(node) => links.start(addr, node),
                        None => {
                            tracing::warn!(node = %addr, "memo-redis: near cache: a master's address cannot be used; `local` functions use Redis only");
                        }
                    }
                }
            }
            links.keep_only(&masters);
            known = ranges;
        }
        if known
            .iter()
            .any(|(_, _, addr)| !links.by_addr.contains_key(addr))
        {
            // A master without a link: its writes would go unseen, so nothing is served.
            if watch_up {
                near.link_down(watch_link);
                watch_up = false;
            }
            continue;
        }
        if watch_up {
            near.link_synced(watch_link, sent);
        } else {
            near.link_up(watch_link, sent);
            watch_up = true;
        }
    }
}
