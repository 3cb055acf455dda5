//! What a Redis failure says about Redis (reachable or not, credentials refused, one command
//! refused), which decides what the circuit breaker does; and the memory of a refused command.

use std::time::Duration;

/// What a Redis error says about Redis, which decides what the circuit breaker does with it.
/// The table is in docs/when-redis-fails.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Redis cannot be used right now (timeouts, refused or reset connections, I/O errors, a
    /// loading or failing-over server, a cluster that is down, a server busy in a script): counted
    /// on the breaker, which opens after the threshold.
    Unreachable,
    /// The connection's credentials are refused (`NOAUTH`, `WRONGPASS`, a failed `AUTH`): every
    /// command will fail until an operator fixes it, so the breaker opens at once.
    Denied,
    /// The server answered and refused this one command (`NOPERM`, `READONLY`, `NOSCRIPT`,
    /// `WRONGTYPE`, `OOM`, `ERR`, …): only that operation fails; Redis is reachable, so this counts
    /// as a success on the breaker. Logged once per interval per error code.
    Refused,
}

/// Classifies a redis-rs error (see [`Fault`]).
pub(crate) fn classify(e: &redis::RedisError) -> Fault {
    use redis::{ErrorKind, ServerErrorKind};
    if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
    {
        return Fault::Denied;
    }
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return Fault::Unreachable;
    }
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => Fault::Unreachable,
        // A script running too long blocks every command on that server.
        _ if matches!(e.code(), Some("BUSY")) => Fault::Unreachable,
        ErrorKind::Server(_) | ErrorKind::UnexpectedReturnType => Fault::Refused,
        // Any other error code is the server's answer to this command (`MISCONF`, a module's …).
        _ if e.code().is_some() => Fault::Refused,
        // Client-side and protocol failures: the connection cannot be trusted.
        _ => Fault::Unreachable,
    }
}

/// Remembers for a while that the server refuses a command (e.g. `GETEX` on a read-only
/// replica), so later operations use their fallback directly; asked again after
/// [`REFUSAL_MEMORY`], in case the server was promoted or the ACL changed.
#[derive(Debug, Default)]
pub(crate) struct Refusal {
    /// ms after the store's creation until which the command is not tried (0: try).
    pub(super) until_ms: std::sync::atomic::AtomicU64,
}

/// How long a refused command is not tried again.
pub(super) const REFUSAL_MEMORY: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    #[test]
    fn refusals_do_not_count_on_the_breaker_connectivity_failures_do() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&io), Fault::Unreachable);
        let server = |k| RedisError::from((ErrorKind::Server(k), "reply"));
        for k in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
        ] {
            assert_eq!(classify(&server(k)), Fault::Unreachable, "{k:?}");
        }
        for k in [
            ServerErrorKind::NoPerm,
            ServerErrorKind::ReadOnly,
            ServerErrorKind::NoScript,
            ServerErrorKind::ResponseError,
            ServerErrorKind::CrossSlot,
            ServerErrorKind::ExecAbort,
        ] {
            assert_eq!(classify(&server(k)), Fault::Refused, "{k:?}");
        }
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert_eq!(classify(&auth), Fault::Denied);
        let client = RedisError::from((ErrorKind::Client, "connection closed"));
        assert_eq!(classify(&client), Fault::Unreachable);
        let typed = RedisError::from((ErrorKind::UnexpectedReturnType, "not a string"));
        assert_eq!(classify(&typed), Fault::Refused);
    }
}
