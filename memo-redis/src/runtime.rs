//! Whether the caller runs on a Tokio runtime that redis-rs and our timeouts can use.
//!
//! redis-rs and `tokio::time` panic when called outside a Tokio 1.x runtime ("there is no
//! reactor running") or on one built without its time or IO driver (a `Builder` without
//! `enable_all()`). A cached call checks first and runs its body instead (bypass), an explicit
//! operation returns [`Error::Runtime`]; neither panics.
//!
//! Tokio offers no non-panicking way to ask whether a driver is enabled, so the drivers are
//! probed once per thread under `catch_unwind` and the verdict is kept for the thread's life:
//! a runtime's worker threads belong to it for good, and a thread that blocks on a
//! current-thread runtime normally keeps using the same one. The panic hook still prints the
//! probe's message once on such a thread; the warning that follows says what to change.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;

/// A usable runtime's verdict for this thread: unknown, usable, or what is missing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Unknown,
    Usable,
    Missing(&'static str),
}

thread_local! {
    static VERDICT: Cell<Verdict> = const { Cell::new(Verdict::Unknown) };
}

const NO_RUNTIME: &str = "called outside a Tokio runtime";
const NO_TIME: &str = "the runtime has no time driver (build it with `enable_all()`)";
const NO_IO: &str = "the runtime has no IO driver (build it with `enable_all()`)";

/// `Ok` when the current thread runs inside a Tokio runtime with its time and IO drivers.
///
/// # Errors
/// [`Error::Runtime`] naming what is missing.
pub(crate) fn check() -> Result<(), Error> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::Runtime(NO_RUNTIME));
    }
    let verdict = VERDICT.try_with(Cell::get).unwrap_or(Verdict::Unknown);
    let verdict = match verdict {
        Verdict::Unknown => {
            let v = probe();
            let _ = VERDICT.try_with(|c| c.set(v));
            v
        }
        v => v,
    };
    match verdict {
        Verdict::Missing(what) => Err(Error::Runtime(what)),
        _ => Ok(()),
    }
}

/// [`check`] for a cached call: `false` (after one warning per process) when the call must
/// bypass the cache.
pub(crate) fn usable() -> bool {
    static WARNED: AtomicBool = AtomicBool::new(false);
    match check() {
        Ok(()) => true,
        Err(e) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    error = %e,
                    "memo-redis: cached functions run their bodies without the cache (it needs a Tokio runtime with time and IO enabled)"
                );
            }
            false
        }
    }
}

fn probe() -> Verdict {
    // Creating a timer touches the time driver (and panics without one); it is not registered
    // until polled.
    let time = std::panic::catch_unwind(|| drop(tokio::time::sleep(std::time::Duration::ZERO)));
    if time.is_err() {
        return Verdict::Missing(NO_TIME);
    }
    if !io_enabled() {
        return Verdict::Missing(NO_IO);
    }
    Verdict::Usable
}

/// Registers a throwaway socket with the runtime's IO driver (and panics without one). When no
/// socket can be made at all, the driver is assumed present: redis-rs then fails with an IO
/// error, which is handled like any other.
fn io_enabled() -> bool {
    let Ok(socket) = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)) else {
        return true;
    };
    if socket.set_nonblocking(true).is_err() {
        return true;
    }
    std::panic::catch_unwind(move || drop(tokio::net::UdpSocket::from_std(socket))).is_ok()
}

/// What memo-redis spawns: one task type for all its background work (each future type spawned
/// costs a copy of tokio's task machinery, ≈ 5 KB of code per scheduler; a box per task costs
/// an allocation, and the tasks are few).
pub(crate) type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;
