//! The per-CPU backlog and the NET_RX softirq (net/core/dev.c).
//!
//! * `netif_rx` → `enqueue_to_backlog`: the packet goes to the **sending
//!   CPU's** `input_pkt_queue` (RPS is off). Accepted while the queue length
//!   is `<= netdev_max_backlog`; otherwise dropped and counted in
//!   `softnet_data.dropped` and `lo`'s `rx_dropped`.
//! * `net_rx_action`: runs `process_backlog` with `dev_weight` until the queue
//!   is empty, or until `netdev_budget` packets or `netdev_budget_usecs` are
//!   spent, in which case `time_squeeze` is counted and the rest is handed to
//!   `ksoftirqd`.
//! * `process_backlog`: drains `process_queue`; when it is empty, splices all
//!   of `input_pkt_queue` onto it under the lock (`skb_queue_splice_tail_init`;
//!   here a swap of two `VecDeque`s, so no allocation), or completes.
//!
//! # Where the softirq runs
//! As in the kernel, raising NET_RX only marks it pending: the sender runs
//! `do_softirq` itself when it leaves the socket call (`local_bh_enable`),
//! so the receiver's TCP input and its ACK are processed before `send`
//! returns. A `running` flag per CPU stands for "a softirq is in progress on
//! this CPU": a send made while it is set (by the drain itself, or by another
//! thread mapped to the same CPU) only enqueues, and the drain picks it up
//! before it stops. The flag is cleared under the queue lock only when the
//! input queue is empty, so no packet is ever left without a drainer.

use crate::ctx::Ctx;
use crate::ip::ip_rcv;
use crate::ksoftirqd::wakeup_ksoftirqd;
use crate::netns::NsInner;
use crate::skbuff::SkBuff;
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::sync::lock;
use crate::sync::Mutex;
use std::collections::VecDeque;
use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

/// `struct softnet_data`: one per modeled CPU, cache-line aligned.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct SoftnetData {
    pub(crate) q: Mutex<BacklogQueues>,
    pub(crate) dropped: AtomicU64,
    pub(crate) time_squeeze: AtomicU64,
}

/// The two queues of the backlog NAPI and the "softirq in progress" flag.
#[derive(Debug, Default)]
pub(crate) struct BacklogQueues {
    pub(crate) input_pkt_queue: VecDeque<SkBuff>,
    pub(crate) process_queue: VecDeque<SkBuff>,
    pub(crate) running: bool,
    /// `lo`'s per-CPU `dev_lstats` (packets, bytes), raised by
    /// `loopback_xmit` on this CPU; kept under the queue lock the enqueue
    /// takes anyway, so counting costs no atomic.
    pub(crate) lstats_packets: u64,
    pub(crate) lstats_bytes: u64,
    /// `softnet_data.processed`: per CPU, written only by the softirq
    /// running here, so it is added up per poll under the queue lock the
    /// poll takes anyway (the kernel's plain per-CPU increment, no atomic).
    pub(crate) processed: u64,
    /// This CPU's share of the TCP MIB's `InSegs` (the kernel's MIBs are
    /// per-CPU and summed when read): `tcp_v4_rcv` counts in its `Ctx`, and
    /// the poll adds it here with `processed`.
    pub(crate) in_segs: u64,
}

/// `netif_rx` from `loopback_xmit`: no RPS, so the backlog of the current
/// CPU. On success the driver's `dev_lstats_add` is done here, under the
/// queue lock.
#[inline(always)]
pub(crate) fn netif_rx(ctx: &mut Ctx<'_>, skb: SkBuff) {
    enqueue_to_backlog(ctx, skb)
}

