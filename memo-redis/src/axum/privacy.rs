//! The privacy and cacheability rules: which requests are cached and under which key, which
//! responses may be stored, and the headers every response the layer looks at goes out with.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Uri;

use crate::key::push_digest;

use super::settings::Settings;

/// Varied request headers that select a representation rather than identify a user: a
/// response keyed only on these is not made `private`. Any other varied header (`cookie`,
/// `authorization`, `x-user-id`, ...) is taken to identify a user.
const NOT_PERSONAL: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "host",
    "origin",
];

impl Settings {
    pub(super) fn is_excluded(&self, path: &str) -> bool {
        self.excluded.iter().any(|p| {
            path.strip_prefix(p.as_str()).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('/') || p.ends_with('/') || p.is_empty()
            })
        })
    }

    pub(super) fn key(
        &self,
        namespace: &str,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<String, String> {
        let mut query: Vec<(&str, &str)> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|s| (s.split_once('=').map_or(s, |(name, _)| name), s))
            .collect();
        // Stable: repeated parameters keep their relative order (`a=1&a=2` ≠ `a=2&a=1`).
        query.sort_by(|a, b| a.0.cmp(b.0));
        let query: Vec<&str> = query.into_iter().map(|(_, seg)| seg).collect();
        let mut varied: Vec<(Cow<'_, str>, Vec<&[u8]>)> = self
            .vary
            .iter()
            .map(|name| {
                let values = headers
                    .get_all(name.as_str())
                    .iter()
                    .map(HeaderValue::as_bytes)
                    .collect();
                (Cow::Borrowed(name.as_str()), values)
            })
            .collect();
        // `cookie=<name>` cannot collide with a header name (`=` is not a token character), and
        // layers without `vary_by_cookie` keep the keys they always had.
        varied.extend(
            self.cookies
                .iter()
                .map(|name| (Cow::Owned(format!("cookie={name}")), cookie(headers, name))),
        );
        // HEAD is answered from GET entries: the method field is always GET.
        let mut key = format!("{namespace}:{}:", self.prefix);
        push_digest(&mut key, &("GET", uri.path(), query, varied))?;
        Ok(key)
    }

    /// Requests carrying credentials (`Authorization`, `Cookie`) are only cached when the key
    /// includes them: otherwise one user's answer could be served to another.
    pub(super) fn credentials_unkeyed(&self, headers: &HeaderMap) -> bool {
        let keyed = |name: &str| self.vary.iter().any(|v| v == name);
        (headers.contains_key(header::AUTHORIZATION) && !keyed("authorization"))
            || (headers.contains_key(header::COOKIE) && !keyed("cookie") && self.cookies.is_empty())
    }

    /// The request headers the key depends on, as named in `Vary` downstream.
    pub(super) fn varied_headers(&self) -> impl Iterator<Item = &str> + '_ {
        let cookie = (!self.cookies.is_empty() && !self.vary.iter().any(|v| v == "cookie"))
            .then_some("cookie");
        self.vary.iter().map(String::as_str).chain(cookie)
    }

    /// Whether the key holds something identifying a user, so that responses must not be
    /// stored by shared caches downstream.
    pub(super) fn personal(&self) -> bool {
        !self.cookies.is_empty()
            || self
                .vary
                .iter()
                .any(|v| !NOT_PERSONAL.contains(&v.as_str()))
    }

    /// Sets the downstream headers of a response the layer stores or serves (`HIT`, a `MISS`
    /// that is cacheable, and the `BYPASS` of a cacheable one, so all three look alike):
    ///
    /// * `Vary`: the handler's tokens plus every varied header;
    /// * `Cache-Control`: the handler's, with `max-age` / `s-maxage` reduced by the entry's
    ///   age (`age_secs`, 0 on a miss); if it declared no freshness, `max-age=<min(downstream
    ///   max age, remaining_secs)>` when [`ResponseCacheLayer::downstream_max_age`] is set,
    ///   nothing otherwise; with a personal key, `private` first and `public` / `s-maxage`
    ///   dropped.
    pub(super) fn downstream(&self, headers: &mut HeaderMap, age_secs: u64, remaining_secs: u64) {
        let mut vary: Vec<String> = directives(headers, header::VARY).collect();
        for name in self.varied_headers() {
            if !vary.iter().any(|v| v == name) {
                vary.push(name.to_string());
            }
        }
        if let Ok(v) = HeaderValue::try_from(vary.join(", "))
            && !vary.is_empty()
        {
            headers.insert(header::VARY, v);
        }

        let personal = self.personal();
        let mut fresh = headers.contains_key(header::EXPIRES);
        let mut cache_control: Vec<String> = Vec::new();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else {
                // Not representable as text: dropped rather than replayed half-understood.
                continue;
            };
            for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
                let name = name.trim().to_ascii_lowercase();
                if personal && (name == "public" || name == "s-maxage") {
                    continue;
                }
                if name == "max-age" || name == "s-maxage" {
                    fresh = true;
                    if let Ok(secs) = arg.trim().trim_matches('"').parse::<u64>() {
                        cache_control.push(format!("{name}={}", secs.saturating_sub(age_secs)));
                        continue;
                    }
                }
                cache_control.push(directive.to_string());
            }
        }
        if let (false, Some(max)) = (fresh, self.downstream_max_age) {
            cache_control.push(format!("max-age={}", max.as_secs().min(remaining_secs)));
        }
        if personal
            && !cache_control
                .iter()
                .any(|d| d.eq_ignore_ascii_case("private"))
        {
            cache_control.insert(0, "private".to_string());
        }
        match HeaderValue::try_from(cache_control.join(", ")) {
            Ok(v) if !cache_control.is_empty() => {
                headers.insert(header::CACHE_CONTROL, v);
            }
            _ => {
                headers.remove(header::CACHE_CONTROL);
            }
        }
    }

    /// Whether a response head allows storing; checked before any body is buffered.
    pub(super) fn cacheable(&self, parts: &http::response::Parts) -> bool {
        if !(self.cache_status)(parts.status) || parts.headers.contains_key(header::SET_COOKIE) {
            return false;
        }
        let forbidden = directives(&parts.headers, header::CACHE_CONTROL)
            .any(|d| matches!(d.as_str(), "no-store" | "private" | "no-cache"));
        if forbidden {
            return false;
        }
        if directives(&parts.headers, header::VARY)
            .any(|v| v == "*" || !self.varied_headers().any(|k| k == v))
        {
            return false;
        }
        let streaming = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if streaming {
            return false;
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        declared.is_none_or(|n| n <= self.max_body_bytes as u64)
    }
}

