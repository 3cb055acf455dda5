//! The tracking link of the near cache: one RESP3 connection with
//! `CLIENT TRACKING ON BCAST PREFIX {namespace}:`, whose invalidation pushes are applied to the
//! tier; a heartbeat that proves the link in sync and (single node) detects `SWAPDB` through the
//! epoch key; on any failure the tier goes dark and the link reconnects with backoff. A single
//! node's tracking task is one link; a cluster runs one per master (`cluster.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo};

use super::{Near, HEARTBEAT};
use crate::config::Config;
use crate::error::Error;
use crate::store::{classify, open_client, Fault};

/// Marks the tier dark when the tracking task ends for any reason (runtime shut down, aborted),
/// so a later call restarts it on a live runtime.
pub(super) struct Running(pub(super) Arc<Near>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.go_dark();
        self.0.running.store(false, Ordering::Release);
    }
}

/// Why the tracking connection could not be set up.
enum Failed {
    /// Redis unreachable or slow: the store's own warnings cover it.
    Connect(Error),
    /// Redis answered but refused `CLIENT TRACKING` (ACL, RESP3 unsupported): worth a warning.
    Refused(Error),
}

async fn connect(
    config: &Config,
) -> Result<
    (
        redis::aio::MultiplexedConnection,
        tokio::sync::mpsc::UnboundedReceiver<PushInfo>,
    ),
    Failed,
> {
    let info = config.connection.clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let mut resp3 = config.clone();
    resp3.connection = info.set_redis_settings(settings);
    let client = open_client(&resp3).map_err(Failed::Refused)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let conn_config = AsyncConnectionConfig::new()
        .set_push_sender(tx)
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.op_timeout));
    let mut conn = tokio::time::timeout(
        config.connect_timeout,
        client.get_multiplexed_async_connection_with_config(&conn_config),
    )
    .await
    .map_err(|_| Failed::Connect(Error::Timeout(config.connect_timeout)))?
    .map_err(|e| {
        // A server that answers but rejects the RESP3 handshake or the credentials.
        if e.code().is_some() {
            Failed::Refused(e.into())
        } else {
            Failed::Connect(e.into())
        }
    })?;
    let prefix = format!("{}:", config.namespace);
    tokio::time::timeout(
        config.op_timeout,
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&prefix)
            .query_async::<()>(&mut conn),
    )
    .await
    .map_err(|_| Failed::Connect(Error::Timeout(config.op_timeout)))?
    .map_err(|e| Failed::Refused(e.into()))?;
    Ok((conn, rx))
}

/// The key whose value identifies the dataset the tracking connection sees: a random token,
/// written once (`SET NX`, no expiry) by whichever process comes first. After `SWAPDB` (which
/// Redis reports to no tracking client) the connection's database holds another token, or none.
fn epoch_key(config: &Config) -> String {
    format!("{}:near-epoch", config.namespace)
}

/// What the heartbeat compares.
enum Epoch {
    /// The dataset's token as last read (`None`: the key is missing and could not be written,
    /// e.g. on a read-only replica; a token appearing later still counts as a change).
    Checked(Option<Vec<u8>>),
    /// The key cannot be read (refused): the heartbeat pings, and a `SWAPDB` goes unnoticed.
    Unchecked,
}

/// Reads the dataset's token, creating it if missing. `Err` when Redis failed or timed out
/// (the link is then treated as down).
async fn epoch_of(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    limit: Duration,
) -> Result<Epoch, ()> {
    let token = format!("{:032x}", fastrand::u128(..));
    let set = tokio::time::timeout(
        limit,
        redis::cmd("SET")
            .arg(key)
            .arg(&token)
            .arg("NX")
            .query_async::<Option<String>>(conn),
    )
    .await
    .map_err(|_| ())?;
    if let Err(e) = set
        && classify(&e) != Fault::Refused
    {
        return Err(());
    }
    match tokio::time::timeout(
        limit,
        redis::cmd("GET")
            .arg(key)
            .query_async::<Option<Vec<u8>>>(conn),
    )
    .await
    .map_err(|_| ())?
    {
        Ok(v) => Ok(Epoch::Checked(v)),
        Err(e) if classify(&e) == Fault::Refused => Ok(Epoch::Unchecked),
        Err(_) => Err(()),
    }
}

