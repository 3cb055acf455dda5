//! The event bus as the cache uses it: [`Cache::subscribe`] and [`Cache::publish`] for the
//! application, and the announcement every invalidation makes (which also drops this process's
//! near-cache copies at once). The bus itself is `events.rs`.

use std::sync::Arc;

use super::{Cache, Inner};
use crate::error::Error;
use crate::events::{encode, Event};

impl Inner {
    /// Publishes `event`; failures are logged, never returned (the deletion itself succeeded).
    pub(crate) async fn announce(&self, event: Event) {
        // This process's near cache forgets at once; Redis's invalidation pushes follow.
        match &event {
            Event::Keys(keys) => keys.iter().for_each(|k| self.forget_local(k)),
            Event::Tags(_) | Event::Pattern(_) => self.forget_local_all(),
            Event::Custom(_) => {}
        }
        let Ok(payload) = encode(&event) else {
            return;
        };
        let published: Result<u64, Error> = self
            .store
            .query(
                redis::cmd("PUBLISH")
                    .arg(self.events.channel())
                    .arg(payload),
            )
            .await;
        if let Err(e) = published {
            tracing::debug!(error = %e, "could not publish an invalidation event");
        }
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
    /// was not active within the connect timeout (the handler stays registered);
    /// [`Error::Runtime`] outside a tokio runtime.
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
        inner.events.subscribe(Arc::new(handler)).await
    }

    /// Publishes an application-defined event to every subscriber.
    ///
    /// # Errors
    /// The configuration is invalid, or Redis failed or timed out.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// memo_redis::global().publish("prices reloaded").await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish(&self, message: impl Into<String>) -> Result<(), Error> {
        let inner = self.inner().map_err(|e| Error::Config(e.clone()))?;
        let payload = encode(&Event::Custom(message.into()))?;
        let _: u64 = inner
            .store
            .query(
                redis::cmd("PUBLISH")
                    .arg(inner.events.channel())
                    .arg(payload),
            )
            .await?;
        Ok(())
    }
}
