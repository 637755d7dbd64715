//! Readiness as tokio reports it, for a socket of the model.
//!
//! tokio keeps a readiness cache per socket (its `ScheduledIo`): the I/O
//! driver sets bits from epoll's edge-triggered events, and only an operation
//! clears them, when it fails with `WouldBlock` (and, on Linux, when a
//! `poll_read` comes back shorter than the buffer or a `poll_write` takes less
//! than it was given). So `readable()` after a read that emptied the queue
//! returns at once, and a caller finds out by trying (`WouldBlock`).
//!
//! The model reports its state as it is now (`tcp_poll`). The shell adds
//! what tokio's cache would still hold on top of that:
//!
//! - **[`Sticky`]**: one flag per direction, per socket (shared by every
//!   handle and split half, as the `ScheduledIo` is per registration). It is
//!   set by an operation that succeeded and cleared by one that would block
//!   (or the short `poll_read` / `poll_write`), exactly where tokio's code
//!   keeps or clears its bits. The readiness reported is the model's state
//!   *or* the flag.
//! - The model's state plays the part of a driver that has already delivered
//!   every event: a bit the model says is ready is ready. tokio needs a tick
//!   so that a clear does not erase a newer event; here a newer event is in
//!   the model's state, which is read on every check, so a clear never hides
//!   it.
//! - **[`Waiter`]**: a task waiting in `readable()`, `writable()` or
//!   `ready()` is woken by the model's wait queue, and then completes even if
//!   another task consumed the readiness before it ran (tokio marks such a
//!   waiter ready and returns what is left, possibly nothing). A spurious
//!   poll (a `select!` or `join!` sibling) does not complete it.
//!
//! How the model's state maps to tokio's bits follows `tcp_poll` and mio's
//! epoll event mapping: `READ_CLOSED` once the read side is shut (FIN
//! received, or reset); `WRITE_CLOSED` only on `EPOLLHUP`, when both sides
//! are shut (or the connection is closed): shutting down one's own write side
//! alone gives no `WRITE_CLOSED` on Linux. `ERROR` is `EPOLLERR`: a pending
//! socket error (the model's `Readiness::error`), reported only to
//! `Interest::ERROR`, as tokio masks it; it stays until a call takes the
//! error.

use lonet_runtime::unstable::{Readiness, Socket, UdpSocket};
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use tokio::io::{Interest, Ready};

/// What tokio's cache would still hold beyond the model's state: per
/// direction, "an operation succeeded since the last `WouldBlock`".
///
/// Relaxed is enough: the flag only ever adds a possibly stale readiness
/// (the next operation finds out), and a task that must see another's store
/// is ordered after it by whatever told it to look.
#[derive(Debug, Default)]
pub(crate) struct Sticky {
    read: AtomicBool,
    write: AtomicBool,
}

impl Sticky {
    /// A socket from `accept`: tokio assumes it readable and writable, so
    /// its first read and write try the socket instead of waiting.
    pub(crate) fn accepted() -> Sticky {
        Sticky {
            read: AtomicBool::new(true),
            write: AtomicBool::new(true),
        }
    }

    /// Whether a read-side operation last left the readiness set.
    #[inline]
    pub(crate) fn read(&self) -> bool {
        self.read.load(Relaxed)
    }

    /// Whether a write-side operation last left the readiness set.
    #[inline]
    pub(crate) fn write(&self) -> bool {
        self.write.load(Relaxed)
    }

    /// Records the read side's outcome: `true` keeps readiness, `false`
    /// clears it. One load, and a store only when it changes.
    #[inline]
    pub(crate) fn set_read(&self, on: bool) {
        if self.read.load(Relaxed) != on {
            self.read.store(on, Relaxed);
        }
    }

    /// Records the write side's outcome, as [`set_read`](Self::set_read).
    #[inline]
    pub(crate) fn set_write(&self, on: bool) {
        if self.write.load(Relaxed) != on {
            self.write.store(on, Relaxed);
        }
    }

