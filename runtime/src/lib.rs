//! # lonet-runtime: the modeled Linux loopback datapath
//!
//! A sans-IO model of what the kernel does with a TCP segment sent to
//! 127.0.0.1, stage by stage, with the kernel's names, defaults and counters.
//! No tokio types: state machines, queues and wakers, driven by the socket
//! calls of [`Socket`] and by a helper thread per namespace (`ksoftirqd`).
//!
//! The path of one segment (see `ARCHITECTURE.md` in the repository):
//!
//! ```text
//! send:    Socket::poll_send → tcp_sendmsg → tcp_write_xmit (tcp/output.rs)
//!          → ip_queue_xmit (ip.rs; cached route, else fib_lookup in fib.rs)
//!          → dev_queue_xmit → loopback_xmit (loopback.rs)
//!          → netif_rx → enqueue_to_backlog (dev.rs) → raise NET_RX
//! softirq: do_softirq in the sender's call, or ksoftirqd (ksoftirqd.rs)
//!          → net_rx_action → process_backlog → __netif_receive_skb (dev.rs)
//!          → ip_rcv → ip_local_deliver (ip.rs) → tcp_v4_rcv (tcp/input.rs)
//!          → receive queue → the reader's waker
//! ```
//!
//! Modules, one stage each:
//! - [`Netns`] (`netns.rs`): the namespace, its tables, counters and scope.
//! - [`Sysctl`] (`sysctl.rs`): the tunables with the kernel's defaults.
//! - `fib.rs`: the local routing table and the socket route cache.
//! - `loopback.rs`: the `lo` device; `pcap.rs`: packet capture on it;
//!   `netem.rs`: faults on it ([`Fault`], [`Match`]).
//! - `clock.rs`: the namespace's time source ([`Clock`]).
//! - `dev.rs`: the per-CPU backlog and NET_RX.
//! - `ksoftirqd.rs`: the overflow softirq thread and TCP timers.
//! - `tcp/`: the TCP state machine, output and timers.
//! - [`Socket`] (`socket.rs`): the socket calls.
//! - [`stats`]: counters and their tool-like output.
//!
//! # Examples
//! ```
//! use lonet_runtime::Netns;
//! let ns = Netns::new();
//! assert_eq!(ns.sysctl().netdev_max_backlog, 1000);
//! assert_eq!(ns.lo_stats().mtu, 65536);
//! ```

#![deny(missing_docs)]

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
#[cfg(test)]
mod tests;

pub use af_inet::{is_local, Readiness, Socket};
pub use clock::{Clock, WeakNetns};
pub use fib::{FibEntry, RouteType, LOOPBACK_IFINDEX};
pub use loopback::LOOPBACK_MTU;
pub use netem::{Fault, FaultGuard, FaultStats, Match, NETEM_LIMIT};
pub use netns::Netns;
pub use nsproxy::{EnterGuard, Scope};
pub use pcap::{Capture, CaptureOptions};
pub use skbuff::{flags, SkBuff};
pub use stats::{
    LinkStats, SockInfo, SockTimer, SocketTable, Sockstat, SoftnetStat, SoftnetStats, TcpStats,
    TimerKind,
};
pub use sysctl::Sysctl;
pub use tcp::TcpState;
