//! Responses as entries: what of a response is stored, how an entry becomes a `HIT` (or a
//! `304`), and the bounded buffering of a body before it is stored.

use ::axum::body::{Body, Bytes};
use futures_util::stream::{self, StreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::Inner;
use crate::clock::now_ms;
use crate::key::push_hex;
use crate::pipeline::entry;

use super::settings::Settings;
use super::{mark, x_cache_name, HIT, X_CACHE};

/// The shape tag of HTTP entries: none (a stored format, pinned). Only untagged entries are
/// read back, so a cached function's entry under an HTTP key is corrupt, not a response.
pub(super) const UNSHAPED: u64 = 0;

/// Response headers never stored with an entry: hop-by-hop headers, framing (recomputed from the
/// stored body) and the headers the layer sets itself on every hit. The handler's
/// `Cache-Control` is stored: hits replay it (see `Settings::downstream`).
const NOT_STORED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "date",
    "age",
    "etag",
    X_CACHE,
];

/// One stored response, the envelope's payload.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredResponse {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, Vec<u8>)>,
    pub(super) body: Vec<u8>,
}

/// The entry for a response the handler answered (`body` complete): its status, the headers
/// worth replaying (not [`NOT_STORED`]) and the strong `ETag` the layer computed.
pub(super) fn stored(parts: &http::response::Parts, etag: &str, body: Vec<u8>) -> StoredResponse {
    let mut headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !NOT_STORED.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect();
    headers.push((header::ETAG.as_str().to_string(), etag.as_bytes().to_vec()));
    StoredResponse {
        status: parts.status.as_u16(),
        headers,
        body,
    }
}

/// Decodes an entry and builds the HIT (or 304) response; `None` for anything malformed (a
/// cached `None` included: the layer never writes one).
pub(super) fn hit(
    settings: &Settings,
    cache: &Inner,
    bytes: &[u8],
    request: &HeaderMap,
    head: bool,
) -> Option<Response<Body>> {
    let (entry, meta) =
        entry::decode_value::<StoredResponse>(bytes, cache.config.max_value_bytes, UNSHAPED)
            .ok()?;
    let entry = entry?;
    let status = StatusCode::from_u16(entry.status).ok()?;
    let mut headers = HeaderMap::with_capacity(entry.headers.len() + 5);
    for (name, value) in entry.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(&value).ok()?;
        headers.append(name, value);
    }
    let etag = match headers.get(header::ETAG) {
        Some(v) => v.clone(),
        None => HeaderValue::try_from(etag_of(&entry.body)).ok()?,
    };
    let age_ms = now_ms().saturating_sub(meta.written_at_ms);
    let ttl_ms = u64::try_from(settings.ttl.as_millis()).unwrap_or(u64::MAX);
    let remaining_secs = ttl_ms.saturating_sub(age_ms) / 1000;
    headers.insert(header::ETAG, etag.clone());
    // No `Age`: downstream caches subtract it from `max-age` (RFC 9111 §4.2.3), and the max-age
    // sent is already reduced by the entry's age, so sending both would count it twice.
    settings.downstream(&mut headers, age_ms / 1000, remaining_secs);
    mark(&mut headers, HIT);
    if etag.to_str().is_ok_and(|e| if_none_match(request, e)) {
        return Some(not_modified(&headers));
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
    let body = if head {
        Body::empty()
    } else {
        Body::from(entry.body)
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    Some(res)
}

/// A `304 Not Modified` carrying the validators and freshness headers of `headers`.
pub(super) fn not_modified(headers: &HeaderMap) -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NOT_MODIFIED;
    for name in [
        header::ETAG,
        header::CACHE_CONTROL,
        header::VARY,
        header::CONTENT_LOCATION,
        header::EXPIRES,
        x_cache_name(),
    ] {
        for value in headers.get_all(&name) {
            res.headers_mut().append(name.clone(), value.clone());
        }
    }
    res
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 §13.1.2 asks) or is `*`.
pub(super) fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let ours = etag.trim_matches('"');
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| {
            tag == "*" || {
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.len() >= 2
                    && tag.starts_with('"')
                    && tag.ends_with('"')
                    && tag.trim_matches('"') == ours
            }
        })
}

/// The strong ETag of a body: the quoted hex SHA-256.
pub(super) fn etag_of(body: &[u8]) -> String {
    let mut s = String::with_capacity(66);
    s.push('"');
    push_hex(&mut s, &Sha256::digest(body));
    s.push('"');
    s
}

pub(super) enum Buffered {
    /// The whole body, at most the limit.
    Complete(Vec<u8>),
    /// Larger than the limit, carrying trailers, or failing: what was read, then the rest.
    Streaming(Body),
}

/// Reads `body` up to `max` bytes. Anything read is replayed unchanged when the body is not
/// stored, including a body error at the point it happened.
pub(super) async fn buffer(mut body: Body, max: usize) -> Buffered {
    let mut frames = Vec::new();
    let mut size = 0usize;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                let data_len = frame.data_ref().map(Bytes::len);
                frames.push(frame);
                match data_len {
                    Some(n) => {
                        size = size.saturating_add(n);
                        if size > max {
                            let replay =
                                stream::iter(frames.into_iter().map(Ok::<_, ::axum::Error>))
                                    .chain(BodyStream::new(body));
                            return Buffered::Streaming(Body::new(StreamBody::new(replay)));
                        }
                    }
                    None => {
                        // Trailers: not representable in an entry.
                        let replay = stream::iter(frames.into_iter().map(Ok::<_, ::axum::Error>))
                            .chain(BodyStream::new(body));
                        return Buffered::Streaming(Body::new(StreamBody::new(replay)));
                    }
                }
            }
            Some(Err(e)) => {
                let replay = stream::iter(frames.into_iter().map(Ok))
                    .chain(stream::once(futures_util::future::ready(Err(e))));
                return Buffered::Streaming(Body::new(StreamBody::new(replay)));
            }
        }
    }
    let mut out = Vec::with_capacity(size);
    for frame in &frames {
        if let Some(data) = frame.data_ref() {
            out.extend_from_slice(data);
        }
    }
    Buffered::Complete(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let etag = etag_of(b"body");
        let check = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
            if_none_match(&h, &etag)
        };
        assert!(check(&etag));
        assert!(check(&format!("W/{etag}")));
        assert!(check(&format!("\"nope\", {etag}")));
        assert!(check("*"));
        assert!(!check("\"nope\""));
        assert!(!check(etag.trim_matches('"')));
        assert!(!if_none_match(&HeaderMap::new(), &etag));
        assert_eq!(etag.len(), 66);
    }
}
