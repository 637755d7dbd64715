//! # lonet-runtime: the modeled Linux loopback datapath
//!
//! A model of what the kernel does with a TCP segment sent to 127.0.0.1,
//! stage by stage, with the kernel's names, defaults and counters. It is
//! synchronous and driven by the socket calls: a send runs the path in the
//! caller's thread, down to the receiver's queue and its waker, and the
//! NET_RX softirq it raises runs before the call returns, as the kernel runs
//! it when bottom halves are re-enabled. Beside the calls, each namespace
//! has one helper OS thread, `ksoftirqd`, started on demand: it takes the
//! backlog a softirq run left over and fires the TCP and netem timers. Time
//! is read from the namespace's [`Clock`] (the wall clock unless one is
//! installed; lonet-transport installs tokio's), and a capture writes pcap
//! files. There is no tokio here: waiting is `std::task::Waker`s, so any
//! executor drives it.
//!
//! The path of one segment (see `ARCHITECTURE.md` in the repository):
//!
//! ```text
//! send:    Socket::poll_send → tcp_sendmsg (tcp/syscalls.rs)
//!          → tcp_write_xmit (tcp/output.rs)
//!          → ip_queue_xmit (ip.rs; cached route, else fib_lookup in fib.rs)
//!          → dev_queue_xmit → loopback_xmit (loopback.rs)
//!          → netif_rx → enqueue_to_backlog (dev.rs) → raise NET_RX
//! softirq: do_softirq when the call's context ends (ctx.rs), or ksoftirqd
//!          → net_rx_action → process_backlog → __netif_receive_skb (dev.rs)
//!          → ip_rcv → ip_local_deliver (ip.rs) → tcp_v4_rcv (tcp/input.rs)
//!          → receive queue → the reader's waker
//! ```
//!
//! UDP takes the same path from `ip_queue_xmit` on: `udp_sendmsg` builds the
//! datagram, and `ip_local_deliver` hands it to `udp_rcv` (udp.rs), which
//! queues it on the socket the lookup finds, or answers with an ICMP port
//! unreachable.
//!
//! # The public API
//! - At the root: [`Netns`] (`struct net`: a namespace and every call on
//!   it), [`Scope`] and [`EnterGuard`] (which namespace is current),
//!   [`WeakNetns`], [`Sysctl`] (the `net.*` tunables with the kernel's
//!   defaults) and [`Clock`] (the time seam).
//! - [`stats`]: the views a namespace gives, as the kernel's tools print
//!   them (`ip -s link`, `netstat -s`, `ss -tan`, `tc -s qdisc`, ...).
//! - [`fault`]: netem-like faults on `lo` ([`Netns::add_fault`]).
//! - [`capture`]: pcap captures of `lo` ([`Netns::capture_to_file`]).
//! - [`unstable`]: the socket calls lonet-transport drives; not covered by
//!   semver.
//!
//! # Examples
//! ```
//! use lonet_runtime::Netns;
//! let ns = Netns::new();
//! assert_eq!(ns.sysctl().netdev_max_backlog, 1000);
//! assert_eq!(ns.lo_stats().mtu, 65536);
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod af_inet;
mod clock;
mod ctx;
mod dev;
mod errno;
mod fib;
mod inet_connection_sock;
mod inet_hashtables;
mod ip;
mod ksoftirqd;
mod loopback;
mod netem;
mod netns;
mod nsproxy;
mod page_frag;
mod pcap;
mod skbuff;
mod smp;
pub mod stats;
mod sync;
mod sysctl;
mod tcp;
#[macro_use]
mod trace;
#[cfg(all(test, shuttle))]
mod model_check;
#[cfg(test)]
mod tests;
mod udp;

pub use clock::{Clock, WeakNetns};
pub use netns::Netns;
pub use nsproxy::{EnterGuard, Scope};
pub use sysctl::Sysctl;

/// Faults on the modeled `lo`, as `tc qdisc add dev lo root netem ...` gives
/// them (sch_netem.c): [`Netns::add_fault`] takes a [`Match`](fault::Match)
/// and a [`Fault`](fault::Fault) and returns a
/// [`FaultGuard`](fault::FaultGuard) that lifts it when dropped.
pub mod fault {
    pub use crate::netem::{Fault, FaultGuard, FaultStats, Match, NETEM_LIMIT};
}

/// Packet capture on the modeled `lo`, as `tcpdump -i lo -w FILE`
/// (`dev_queue_xmit_nit`'s taps): [`Netns::capture_to_file`] and its
/// [`Capture`](capture::Capture) guard.
pub mod capture {
    pub use crate::pcap::{Capture, CaptureOptions};
}

/// The driving interface of lonet-transport: the socket calls its
/// tokio-facing types make on a modeled socket.
///
/// **Not covered by semver.** These items exist so that lonet-transport can
/// drive the model; they change with it, in any release. Applications use
/// `lonet::net`'s `TcpListener`/`TcpStream` instead.
pub mod unstable {
    pub use crate::af_inet::{is_local, Readiness, Socket};
    pub use crate::udp::UdpSocket;
}
