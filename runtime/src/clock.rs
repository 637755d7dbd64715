//! Where a namespace's time comes from.
//!
//! By default a namespace reads the wall clock (`Instant::now`) and its
//! timers (TCP retransmission, delayed ACK, zero-window probe, FIN_WAIT2,
//! netem's delays) fire on the `ksoftirqd` thread (ksoftirqd.rs). A
//! [`Clock`] installed with [`Netns::set_clock`] replaces both: the datapath
//! reads the time from it, and when the earliest timer changes it is told
//! ([`Clock::schedule`]) so that its driver calls [`Netns::run_timers`] then.
//! lonet's tokio driver (`lonet::time::use_tokio_time`) is such a clock: with
//! it, timers follow `tokio::time`, `tokio::time::pause()` included, so a test
//! of minutes of modeled time runs in milliseconds.

use crate::netns::{Netns, NsInner};
use crate::sync::{Arc, Weak};
use std::fmt;
use std::io;
use std::time::Instant;

/// A handle to a namespace that does not keep it alive ([`Netns::downgrade`]):
/// a `struct net` pointer without `get_net`, whose [`upgrade`](WeakNetns::upgrade)
/// is the kernel's `maybe_get_net`.
#[derive(Clone)]
pub struct WeakNetns(Weak<NsInner>);

impl WeakNetns {
    /// The namespace, if it still exists.
    pub fn upgrade(&self) -> Option<Netns> {
        self.0.upgrade().map(Netns)
    }
}

impl fmt::Debug for WeakNetns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WeakNetns")
    }
}

/// A time source and timer driver for a namespace: what `jiffies` and the
/// timer softirq are to the kernel.
///
/// `now` must never go backwards. `schedule` is called with the lock of the
/// namespace's timer list held: it must only record the deadline and wake
/// its driver, never call back into the namespace.
pub trait Clock: Send + Sync + 'static {
    /// The current time on this clock.
    fn now(&self) -> Instant;
    /// The earliest timer of the namespace is now at `when` (possibly
    /// earlier than the last deadline given): call [`Netns::run_timers`] no
    /// later than then.
    fn schedule(&self, when: Instant);
}

impl WeakNetns {
    /// A weak handle to `ns`.
    pub(crate) fn new(ns: &Netns) -> WeakNetns {
        WeakNetns(Arc::downgrade(&ns.0))
    }
}

/// [`Netns::set_clock`].
pub(crate) fn set_clock(ns: &NsInner, clock: Arc<dyn Clock>) -> io::Result<()> {
    if ns.socks.alloc.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "set_clock: the namespace already has sockets; set the clock first",
        ));
    }
    ns.clock.set(clock).map_err(|_| {
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "set_clock: the namespace already has a clock",
        )
    })
}