/// `enqueue_to_backlog`: accept while `qlen <= netdev_max_backlog`.
///
/// When no softirq runs on this CPU, raising NET_RX also claims it for the
/// caller (`running`), who runs it when it leaves the socket call
/// ([`Ctx::local_bh_enable`]): the claim and the enqueue are one step under
/// one lock.
#[inline(always)]
fn enqueue_to_backlog(ctx: &mut Ctx<'_>, skb: SkBuff) {
    let ns = ctx.ns;
    let sd = &ns.softnet[ctx.cpu];
    let max = ns.hot.netdev_max_backlog.load(Relaxed);
    let len = skb.ip_len() as u64;
    crate::trace::kevent_skb!("netif_rx", ns, skb, cpu = ctx.cpu);
    let mut q = lock(&sd.q);
    if q.input_pkt_queue.len() <= max {
        q.input_pkt_queue.push_back(skb);
        q.lstats_packets += 1;
        q.lstats_bytes += len;
        if !q.running {
            // ____napi_schedule + __raise_softirq_irqoff(NET_RX_SOFTIRQ)
            q.running = true;
            ctx.raised = true;
        }
    } else {
        drop(q);
        sd.dropped.fetch_add(1, Relaxed);
        ns.lo.rx_dropped.fetch_add(1, Relaxed);
        crate::trace::kevent_skb!(
            "kfree_skb",
            ns,
            skb,
            reason = "netdev_max_backlog",
            cpu = ctx.cpu
        );
    }
}

/// `do_softirq` on `local_bh_enable`, for a caller whose enqueue claimed the
/// CPU's softirq: run `net_rx_action` here, in the caller's context; what the
/// budget leaves goes to `ksoftirqd`.
pub(crate) fn do_softirq_claimed(ns: &NsInner, cpu: usize) {
    if !net_rx_action(ns, cpu) {
        wakeup_ksoftirqd(ns, cpu);
    }
}

/// `do_softirq` for a caller that has not claimed the CPU: claim it unless a
/// softirq already runs there (it will see the packets) or nothing is queued.
#[cfg(test)]
pub(crate) fn do_softirq(ns: &NsInner, cpu: usize) {
    {
        let mut q = lock(&ns.softnet[cpu].q);
        if q.running || (q.input_pkt_queue.is_empty() && q.process_queue.is_empty()) {
            return;
        }
        q.running = true;
    }
    do_softirq_claimed(ns, cpu)
}

/// `net_rx_action` for one CPU. The caller has set `running`. Returns `true`
/// when the backlog is empty (and `running` was cleared), `false` when the
/// budget or the time ran out (`time_squeeze` counted, `running` left set for
/// `ksoftirqd` to continue).
pub(crate) fn net_rx_action(ns: &NsInner, cpu: usize) -> bool {
    let sd = &ns.softnet[cpu];
    let budget = ns.hot.netdev_budget.load(Relaxed);
    let weight = ns.hot.dev_weight.load(Relaxed);
    let mut ctx = Ctx::softirq(ns, cpu);
    let pq = {
        let mut q = lock(&sd.q);
        let mut pq = std::mem::take(&mut q.process_queue);
        if pq.is_empty() {
            // process_backlog's first splice, done under this same lock
            // hold: skb_queue_splice_tail_init(input_pkt_queue, process_queue).
            std::mem::swap(&mut q.input_pkt_queue, &mut pq);
        }
        pq
    };
    let mut pq = Unwinding {
        ns,
        cpu,
        pq: ManuallyDrop::new(pq),
        done: false,
    };
    let mut total = 0usize;
    let mut deadline: Option<Instant> = None;
    let complete = loop {
        let (work, complete) = process_backlog(&mut ctx, sd, &mut pq.pq, weight);
        total += work;
        if complete {
            break true;
        }
        // The clock starts after the first full poll, so a short run never
        // reads it.
        let now = Instant::now();
        let limit = *deadline.get_or_insert_with(|| {
            now + Duration::from_micros(ns.hot.netdev_budget_usecs.load(Relaxed))
        });
        if total >= budget || now >= limit {
            sd.time_squeeze.fetch_add(1, Relaxed);
            let mut q = lock(&sd.q);
            debug_assert!(q.process_queue.is_empty());
            q.process_queue = std::mem::take(&mut *pq.pq);
            q.in_segs += std::mem::take(&mut ctx.in_segs);
            break false;
        }
    };
    pq.done = true;
    crate::trace::kevent!(
        "net_rx_action",
        ns = ns.id,
        cpu,
        processed = total,
        time_squeeze = !complete
    );
    complete
}

