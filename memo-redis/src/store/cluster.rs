//! Redis Cluster only: a circuit breaker per master, found from the slot map.
//!
//! A key's node is the master that owns its hash slot (CRC16 of the key, or of its `{hash tag}`,
//! modulo 16384: the same owner redis-rs's cluster connection routes the command to). The slot
//! map is read with `CLUSTER SLOTS` each time the cluster connection is (re)built, i.e. at start
//! and after every topology change the store notices; between two reads a failed-over master's
//! slots still name the dead node, whose breaker bypasses them until the next rebuild moves them
//! to the promoted replica (whose breaker is closed).
//!
//! The lookup on the call path is lock-free: two atomic loads (the slot's owner, then the node)
//! into tables allocated once per cache. Nodes are only ever added (a dead master's entry stays,
//! no longer serving slots), up to [`MAX_NODES`]; slots of a node beyond that, and slots not in
//! the map yet, fall back to the cache-wide breaker.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use redis::Value;

use crate::breaker::{Breaker, BreakerState};
use crate::slot::{slot_of, SLOTS};

/// Distinct master addresses remembered per cache (a cluster of hundreds of masters is beyond
/// this crate's tests; their extra nodes share the cache-wide breaker).
pub(crate) const MAX_NODES: usize = 256;
/// `owner` entry of a slot not in the map.
const NO_NODE: u16 = u16::MAX;

/// The key a command is routed by, for the commands the store sends with one key first
/// (`GET key`, `SET key …`, `DEL key`, …). `None` for keyless or multi-key commands: they are
/// accounted on the cache-wide breaker.
pub(crate) fn routing_key(cmd: &redis::Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter();
    let name = match args.next()? {
        redis::Arg::Simple(name) => name,
        _ => return None,
    };
    const KEYED: &[&[u8]] = &[
        b"GET", b"GETEX", b"SET", b"PTTL", b"EXISTS", b"ZCARD", b"ZPOPMIN", b"ZADD", b"ZREM",
        b"DEL", b"UNLINK", b"EXPIRE", b"PEXPIRE",
    ];
    if !KEYED.iter().any(|k| k.eq_ignore_ascii_case(name)) {
        return None;
    }
    let key = match args.next()? {
        redis::Arg::Simple(key) => key,
        _ => return None,
    };
    // `DEL a b` / `UNLINK a b …` may span several nodes.
    let multi_key = name.eq_ignore_ascii_case(b"DEL") || name.eq_ignore_ascii_case(b"UNLINK");
    if multi_key && args.next().is_some() {
        return None;
    }
    Some(key)
}

/// redis-rs's response timeout on a cluster: a quarter of the operation timeout (at least 1 ms).
pub(crate) fn response_timeout(op_timeout: Duration) -> Duration {
    (op_timeout / 4).max(Duration::from_millis(1))
}

/// The private CA (`REDIS_TLS_CA_CERT`) for a TLS cluster (`rediss://` seed nodes or
/// `REDIS_SSL=true`); redis-rs takes TLS itself from the first seed node's scheme and trusts the
/// platform's roots without a CA.
#[cfg(all(feature = "tls", feature = "cluster"))]
pub(crate) fn with_tls(
    builder: crate::cluster_api::ClusterClientBuilder,
    config: &crate::config::Config,
) -> crate::cluster_api::ClusterClientBuilder {
    match &config.tls_ca_cert {
        Some(ca) => builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.clone()),
        }),
        None => builder,
    }
}

/// Without the `tls` feature a TLS configuration is refused before a store is built (and without
/// the `cluster` feature no cluster client is ever built).
#[cfg(not(all(feature = "tls", feature = "cluster")))]
pub(crate) fn with_tls(
    builder: crate::cluster_api::ClusterClientBuilder,
    _config: &crate::config::Config,
) -> crate::cluster_api::ClusterClientBuilder {
    builder
}

/// `CLUSTERDOWN`: the cluster as a whole refuses commands (slots without a master while a
/// failover is pending, with `cluster-require-full-coverage yes`, the default).
pub(crate) fn is_cluster_down(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown)
        || e.code() == Some("CLUSTERDOWN")
}

/// A redirect redis-rs did not resolve within its retries (`MOVED`, `ASK`, `TRYAGAIN`): the slot
/// is moving between masters (a reshard), the node answered.
pub(crate) fn is_redirect(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::Moved | ServerErrorKind::Ask | ServerErrorKind::TryAgain
        )
    )
}

/// One master's breaker.
#[derive(Debug)]
pub(crate) struct Node {
    /// `host:port`, as the cluster announces it.
    pub(crate) addr: String,
    pub(crate) breaker: Breaker,
    /// Whether the last slot map gave it slots (a failed master keeps its entry, not its slots).
    serving: AtomicBool,
}

