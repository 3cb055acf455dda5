//! The `f_stats()` companion: the counters of exactly its own function — a free function, and
//! two methods of the same name and signature on two types in one module.

mod common;

use common::install;
use memo_redis::{redis_cache, Cache};
use memo_redis_tests::RedisServer;

static CACHE: Cache = Cache::from_env();

#[redis_cache(cache = CACHE, ttl = 60)]
async fn square(x: u64) -> u64 {
    x * x
}

/// Never called: its companion must report zeros, not another function's counters.
#[redis_cache(cache = CACHE, ttl = 60)]
async fn cube(x: u64) -> u64 {
    x * x * x
}

struct Left;
struct Right;

impl Left {
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn side(&self, x: u64) -> u64 {
        x + 1
    }
}

impl Right {
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn side(&self, x: u64) -> u64 {
        x + 2
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_companion_reports_its_own_function() {
    let server = RedisServer::start();
    install(&CACHE, &server);

    assert_eq!(square_stats().calls(), 0, "zeros before the first call");
    for _ in 0..3 {
        assert_eq!(square(7).await, 49);
    }
    assert_eq!(square(8).await, 64);
    let s = square_stats();
    assert_eq!(
        (s.misses, s.hits, s.errors, s.bypass),
        (2, 2, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.calls(), 4);
    assert_eq!(s.hit_ratio(), 0.5);
    assert_eq!(cube_stats().calls(), 0);

    // One call on `Left`, three on `Right`: each companion counts its own type's method.
    let (left, right) = (Left, Right);
    assert_eq!(left.side(1).await, 2);
    for _ in 0..3 {
        assert_eq!(right.side(1).await, 3);
    }
    let (l, r) = (left.side_stats(), right.side_stats());
    assert_eq!((l.misses, l.hits), (1, 0), "{l:?}");
    assert_eq!((r.misses, r.hits), (1, 2), "{r:?}");
}
