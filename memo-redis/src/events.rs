//! Invalidation events across processes: every invalidation is published on the cache's channel
//! (`memo-redis:{namespace}:events`), and every process that registered a handler with
//! [`Cache::subscribe`](crate::Cache::subscribe) receives it — the "cache event bus". A subscriber
//! reconnects and resubscribes by itself when the connection drops.
//!
//! The bus knows its channel, a client to open the subscription with and the connect timeout;
//! the [`Cache`](crate::Cache) methods that publish and subscribe are in `cache/events.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::error::Error;

/// An invalidation announced to every process using the same cache namespace.
///
/// ```
/// use memo_redis::Event;
/// let e = Event::Keys(vec!["memo:users:0123456789ab:42".into()]);
/// assert!(matches!(e, Event::Keys(ref k) if k.len() == 1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// These exact keys were deleted.
    Keys(Vec<String>),
    /// Every entry carrying one of these tags was deleted.
    Tags(Vec<String>),
    /// Every key matching this (namespaced) `SCAN` pattern was deleted.
    Pattern(String),
    /// An application-defined message sent with [`Cache::publish`](crate::Cache::publish).
    Custom(String),
}

type Handler = Arc<dyn Fn(&Event) + Send + Sync>;

/// One cache's event bus: the handlers registered in this process and the subscriber task that
/// feeds them.
pub(crate) struct Events {
    bus: Arc<Bus>,
    started: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the subscriber task shares with the cache.
struct Bus {
    channel: String,
    client: redis::Client,
    connect_timeout: Duration,
    handlers: RwLock<Vec<Handler>>,
    subscribed: Notify,
    is_subscribed: AtomicBool,
}

/// The channel of the cache namespaced `namespace`.
fn channel(namespace: &str) -> String {
    format!("memo-redis:{namespace}:events")
}

/// The bytes published for `event`.
pub(crate) fn encode(event: &Event) -> Result<Vec<u8>, Error> {
    bincode::serde::encode_to_vec(event, bincode::config::standard())
        .map_err(|e| Error::Codec(e.to_string()))
}

impl Events {
    /// The bus of the cache namespaced `namespace`; `client` opens the subscription (its own
    /// connection) within `connect_timeout`.
    pub(crate) fn new(namespace: &str, client: redis::Client, connect_timeout: Duration) -> Events {
        Events {
            bus: Arc::new(Bus {
                channel: channel(namespace),
                client,
                connect_timeout,
                handlers: RwLock::new(Vec::new()),
                subscribed: Notify::new(),
                is_subscribed: AtomicBool::new(false),
            }),
            started: AtomicBool::new(false),
            task: Mutex::new(None),
        }
    }

    /// The channel events are published on.
    pub(crate) fn channel(&self) -> &str {
        &self.bus.channel
    }

    /// Registers `handler`, starts the subscriber on first use and waits until the subscription
    /// is active, at most the connect timeout (see [`crate::Cache::subscribe`]).
    pub(crate) async fn subscribe(&self, handler: Handler) -> Result<(), Error> {
        crate::runtime::check()?;
        if let Ok(mut h) = self.bus.handlers.write() {
            h.push(handler);
        }
        if !self.started.swap(true, Ordering::AcqRel) {
            let handle = tokio::runtime::Handle::try_current()
                .map_err(|_| Error::Runtime("called outside a Tokio runtime"))?;
            let task: crate::runtime::Task = Box::pin(subscriber(Arc::clone(&self.bus)));
            let task = handle.spawn(task);
            if let Ok(mut t) = self.task.lock() {
                *t = Some(task);
            }
        }
        let timeout = self.bus.connect_timeout;
        let ready = async {
            loop {
                let notified = self.bus.subscribed.notified();
                if self.bus.is_subscribed.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, ready)
            .await
            .map_err(|_| Error::Timeout(timeout))
    }

    pub(crate) fn stop(&self) {
        if let Ok(mut t) = self.task.lock()
            && let Some(task) = t.take()
        {
            task.abort();
        }
        self.started.store(false, Ordering::Release);
        self.bus.is_subscribed.store(false, Ordering::Release);
    }
}

async fn subscriber(bus: Arc<Bus>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connect =
            tokio::time::timeout(bus.connect_timeout, bus.client.get_async_pubsub()).await;
        if let Ok(Ok(mut pubsub)) = connect
            && pubsub.subscribe(&bus.channel).await.is_ok()
        {
            backoff = Duration::from_millis(50);
            bus.is_subscribed.store(true, Ordering::Release);
            bus.subscribed.notify_waiters();
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let decoded = bincode::serde::decode_from_slice::<Event, _>(
                    msg.get_payload_bytes(),
                    bincode::config::standard().with_limit::<{ 1 << 20 }>(),
                );
                let Ok((event, _)) = decoded else {
                    tracing::debug!("ignored an undecodable message on the event channel");
                    continue;
                };
                let handlers: Vec<Handler> =
                    bus.handlers.read().map(|h| h.clone()).unwrap_or_default();
                for h in handlers {
                    h(&event);
                }
            }
            bus.is_subscribed.store(false, Ordering::Release);
            tracing::debug!("event channel connection lost; resubscribing");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
