//! Invalidation events across processes: every invalidation is published on the cache's channel
//! (`memo-redis:{namespace}:events`), and every process that registered a handler with
//! [`Cache::subscribe`] receives it — the "cache event bus". A subscriber reconnects and
//! resubscribes by itself when the connection drops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::cache::{Cache, Inner};
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
    /// An application-defined message sent with [`Cache::publish`].
    Custom(String),
}

type Handler = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Events {
    handlers: RwLock<Vec<Handler>>,
    started: AtomicBool,
    subscribed: Notify,
    is_subscribed: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Events {
    pub(crate) fn stop(&self) {
        if let Ok(mut t) = self.task.lock() {
            if let Some(task) = t.take() {
                task.abort();
            }
        }
        self.started.store(false, Ordering::Release);
        self.is_subscribed.store(false, Ordering::Release);
    }
}

fn channel(inner: &Inner) -> String {
    format!("memo-redis:{}:events", inner.config.namespace)
}

impl Inner {
    /// Publishes `event`; failures are logged, never returned (the deletion itself succeeded).
    pub(crate) async fn announce(&self, event: Event) {
        // This process's near cache forgets at once; Redis's invalidation pushes follow.
        match &event {
            Event::Keys(keys) => keys.iter().for_each(|k| self.forget_local(k)),
            Event::Tags(_) | Event::Pattern(_) => self.forget_local_all(),
            Event::Custom(_) => {}
        }
        let payload = match bincode::serde::encode_to_vec(&event, bincode::config::standard()) {
            Ok(p) => p,
            Err(_) => return,
        };
        let published: Result<u64, Error> = self
            .store
            .query(redis::cmd("PUBLISH").arg(channel(self)).arg(payload))
            .await;
        if let Err(e) = published {
            tracing::debug!(error = %e, "could not publish an invalidation event");
        }
    }
}

async fn subscriber(inner: Arc<Inner>) {
    let channel = channel(&inner);
    let mut backoff = Duration::from_millis(50);
    loop {
        let connect = tokio::time::timeout(
            inner.config.connect_timeout,
            inner.store.client.get_async_pubsub(),
        )
        .await;
        if let Ok(Ok(mut pubsub)) = connect {
            if pubsub.subscribe(&channel).await.is_ok() {
                backoff = Duration::from_millis(50);
                inner.events.is_subscribed.store(true, Ordering::Release);
                inner.events.subscribed.notify_waiters();
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
                    let handlers: Vec<Handler> = inner
                        .events
                        .handlers
                        .read()
                        .map(|h| h.clone())
                        .unwrap_or_default();
                    for h in handlers {
                        h(&event);
                    }
                }
                inner.events.is_subscribed.store(false, Ordering::Release);
                tracing::debug!("event channel connection lost; resubscribing");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

impl Cache {
    /// Registers `handler` for invalidation events from every process using this cache's
    /// namespace (including this one), starting the subscriber on first use. Waits until the
    /// subscription is active, at most the connect timeout; the subscriber keeps retrying in the
    /// background either way and resubscribes after a disconnect.
    ///
    /// Handlers run on the subscriber task: keep them short (send to a channel for real work).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration; [`Error::Timeout`] if the subscription
    /// was not active within the connect timeout (the handler stays registered); [`Error::Redis`]
    /// outside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// memo_redis::global()
    ///     .subscribe(|event| println!("invalidated: {event:?}"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(
        &self,
        handler: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<(), Error> {
        let inner = self.inner().map_err(|e| Error::Config(e.clone()))?;
        crate::runtime::check()?;
        if let Ok(mut h) = inner.events.handlers.write() {
            h.push(Arc::new(handler));
        }
        if !inner.events.started.swap(true, Ordering::AcqRel) {
            let handle = tokio::runtime::Handle::try_current()
                .map_err(|_| Error::Redis("subscribe needs a tokio runtime".into()))?;
            let task = handle.spawn(subscriber(Arc::clone(inner)));
            if let Ok(mut t) = inner.events.task.lock() {
                *t = Some(task);
            }
        }
        let timeout = inner.config.connect_timeout;
        let ready = async {
            loop {
                let notified = inner.events.subscribed.notified();
                if inner.events.is_subscribed.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, ready)
            .await
            .map_err(|_| Error::Timeout(timeout))
    }

    /// Publishes an application-defined event to every subscriber.
    ///
    /// # Errors
    /// The configuration is invalid, or Redis failed or timed out.
    pub async fn publish(&self, message: impl Into<String>) -> Result<(), Error> {
        let inner = self.inner().map_err(|e| Error::Config(e.clone()))?;
        let payload = bincode::serde::encode_to_vec(
            Event::Custom(message.into()),
            bincode::config::standard(),
        )
        .map_err(|e| Error::Codec(e.to_string()))?;
        let _: u64 = inner
            .store
            .query(redis::cmd("PUBLISH").arg(channel(inner)).arg(payload))
            .await?;
        Ok(())
    }
}