/// Lowercased comma-separated tokens of a header, directive names only (`max-age=5` → `max-age`).
fn directives(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            d.split_once('=')
                .map_or(d, |(name, _)| name)
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty())
}

/// The values of cookie `name` in the request's `Cookie` headers, in order (RFC 6265 §5.4:
/// `name=value` pairs separated by `;`).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Response, StatusCode};

    use super::*;
    use crate::axum::ResponseCacheLayer;

    fn layer() -> ResponseCacheLayer {
        ResponseCacheLayer::new(Duration::from_secs(10))
    }

    fn key(
        l: &ResponseCacheLayer,
        uri: &'static str,
        headers: &[(&'static str, &'static str)],
    ) -> String {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(*n, HeaderValue::from_static(v));
        }
        l.settings
            .key("ns", &Uri::from_static(uri), &map)
            .unwrap_or_default()
    }

    #[test]
    fn keys_sort_query_by_name_and_keep_repeats_in_order() {
        let l = layer();
        assert_eq!(key(&l, "/a?x=1&y=2", &[]), key(&l, "/a?y=2&x=1", &[]));
        assert_eq!(key(&l, "/a?x=1&&y=2&", &[]), key(&l, "/a?y=2&x=1", &[]));
        assert_ne!(key(&l, "/a?x=1&x=2", &[]), key(&l, "/a?x=2&x=1", &[]));
        assert_ne!(key(&l, "/a?x=1", &[]), key(&l, "/a?x=2", &[]));
        assert_ne!(key(&l, "/a", &[]), key(&l, "/b", &[]));
        assert_ne!(key(&l, "/a?x", &[]), key(&l, "/a?x=", &[]));
        let k = key(&l, "/a", &[]);
        assert!(
            k.starts_with("ns:http:") && k.len() == "ns:http:".len() + 32,
            "{k}"
        );
    }

    #[test]
    fn varied_headers_enter_the_key_others_do_not() {
        let l = layer().vary_by_header("X-User-Id");
        let a = key(&l, "/a", &[("x-user-id", "1")]);
        assert_ne!(a, key(&l, "/a", &[("x-user-id", "2")]));
        assert_ne!(key(&l, "/a", &[]), key(&l, "/a", &[("x-user-id", "")]));
        assert_eq!(a, key(&l, "/a", &[("x-user-id", "1"), ("x-other", "z")]));
        assert_eq!(
            key(&layer(), "/a", &[]),
            key(&layer(), "/a", &[("x-user-id", "1")])
        );
    }

    #[test]
    fn named_cookies_enter_the_key_other_cookies_do_not() {
        let l = layer().vary_by_cookie("session");
        let a = key(&l, "/a", &[("cookie", "session=a; _ga=1")]);
        assert_eq!(a, key(&l, "/a", &[("cookie", "_ga=2;session=a")]));
        assert_eq!(
            a,
            key(&l, "/a", &[("cookie", "_ga=2"), ("cookie", "session=a")])
        );
        assert_ne!(a, key(&l, "/a", &[("cookie", "session=b; _ga=1")]));
        assert_ne!(a, key(&l, "/a", &[("cookie", "xsession=a")]));
        assert_ne!(a, key(&l, "/a", &[("cookie", "Session=a")]));
        assert_eq!(key(&l, "/a", &[]), key(&l, "/a", &[("cookie", "_ga=1")]));
        assert_ne!(key(&l, "/a", &[]), key(&l, "/a", &[("cookie", "session=")]));
        // A value holding `session=a` is not the cookie `session`.
        assert_ne!(a, key(&l, "/a", &[("cookie", "x=session=a")]));
        // Layers without `vary_by_cookie` keep the keys they had: the digest covers exactly
        // (method, path, query, varied headers) as before.
        let mut expected = "ns:http:".to_string();
        let varied: Vec<(&str, Vec<&[u8]>)> = vec![("x-user-id", vec![b"1".as_slice()])];
        push_digest(&mut expected, &("GET", "/a", Vec::<&str>::new(), varied)).unwrap_or_default();
        let l = layer().vary_by_header("x-user-id");
        assert_eq!(key(&l, "/a", &[("x-user-id", "1")]), expected);
    }

    #[test]
    fn credentials_pass_through_unless_the_key_covers_them() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (n, v) in pairs {
                map.append(*n, HeaderValue::from_static(v));
            }
            map
        };
        let cookie = headers(&[("cookie", "session=a")]);
        let auth = headers(&[("authorization", "Bearer a")]);
        let plain = layer().vary_by_header("x-user-id");
        assert!(plain.settings.credentials_unkeyed(&cookie));
        assert!(plain.settings.credentials_unkeyed(&auth));
        assert!(!plain
            .settings
            .credentials_unkeyed(&headers(&[("x-user-id", "1")])));
        let by_cookie = layer().vary_by_cookie("session");
        assert!(!by_cookie.settings.credentials_unkeyed(&cookie));
        assert!(by_cookie.settings.credentials_unkeyed(&auth));
        assert!(!layer()
            .vary_by_header("Cookie")
            .settings
            .credentials_unkeyed(&cookie));
        let by_auth = layer().vary_by_header("authorization");
        assert!(!by_auth.settings.credentials_unkeyed(&auth));
        assert!(by_auth.settings.credentials_unkeyed(&cookie));
    }

    #[test]
    fn downstream_headers() {
        let out = |l: &ResponseCacheLayer,
                   res: &[(&'static str, &'static str)],
                   age: u64,
                   remaining: u64| {
            let mut h = HeaderMap::new();
            for (n, v) in res {
                h.append(*n, HeaderValue::from_static(v));
            }
            l.settings.downstream(&mut h, age, remaining);
            let get = |name| {
                h.get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            (get(header::VARY), get(header::CACHE_CONTROL))
        };
        let s = |v: &str| Some(v.to_string());
        // Nothing varied, nothing declared: nothing added.
        assert_eq!(out(&layer(), &[], 3, 7), (None, None));
        // Representation headers: Vary, not private; the handler's max-age minus the age.
        let lang = layer().vary_by_header("accept-language");
        assert_eq!(
            out(&lang, &[("cache-control", "public, max-age=30")], 3, 7),
            (s("accept-language"), s("public, max-age=27"))
        );
        assert_eq!(
            out(&lang, &[("vary", "Accept-Language, Origin")], 0, 7),
            (s("accept-language, origin"), None)
        );
        // A per-user header: private, public and s-maxage dropped; age never below zero.
        let user = layer().vary_by_header("accept").vary_by_header("x-user-id");
        assert_eq!(
            out(&user, &[], 0, 7),
            (s("accept, x-user-id"), s("private"))
        );
        assert_eq!(
            out(
                &user,
                &[(
                    "cache-control",
                    "public, s-maxage=60, max-age=5, no-transform"
                )],
                9,
                7
            ),
            (
                s("accept, x-user-id"),
                s("private, max-age=0, no-transform")
            )
        );
        // Cookies appear as `Vary: cookie` once, whichever way they are keyed.
        let cookie = layer().vary_by_cookie("session").vary_by_cookie("lang");
        assert_eq!(out(&cookie, &[], 0, 7), (s("cookie"), s("private")));
        let both = layer().vary_by_cookie("session").vary_by_header("cookie");
        assert_eq!(
            out(&both, &[("vary", "Cookie")], 0, 7),
            (s("cookie"), s("private"))
        );
        // downstream_max_age: only when the handler declared no freshness, bounded by the
        // remaining ttl.
        let opt_in = layer().downstream_max_age(Duration::from_secs(5));
        assert_eq!(out(&opt_in, &[], 2, 8), (None, s("max-age=5")));
        assert_eq!(out(&opt_in, &[], 2, 3), (None, s("max-age=3")));
        assert_eq!(
            out(&opt_in, &[("cache-control", "no-transform")], 0, 8),
            (None, s("no-transform, max-age=5"))
        );
        assert_eq!(
            out(&opt_in, &[("cache-control", "max-age=60")], 10, 8),
            (None, s("max-age=50"))
        );
        assert_eq!(
            out(
                &opt_in,
                &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")],
                0,
                8
            ),
            (None, None)
        );
        let private = user.clone().downstream_max_age(Duration::from_secs(60));
        assert_eq!(
            out(&private, &[], 0, 10),
            (s("accept, x-user-id"), s("private, max-age=10"))
        );
    }

    #[test]
    fn exclusions_match_whole_segments() {
        let l = layer().exclude_path("/admin").exclude_path("/static/");
        assert!(l.is_excluded("/admin") && l.is_excluded("/admin/x"));
        assert!(!l.is_excluded("/administrator") && !l.is_excluded("/"));
        assert!(l.is_excluded("/static/app.js") && !l.is_excluded("/static"));
    }

    #[test]
    fn cacheability_of_response_heads() {
        let l = layer().vary_by_header("accept-language").max_body_bytes(10);
        let head = |status: u16, headers: &[(&'static str, &'static str)]| {
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            for (n, v) in headers {
                res.headers_mut().append(*n, HeaderValue::from_static(v));
            }
            l.settings.cacheable(&res.into_parts().0)
        };
        assert!(head(200, &[]));
        assert!(head(
            200,
            &[
                ("cache-control", "public, max-age=5"),
                ("vary", "Accept-Language")
            ]
        ));
        assert!(!head(404, &[]));
        assert!(!head(200, &[("cache-control", "max-age=5, No-Store")]));
        assert!(!head(200, &[("cache-control", "private=\"x\"")]));
        assert!(!head(200, &[("cache-control", "no-cache")]));
        assert!(!head(200, &[("set-cookie", "a=b")]));
        assert!(!head(200, &[("vary", "*")]));
        assert!(!head(200, &[("vary", "cookie")]));
        let cookie = layer().vary_by_cookie("session");
        assert!(cookie.settings.cacheable(
            &Response::builder()
                .header("vary", "Cookie")
                .body(())
                .unwrap_or_default()
                .into_parts()
                .0
        ));
        assert!(!head(200, &[("content-type", "text/event-stream")]));
        assert!(!head(200, &[("content-length", "11")]));
        assert!(head(200, &[("content-length", "10")]));
    }
}
