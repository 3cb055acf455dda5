//! The expansion of `#[redis_cache]` compiles without a single warning under strict lints.
//!
//! Every shape, key mode, receiver and option is expanded here once; the `deny` list below turns
//! any lint the generated code triggers into a build failure of this test (`cargo test`), and of
//! `cargo clippy --all-targets -- -D warnings` for the clippy groups.

#![deny(
    warnings,
    unused,
    unused_qualifications,
    unused_results,
    unreachable_pub,
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    trivial_casts,
    trivial_numeric_casts,
    single_use_lifetimes,
    elided_lifetimes_in_paths,
    clippy::all,
    clippy::pedantic
)]

use std::sync::Arc;

/// Functions of every shape, documented and public: `missing_docs` also covers the companions.
pub mod cached {
    use std::sync::Arc;

    use memo_redis::redis_cache;
    use serde::{Deserialize, Serialize};

    /// A cache of its own.
    pub static REPORTS: memo_redis::Cache = memo_redis::Cache::from_env();

    /// A cached value.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct User {
        /// Its id.
        pub id: u64,
        /// Its name.
        pub name: String,
    }

    /// An error that is never cached, so it needs no serde.
    #[derive(Debug)]
    pub struct LookupError;

    /// An application result alias, like `anyhow::Result`.
    pub type AppResult<T> = Result<T, LookupError>;

    /// A dependency passed along but not part of the key.
    #[derive(Debug)]
    pub struct Db {
        /// Rows.
        pub rows: u64,
    }

    /// Builds the key of [`custom_key`].
    #[must_use]
    pub fn user_key(id: &u64, tab: &str) -> String {
        format!("{id}/{tab}")
    }

    /// Plain value, digest key, default options.
    #[redis_cache]
    pub async fn plain(id: u64) -> u64 {
        id * 2
    }

    /// Plain value, no arguments.
    #[redis_cache(ttl = 60)]
    pub async fn constant() -> String {
        String::from("constant")
    }

    /// `Option`, `None` cached too.
    #[redis_cache(ttl = "5m", cache_none = true)]
    pub async fn option(id: u64) -> Option<User> {
        (id > 0).then(|| User {
            id,
            name: "ada".into(),
        })
    }

    /// `Result`: only `Ok` is cached.
    #[redis_cache(prefix = "users", version = 2)]
    pub async fn result(id: u64) -> Result<User, LookupError> {
        if id == 0 {
            return Err(LookupError);
        }
        Ok(User {
            id,
            name: "ada".into(),
        })
    }

    /// `Result<Option<_>>`.
    #[redis_cache(cache_none = true, codec = bincode)]
    pub async fn result_option(id: u64) -> Result<Option<User>, LookupError> {
        Ok(None.filter(|_: &User| id > 0))
    }

    /// `std::io::Result`.
    #[redis_cache(ttl = "never")]
    pub async fn io_result(path: String) -> std::io::Result<u64> {
        Ok(path.len() as u64)
    }

    /// An alias with an explicit shape.
    #[redis_cache(shape = result, name = "lints.alias", cache = REPORTS)]
    pub async fn alias(id: u64) -> AppResult<u64> {
        let n = u32::try_from(id).map_err(|_| LookupError)?;
        Ok(u64::from(n))
    }

    /// A key template with a field path, a borrowed argument and a skipped one.
    #[redis_cache(key = "user:{user.id}:{tab}")]
    pub async fn template(user: &User, tab: &str, #[memo(skip)] db: &Db) -> u64 {
        user.id + tab.len() as u64 + db.rows
    }

    /// A key builder.
    #[redis_cache(key_fn = user_key)]
    pub async fn custom_key(id: u64, tab: &str) -> String {
        format!("{id}:{tab}")
    }

    /// Explicit lifetimes and a skipped `impl Trait`.
    #[redis_cache]
    pub async fn borrowed<'a>(name: &'a str, #[memo(skip)] log: impl Fn(&str) + Send) -> usize {
        log(name);
        name.len()
    }

    /// Methods.
    #[derive(Debug)]
    pub struct Service {
        /// Its region, part of templated keys.
        pub region: String,
        /// Call counter.
        pub calls: u64,
    }

    impl Service {
        /// `&self`, digest key.
        #[redis_cache]
        pub async fn by_ref(&self, id: u64) -> Option<u64> {
            Some(id + self.calls)
        }

        /// `&mut self`, template with `self`.
        #[redis_cache(key = "{self.region}:{id}")]
        pub async fn by_mut(&mut self, id: u64) -> u64 {
            self.calls += 1;
            id
        }

        /// `self: Arc<Self>`.
        #[redis_cache]
        pub async fn by_arc(self: Arc<Self>, id: u64) -> Result<u64, LookupError> {
            Ok(id + self.calls)
        }

        /// No receiver (naming `Self`, so the macro knows it is in an `impl`).
        #[redis_cache]
        pub async fn associated(id: u64) -> u64
        where
            Self: Sized,
        {
            id
        }
    }

    /// A private function, used below: no `dead_code` from the generated code either.
    #[redis_cache]
    async fn private(id: u64) -> u64 {
        id
    }

    /// Uses [`private`].
    pub async fn calls_private() -> u64 {
        private(1).await
    }
}

/// Builds (never polls) every function's future, so nothing above is unused.
#[test]
fn expansions_compile_without_warnings() {
    use cached::{Db, Service, User};

    let user = User {
        id: 1,
        name: "ada".into(),
    };
    let db = Db { rows: 1 };
    let mut service = Service {
        region: "eu".into(),
        calls: 0,
    };
    drop(cached::plain(1));
    drop(cached::constant());
    drop(cached::option(1));
    drop(cached::result(1));
    drop(cached::result_option(1));
    drop(cached::io_result("a".into()));
    drop(cached::alias(1));
    drop(cached::template(&user, "home", &db));
    drop(cached::custom_key(1, "home"));
    drop(cached::borrowed("ada", |_| {}));
    drop(cached::calls_private());
    drop(service.by_ref(1));
    drop(service.by_mut(1));
    drop(Arc::new(service).by_arc(1));
    drop(Service::associated(1));
    let _: fn(&u64) -> Result<String, memo_redis::Error> = cached::plain_key;
}
