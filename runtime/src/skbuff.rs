//! `struct sk_buff`, reduced to what the loopback path reads: addresses, the
//! TCP header fields and the payload.
//!
//! A UDP datagram or an ICMP error travels in the same struct, its `protocol`
//! (the IP header's field) saying which; `seq`, `ack_seq`, `flags`, `window`
//! and `mss` are then unused. An ICMP destination unreachable, port
//! unreachable (`ICMP_DEST_UNREACH`/`ICMP_PORT_UNREACH`, ICMPv6's for IPv6)
//! has the reverse addresses of the datagram it answers (ports included: they
//! are those of the quoted UDP header), and the quoted datagram's payload.
//!
//! An skb is a plain value moved through the queues (`VecDeque<SkBuff>`), so
//! queueing it allocates nothing; the payload is a [`Bytes`] slice of the
//! sender's write queue, so the transmitted segment, the copy kept for
//! retransmission and the receiver's queue share one buffer (the kernel's
//! `skb_clone`).

use bytes::Bytes;
use std::net::SocketAddr;

/// TCP header flags (`TCPHDR_*`).
pub(crate) mod flags {
    /// `TCPHDR_FIN`
    pub(crate) const FIN: u8 = 0x01;
    /// `TCPHDR_SYN`
    pub(crate) const SYN: u8 = 0x02;
    /// `TCPHDR_RST`
    pub(crate) const RST: u8 = 0x04;
    /// `TCPHDR_PSH`
    pub(crate) const PSH: u8 = 0x08;
    /// `TCPHDR_ACK`
    pub(crate) const ACK: u8 = 0x10;
}

/// The IP protocol numbers the model carries.
pub(crate) mod proto {
    /// `IPPROTO_TCP`
    pub(crate) const TCP: u8 = 6;
    /// `IPPROTO_UDP`
    pub(crate) const UDP: u8 = 17;
    /// `IPPROTO_ICMP`
    pub(crate) const ICMP: u8 = 1;
    /// `IPPROTO_ICMPV6`
    pub(crate) const ICMPV6: u8 = 58;
}

/// IPv4 header length (no options).
pub(crate) const IPV4_HDR_LEN: usize = 20;
/// IPv6 header length.
pub(crate) const IPV6_HDR_LEN: usize = 40;
/// TCP header length with the timestamp option, as Linux sends on loopback.
pub(crate) const TCP_HDR_LEN: usize = 32;
/// UDP header length.
pub(crate) const UDP_HDR_LEN: usize = 8;
/// ICMP (and ICMPv6) header length of a destination unreachable.
pub(crate) const ICMP_HDR_LEN: usize = 8;
/// TCP header length of a SYN with MSS, SACK-permitted, timestamps and window
/// scale options.
pub(crate) const TCP_SYN_HDR_LEN: usize = 40;

/// One segment on its way through the modeled path.
#[derive(Debug, Clone)]
pub(crate) struct SkBuff {
    /// The IP header's `protocol` (`proto::*`; ICMP stands for ICMPv6 too).
    pub(crate) protocol: u8,
    /// Source address and port.
    pub(crate) saddr: SocketAddr,
    /// Destination address and port.
    pub(crate) daddr: SocketAddr,
    /// Sequence number.
    pub(crate) seq: u32,
    /// Acknowledgement number (meaningful with `ACK`).
    pub(crate) ack_seq: u32,
    /// `flags::*` bits.
    pub(crate) flags: u8,
    /// Advertised receive window in bytes (window scaling is implicit).
    pub(crate) window: u32,
    /// MSS option, on SYN and SYN-ACK. For UDP: the `gso_size` the datagram
    /// was built with (`UDP_SEGMENT`, 0 for none); a payload longer than it
    /// makes a GSO skb (`SKB_GSO_UDP_L4`), which `lo` carries whole.
    pub(crate) mss: u16,
    /// IP TTL / hop limit.
    pub(crate) ttl: u8,
    /// The IPv4 TOS byte or IPv6 traffic class (`inet->tos`, which
    /// `__ip_queue_xmit` writes into `iph->tos`; `ip6_xmit` the tclass).
    pub(crate) tos: u8,
    /// Payload.
    pub(crate) payload: Bytes,
}

impl SkBuff {
    /// The length of the IP packet (`skb->len` at `loopback_xmit`), which the
    /// `lo` byte counters add up.
    #[inline]
    pub(crate) fn ip_len(&self) -> usize {
        let ip = if self.saddr.is_ipv4() {
            IPV4_HDR_LEN
        } else {
            IPV6_HDR_LEN
        };
        if self.protocol == proto::UDP {
            return ip + UDP_HDR_LEN + self.payload.len();
        }
        if self.protocol == proto::ICMP {
            // The quoted datagram: its IP and UDP headers, then its payload.
            return ip + ICMP_HDR_LEN + ip + UDP_HDR_LEN + self.payload.len();
        }
        let tcp = if self.flags & flags::SYN != 0 {
            TCP_SYN_HDR_LEN
        } else {
            TCP_HDR_LEN
        };
        ip + tcp + self.payload.len()
    }

    /// The IP header's `protocol` as a capture writes it (IPv6: `nexthdr`,
    /// where ICMP is ICMPv6).
    #[inline]
    pub(crate) fn ip_protocol(&self) -> u8 {
        if self.protocol == proto::ICMP && !self.saddr.is_ipv4() {
            proto::ICMPV6
        } else {
            self.protocol
        }
    }

    /// Sequence space the segment occupies (`end_seq - seq`): payload plus one
    /// each for SYN and FIN.
    #[inline]
    pub(crate) fn seq_len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(self.flags & flags::SYN != 0)
            + u32::from(self.flags & flags::FIN != 0)
    }

    /// Whether a flag is set.
    #[inline]
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}
