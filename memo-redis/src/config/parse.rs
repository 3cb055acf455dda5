//! Values of settings: numbers, booleans, name segments, and durations in seconds or with units
//! (`250ms`, `5m`, `1h30m`), each failure naming the setting and the value.

use std::time::Duration;

use crate::error::ConfigError;

pub(super) fn invalid(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

pub(super) fn positive(
    name: &'static str,
    value: Option<Duration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let v = value.unwrap_or(default);
    if v.is_zero() {
        return Err(invalid(name, "0", "must be greater than zero"));
    }
    Ok(v)
}

/// Namespaces and prefixes are one key field: no `:` (it separates fields), no glob characters
/// (they would make pattern invalidation match other keys), no whitespace.
pub(super) fn validate_segment(name: &'static str, s: &str) -> Result<(), ConfigError> {
    if s.is_empty() {
        return Err(invalid(name, s, "must not be empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, ':' | '*' | '?' | '[' | ']' | '{' | '}') || c.is_whitespace())
    {
        return Err(invalid(
            name,
            s,
            &format!("must not contain `{c}`; use letters, digits, `_`, `-`, `.` or `/`"),
        ));
    }
    Ok(())
}

pub(super) fn parse_num<T: std::str::FromStr>(
    name: &'static str,
    v: &str,
) -> Result<T, ConfigError> {
    v.trim()
        .parse::<T>()
        .map_err(|_| invalid(name, v, "expected a non-negative whole number"))
}

pub(super) fn parse_bool(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, v, "expected true or false")),
    }
}

/// A duration variable: seconds as a number (`0.25`, `3`: the historical form), or the
/// attribute's units (`250ms`, `90s`, `5m`, `1h30m`, `2d`).
pub(super) fn parse_secs(name: &'static str, v: &str) -> Result<Duration, ConfigError> {
    let t = v.trim();
    if t.starts_with('-') {
        return Err(invalid(name, v, "must not be negative"));
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| invalid(name, v, "expected a finite number of seconds"));
    }
    parse_units(t).map_err(|why| {
        invalid(
            name,
            v,
            &format!("{why}; expected seconds (`0.25`) or a duration such as `250ms`, `90s`, `5m`, `1h30m`"),
        )
    })
}

/// `REDIS_DEFAULT_TTL`: whole seconds or units as for [`parse_secs`]; `0` or `never` = no expiry.
pub(super) fn parse_ttl_secs(name: &'static str, v: &str) -> Result<Option<Duration>, ConfigError> {
    let t = v.trim();
    if t.starts_with('-') {
        return Err(invalid(name, v, "must not be negative; 0 means no expiry"));
    }
    if t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let ttl = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => parse_units(t).map_err(|why| {
            invalid(
                name,
                v,
                &format!("{why}; expected whole seconds (`300`), a duration such as `5m` or `1h30m`, or `never` (also `0`)"),
            )
        })?,
    };
    Ok((!ttl.is_zero()).then_some(ttl))
}

/// `90s`, `5m`, `1h30m`, `1500ms`, `2d`: the grammar of the attribute's durations
/// (`memo-redis-derive`'s `parse_duration_ms`, which a proc-macro crate cannot share at run time;
/// the unit tests below hold both to the same examples).
pub(super) fn parse_units(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "number too large".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("missing unit after `{n}`")),
            other => return Err(format!("unknown unit `{other}`")),
        };
        total_ms = n
            .checked_mul(factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| "duration too large".to_string())?;
    }
    Ok(Duration::from_millis(total_ms))
}
