fn __f_spec() -> ::memo_redis::__private::Site<::memo_redis::__private::Plain> {
    static __MEMO_REDIS_SPEC: ::memo_redis::__private::Spec = ::memo_redis::__private::Spec::new(
            ::core::module_path!(),
            "f",
            "(u64) -> u64",
        )
        .ttl(::memo_redis::__private::Ttl::Millis(60000u64));
    ::memo_redis::__private::Site::new(
        &__MEMO_REDIS_SPEC,
        ::memo_redis::__private::shape_fn!(u64),
    )
}
fn __f_key(x: &u64) -> ::memo_redis::__private::KeyResult {
    __f_spec()
        .digest_key(|__memo_redis_d| {
            ::memo_redis::__private::KeyDigest::arg::<u64>(__memo_redis_d, &*x);
        })
}
#[allow(clippy::unused_async)]
async fn __f_body(x: u64) -> u64 {
    let _ = (&x,);
    x
}
async fn f(x: u64) -> u64 {
    ::memo_redis::__private::value_type::<u64>();
    __f_spec().memo(__f_key(&x), __f_body(x)).await
}
///Companion of `f`: the exact Redis key for these arguments.
#[allow(dead_code)]
fn f_key(x: &u64) -> ::core::result::Result<::std::string::String, ::memo_redis::Error> {
    ::memo_redis::__private::key_string(__f_key(x))
}
///Companion of `f`: deletes the cached entry for these arguments; `true` if one existed.
#[allow(dead_code)]
async fn f_evict(x: &u64) -> ::core::result::Result<bool, ::memo_redis::Error> {
    ::memo_redis::__private::evict(__f_key(x)).await
}
///Companion of `f`: what a cache hit would return, without running the function.
#[allow(dead_code)]
async fn f_peek(
    x: &u64,
) -> ::core::result::Result<::core::option::Option<u64>, ::memo_redis::Error> {
    ::memo_redis::__private::value_type::<u64>();
    __f_spec().peek(__f_key(x)).await
}
///Companion of `f`: deletes its entries for every argument tuple (SCAN + UNLINK), leaving other functions' entries; returns how many were deleted.
#[allow(dead_code)]
async fn f_invalidate_all() -> ::core::result::Result<u64, ::memo_redis::Error> {
    __f_spec().invalidate_all().await
}
///Companion of `f`: its counters in this process (hits, misses, refreshes, skipped results…); zeros until it is first called.
#[allow(dead_code)]
fn f_stats() -> ::memo_redis::Stats {
    __f_spec().stats()
}
///Companion of `f`: runs the function and stores its result, whatever is cached (write-through).
#[allow(dead_code)]
async fn f_refresh(x: u64) -> u64 {
    ::memo_redis::__private::value_type::<u64>();
    __f_spec().refresh(__f_key(&x), __f_body(x)).await
}
///Companion of `f`: its calls for many argument tuples, results in input order, with one Redis read and one write pipeline (a batch).
#[allow(dead_code)]
async fn f_many(
    __memo_redis_items: impl ::core::iter::IntoIterator<Item = u64>,
) -> ::std::vec::Vec<u64> {
    ::memo_redis::__private::value_type::<u64>();
    __f_spec().many(__memo_redis_items, |x| __f_key(x), |x| __f_body(x)).await
}
