//! The `dotenv` feature end to end: `Config::from_env()` and a `Cache::from_env()` static read
//! `./.env`, and the real environment wins. This binary holds a single test because it changes
//! the process's current directory and environment.

use memo_redis::{Cache, Config};

#[test]
fn dotenv_in_the_current_directory() {
    let dir = std::env::temp_dir().join(format!("memo-redis-dotenv-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let before = std::env::current_dir().unwrap();

    // No `.env`: the environment alone.
    std::env::set_current_dir(&dir).unwrap();
    assert_eq!(Config::from_env().unwrap().namespace(), "memo");

    std::fs::write(
        dir.join(".env"),
        "REDIS_PREFIX=from_dotenv\nREDIS_DEFAULT_TTL=0\nREDIS_PORT=7001\n",
    )
    .unwrap();
    // Only this test runs in this binary: no other thread reads the environment meanwhile.
    // TODO: Audit that the environment access only happens in single-threaded code.
    unsafe { std::env::set_var("REDIS_PORT", "7002") };
    let config = Config::from_env().unwrap();
    assert_eq!(config.namespace(), "from_dotenv");
    assert_eq!(config.default_ttl(), None);
    assert_eq!(
        config.redacted_url(),
        "redis://127.0.0.1:7002/0",
        "the real environment wins"
    );
    assert_eq!(
        std::env::var("REDIS_PREFIX").ok(),
        None,
        "the process environment is untouched"
    );

    // A cache configured from the environment (like the global one) sees the file too.
    static CACHE: Cache = Cache::from_env();
    assert_eq!(CACHE.full_key("k").unwrap(), "from_dotenv:k");

    std::env::set_current_dir(before).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