/// The tracking task of a single node: one link, kept up for as long as the task runs.
pub(super) async fn track(near: Arc<Near>, config: Config) {
    let _running = Running(Arc::clone(&near));
    let id = near.add_link();
    link(&near, &config, id, true).await;
}

/// One tracking link (the node `config.connection` names): connect, enable tracking, apply
/// invalidations, heartbeat, each heartbeat a sync point of link `id`; on any failure the link
/// goes down (the tier dark and flushed) and reconnects with backoff. Runs until dropped.
/// `epoch`: the heartbeat reads the dataset's epoch key (single node; a cluster has no `SWAPDB`
/// and pings).
pub(super) async fn link(near: &Near, config: &Config, id: u64, epoch: bool) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match connect(config).await {
            Ok((mut conn, mut rx)) => {
                backoff = Duration::from_millis(50);
                let epoch_key = epoch_key(config);
                let mut epoch = if epoch {
                    match epoch_of(&mut conn, &epoch_key, config.op_timeout).await {
                        Ok(e) => e,
                        Err(()) => {
                            near.link_down(id);
                            tokio::time::sleep(backoff).await;
                            continue;
                        }
                    }
                } else {
                    Epoch::Unchecked
                };
                // Anything stored before tracking was on is not covered by it. Entries are filled
                // only by reads sent from now on, which see every earlier write: a sync point.
                near.link_up(id, Instant::now());
                let mut heartbeat = tokio::time::interval(HEARTBEAT);
                heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                heartbeat.tick().await;
                'link: loop {
                    tokio::select! {
                        push = rx.recv() => match push {
                            Some(push) => if !near.handle(push) { break },
                            None => break,
                        },
                        _ = heartbeat.tick() => {
                            let sent = Instant::now();
                            // The heartbeat reads the epoch key (or pings when it cannot): any
                            // reply orders the pushes before it, and a changed epoch reveals a
                            // `SWAPDB` (or a restored dataset), for which Redis sends no
                            // invalidation.
                            let beat = match &epoch {
                                Epoch::Checked(_) => tokio::time::timeout(
                                    config.op_timeout,
                                    redis::cmd("GET").arg(&epoch_key).query_async::<Option<Vec<u8>>>(&mut conn),
                                )
                                .await
                                .map(|r| r.map(Some)),
                                Epoch::Unchecked => tokio::time::timeout(
                                    config.op_timeout,
                                    redis::cmd("PING").query_async::<()>(&mut conn),
                                )
                                .await
                                .map(|r| r.map(|()| None)),
                            };
                            let seen = match beat {
                                Ok(Ok(seen)) => seen,
                                // Refused (an ACL without `GET` on it): ping from now on.
                                Ok(Err(e)) if classify(&e) == Fault::Refused => {
                                    epoch = Epoch::Unchecked;
                                    None
                                }
                                _ => break,
                            };
                            if let (Epoch::Checked(known), Some(seen)) = (&epoch, seen)
                                && *known != seen {
                                    // Another dataset under our connection: nothing held is
                                    // known to match it.
                                    near.flush();
                                    tracing::debug!("near cache: dataset changed (SWAPDB?); local tier flushed");
                                    epoch = match epoch_of(&mut conn, &epoch_key, config.op_timeout).await {
                                        Ok(e) => e,
                                        Err(()) => break,
                                    };
                                }
                            // Redis sends the invalidations of a write processed before the
                            // `PING` arrived ahead of the `PONG`, and the connection queues
                            // pushes in order before resolving a reply: apply them all, then
                            // vouch for every write before `sent`.
                            loop {
                                match rx.try_recv() {
                                    Ok(push) => if !near.handle(push) { break 'link },
                                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                                    Err(_) => break 'link,
                                }
                            }
                            near.link_synced(id, sent);
                        }
                    }
                }
                near.link_down(id);
                tracing::debug!(node = %config.redacted_url(), "near cache: tracking connection lost; local tier flushed");
            }
            Err(Failed::Connect(e)) => {
                tracing::debug!(node = %config.redacted_url(), error = %e, "near cache: tracking connection not up");
            }
            Err(Failed::Refused(e)) => {
                // The functions still work through Redis; say why their near cache is dark.
                near.start_errors.hit(|suppressed| {
                    tracing::warn!(
                        url = %config.redacted_url(),
                        error = %e,
                        suppressed,
                        "memo-redis: near cache unavailable (could not enable CLIENT TRACKING); `local` functions use Redis only until it works"
                    );
                });
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
