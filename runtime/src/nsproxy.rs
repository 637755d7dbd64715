//! Which namespace is current (the kernel's `current->nsproxy->net_ns`,
//! kernel/nsproxy.c): a socket is created in the namespace of the innermost
//! [`Scope`] being polled, else the one its thread [`enter`](Netns::enter)ed,
//! else `init_net`. This module holds the two thread-locals and the types
//! that set them; [`Netns::current`], [`Netns::scope`] and [`Netns::enter`]
//! are the public calls.

use crate::netns::Netns;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

crate::sync::thread_local! {
    /// Set while a `Scope` polls its future.
    static CURRENT: Cell<Option<Netns>> = const { Cell::new(None) };
    /// Set by `Netns::enter` for the thread.
    static THREAD_DEFAULT: RefCell<Option<Netns>> = const { RefCell::new(None) };
}

/// The namespace a scope or an enter made current on this thread, if any
/// (the innermost scope first).
pub(crate) fn current() -> Option<Netns> {
    CURRENT
        .with(|c| {
            let cur = c.take();
            let ns = cur.clone();
            c.set(cur);
            ns
        })
        .or_else(|| THREAD_DEFAULT.with(|c| c.borrow().clone()))
}

/// Returned by [`Netns::enter`] (`setns(2)` for the calling thread);
/// restores the thread's previous default namespace when dropped. Not `Send`: it belongs to the thread.
#[derive(Debug)]
#[must_use = "the namespace stays entered only while the guard lives"]
pub struct EnterGuard {
    prev: Option<Netns>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl EnterGuard {
    /// Makes `ns` the thread's default until the guard drops.
    pub(crate) fn enter(ns: &Netns) -> EnterGuard {
        EnterGuard {
            prev: THREAD_DEFAULT.with(|c| c.replace(Some(ns.clone()))),
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        THREAD_DEFAULT.with(|c| *c.borrow_mut() = prev);
    }
}

/// While a `Scope` polls: its namespace, moved (not cloned, so no
/// reference-count traffic per poll) into `CURRENT`, and moved back when the
/// poll ends, also when it panics.
struct CurrentGuard<'a> {
    slot: &'a mut Option<Netns>,
    prev: Option<Netns>,
}

impl<'a> CurrentGuard<'a> {
    #[inline]
    fn set(slot: &'a mut Option<Netns>) -> CurrentGuard<'a> {
        let prev = CURRENT.with(|c| c.replace(slot.take()));
        CurrentGuard { slot, prev }
    }
}

impl Drop for CurrentGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Nested scopes put back what they replaced, so `CURRENT` holds this
        // scope's namespace again.
        let prev = self.prev.take();
        *self.slot = CURRENT.with(|c| c.replace(prev));
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`Netns::scope`]: its inner future runs as if
    /// the task had called `setns(2)` for the length of each poll.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Scope<F> {
        // `None` only while its future is polled (moved into `CURRENT`).
        ns: Option<Netns>,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Scope<F> {
    /// `fut`, polled with `ns` current.
    pub(crate) fn new(ns: Netns, fut: F) -> Scope<F> {
        Scope { ns: Some(ns), fut }
    }
}

impl<F: Future> Future for Scope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = CurrentGuard::set(this.ns);
        this.fut.poll(cx)
    }
}
