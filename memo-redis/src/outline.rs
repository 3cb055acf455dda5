//! [`Outlined`]: a future compiled once per crate instead of once per codegen unit.
//!
//! rustc instantiates coroutines (the state machines of `async fn`s and `async` blocks) in
//! every codegen unit that polls them, and across crates in every consumer that awaits them
//! (they are "local copy" items, like `#[inline]` functions; `#[inline(never)]` does not change
//! that). A release build splits a crate into 16 codegen units, so a cached function's whole
//! read-or-compute state machine was compiled up to four times into the user's binary: ≈ 310 KB
//! of a 3.45 MB minimal app (docs/benchmarks.md, "Build size and CI time").
//!
//! Wrapping the future returned to generated code in `Outlined` moves the only poll of the
//! state machine into `Outlined::poll`, an ordinary generic function: rustc emits it once per
//! crate, and the state machine behind it once with it. No allocation, no dynamic dispatch, and
//! the wrapper is `Send` exactly when the future is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// A future that polls `F` from a function of its own (see the module docs).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Outlined<F> {
        #[pin]
        future: F,
    }
}

impl<F> Outlined<F> {
    /// Wraps `future`.
    #[inline]
    pub(crate) fn new(future: F) -> Self {
        Outlined { future }
    }
}

impl<F: Future> Future for Outlined<F> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

impl<F> std::fmt::Debug for Outlined<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outlined")
    }
}
