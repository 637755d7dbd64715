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
use std::fmt;
use std::io;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// A handle to a namespace that does not keep it alive ([`Netns::downgrade`]).
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

/// A time source and timer driver for a namespace.
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

impl Netns {
    /// A handle that does not keep the namespace alive (for tasks that should
    /// end with it).
    pub fn downgrade(&self) -> WeakNetns {
        WeakNetns(Arc::downgrade(&self.0))
    }

    /// Installs `clock` as the namespace's time source and timer driver.
    /// It can be set once, before the namespace has sockets; a second call,
    /// or a call once a socket exists, gives `AlreadyExists`/`InvalidInput`
    /// and changes nothing.
    pub fn set_clock(&self, clock: Arc<dyn Clock>) -> io::Result<()> {
        if self.0.sock_alloc.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "set_clock: the namespace already has sockets; set the clock first",
            ));
        }
        self.0.clock.set(clock).map_err(|_| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "set_clock: the namespace already has a clock",
            )
        })
    }

    /// Whether a [`Clock`] drives this namespace (else the wall clock and
    /// the `ksoftirqd` thread do).
    pub fn has_clock(&self) -> bool {
        self.0.clock.get().is_some()
    }

    /// The namespace's time: its [`Clock`]'s, else the wall clock.
    pub fn now(&self) -> Instant {
        self.0.clock_now()
    }

    /// Runs every timer of the namespace that is due on its clock (TCP
    /// timers, netem's queue), and returns the next deadline, if any. A
    /// [`Clock`]'s driver calls it at the deadlines it was given; calling it
    /// early or often is harmless.
    pub fn run_timers(&self) -> Option<Instant> {
        self.0.run_timers(self.0.clock_now())
    }
}