    /// The readiness tokio would report for `interest`: the model's state
    /// `now`, plus what the flags keep, masked as tokio's `Interest::mask`.
    pub(crate) fn ready(&self, now: Readiness, interest: Interest) -> Ready {
        let mut ready = Ready::EMPTY;
        if interest.is_readable() {
            if now.readable || self.read() {
                ready |= Ready::READABLE;
            }
            if now.read_closed {
                ready |= Ready::READ_CLOSED;
            }
        }
        if interest.is_writable() {
            if now.writable || self.write() {
                ready |= Ready::WRITABLE;
            }
            // EPOLLHUP: both directions shut, or closed (a reset closes both).
            if now.read_closed && now.write_closed {
                ready |= Ready::WRITE_CLOSED;
            }
        }
        // EPOLLERR: a pending socket error, reported only to an interest
        // that asks for it (tokio's `Interest::ERROR`), as tokio masks it.
        if interest.is_error() && now.error {
            ready |= Ready::ERROR;
        }
        ready
    }
}

/// A task waiting for readiness, registered on the model's wait queue through
/// this waker: the model's wake marks it fired, then wakes the task.
pub(crate) struct Waiter {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Waiter {
    /// A waiter for the task of `waker`, not fired.
    pub(crate) fn new(waker: &Waker) -> Arc<Waiter> {
        Arc::new(Waiter {
            fired: AtomicBool::new(false),
            task: Mutex::new(Some(waker.clone())),
        })
    }

    /// Whether an event on the socket woke it.
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Acquire)
    }

    /// Points it at the task polling now (a future can move between tasks).
    pub(crate) fn update(&self, waker: &Waker) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *task {
            Some(w) => w.clone_from(waker),
            None => *task = Some(waker.clone()),
        }
    }
}

impl Wake for Waiter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Release);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = task {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Readiness, Sticky};
    use tokio::io::{Interest, Ready};

    const BOTH: Interest = Interest::READABLE.add(Interest::WRITABLE);

    fn now(readable: bool, writable: bool, read_closed: bool, write_closed: bool) -> Readiness {
        Readiness {
            readable,
            writable,
            read_closed,
            write_closed,
            error: false,
        }
    }

    #[test]
    fn test_a_pending_error_is_ready_error_only_for_interest_error() {
        let s = Sticky::default();
        let err = Readiness {
            error: true,
            ..now(true, true, true, true)
        };
        assert!(s.ready(err, Interest::ERROR).is_error());
        assert!(!s.ready(err, BOTH).is_error(), "tokio masks ERROR out");
        assert!(!s
            .ready(now(true, true, true, true), Interest::ERROR)
            .is_error());
    }

    /// `tcp_poll` through mio's epoll mapping: RDHUP is READ_CLOSED, only
    /// HUP (both directions shut, or closed) is WRITE_CLOSED.
    #[test]
    fn the_models_state_maps_as_epoll_events_do() {
        let s = Sticky::default();
        assert_eq!(
            s.ready(now(false, true, false, false), BOTH),
            Ready::WRITABLE
        );
        // The peer's FIN.
        assert_eq!(
            s.ready(now(true, true, true, false), BOTH),
            Ready::READABLE | Ready::WRITABLE | Ready::READ_CLOSED
        );
        // Own shutdown alone: EPOLLOUT, no EPOLLHUP.
        assert_eq!(
            s.ready(now(false, true, false, true), BOTH),
            Ready::WRITABLE
        );
        // Both shut, or reset: EPOLLHUP.
        assert_eq!(
            s.ready(now(true, true, true, true), BOTH),
            Ready::READABLE | Ready::WRITABLE | Ready::READ_CLOSED | Ready::WRITE_CLOSED
        );
        // Masked by the interest, as tokio's `Interest::mask`.
        assert_eq!(
            s.ready(now(true, true, true, true), Interest::READABLE),
            Ready::READABLE | Ready::READ_CLOSED
        );
        assert_eq!(
            s.ready(now(true, true, true, true), Interest::WRITABLE),
            Ready::WRITABLE | Ready::WRITE_CLOSED
        );
    }

    /// The flags add what tokio's cache still holds; an outcome that would
    /// block clears them.
    #[test]
    fn sticky_flags_hold_until_cleared() {
        let s = Sticky::accepted();
        let idle = now(false, false, false, false);
        assert_eq!(s.ready(idle, BOTH), Ready::READABLE | Ready::WRITABLE);
        s.set_read(false);
        assert_eq!(s.ready(idle, BOTH), Ready::WRITABLE);
        s.set_write(false);
        assert_eq!(s.ready(idle, BOTH), Ready::EMPTY);
        s.set_read(true);
        assert_eq!(s.ready(idle, Interest::READABLE), Ready::READABLE);
        assert_eq!(s.ready(idle, Interest::WRITABLE), Ready::EMPTY);
    }
}

