//! Modeled time on tokio's clock.
//!
//! [`use_tokio_time`] makes a namespace read its time from `tokio::time` and
//! run its timers (TCP retransmissions, delayed ACKs, netem delays) on a tokio
//! task. Under `tokio::time::pause()` (or `#[tokio::test(start_paused =
//! true)]`) tokio then jumps over the waits: a 20 ms injected delay, a 200 ms
//! retransmission timeout or a 60 s connect timeout takes no real time, and a
//! test measuring them sees exact, repeatable durations.

use lonet_runtime::{Clock, Netns};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::runtime::Handle;
use tokio::sync::Notify;

/// The clock: tokio's time of one runtime, and a wake-up for the driver task.
struct TokioClock {
    handle: Handle,
    shared: Arc<Shared>,
}

struct Shared {
    notify: Notify,
    /// The earliest deadline the namespace asked for and the driver has not
    /// picked up yet.
    next: Mutex<Option<Instant>>,
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        // tokio's clock is the runtime's: enter it when called from another
        // thread (the ksoftirqd thread, another runtime's worker).
        match Handle::try_current() {
            Ok(h) if h.id() == self.handle.id() => tokio::time::Instant::now().into_std(),
            _ => {
                let _g = self.handle.enter();
                tokio::time::Instant::now().into_std()
            }
        }
    }

    fn schedule(&self, when: Instant) {
        let mut next = self.shared.next.lock().unwrap_or_else(|e| e.into_inner());
        if next.is_none_or(|n| when < n) {
            *next = Some(when);
            drop(next);
            self.shared.notify.notify_one();
        }
    }
}

impl Drop for TokioClock {
    /// The namespace is gone: let the driver task see it and end.
    fn drop(&mut self) {
        self.shared.notify.notify_one();
    }
}

/// Makes `ns` keep time with `tokio::time` on the current runtime, and drive
/// its timers from a task spawned there.
///
/// Call it inside the runtime, on a namespace that has no sockets yet (the
/// first thing in a test). The task ends by itself when the namespace is
/// dropped, and with the runtime.
///
/// # Errors
/// `Other` outside a tokio runtime; `AlreadyExists` if the namespace already
/// has a clock; `InvalidInput` if it already has sockets. (The runtime needs
/// tokio's `time` driver: `#[tokio::test]` and `#[tokio::main]` enable it.)
///
/// # Examples
/// ```
/// use lonet_runtime::fault::{Fault, Match};
/// use lonet_transport::net::{TcpListener, TcpStream};
/// use lonet_transport::Netns;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// tokio::time::pause();
/// let ns = Netns::new();
/// lonet_transport::time::use_tokio_time(&ns)?;
/// ns.clone().scope(async {
///     let listener = TcpListener::bind("127.0.0.1:80").await?;
///     let _partition = ns.add_fault(Match::port(80), Fault::partition())?;
///     let t0 = tokio::time::Instant::now();
///     // SYNs vanish: the caller's timeout fires, after 10 s of tokio time.
///     let r = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect("127.0.0.1:80")).await;
///     assert!(r.is_err());
///     assert!(t0.elapsed() >= Duration::from_secs(10)); // modeled time, none of it real
///     drop(listener);
///     std::io::Result::Ok(())
/// })
/// .await
/// # }
/// ```
pub fn use_tokio_time(ns: &Netns) -> io::Result<()> {
    let handle = Handle::try_current()
        .map_err(|_| io::Error::other("use_tokio_time: must be called inside a tokio runtime"))?;
    let shared = Arc::new(Shared {
        notify: Notify::new(),
        next: Mutex::new(None),
    });
    ns.set_clock(Arc::new(TokioClock {
        handle: handle.clone(),
        shared: shared.clone(),
    }))?;
    let weak = ns.downgrade();
    handle.spawn(drive(weak, shared));
    Ok(())
}

/// The driver task: run the namespace's due timers, sleep until the next
/// deadline or until an earlier one is scheduled; end when the namespace is
/// gone.
async fn drive(ns: lonet_runtime::WeakNetns, shared: Arc<Shared>) {
    loop {
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        // Register before reading, so a schedule() in between is not missed.
        notified.as_mut().enable();
        shared.next.lock().unwrap_or_else(|e| e.into_inner()).take();
        let next = {
            let Some(ns) = ns.upgrade() else { return };
            ns.run_timers()
        };
        match next {
            Some(when) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(when)) => {}
                    _ = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}
