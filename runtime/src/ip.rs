//! The IP layer of the loopback path: `ip_queue_xmit` on the way out,
//! `ip_rcv` → `ip_local_deliver` on the way in, which hands TCP to
//! `tcp_v4_rcv`, UDP to `udp_rcv` and ICMP to `icmp_rcv` (net/ipv4/ip_output.c,
//! ip_input.c; IPv6 follows the same steps in the model).

use crate::ctx::Ctx;
use crate::errno::{err, ENETUNREACH};
use crate::fib::{DstEntry, LOOPBACK_IFINDEX};
use crate::loopback::dev_queue_xmit;
use crate::skbuff::{proto, SkBuff};
use crate::tcp::input::tcp_v4_rcv;
use crate::udp::{icmp_rcv, udp_rcv};
use std::io;

/// `__ip_queue_xmit`: the socket's cached route (`__sk_dst_check`), else a
/// `fib_lookup` in the local table; a local route's device is `lo`. DF is set,
/// no fragmentation (MTU 65536), so the packet goes to `dev_queue_xmit`.
#[inline]
pub(crate) fn ip_queue_xmit(
    ctx: &mut Ctx<'_>,
    dst: &mut Option<DstEntry>,
    skb: SkBuff,
) -> io::Result<()> {
    // The only device in the model is `lo`. The destination address is
    // only built when the cached route is stale (a lookup needs it).
    let on_lo = ctx
        .ns
        .fib
        .dst_check(dst, || skb.daddr.ip())
        .is_some_and(|rt| rt.ifindex == LOOPBACK_IFINDEX);
    if !on_lo {
        return Err(err(ENETUNREACH));
    }
    dev_queue_xmit(ctx, skb)
}

/// `ip_rcv` → `ip_local_deliver`: the skb still carries its output route
/// (`RTN_LOCAL`), so there is no input route lookup; hand it to TCP.
#[inline]
pub(crate) fn ip_rcv(ctx: &mut Ctx<'_>, skb: SkBuff) {
    ip_local_deliver(ctx, skb)
}

/// `ip_local_deliver_finish`: the protocol handler by the header's
/// `protocol` (`inet_protos[]`): TCP, UDP or ICMP.
#[inline]
fn ip_local_deliver(ctx: &mut Ctx<'_>, skb: SkBuff) {
    match skb.protocol {
        proto::UDP => udp_rcv(ctx, skb),
        proto::ICMP => icmp_rcv(ctx, skb),
        _ => tcp_v4_rcv(ctx, skb),
    }
}

/// `ip_mc_output` / `ip6_finish_output2` for a broadcast or multicast
/// datagram: the copy looped back to this host (`dev_loopback_xmit`), sent
/// through `lo` like any packet, without a route lookup.
#[inline]
pub(crate) fn ip_mc_output(ctx: &mut Ctx<'_>, skb: SkBuff) -> io::Result<()> {
    dev_queue_xmit(ctx, skb)
}
