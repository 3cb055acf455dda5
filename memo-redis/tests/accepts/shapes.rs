use memo_redis::redis_cache;

#[derive(Debug)]
struct MyErr;

/// An application alias, like `anyhow::Result`.
type AppResult<T> = Result<T, MyErr>;
type MaybeUser = Option<String>;

#[redis_cache]
async fn plain(id: u64) -> Vec<u64> {
    vec![id]
}

#[redis_cache(cache_none = true)]
async fn option(id: u64) -> Option<String> {
    (id > 0).then(|| id.to_string())
}

#[redis_cache]
async fn result(id: u64) -> Result<String, MyErr> {
    if id == 0 {
        Err(MyErr)
    } else {
        Ok(id.to_string())
    }
}

#[redis_cache(cache_none = true)]
async fn result_option(id: u64) -> Result<Option<String>, MyErr> {
    Ok((id > 0).then(|| id.to_string()))
}

#[redis_cache]
async fn io_result(path: String) -> std::io::Result<u64> {
    Ok(path.len() as u64)
}

#[redis_cache(shape = result)]
async fn app_result(id: u64) -> AppResult<u64> {
    Ok(id)
}

#[redis_cache(shape = option, cache_none = true)]
async fn aliased_option(id: u64) -> MaybeUser {
    Some(id.to_string())
}

#[redis_cache(shape = plain)]
async fn option_as_plain(id: u64) -> Option<u64> {
    Some(id)
}

async fn use_them() {
    let _: Vec<u64> = plain(1).await;
    let _: Option<String> = option(1).await;
    let _: Result<String, MyErr> = result(1).await;
    let _: Result<Option<String>, MyErr> = result_option(1).await;
    let _: std::io::Result<u64> = io_result("a".into()).await;
    let _: AppResult<u64> = app_result(1).await;
    let _: MaybeUser = aliased_option(1).await;
    let _: Option<u64> = option_as_plain(1).await;
    // `_peek` wraps the function's own return type.
    let _: Result<Option<Result<String, MyErr>>, memo_redis::Error> = result_peek(&1).await;
    let _: Result<Option<AppResult<u64>>, memo_redis::Error> = app_result_peek(&1).await;
}

pub fn main() {
    drop(use_them());
}
