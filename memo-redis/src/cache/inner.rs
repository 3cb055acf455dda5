//! The shared parts behind a [`Cache`](super::Cache): configuration, the Redis store, the
//! single-flight table, the event bus, the near cache, and the background tasks that shutdown
//! waits for.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

use crate::config::Config;
use crate::error::Error;
use crate::events::Events;
use crate::flight::Flights;
use crate::near::Near;
use crate::store::Store;

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(super) tasks: Tasks,
    policy_checked: AtomicBool,
    pub(crate) flights: Flights,
    pub(crate) events: Events,
    /// The near cache, created by the first `local = ...` call.
    pub(crate) near: OnceLock<Arc<Near>>,
}

impl Inner {
    pub(super) fn new(config: Config) -> Result<Inner, Error> {
        let store = Store::new(&config)?;
        let events = Events::new(
            &config.namespace,
            store.client.clone(),
            config.connect_timeout,
        );
        Ok(Inner {
            store,
            events,
            config,
            tasks: Tasks::default(),
            policy_checked: AtomicBool::new(false),
            flights: Flights::default(),
            near: OnceLock::new(),
        })
    }

    /// Spawns tracked background work on the current tokio runtime (if any).
    pub(crate) fn spawn(self: &Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if crate::runtime::check().is_err() {
            return;
        }
        let guard = self.tasks.enter();
        let task: crate::runtime::Task = Box::pin(async move {
            fut.await;
            drop(guard);
        });
        handle.spawn(task);
    }

    /// Called before the first entry without expiry is written: warns once if the server can
    /// never evict such entries.
    pub(crate) fn check_eviction_policy(self: &Arc<Self>) {
        if self.policy_checked.swap(true, Ordering::Relaxed) {
            return;
        }
        let inner = Arc::clone(self);
        self.spawn(async move {
            let reply: Result<Vec<String>, Error> = inner
                .store
                .query(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
                .await;
            if let Ok(reply) = reply
                && let Some(policy) = reply.get(1)
                    && (policy == "noeviction" || policy.starts_with("volatile-")) {
                        tracing::warn!(
                            policy = %policy,
                            "memo-redis writes entries without expiry, but the server's maxmemory-policy never evicts keys without a TTL; set a ttl or use an allkeys-* policy"
                        );
                    }
        });
    }
}

/// Counts background tasks so shutdown can wait for them.
#[derive(Default)]
pub(super) struct Tasks {
    running: Arc<(AtomicUsize, Notify)>,
}

struct TaskGuard(Arc<(AtomicUsize, Notify)>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0 .0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0 .1.notify_waiters();
        }
    }
}

impl Tasks {
    fn enter(&self) -> TaskGuard {
        self.running.0.fetch_add(1, Ordering::AcqRel);
        TaskGuard(Arc::clone(&self.running))
    }

    pub(super) async fn idle(&self) {
        loop {
            let notified = self.running.1.notified();
            if self.running.0.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}
