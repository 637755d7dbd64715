//! `tracing` events at each stage of the path, named after the kernel
//! function (or tracepoint) that does the work: `dev_queue_xmit`,
//! `netem_enqueue`, `netif_rx`, `kfree_skb`, `net_rx_action`, `tcp_v4_rcv`,
//! `inet_sock_set_state`, `tcp_retransmit_skb`, `tcp_receive_reset`, ...
//!
//! Behind the `tracing` feature, off by default: without it [`kevent!`]
//! expands to nothing, so the datapath is the same code as before. With it,
//! each event is a `TRACE` event with target `lonet_runtime` (filter with
//! `RUST_LOG=lonet_runtime=trace` in `tracing-subscriber`'s `EnvFilter`)
//! whose name is the kernel function, and which carries the namespace id and
//! the segment (addresses, seq, ack, flags, length) or the state change.

/// Emits a `TRACE` event named `$name` (a kernel function) with fields.
macro_rules! kevent {
    ($name:literal, $($fields:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            tracing::event!(name: $name, target: "lonet_runtime", tracing::Level::TRACE, $($fields)*);
        }
    };
}

/// Emits a [`kevent!`] describing a segment, `$skb`, in namespace `$ns`.
macro_rules! kevent_skb {
    ($name:literal, $ns:expr, $skb:expr $(, $($fields:tt)*)?) => {
        #[cfg(feature = "tracing")]
        {
            let skb: &$crate::skbuff::SkBuff = &$skb;
            tracing::event!(
                name: $name,
                target: "lonet_runtime",
                tracing::Level::TRACE,
                ns = $ns.id,
                saddr = %skb.saddr,
                daddr = %skb.daddr,
                seq = skb.seq,
                ack = skb.ack_seq,
                flags = %$crate::trace::Flags(skb.flags),
                len = skb.payload.len(),
                $($($fields)*)?
            );
        }
    };
}

pub(crate) use {kevent, kevent_skb};

/// TCP flags as tcpdump prints them (`S`, `S.`, `P.`, `F.`, `R`).
#[cfg(feature = "tracing")]
pub(crate) struct Flags(pub(crate) u8);

#[cfg(feature = "tracing")]
impl std::fmt::Display for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::skbuff::flags::*;
        for (bit, c) in [(SYN, 'S'), (FIN, 'F'), (RST, 'R'), (PSH, 'P'), (ACK, '.')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}
