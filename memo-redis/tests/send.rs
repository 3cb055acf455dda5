//! The futures of cached functions and of their companions are `Send` (and `'static` when their
//! arguments are), so they can be spawned on a multi-threaded runtime.
//!
//! Only builds the futures; nothing is polled and no Redis is needed.

use std::future::Future;
use std::sync::Arc;

use memo_redis::redis_cache;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct LookupError;

#[redis_cache(ttl = 60)]
async fn plain(id: u64, name: String) -> User {
    User { id, name }
}

#[redis_cache(cache_none = true)]
async fn option(id: u64) -> Option<User> {
    None.filter(|_: &User| id > 0)
}

#[redis_cache]
async fn result(id: u64) -> Result<Option<User>, LookupError> {
    Ok(None.filter(|_: &User| id > 0))
}

#[redis_cache(key = "user:{id}")]
async fn templated(id: u64) -> u64 {
    id
}

#[redis_cache]
async fn borrowed(name: &str) -> usize {
    name.len()
}

struct Service {
    region: String,
}

impl Service {
    #[redis_cache]
    async fn by_ref(&self, id: u64) -> Option<u64> {
        Some(id + self.region.len() as u64)
    }

    #[redis_cache(key = "{self.region}:{id}")]
    async fn templated(&self, id: u64) -> u64 {
        id
    }

    #[redis_cache]
    async fn by_arc(self: Arc<Self>, id: u64) -> u64 {
        id + self.region.len() as u64
    }
}

static SERVICE: Service = Service {
    region: String::new(),
};
static ID: u64 = 7;
static NAME: String = String::new();

fn assert_send<T: Future + Send>(_: T) {}
fn assert_send_static<T: Future + Send + 'static>(_: T) {}

#[test]
fn free_function_futures_are_send_and_static() {
    assert_send_static(plain(1, "ada".into()));
    assert_send_static(option(1));
    assert_send_static(result(1));
    assert_send_static(templated(1));
    assert_send_static(borrowed("ada"));

    assert_send_static(plain_evict(&ID, &NAME));
    assert_send_static(plain_peek(&ID, &NAME));
    assert_send_static(plain_refresh(1, "ada".into()));
    assert_send_static(option_evict(&ID));
    assert_send_static(option_peek(&ID));
    assert_send_static(option_refresh(1));
    assert_send_static(result_peek(&ID));
    assert_send_static(templated_peek(&ID));
    assert_send_static(borrowed_peek("ada"));
}

#[test]
fn futures_borrowing_arguments_are_send() {
    let id = 1;
    let name = String::from("ada");
    let local = name.clone();
    assert_send(borrowed(&local));
    assert_send(plain_evict(&id, &name));
    assert_send(plain_peek(&id, &name));
    assert_send(borrowed_evict(&local));
}

#[test]
fn method_futures_are_send() {
    // `&'static self`: the futures are `'static` too.
    assert_send_static(SERVICE.by_ref(1));
    assert_send_static(SERVICE.by_ref_evict(&ID));
    assert_send_static(SERVICE.by_ref_peek(&ID));
    assert_send_static(SERVICE.by_ref_refresh(1));
    assert_send_static(SERVICE.templated(1));
    assert_send_static(SERVICE.templated_peek(&ID));

    // A local `&self`: `Send`, borrowing it.
    let service = Service {
        region: "eu".into(),
    };
    assert_send(service.by_ref(1));
    assert_send(service.by_ref_evict(&1));
    assert_send(service.by_ref_peek(&1));
    assert_send(service.by_ref_refresh(1));

    // `self: Arc<Self>` owns its receiver.
    let shared = Arc::new(service);
    assert_send_static(Arc::clone(&shared).by_arc(1));
    assert_send_static(Arc::clone(&shared).by_arc_refresh(1));
    // Its `_key`/`_evict`/`_peek` companions take `&self`.
    assert_send(shared.by_arc_peek(&ID));
    assert_send(shared.by_arc_evict(&ID));
}
