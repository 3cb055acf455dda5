//! The breakers of one cache as the store holds them: the cache-wide [`Breaker`] and, on a Redis
//! Cluster, one per master ([`Nodes`]), with the whole-cache view built from them.

use std::sync::Arc;
use std::time::Duration;

use super::cluster::Nodes;
use crate::breaker::{Breaker, BreakerState, NodeBreaker};

/// The breakers of one cache: one for a single node; on a Redis Cluster one per master (see
/// `store/cluster.rs`) plus the cache-wide one, which then counts only the operations bound to
/// no single master (keyless or multi-key commands, scripts, creating the connection before the
/// slot map is known).
///
/// The whole-cache view: on a single node it is that node's breaker; on a cluster the cache is
/// open (bypassing) only when every master of the slot map is open (bypassing), so one dead
/// master out of three leaves the cache closed while the calls on that master's keys bypass.
#[derive(Debug)]
pub(crate) struct Breakers {
    pub(crate) whole: Breaker,
    /// Per-master breakers; `None` on a single node (the hit path then reads one more
    /// discriminant, nothing else).
    pub(crate) nodes: Option<Arc<Nodes>>,
}

impl Breakers {
    pub(crate) fn new(threshold: u32, cooldown: Duration, cluster: bool) -> Self {
        Breakers {
            whole: Breaker::new(threshold, cooldown),
            nodes: cluster.then(|| Arc::new(Nodes::new(threshold, cooldown))),
        }
    }

    /// Whether calls should skip Redis right now, whatever their key: the single node's breaker
    /// bypasses, or on a cluster every master's does (or, before the slot map is known, the
    /// cache-wide one). A call whose key's master alone is open is bypassed by the store
    /// ([`crate::error::Error::BreakerOpen`] from its first operation), or ask
    /// `Store::bypassing_key`.
    #[inline]
    pub(crate) fn bypassing(&self) -> bool {
        match &self.nodes {
            None => self.whole.bypassing(),
            Some(nodes) => {
                if nodes.mapped() {
                    nodes.all_bypassing()
                } else {
                    self.whole.bypassing()
                }
            }
        }
    }

    /// The whole-cache state: on a cluster, open only when every master of the slot map is open
    /// (before the map is known: the cache-wide breaker's state).
    pub(crate) fn state(&self) -> BreakerState {
        match self.nodes.as_ref().and_then(|n| n.state()) {
            Some(state) => state,
            None => self.whole.state(),
        }
    }

    /// Per-master states, empty on a single node.
    pub(crate) fn per_node(&self) -> Vec<NodeBreaker> {
        self.nodes
            .as_ref()
            .map(|n| {
                n.states()
                    .into_iter()
                    .map(|(node, state)| NodeBreaker { node, state })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn on_a_single_node_the_whole_cache_is_the_one_breaker() {
        let b = Breakers::new(1, Duration::from_secs(60), false);
        assert!(b.nodes.is_none(), "no per-master table on a single node");
        assert!(b.per_node().is_empty());
        assert!(!b.bypassing());
        assert!(b.whole.trip());
        assert!(b.bypassing());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn on_a_cluster_the_whole_cache_is_open_only_when_every_master_is() {
        let b = Breakers::new(1, Duration::from_secs(60), true);
        let nodes = b.nodes.as_ref().expect("cluster");
        // Before the slot map: the cache-wide breaker speaks for the cache.
        assert!(b.whole.trip());
        assert!(b.bypassing());
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.whole.success());
        nodes.update(&[(0, 8191, "a:1".into()), (8192, 16383, "b:1".into())]);
        let a = nodes.for_key(b"b").expect("slot 3300 is a's");
        assert!(a.breaker.trip());
        nodes.open.fetch_add(1, Ordering::AcqRel);
        assert!(!b.bypassing(), "b:1 still serves");
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(
            b.per_node(),
            vec![
                NodeBreaker {
                    node: "a:1".into(),
                    state: BreakerState::Open
                },
                NodeBreaker {
                    node: "b:1".into(),
                    state: BreakerState::Closed
                },
            ]
        );
        assert!(nodes.for_key(b"a").expect("b's").breaker.trip());
        nodes.open.fetch_add(1, Ordering::AcqRel);
        assert!(b.bypassing());
        assert_eq!(b.state(), BreakerState::Open);
    }
}
