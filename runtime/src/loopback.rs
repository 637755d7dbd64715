//! The `lo` device: `dev_queue_xmit` and the driver's `loopback_xmit`
//! (drivers/net/loopback.c).
//!
//! `lo` has the `noqueue` qdisc, so `__dev_queue_xmit` hands the skb straight
//! to the driver. `loopback_xmit` orphans it from the sender (the model has no
//! per-skb memory charge to release: the sender's send queue keeps its own
//! reference until the ACK), and passes it to `netif_rx`. Only when the backlog
//! accepted it are the packet and byte counters raised; `lo` reports the same
//! counters for RX and TX (`loopback_get_stats64`).
//!
//! Packet captures (`Netns::capture*`, pcap.rs) tap `dev_queue_xmit` where the
//! kernel's `dev_queue_xmit_nit` does; with none running that costs one
//! relaxed load of `capturing` per packet.

use crate::ctx::Ctx;
use crate::dev::netif_rx;
use crate::errno::{err, ENETUNREACH};
use crate::pcap::{dev_queue_xmit_nit, Taps};
use crate::skbuff::SkBuff;
use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use crate::sync::Mutex;
use std::io;
use std::time::Instant;

/// The loopback device's state and the counters not kept per CPU.
#[derive(Debug)]
pub(crate) struct LoopbackDev {
    pub(crate) mtu: AtomicU32,
    pub(crate) up: AtomicBool,
    pub(crate) rx_dropped: AtomicU64,
    pub(crate) tx_dropped: AtomicU64,
    /// Some packet capture (pcap.rs) is on: the one word the datapath reads
    /// when none is.
    pub(crate) capturing: AtomicBool,
    /// The captures and their shared state (`ptype_all`'s packet sockets).
    pub(crate) taps: Mutex<Taps>,
    /// Origin of the captures' TCP timestamp clock (the namespace's start).
    pub(crate) epoch: Instant,
    /// A fault is installed: packets go through netem (netem.rs) first.
    pub(crate) netem_on: AtomicBool,
}

/// `lo`'s default MTU.
pub(crate) const LOOPBACK_MTU: u32 = 65536;

impl LoopbackDev {
    pub(crate) fn new() -> Self {
        LoopbackDev {
            mtu: AtomicU32::new(LOOPBACK_MTU),
            up: AtomicBool::new(true),
            rx_dropped: AtomicU64::new(0),
            tx_dropped: AtomicU64::new(0),
            capturing: AtomicBool::new(false),
            taps: Mutex::new(Taps::default()),
            epoch: Instant::now(),
            netem_on: AtomicBool::new(false),
        }
    }
}

/// `__dev_queue_xmit` for `lo`: check `IFF_UP`; with a fault installed, the
/// netem qdisc (netem.rs) decides whether the packet leaves now, later or
/// never; then the driver.
///
/// Inlined into its callers down to the backlog's queue, so the skb is not
/// moved through a call at each stage (the compiler still copies it a
/// couple of times inside `transmit`, about 30 instructions a segment).
#[inline(always)]
pub(crate) fn dev_queue_xmit(ctx: &mut Ctx<'_>, skb: SkBuff) -> io::Result<()> {
    let dev = &ctx.ns.lo;
    if !dev.up.load(Relaxed) {
        dev.tx_dropped.fetch_add(1, Relaxed);
        return Err(err(ENETUNREACH));
    }
    crate::trace::kevent_skb!("dev_queue_xmit", ctx.ns, skb);
    if dev.netem_on.load(Relaxed) {
        netem_xmit(ctx, skb);
        return Ok(());
    }
    xmit_one_inline(ctx, skb);
    Ok(())
}

/// The netem qdisc's enqueue, then the driver for what leaves now.
#[inline(never)]
fn netem_xmit(ctx: &mut Ctx<'_>, skb: SkBuff) {
    match crate::netem::netem_enqueue(ctx, skb) {
        crate::netem::Verdict::Xmit(skb) => xmit_one(ctx, skb),
        crate::netem::Verdict::Consumed => {}
    }
}

/// `xmit_one`: hand a copy to the packet captures (`dev_queue_xmit_nit`, so
/// a packet the backlog drops later is still captured, as tcpdump sees it),
/// then call the driver. Packets netem held come here when their time comes.
pub(crate) fn xmit_one(ctx: &mut Ctx<'_>, skb: SkBuff) {
    xmit_one_inline(ctx, skb)
}

/// [`xmit_one`], inlined on the path without netem.
#[inline(always)]
fn xmit_one_inline(ctx: &mut Ctx<'_>, mut skb: SkBuff) {
    let dev = &ctx.ns.lo;
    if dev.capturing.load(Relaxed) {
        skb = xmit_nit(ctx, skb);
    }
    loopback_xmit(ctx, skb);
}

/// `dev_queue_xmit_nit` for [`xmit_one_inline`]: the skb goes in and comes
/// back by value, so the path without captures never lends it out by
/// reference (lent, it cost one more copy of the whole skb on the way to
/// the backlog).
#[cold]
#[inline(never)]
fn xmit_nit(ctx: &mut Ctx<'_>, skb: SkBuff) -> SkBuff {
    let now = ctx.now();
    dev_queue_xmit_nit(&ctx.ns.lo, &skb, now);
    skb
}

/// `loopback_xmit`: always `NETDEV_TX_OK`; a backlog drop is invisible to
/// TCP, which recovers by retransmitting. The packet and byte counters are
/// raised only when `netif_rx` accepted the skb (done inside it, under the
/// backlog lock).
#[inline(always)]
fn loopback_xmit(ctx: &mut Ctx<'_>, skb: SkBuff) {
    netif_rx(ctx, skb)
}
