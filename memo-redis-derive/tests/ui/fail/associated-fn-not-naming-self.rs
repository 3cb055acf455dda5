use memo_redis::redis_cache;

struct Repo;

impl Repo {
    // No `self` and no `Self`: the macro takes it for a free function, and its hidden items are
    // not found in the `impl`. Remedy: name `Self` (e.g. `where Self: Sized`).
    #[redis_cache]
    async fn associated(id: u64) -> u64 {
        id
    }
}

fn main() {}