/// A socket of the model, as [`poll_ready`] sees it: its state now, and its
/// wait queues (the model checks and registers under the socket's lock).
pub(crate) trait ModelPoll {
    /// `tcp_poll` / `udp_poll`: the state now.
    fn readiness(&self) -> Readiness;
    /// Ready to read, or registered on the read wait queue.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready to write, or registered on the write wait queue.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// An error pending, or registered for one.
    fn poll_error_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

macro_rules! model_poll {
    ($t:ty) => {
        impl ModelPoll for $t {
            fn readiness(&self) -> Readiness {
                <$t>::readiness(self)
            }
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_read_ready(self, cx)
            }
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_write_ready(self, cx)
            }
            fn poll_error_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_error_ready(self, cx)
            }
        }
    };
}
model_poll!(Socket);
model_poll!(UdpSocket);

/// `ready(interest)` on a socket of the model, for `TcpStream` and
/// `UdpSocket` alike: what is ready now (the model's state and the sticky
/// bits); else, once `waiter` was woken by an event, what is left (possibly
/// nothing, as a woken tokio waiter returns); else register `waiter` on the
/// wait queues of `interest` and wait. `what` names the socket in the error
/// for an interest the model does not report (`PRIORITY`).
pub(crate) fn poll_ready(
    sock: &impl ModelPoll,
    sticky: &Sticky,
    cx: &mut Context<'_>,
    interest: Interest,
    waiter: &mut Option<Arc<Waiter>>,
    what: &str,
) -> Poll<io::Result<Ready>> {
    if !interest.is_readable() && !interest.is_writable() && !interest.is_error() {
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("lonet: {what} of the model reports READABLE, WRITABLE and ERROR readiness, not PRIORITY"),
        )));
    }
    loop {
        let ready = sticky.ready(sock.readiness(), interest);
        if !ready.is_empty() {
            return Poll::Ready(Ok(ready));
        }
        let w = match waiter {
            Some(w) if w.fired() => return Poll::Ready(Ok(ready)),
            Some(w) => {
                w.update(cx.waker());
                w
            }
            None => waiter.insert(Waiter::new(cx.waker())),
        };
        let waker = Waker::from(w.clone());
        let mut wcx = Context::from_waker(&waker);
        // The model checks and registers under the socket's lock: if it
        // became ready since `readiness()`, look again.
        let mut registered = true;
        if interest.is_readable() && sock.poll_read_ready(&mut wcx)?.is_ready() {
            registered = false;
        }
        if interest.is_writable() && sock.poll_write_ready(&mut wcx)?.is_ready() {
            registered = false;
        }
        if interest.is_error() && sock.poll_error_ready(&mut wcx)?.is_ready() {
            registered = false;
        }
        if registered {
            return Poll::Pending;
        }
    }
}