/// The per-master breakers of one cluster cache and the slot → master map.
pub(crate) struct Nodes {
    threshold: u32,
    cooldown: Duration,
    /// Slot → index into `nodes` ([`NO_NODE`] until the map names an owner).
    owner: Box<[AtomicU16]>,
    nodes: Box<[OnceLock<Node>]>,
    /// How many entries of `nodes` are set.
    len: AtomicUsize,
    /// How many node breakers are open: the whole-cache checks read only this while it is 0.
    pub(crate) open: AtomicUsize,
    /// Serializes map updates (rare: per connection rebuild, and every `SLOT_MAP_MAX_AGE` in use).
    updating: Mutex<()>,
    /// Notified when an update changed the map (the near cache's topology watch reads the
    /// cluster's map again at once).
    pub(crate) changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nodes")
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Nodes {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Nodes {
        Nodes {
            threshold,
            cooldown,
            owner: (0..SLOTS).map(|_| AtomicU16::new(NO_NODE)).collect(),
            nodes: (0..MAX_NODES).map(|_| OnceLock::new()).collect(),
            len: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            updating: Mutex::new(()),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Every node seen so far (serving slots or not).
    fn all(&self) -> impl Iterator<Item = &Node> {
        let len = self.len.load(Ordering::Acquire);
        self.nodes[..len].iter().filter_map(OnceLock::get)
    }

    /// The masters of the current slot map.
    pub(crate) fn serving(&self) -> impl Iterator<Item = &Node> {
        self.all().filter(|n| n.serving.load(Ordering::Acquire))
    }

    /// The breaker of the master that owns `key`'s slot, if the map names one.
    #[inline]
    pub(crate) fn for_key(&self, key: &[u8]) -> Option<&Node> {
        let owner = self.owner[usize::from(slot_of(key))].load(Ordering::Acquire);
        self.nodes.get(usize::from(owner))?.get()
    }

    /// The breaker of the node at `host:port`, if it is known.
    pub(crate) fn for_addr(&self, host: &str, port: u16) -> Option<&Node> {
        self.all().find(|n| {
            n.addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| h == host && p.parse() == Ok(port))
        })
    }

    /// Whether the map names any master yet.
    pub(crate) fn mapped(&self) -> bool {
        self.serving().next().is_some()
    }

    /// Whether every master of the map bypasses Redis now (false while none is known).
    pub(crate) fn all_bypassing(&self) -> bool {
        if self.open.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut any = false;
        for n in self.serving() {
            if !n.breaker.bypassing() {
                return false;
            }
            any = true;
        }
        any
    }

    /// Open when every master of the map is open; `None` while no master is known.
    pub(crate) fn state(&self) -> Option<BreakerState> {
        let mut any = false;
        for n in self.serving() {
            if n.breaker.state() == BreakerState::Closed {
                return Some(BreakerState::Closed);
            }
            any = true;
        }
        any.then_some(BreakerState::Open)
    }

    /// (address, state) of every master of the map, in the order they were first seen.
    pub(crate) fn states(&self) -> Vec<(String, BreakerState)> {
        self.serving()
            .map(|n| (n.addr.clone(), n.breaker.state()))
            .collect()
    }

    fn index_of(&self, addr: &str) -> Option<u16> {
        let len = self.len.load(Ordering::Acquire);
        if let Some(i) = self.nodes[..len]
            .iter()
            .position(|n| n.get().is_some_and(|n| n.addr == addr))
        {
            return u16::try_from(i).ok();
        }
        if len >= MAX_NODES {
            return None;
        }
        let node = Node {
            addr: addr.to_string(),
            breaker: Breaker::new(self.threshold, self.cooldown),
            serving: AtomicBool::new(false),
        };
        if self.nodes[len].set(node).is_err() {
            return None;
        }
        self.len.store(len + 1, Ordering::Release);
        u16::try_from(len).ok()
    }

    /// Installs a slot map: `(first slot, last slot, master address)` ranges. Slots the map does
    /// not cover keep their previous owner.
    pub(crate) fn update(&self, ranges: &[(u16, u16, String)]) {
        let Ok(_updating) = self.updating.lock() else {
            return;
        };
        let mut serving = vec![false; MAX_NODES];
        let mut moved = false;
        for (first, last, addr) in ranges {
            let Some(i) = self.index_of(addr) else {
                continue;
            };
            serving[usize::from(i)] = true;
            for slot in *first..=(*last).min(SLOTS - 1) {
                moved |= self.owner[usize::from(slot)].swap(i, Ordering::AcqRel) != i;
            }
        }
        if moved {
            self.changed.notify_one();
        }
        if ranges.is_empty() {
            return;
        }
        for (i, n) in self.all().enumerate() {
            n.serving.store(serving[i], Ordering::Release);
        }
    }
}

/// Reads the slot map through `conn` (`CLUSTER SLOTS` on any node) into `nodes`. A failure
/// keeps the previous map (the next rebuild reads it again).
pub(crate) async fn read_slot_map(conn: &mut crate::cluster_api::ClusterConnection, nodes: &Nodes) {
    use crate::cluster_api::{RoutingInfo, SingleNodeRoutingInfo};
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
    match conn.route_command(cmd, routing).await {
        Ok(reply) => nodes.update(&parse_slots(&reply)),
        Err(e) => {
            tracing::debug!(error = %e, "reading the cluster's slot map failed; keeping the previous one")
        }
    }
}

/// Parses a `CLUSTER SLOTS` reply into `(first, last, master "host:port")` ranges.
pub(crate) fn parse_slots(reply: &Value) -> Vec<(u16, u16, String)> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    let int = |v: &Value| match v {
        Value::Int(i) => u16::try_from(*i).ok(),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(fields) = entry else {
                return None;
            };
            let (first, last) = (int(fields.first()?)?, int(fields.get(1)?)?);
            let Value::Array(master) = fields.get(2)? else {
                return None;
            };
            let host = text(master.first()?)?;
            let port = match master.get(1)? {
                Value::Int(p) => u16::try_from(*p).ok()?,
                _ => return None,
            };
            Some((first, last, format!("{host}:{port}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routing_key_is_the_first_key_of_single_key_commands() {
        assert_eq!(routing_key(redis::cmd("GET").arg("k")), Some(&b"k"[..]));
        assert_eq!(
            routing_key(redis::cmd("set").arg("k").arg("v")),
            Some(&b"k"[..])
        );
        assert_eq!(routing_key(redis::cmd("UNLINK").arg("a")), Some(&b"a"[..]));
        assert_eq!(routing_key(redis::cmd("UNLINK").arg("a").arg("b")), None);
        assert_eq!(routing_key(redis::cmd("CONFIG").arg("GET").arg("x")), None);
        assert_eq!(routing_key(&redis::cmd("PING")), None);
    }

    #[test]
    fn clusterdown_is_recognised_and_the_reply_timeout_is_a_quarter() {
        let down = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
            "The cluster is down",
        ));
        assert!(is_cluster_down(&down));
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!is_cluster_down(&io));
        assert!(!is_redirect(&io) && !is_redirect(&down));
        for kind in [
            redis::ServerErrorKind::Moved,
            redis::ServerErrorKind::Ask,
            redis::ServerErrorKind::TryAgain,
        ] {
            let e = redis::RedisError::from((redis::ErrorKind::Server(kind), "slot moving"));
            assert!(is_redirect(&e), "{kind:?}");
        }
        assert_eq!(
            response_timeout(Duration::from_millis(500)),
            Duration::from_millis(125)
        );
        assert_eq!(response_timeout(Duration::ZERO), Duration::from_millis(1));
    }

    fn node_reply(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn a_key_is_accounted_on_the_master_of_its_slot() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                node_reply("127.0.0.1", 7000),
                node_reply("127.0.0.1", 7003),
            ]),
            Value::Array(vec![
                Value::Int(8192),
                Value::Int(16383),
                node_reply("127.0.0.1", 7001),
            ]),
        ]);
        let ranges = parse_slots(&reply);
        assert_eq!(ranges.len(), 2);
        let nodes = Nodes::new(1, Duration::from_secs(60));
        assert!(nodes.for_key(b"a").is_none(), "no map yet");
        assert_eq!(nodes.state(), None);
        nodes.update(&ranges);
        // slot("a") = 15495, slot("b") = 3300.
        let a = nodes.for_key(b"a").expect("mapped");
        let b = nodes.for_key(b"b").expect("mapped");
        assert_eq!(a.addr, "127.0.0.1:7001");
        assert_eq!(b.addr, "127.0.0.1:7000");
        assert!(a.breaker.trip());
        nodes.open.fetch_add(1, Ordering::AcqRel);
        assert!(!nodes.all_bypassing(), "one master of two open");
        assert_eq!(nodes.state(), Some(BreakerState::Closed));
        assert!(b.breaker.trip());
        nodes.open.fetch_add(1, Ordering::AcqRel);
        assert!(nodes.all_bypassing());
        assert_eq!(nodes.state(), Some(BreakerState::Open));

        // Failover: 7001's slots move to 7004; the dead master's open breaker no longer counts.
        nodes.update(&[
            (0, 8191, "127.0.0.1:7000".into()),
            (8192, 16383, "127.0.0.1:7004".into()),
        ]);
        assert_eq!(nodes.for_key(b"a").expect("mapped").addr, "127.0.0.1:7004");
        assert_eq!(nodes.state(), Some(BreakerState::Closed));
        assert_eq!(
            nodes.states(),
            vec![
                ("127.0.0.1:7000".to_string(), BreakerState::Open),
                ("127.0.0.1:7004".to_string(), BreakerState::Closed),
            ]
        );
        assert!(nodes.for_addr("127.0.0.1", 7001).is_some(), "still known");
    }
}
