//! What an expansion of `#[redis_cache]` holds of its function: the one [`Spec`], the `Self` it
//! is a method of, and its value type's shape, bundled so that the function and each companion
//! reach the same spec (and so the same counters) through one hidden `__f_spec()`.

use std::future::Future;
use std::marker::PhantomData;

use crate::error::Error;
use crate::key::{KeyDigest, TemplateWriter};
use crate::outline::Outlined;
use crate::schema::ShapeFn;
use crate::shape::Shape;
use crate::spec::key::Key;
use crate::spec::Spec;
use crate::stats::Stats;

/// The empty `Self` name used by free functions.
pub const NO_SELF: &str = "";

/// One cached function as its generated code sees it; `S` is its shape policy
/// ([`Plain`](crate::shape::Plain), [`Opt`](crate::shape::Opt), ...).
#[derive(Debug)]
pub struct Site<S> {
    spec: &'static Spec,
    self_ty: &'static str,
    shape: ShapeFn,
    policy: PhantomData<fn() -> S>,
}

impl<S> Clone for Site<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Site<S> {}

impl<S> Site<S> {
    /// The function of `spec`, without `self` ([`NO_SELF`]), caching a value type whose shape `shape` traces.
    #[inline]
    pub fn new(spec: &'static Spec, shape: ShapeFn) -> Self {
        Self::method(spec, NO_SELF, shape)
    }

    /// The method of `spec` of the type named `self_ty` (`type_name::<Self>()`).
    #[inline]
    pub fn method(spec: &'static Spec, self_ty: &'static str, shape: ShapeFn) -> Self {
        Site {
            spec,
            self_ty,
            shape,
            policy: PhantomData,
        }
    }

    /// The function's spec.
    #[inline]
    pub fn spec(self) -> &'static Spec {
        self.spec
    }

    /// The function's counters in this process (companion `f_stats`).
    pub fn stats(self) -> Stats {
        self.spec.stats()
    }

    /// See [`digest_key`](crate::spec::key::digest_key).
    ///
    /// # Errors
    /// The cache configuration is invalid, or an argument failed to serialize.
    #[inline]
    pub fn digest_key(self, args: impl FnOnce(&mut KeyDigest)) -> Result<Key, Error> {
        crate::spec::key::digest_key(self.spec, self.self_ty, self.shape, args)
    }

    /// See [`template_key`](crate::spec::key::template_key).
    ///
    /// # Errors
    /// The cache configuration is invalid.
    #[inline]
    pub fn template_key(self, render: impl FnOnce(&mut TemplateWriter<'_>)) -> Result<Key, Error> {
        crate::spec::key::template_key(self.spec, self.self_ty, self.shape, render)
    }

    /// See [`custom_key`](crate::spec::key::custom_key).
    ///
    /// # Errors
    /// The cache configuration is invalid, or the builder returned an empty string.
    #[inline]
    pub fn custom_key(self, custom: impl AsRef<str>) -> Result<Key, Error> {
        crate::spec::key::custom_key(self.spec, self.self_ty, self.shape, custom)
    }

    /// Companion `f_invalidate_all`.
    ///
    /// # Errors
    /// See [`Cache::invalidate_pattern`](crate::Cache::invalidate_pattern).
    pub async fn invalidate_all(self) -> Result<u64, Error> {
        crate::invalidate::invalidate_all(self.spec, self.self_ty, self.shape).await
    }

    /// The memoized call (see [`pipeline::memo`](crate::pipeline::memo)).
    #[inline]
    pub fn memo<R, F>(self, key: Result<Key, Error>, body: F) -> Outlined<impl Future<Output = R>>
    where
        S: Shape<R>,
        F: Future<Output = R>,
    {
        Outlined::new(crate::pipeline::memo::<S, R, F>(self.spec, key, body))
    }

    /// The memoized call of a function with background refreshes: `make` builds the body future
    /// (see [`pipeline::memo_bg`](crate::pipeline::memo_bg)).
    #[inline]
    pub fn memo_bg<R, M, F>(
        self,
        key: Result<Key, Error>,
        make: M,
    ) -> Outlined<impl Future<Output = R>>
    where
        S: Shape<R> + 'static,
        R: Send + 'static,
        M: Fn() -> F + Clone + Send + Sync + 'static,
        F: Future<Output = R> + Send + 'static,
    {
        Outlined::new(crate::pipeline::memo_bg::<S, R, M, F>(self.spec, key, make))
    }

    /// Companion `f_refresh`: the body's result stored whatever is cached, counted on this
    /// function's spec.
    #[inline]
    pub fn refresh<R, F>(
        self,
        key: Result<Key, Error>,
        body: F,
    ) -> Outlined<impl Future<Output = R>>
    where
        S: Shape<R>,
        F: Future<Output = R>,
    {
        // Listed by `stats()` even before the function's first call: the refresh is counted.
        self.spec.register();
        Outlined::new(crate::pipeline::refresh::<S, R, F>(self.spec, key, body))
    }

    /// Companion `f_many`: the calls of many argument tuples at once, results in input order
    /// (see [`pipeline::memo_many`](crate::pipeline::memo_many)). `key` computes an item's key
    /// from its arguments, `make` builds its body future.
    #[inline]
    pub fn many<R, A, K, M, F>(
        self,
        items: impl IntoIterator<Item = A>,
        key: K,
        make: M,
    ) -> Outlined<impl Future<Output = Vec<R>>>
    where
        S: Shape<R>,
        K: Fn(&A) -> Result<Key, Error>,
        M: Fn(A) -> F,
        F: Future<Output = R>,
    {
        Outlined::new(crate::pipeline::memo_many::<S, R, A, K, M, F>(
            self.spec, items, key, make,
        ))
    }

    /// Companion `f_peek`.
    ///
    /// # Errors
    /// See [`pipeline::peek`](crate::pipeline::peek).
    pub async fn peek<R>(self, key: Result<Key, Error>) -> Result<Option<R>, Error>
    where
        S: Shape<R>,
    {
        crate::pipeline::peek::<S, R>(key).await
    }
}
