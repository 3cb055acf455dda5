use super::parse::parse_units;
use super::url::redact_url;
use super::*;
use crate::error::ConfigError;

fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_lookup(|n| {
        vars.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.to_string())
    })
}

#[test]
fn defaults() {
    let c = from(&[]).unwrap();
    assert_eq!(c.namespace(), "memo");
    assert_eq!(c.default_ttl(), Some(DEFAULT_TTL));
    assert_eq!(c.op_timeout(), DEFAULT_OP_TIMEOUT);
    assert_eq!(c.redacted_url(), "redis://127.0.0.1:6379/0");
}

#[test]
fn table_of_bad_values() {
    let cases: &[(&str, &str, &str)] = &[
        ("REDIS_PORT", "0", "invalid REDIS_PORT `0`: must be 1-65535"),
        ("REDIS_PORT", "65536", "invalid REDIS_PORT `65536`: must be 1-65535"),
        ("REDIS_PORT", "abc", "invalid REDIS_PORT `abc`: expected a non-negative whole number"),
        ("REDIS_DB", "-1", "invalid REDIS_DB `-1`: must not be negative"),
        ("REDIS_DEFAULT_TTL", "-5", "invalid REDIS_DEFAULT_TTL `-5`: must not be negative; 0 means no expiry"),
        ("REDIS_DEFAULT_TTL", "1.5", "invalid REDIS_DEFAULT_TTL `1.5`: missing unit after `1`; expected whole seconds (`300`), a duration such as `5m` or `1h30m`, or `never` (also `0`)"),
        ("REDIS_DEFAULT_TTL", "5 minutes", "invalid REDIS_DEFAULT_TTL `5 minutes`: missing unit after `5`; expected whole seconds (`300`), a duration such as `5m` or `1h30m`, or `never` (also `0`)"),
        ("REDIS_SOCKET_TIMEOUT", "0", "invalid REDIS_SOCKET_TIMEOUT `0`: must be greater than zero"),
        ("REDIS_SOCKET_TIMEOUT", "-1", "invalid REDIS_SOCKET_TIMEOUT `-1`: must not be negative"),
        ("REDIS_SOCKET_TIMEOUT", "250mss", "invalid REDIS_SOCKET_TIMEOUT `250mss`: unknown unit `mss`; expected seconds (`0.25`) or a duration such as `250ms`, `90s`, `5m`, `1h30m`"),
        ("REDIS_SOCKET_CONNECT_TIMEOUT", "x", "invalid REDIS_SOCKET_CONNECT_TIMEOUT `x`: expected a number at `x`; expected seconds (`0.25`) or a duration such as `250ms`, `90s`, `5m`, `1h30m`"),
        ("REDIS_SSL", "maybe", "invalid REDIS_SSL `maybe`: expected true or false"),
        ("REDIS_PREFIX", "a:b", "invalid REDIS_PREFIX `a:b`: must not contain `:`; use letters, digits, `_`, `-`, `.` or `/`"),
        ("REDIS_CODEC", "xml", "invalid REDIS_CODEC `xml`: unknown codec `xml`; expected one of `bincode`, `json`, `msgpack`, `postcard`"),
        ("REDIS_DB", "x", "invalid REDIS_DB `x`: expected a non-negative whole number"),
        ("REDIS_CLUSTER", "2", "invalid REDIS_CLUSTER `2`: expected true or false"),
        ("REDIS_PREFIX", "a{b}", "invalid REDIS_PREFIX `a{b}`: must not contain `{`; use letters, digits, `_`, `-`, `.` or `/`"),
        ("REDIS_BREAKER_THRESHOLD", "0", "invalid REDIS_BREAKER_THRESHOLD `0`: must be at least 1"),
        ("REDIS_BREAKER_THRESHOLD", "many", "invalid REDIS_BREAKER_THRESHOLD `many`: expected a non-negative whole number"),
        ("REDIS_BREAKER_COOLDOWN", "0", "invalid REDIS_BREAKER_COOLDOWN `0`: must be greater than zero"),
        ("REDIS_BREAKER_COOLDOWN", "inf", "invalid REDIS_BREAKER_COOLDOWN `inf`: expected a finite number of seconds"),
        ("REDIS_MAX_VALUE_BYTES", "0", "invalid REDIS_MAX_VALUE_BYTES `0`: must be at least 1"),
        ("REDIS_MAX_VALUE_BYTES", "1e6", "invalid REDIS_MAX_VALUE_BYTES `1e6`: expected a non-negative whole number"),
        ("REDIS_LOCAL_MAX_BYTES", "0", "invalid REDIS_LOCAL_MAX_BYTES `0`: must be at least 1"),
    ];
    for (name, value, want) in cases {
        let err = from(&[(name, value)]).unwrap_err();
        assert_eq!(err.to_string(), *want, "{name}={value}");
    }
    let err = from(&[("REDIS_URL", "http://:pw@host")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid REDIS_URL `http://***@host`"),
        "{err}"
    );
    assert!(!err.to_string().contains("pw@"));
    let err = from(&[
        ("REDIS_CLUSTER", "true"),
        ("REDIS_URL", "redis://h1:7000/1,h2:7001"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("only database 0"), "{err}");
}

#[test]
fn durations_accept_the_attribute_units() {
    let c = from(&[
        ("REDIS_DEFAULT_TTL", "5m"),
        ("REDIS_SOCKET_TIMEOUT", "250ms"),
        ("REDIS_SOCKET_CONNECT_TIMEOUT", "2s"),
        ("REDIS_BREAKER_COOLDOWN", "1m30s"),
    ])
    .unwrap();
    assert_eq!(c.default_ttl(), Some(Duration::from_secs(300)));
    assert_eq!(c.op_timeout(), Duration::from_millis(250));
    assert_eq!(c.connect_timeout(), Duration::from_secs(2));
    assert_eq!(c.breaker_cooldown, Duration::from_secs(90));
    // The historical forms still mean what they meant.
    let c = from(&[
        ("REDIS_DEFAULT_TTL", "3600"),
        ("REDIS_SOCKET_TIMEOUT", "0.25"),
    ])
    .unwrap();
    assert_eq!(c.default_ttl(), Some(Duration::from_secs(3600)));
    assert_eq!(c.op_timeout(), Duration::from_millis(250));
    for never in ["0", "never", "NEVER", "0s"] {
        let c = from(&[("REDIS_DEFAULT_TTL", never)]).unwrap();
        assert_eq!(c.default_ttl(), None, "{never}");
    }
    // The attribute's examples (memo-redis-derive's parse_duration_ms tests).
    assert_eq!(parse_units("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_units("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_units("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_units("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_units("2d"), Ok(Duration::from_secs(172_800)));
    assert!(parse_units("5").is_err());
    assert!(parse_units("5 minutes").is_err());
    assert!(parse_units("m").is_err());
}

#[test]
fn url_mistakes_name_the_fix() {
    let cases: &[(&str, &str)] = &[
        (
            "http://127.0.0.1:6379",
            "`http://` is not a Redis scheme; write `redis://`",
        ),
        (
            "https://cache.example.com",
            "`https://` is not a Redis scheme",
        ),
        (
            "127.0.0.1:6390",
            "missing scheme; write `redis://host:port`",
        ),
        ("memcached://h:1", "unknown scheme `memcached://`"),
        ("redis://", "missing host"),
        ("redis://:6379", "missing host"),
        ("redis://:pw@:6379/0", "missing host"),
    ];
    for (url, want) in cases {
        let err = from(&[("REDIS_URL", url)]).unwrap_err().to_string();
        assert!(err.contains(want), "{url}: {err}");
        assert!(
            !err.contains("secret") && !err.contains(":pw@"),
            "{url}: {err}"
        );
    }
    #[cfg(not(feature = "tls"))]
    {
        let err = from(&[("REDIS_URL", "rediss://h:6380")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`tls` cargo feature"), "{err}");
    }
    let err = from(&[
        ("REDIS_CLUSTER", "true"),
        ("REDIS_URL", "redis://h1:7000,http://h2:7001"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a Redis scheme"), "{err}");
    for ok in [
        "redis://127.0.0.1:6379/2",
        "valkey://h:1",
        "unix:///run/redis.sock",
        "redis://u:p@h",
    ] {
        assert!(from(&[("REDIS_URL", ok)]).is_ok(), "{ok}");
    }
}

#[test]
fn table_of_every_variable() {
    let ca = std::env::temp_dir().join(format!("memo-redis-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, b"-----BEGIN CERTIFICATE-----\n").unwrap();
    let ca_path = ca.display().to_string();
    let c = from(&[
        ("REDIS_HOST", "cache.internal"),
        ("REDIS_PORT", "6390"),
        ("REDIS_DB", "4"),
        ("REDIS_USERNAME", "svc"),
        ("REDIS_PASSWORD", "p4ss"),
        ("REDIS_SSL", "false"),
        ("REDIS_CLUSTER", "no"),
        ("REDIS_PREFIX", "svc"),
        ("REDIS_DEFAULT_TTL", "120"),
        ("REDIS_MAX_CONNECTIONS", "8"),
        ("REDIS_SOCKET_TIMEOUT", "0.1"),
        ("REDIS_SOCKET_CONNECT_TIMEOUT", "2.5"),
        ("REDIS_BREAKER_THRESHOLD", "3"),
        ("REDIS_BREAKER_COOLDOWN", "0.5"),
        ("REDIS_MAX_VALUE_BYTES", "1024"),
        ("REDIS_COMPRESS_MIN_BYTES", "512"),
        ("REDIS_LOCAL_MAX_BYTES", "2048"),
        ("REDIS_CODEC", " bincode "),
        ("REDIS_TLS_CA_CERT", &ca_path),
    ])
    .unwrap();
    std::fs::remove_file(&ca).unwrap();
    assert_eq!(c.redacted_url(), "redis://***@cache.internal:6390/4");
    assert_eq!(c.connection.redis_settings().username(), Some("svc"));
    assert_eq!(c.connection.redis_settings().password(), Some("p4ss"));
    assert!(!c.is_cluster());
    assert_eq!(c.namespace(), "svc");
    assert_eq!(c.default_ttl(), Some(Duration::from_secs(120)));
    assert_eq!(c.op_timeout(), Duration::from_millis(100));
    assert_eq!(c.connect_timeout(), Duration::from_millis(2500));
    assert_eq!(c.breaker_threshold, 3);
    assert_eq!(c.breaker_cooldown, Duration::from_millis(500));
    assert_eq!(c.max_value_bytes(), 1024);
    assert_eq!(c.compress_min_bytes(), Some(512));
    assert_eq!(c.local_max_bytes(), 2048);
    assert_eq!(
        c.codec(),
        CodecKind::Bincode,
        "the only codec without a feature"
    );
    assert_eq!(c.tls_ca_cert.as_deref().map(<[u8]>::len), Some(28));
    for shown in [format!("{c:?}"), c.to_string()] {
        assert!(!shown.contains("p4ss"), "{shown}");
    }

    // Every builder method sets the same thing.
    let b = Config::builder()
        .host("cache.internal")
        .port(6390)
        .db(4)
        .username("svc")
        .password("p4ss")
        .ssl(false)
        .cluster(false)
        .namespace("svc")
        .default_ttl(Duration::from_secs(120))
        .op_timeout(Duration::from_millis(100))
        .connect_timeout(Duration::from_millis(2500))
        .breaker_threshold(3)
        .breaker_cooldown(Duration::from_millis(500))
        .max_value_bytes(1024)
        .compress_min_bytes(512)
        .local_max_bytes(2048)
        .codec(CodecKind::Bincode)
        .tls_ca_cert_pem(b"-----BEGIN CERTIFICATE-----\n".to_vec());
    assert!(!format!("{b:?}").contains("p4ss"));
    assert_eq!(format!("{:?}", b.build().unwrap()), format!("{c:?}"));

    // A CA file that cannot be read names the variable and the path.
    let err = from(&[("REDIS_TLS_CA_CERT", "/nonexistent/ca.pem")]).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "invalid REDIS_TLS_CA_CERT `/nonexistent/ca.pem`: cannot read the CA certificate file"
        ),
        "{err}"
    );
    // TLS together with cluster mode: accepted with the `tls` feature (docs/cluster.md).
    let tls_cluster = from(&[("REDIS_CLUSTER", "true"), ("REDIS_SSL", "true")]);
    if cfg!(feature = "tls") {
        assert!(tls_cluster.expect("a TLS cluster").is_cluster());
    } else {
        assert_eq!(
            tls_cluster.unwrap_err().to_string(),
            "TLS (`rediss://` or REDIS_SSL=true) needs the `tls` feature of memo-redis"
        );
    }
    // Seed nodes mixing schemes are refused: redis-rs uses the first node's for all.
    let mixed = from(&[
        ("REDIS_CLUSTER", "true"),
        ("REDIS_URL", "rediss://n1:7000,redis://n2:7001"),
    ]);
    if cfg!(feature = "tls") {
        assert_eq!(
            mixed.unwrap_err().to_string(),
            "cluster seed nodes mix `rediss://` and `redis://`; use one scheme for all"
        );
    } else {
        assert!(mixed.is_err(), "`rediss://` needs the `tls` feature");
    }
}

/// `REDIS_MAX_CONNECTIONS` was removed (issue 17: one multiplexed connection outperformed
/// several): a deployment that still sets it starts as before, whatever the value, with a
/// warning; the deprecated builder method changes nothing either.
#[test]
fn max_connections_is_ignored() {
    let plain = from(&[]).unwrap();
    for v in ["8", "0", "-1", "many"] {
        let c = from(&[("REDIS_MAX_CONNECTIONS", v)]).unwrap();
        assert_eq!(format!("{c:?}"), format!("{plain:?}"), "{v}");
    }
    #[allow(deprecated)]
    let built = Config::builder().max_connections(8).build().unwrap();
    assert_eq!(
        format!("{built:?}"),
        format!("{:?}", Config::builder().build().unwrap())
    );
}

#[test]
fn cluster_nodes() {
    let c = from(&[
        ("REDIS_CLUSTER", "true"),
        ("REDIS_URL", "redis://:pw@n1:7000, n2:7001,redis://n3:7002"),
    ])
    .unwrap();
    assert!(c.is_cluster());
    assert_eq!(c.cluster_nodes.len(), 3);
    assert_eq!(c.cluster_nodes[1].redis_settings().password(), Some("pw"));
    assert_eq!(c.cluster_nodes[2].redis_settings().password(), None);
    assert_eq!(
        c.redacted_url(),
        "redis://***@n1:7000,n2:7001,redis://n3:7002"
    );
    assert!(!format!("{c:?}").contains("pw"));
    let b = Config::builder()
        .cluster_nodes(["127.0.0.1:7000", "127.0.0.1:7001"])
        .build()
        .unwrap();
    assert!(b.is_cluster());
    assert_eq!(b.cluster_nodes.len(), 2);
    let single = from(&[("REDIS_URL", "redis://h:1")]).unwrap();
    assert!(!single.is_cluster());
    // A cluster without a URL uses the host/port fields as its only seed node.
    let fields = from(&[("REDIS_CLUSTER", "true"), ("REDIS_PORT", "7000")]).unwrap();
    assert_eq!(fields.cluster_nodes.len(), 1);
}

#[test]
fn reads_from_replicas_is_a_cluster_setting() {
    let on = from(&[
        ("REDIS_CLUSTER", "true"),
        ("REDIS_URL", "redis://n1:7000,n2:7001"),
        ("REDIS_READ_FROM_REPLICAS", " TRUE "),
    ])
    .unwrap();
    assert!(on.reads_from_replicas());
    assert!(format!("{on:?}").contains("read_from_replicas: true"));
    let b = Config::builder()
        .cluster_nodes(["redis://n1:7000", "n2:7001"])
        .read_from_replicas(true)
        .build()
        .unwrap();
    assert_eq!(format!("{b:?}"), format!("{on:?}"));
    let off = from(&[("REDIS_CLUSTER", "true"), ("REDIS_URL", "redis://n1:7000")]).unwrap();
    assert!(!off.reads_from_replicas(), "off by default");
    let explicit_off = from(&[("REDIS_READ_FROM_REPLICAS", "false")]).unwrap();
    assert!(!explicit_off.reads_from_replicas());
    // On a single node the flag is refused, not ignored.
    let err = from(&[("REDIS_READ_FROM_REPLICAS", "true")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid REDIS_READ_FROM_REPLICAS `true`: reads from replicas need Redis Cluster \
         (REDIS_CLUSTER=true); a single node has no replicas memo-redis could read from"
    );
    assert!(Config::builder().read_from_replicas(true).build().is_err());
    let bad = from(&[
        ("REDIS_CLUSTER", "true"),
        ("REDIS_READ_FROM_REPLICAS", "often"),
    ]);
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("REDIS_READ_FROM_REPLICAS"));
}

#[test]
fn fields_and_url() {
    let c = from(&[
        ("REDIS_HOST", "10.0.0.1"),
        ("REDIS_PORT", "6380"),
        ("REDIS_DB", "3"),
        ("REDIS_USERNAME", "app"),
        ("REDIS_PASSWORD", "hunter2"),
        ("REDIS_DEFAULT_TTL", "0"),
        ("REDIS_SOCKET_TIMEOUT", "0.5"),
    ])
    .unwrap();
    assert_eq!(c.redacted_url(), "redis://***@10.0.0.1:6380/3");
    assert_eq!(c.default_ttl(), None);
    assert_eq!(c.op_timeout(), Duration::from_millis(500));
    assert_eq!(c.connection.redis_settings().password(), Some("hunter2"));
    // REDIS_URL wins over the fields.
    let c = from(&[("REDIS_URL", "redis://u:pw@h:1/2"), ("REDIS_PORT", "7")]).unwrap();
    assert_eq!(c.redacted_url(), "redis://***@h:1/2");
    for shown in [format!("{c:?}"), c.to_string()] {
        assert!(!shown.contains("pw"), "{shown}");
    }
}

#[test]
fn redaction() {
    assert_eq!(redact_url("redis://:p@h:1"), "redis://***@h:1");
    assert_eq!(redact_url("redis://u@h"), "redis://***@h");
    assert_eq!(redact_url("redis://h/0"), "redis://h/0");
    assert_eq!(redact_url("rediss://u:p:q@h/0"), "rediss://***@h/0");
    // The cases of issue 12: `/` in the password, no scheme, `@` in the password.
    assert_eq!(
        redact_url("redis://app:PWSLASH/abc+def@127.0.0.1:16379"),
        "redis://***@127.0.0.1:16379"
    );
    assert_eq!(redact_url("app:PW@127.0.0.1:16379"), "***@127.0.0.1:16379");
    assert_eq!(redact_url("redis://:p@ss:w/rd@h:1"), "redis://***@h:1");
    assert_eq!(redact_url("a:x://y@h:1"), "***@h:1", "not a scheme");
    // A password a parser cut at `?` leaves its tail in redis-rs's error detail.
    let err = Config::builder()
        .url("redis://h/?protocol=x:Pq7secret@h2")
        .build()
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("Pq7"), "{err}");
    assert_eq!(
        redact_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
        "redis+unix:///run/redis.sock?db=1&pass=***"
    );
}
