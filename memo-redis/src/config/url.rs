//! Redis URLs: their shape checked before redis-rs parses them, cluster node lists, and the one
//! redaction of credentials every display of a URL goes through.

use redis::{ConnectionInfo, IntoConnectionInfo};

use crate::error::ConfigError;

/// Parses `redis://[auth@]h1:p1,h2:p2,...`: a node without `://` inherits the first node's
/// scheme and credentials.
pub(super) fn parse_cluster_nodes(url: &str) -> Result<Vec<ConnectionInfo>, ConfigError> {
    let parts: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let first = parts.first().copied().unwrap_or("");
    let (scheme, auth) = match first.find("://") {
        Some(i) => {
            let rest = &first[i + 3..];
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            let auth = authority.rfind('@').map_or("", |at| &authority[..=at]);
            (&first[..i + 3], auth)
        }
        None => ("redis://", ""),
    };
    let mut nodes = Vec::with_capacity(parts.len());
    let count = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        let full = if part.contains("://") {
            part.to_string()
        } else {
            format!("{scheme}{auth}{part}")
        };
        check_url_shape(&full)?;
        let info = full
            .as_str()
            .into_connection_info()
            .map_err(|e| ConfigError::Url {
                url: redact_url(url),
                // By position, not text: a password containing `,` splits a node in two, and
                // either half may hold part of it.
                reason: format!(
                    "cluster node {} of {count}: {}",
                    i + 1,
                    url_error_reason(&e, &full)
                ),
            })?;
        nodes.push(info);
    }
    Ok(nodes)
}

/// `a, b ,c` → `a,b,c` (for display; redact the result).
pub(super) fn normalize_node_list(url: &str) -> String {
    url.split(',').map(str::trim).collect::<Vec<_>>().join(",")
}

pub(super) fn tls_supported() -> bool {
    cfg!(feature = "tls")
}

/// The mistakes people make in `REDIS_URL`, each with its fix, before redis-rs's own parser
/// (whose messages, e.g. "InvalidClientConfig", do not say what to change).
pub(super) fn check_url_shape(url: &str) -> Result<(), ConfigError> {
    let t = url.trim();
    let error = |reason: &str| ConfigError::Url {
        url: redact_url(t),
        reason: reason.to_string(),
    };
    let Some(scheme_end) = t.find("://") else {
        return Err(error(
            "missing scheme; write `redis://host:port` (or `rediss://` for TLS, `unix://` for a socket)",
        ));
    };
    let scheme = t[..scheme_end].to_ascii_lowercase();
    match scheme.as_str() {
        "redis" | "valkey" => {}
        "rediss" | "valkeys" if !tls_supported() => {
            return Err(error(
                "`rediss://` (TLS) needs memo-redis's `tls` cargo feature: \
                 memo-redis = { version = \"0.1\", features = [\"tls\"] }",
            ))
        }
        "rediss" | "valkeys" | "unix" | "redis+unix" | "valkey+unix" => {}
        "http" | "https" | "tcp" => {
            return Err(error(&format!(
                "`{scheme}://` is not a Redis scheme; write `redis://` (or `rediss://` for TLS)"
            )))
        }
        other => {
            return Err(error(&format!(
                "unknown scheme `{other}://`; write `redis://` (or `rediss://` for TLS)"
            )))
        }
    }
    if scheme.ends_with("unix") {
        return Ok(());
    }
    let rest = &t[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..]);
    if host_port.is_empty() || host_port.starts_with(':') {
        return Err(error(
            "missing host; write `redis://host:port`, e.g. `redis://127.0.0.1:6379`",
        ));
    }
    Ok(())
}

/// The one redaction of anything that may hold credentials (a URL, a node list, a host): from
/// after the scheme (or the start) up to the **last** `@`, everything is replaced by `***` — user,
/// password and whatever a password containing `@`, `/`, `:` or `,` would make a URL parser see —
/// and the values of `pass`/`password` query parameters (unix-socket URLs) likewise.
///
/// `redis://app:p@ss/w:rd@h:6379/0` → `redis://***@h:6379/0`; `app:pw@h:1` → `***@h:1`.
pub(super) fn redact_url(url: &str) -> String {
    // A scheme is letters, digits, `+`, `-`, `.` before `://`; a password containing `://` in
    // a URL without one must not be taken for it.
    let scheme_len = url.find("://").filter(|&i| {
        i > 0
            && url[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let (scheme, rest) = match scheme_len {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let rest = match rest.rfind('@') {
        Some(at) => format!("***{}", &rest[at..]),
        None => rest.to_string(),
    };
    format!("{scheme}{}", redact_query(&rest))
}

/// redis-rs's reason for rejecting `url`. Its detail quotes part of the URL (a `protocol=`
/// value); when the URL holds an `@`, that part may be a piece of a password that a URL parser
/// cut elsewhere, so it is not shown.
pub(super) fn url_error_reason(e: &redis::RedisError, url: &str) -> String {
    let text = e.to_string();
    match e.detail() {
        Some(detail) if !detail.is_empty() && url.contains('@') => text.replace(detail, "***"),
        _ => text,
    }
}

/// `…?db=1&pass=secret` → `…?db=1&pass=***`.
pub(super) fn redact_query(s: &str) -> String {
    let Some(q) = s.find('?') else {
        return s.to_string();
    };
    let params: Vec<String> = s[q + 1..]
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
            {
                format!("{k}=***")
            }
            _ => kv.to_string(),
        })
        .collect();
    format!("{}?{}", &s[..q], params.join("&"))
}
