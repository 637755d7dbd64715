//! The execution context of one pass through the datapath: the
//! namespace, the modeled CPU (smp.rs), whether NET_RX was raised, and a
//! lazily read clock. Its `Drop` is the kernel's `local_bh_enable`: the
//! softirq a socket call raised runs when the call's context ends, after the
//! socket lock was released (dev.rs's `do_softirq`).

use crate::netns::NsInner;
use crate::smp::this_cpu;
use crate::sync::lock;
use std::time::Instant;

/// The execution context of the datapath: which namespace and modeled CPU,
/// whether NET_RX was raised (so the caller must run the softirq when it
/// leaves the socket call), and a lazily read clock.
pub(crate) struct Ctx<'a> {
    pub(crate) ns: &'a NsInner,
    pub(crate) cpu: usize,
    pub(crate) raised: bool,
    /// Segments `tcp_v4_rcv` took in this context and not yet added to the
    /// CPU's share of `InSegs` (done by `process_backlog` under the queue
    /// lock, or when the context ends).
    pub(crate) in_segs: u64,
    now: Option<Instant>,
}

impl<'a> Ctx<'a> {
    /// Process context: a socket call made by the application on this thread.
    #[inline]
    pub(crate) fn process(ns: &'a NsInner) -> Self {
        Ctx {
            cpu: this_cpu(ns.softnet.len()),
            ns,
            raised: false,
            in_segs: 0,
            now: None,
        }
    }

    /// Softirq context on `cpu` (replies enqueue on the CPU being drained).
    #[inline]
    pub(crate) fn softirq(ns: &'a NsInner, cpu: usize) -> Self {
        Ctx {
            ns,
            cpu,
            raised: false,
            in_segs: 0,
            now: None,
        }
    }

    /// The time, read at most once per context (`tcp_jiffies32`).
    #[inline]
    pub(crate) fn now(&mut self) -> Instant {
        match self.now {
            Some(t) => t,
            None => {
                let t = self.ns.clock_now();
                self.now = Some(t);
                t
            }
        }
    }

    /// `local_bh_enable`: run the softirq raised (and claimed) during the
    /// call, here. Call it after releasing the socket lock.
    ///
    /// Not while this thread unwinds from a panic (the context is then being
    /// dropped on the way out): the softirq wakes other tasks' wakers, and a
    /// second panic there would abort the process. The claimed backlog goes
    /// to `ksoftirqd` instead, as a budget overrun sends it.
    #[inline]
    pub(crate) fn local_bh_enable(&mut self) {
        if std::mem::take(&mut self.raised) {
            self.run_raised();
        }
    }

    /// The softirq part of [`local_bh_enable`](Ctx::local_bh_enable), out
    /// of line: the check above is all most contexts' ends cost.
    #[inline(never)]
    fn run_raised(&mut self) {
        if crate::sync::thread::panicking() {
            crate::ksoftirqd::wakeup_ksoftirqd(self.ns, self.cpu);
        } else {
            crate::dev::do_softirq_claimed(self.ns, self.cpu);
        }
    }

    /// Adds the segments counted here to the CPU's share of `InSegs`.
    #[cold]
    #[inline(never)]
    fn flush_in_segs(&mut self) {
        let mut q = lock(&self.ns.softnet[self.cpu].q);
        q.in_segs += std::mem::take(&mut self.in_segs);
    }
}

impl Drop for Ctx<'_> {
    /// A claimed softirq must run: a path that returns early still drains.
    #[inline]
    fn drop(&mut self) {
        self.local_bh_enable();
        if self.in_segs != 0 {
            self.flush_in_segs();
        }
    }
}