/// The packets a `net_rx_action` run took off the CPU's queue. Should the
/// run unwind (a user's waker panicked in `tcp_v4_rcv`), its `Drop` puts the
/// ones not yet processed back at the head of the queue and hands the CPU,
/// still marked running, to `ksoftirqd`, so the backlog keeps a drainer and
/// the namespace keeps going.
struct Unwinding<'a> {
    ns: &'a NsInner,
    cpu: usize,
    /// Freed by hand in `drop`: after a normal run it holds the empty,
    /// unallocated queue `process_backlog` swapped in, which the generic
    /// `VecDeque` drop would still visit (an out-of-line call per run).
    pq: ManuallyDrop<VecDeque<SkBuff>>,
    /// The run ended normally (so the thread is not unwinding: no need to
    /// ask, which costs a call per run).
    done: bool,
}

impl Drop for Unwinding<'_> {
    /// Inline: a run that ended normally costs these two tests.
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.requeue();
        }
        let pq = std::mem::take(&mut *self.pq);
        if pq.capacity() == 0 {
            // No element and no buffer: nothing to free.
            std::mem::forget(pq);
        } else {
            drop(pq);
        }
    }
}

impl Unwinding<'_> {
    /// The run did not end normally: if the thread unwinds, give the
    /// packets back and hand the CPU to `ksoftirqd`.
    #[cold]
    #[inline(never)]
    fn requeue(&mut self) {
        if !crate::sync::thread::panicking() {
            return;
        }
        {
            let mut q = lock(&self.ns.softnet[self.cpu].q);
            let mut rest = std::mem::take(&mut *self.pq);
            rest.append(&mut q.process_queue);
            q.process_queue = rest;
        }
        wakeup_ksoftirqd(self.ns, self.cpu);
    }
}

/// `process_backlog`: up to `quota` packets; returns (work, completed).
fn process_backlog(
    ctx: &mut Ctx<'_>,
    sd: &SoftnetData,
    pq: &mut VecDeque<SkBuff>,
    quota: usize,
) -> (usize, bool) {
    let mut work = 0;
    // Packets received since `processed` was last added to.
    let mut unaccounted = 0;
    loop {
        while work < quota {
            match pq.pop_front() {
                Some(skb) => {
                    __netif_receive_skb(ctx, skb);
                    work += 1;
                }
                None => break,
            }
        }
        let mut q = lock(&sd.q);
        q.processed += (work - unaccounted) as u64;
        unaccounted = work;
        q.in_segs += std::mem::take(&mut ctx.in_segs);
        if work >= quota {
            return (work, false);
        }
        if q.input_pkt_queue.is_empty() {
            // napi_complete: nothing left; the next enqueuer drains itself.
            q.running = false;
            // keep both buffers' capacity for the next run (a swap: `pq`
            // gets the empty, unallocated queue left there, nothing to drop)
            std::mem::swap(&mut q.process_queue, pq);
            return (work, true);
        }
        // skb_queue_splice_tail_init(&sd->input_pkt_queue, &sd->process_queue)
        std::mem::swap(&mut q.input_pkt_queue, pq);
    }
}

/// `__netif_receive_skb_core`: (taps would go here), then `ip_rcv`. The
/// `processed` count of each packet is added by `process_backlog`, per poll.
#[inline]
fn __netif_receive_skb(ctx: &mut Ctx<'_>, skb: SkBuff) {
    ip_rcv(ctx, skb);
}
