//! The `lo` device: `dev_queue_xmit` and the driver's `loopback_xmit`
//! (drivers/net/loopback.c).
//!
//! `lo` has the `noqueue` qdisc, so `__dev_queue_xmit` hands the skb straight
//! to the driver. `loopback_xmit` orphans it from the sender (the model has no
//! per-skb memory charge to release: the sender's send queue keeps its own
//! reference until the ACK), and passes it to `netif_rx`. Only when the backlog
//! accepted it are the packet and byte counters raised; `lo` reports the same
//! counters for RX and TX (`loopback_get_stats64`).

use crate::dev::netif_rx;
use crate::errno::{err, ENETUNREACH};
use crate::netns::Ctx;
use crate::skbuff::SkBuff;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

/// The loopback device's state and the counters not kept per CPU.
#[derive(Debug)]
pub(crate) struct LoopbackDev {
    pub(crate) mtu: AtomicU32,
    pub(crate) up: AtomicBool,
    pub(crate) rx_dropped: AtomicU64,
    pub(crate) tx_dropped: AtomicU64,
}

/// `lo`'s default MTU.
pub const LOOPBACK_MTU: u32 = 65536;

impl LoopbackDev {
    pub(crate) fn new() -> Self {
        LoopbackDev {
            mtu: AtomicU32::new(LOOPBACK_MTU),
            up: AtomicBool::new(true),
            rx_dropped: AtomicU64::new(0),
            tx_dropped: AtomicU64::new(0),
        }
    }
}

/// `__dev_queue_xmit` for `lo`: no qdisc, check `IFF_UP`, call the driver.
#[inline]
pub(crate) fn dev_queue_xmit(ctx: &mut Ctx<'_>, skb: SkBuff) -> io::Result<()> {
    let dev = &ctx.ns.lo;
    if !dev.up.load(Relaxed) {
        dev.tx_dropped.fetch_add(1, Relaxed);
        return Err(err(ENETUNREACH));
    }
    loopback_xmit(ctx, skb);
    Ok(())
}

/// `loopback_xmit`: always `NETDEV_TX_OK`; a backlog drop is invisible to
/// TCP, which recovers by retransmitting. The packet and byte counters are
/// raised only when `netif_rx` accepted the skb (done inside it, under the
/// backlog lock).
#[inline]
fn loopback_xmit(ctx: &mut Ctx<'_>, skb: SkBuff) {
    netif_rx(ctx, skb)
}
