use memo_redis::redis_cache;

type Maybe<T> = Option<T>;

#[redis_cache(shape = maybe)]
async fn lookup(id: u64) -> Maybe<u64> {
    Some(id)
}

fn main() {}
