//! # lonet: an in-process 127.0.0.1 for tokio
//!
//! `lonet::net::{TcpListener, TcpStream}` are drop-ins for `tokio::net`. A
//! connection to a loopback address (127.0.0.0/8, ::1, `localhost`) never
//! touches the kernel: it runs through a model of the Linux loopback path —
//! route lookup in the local table, the `lo` device's `loopback_xmit`,
//! `netif_rx` into a per-CPU backlog, the NET_RX softirq (`net_rx_action`,
//! `process_backlog`, with budget and weight), TCP demux, the socket's receive
//! queue and the reader's waker — with the kernel's names, sysctl defaults and
//! counters.
//!
//! Start here:
//! - [`net`]: `TcpListener`, `TcpStream`, split halves, `ToSocketAddrs`,
//!   `lookup_host` — switch `use tokio::net::...` to `use lonet::net::...`.
//! - [`stream`]: `TcpListenerStream`, a `Stream` of accepted connections.
//! - [`bridge`]: the model and the machine's 127.0.0.1 joined: `expose`,
//!   `forward` and fallthrough ([`Netns::set_fallthrough`]).
//! - [`Netns`]: namespaces (own ports, sysctls, counters), and the counters
//!   themselves: `lo_stats()` (`ip -s link show lo`), `softnet_stat()`
//!   (`/proc/net/softnet_stat`), `tcp_stats()` (`netstat -s`), `sockstat()`.
//! - [`stats`]: the counters' types: `lo_stats()` gives
//!   [`stats::LinkStats`], `sockets()` a [`stats::SocketTable`], and so on.
//! - [`Netns::capture_to_file`] (`tcpdump -i lo -w FILE`): a pcap capture of
//!   every packet on the namespace's `lo`, for Wireshark or tshark; see
//!   [`capture`].
//! - [`Netns::add_fault`] (`tc qdisc add dev lo root netem ...`): latency,
//!   jitter, rate, loss, reordering and partitions on loopback traffic, per
//!   namespace, address pair or port, lifted when the guard drops;
//!   [`Netns::inject_rst`], [`Netns::fill_accept_queue`]. With
//!   [`time::use_tokio_time`] delays and TCP timers follow `tokio::time`, so
//!   they work under `tokio::time::pause()`.
//! - [`Netns::sockets`] (`ss -tan`): the socket table.
//! - [`fault`]: the types [`Netns::add_fault`] takes.
//! - [`time`]: modeled time on tokio's clock.
//!
//! # Optional features
//! Named after what they enable; none is on by default.
//! - `hyper`: `lonet::hyper::Connector`, a `tower_service::Service<Uri>`
//!   for hyper-util's `Client` (HTTP/1 and HTTP/2) and tonic's
//!   `Endpoint::connect_with_connector`. hyper servers need no feature: an
//!   accepted `lonet::net::TcpStream` goes into `hyper_util::rt::TokioIo` for
//!   `serve_connection` or hyper-util's `server::conn::auto::Builder`.
//! - `tonic`: `tonic::transport::server::Connected` for `lonet::net::TcpStream`,
//!   so `Server::builder()...serve_with_incoming(TcpListenerStream::new(listener))`
//!   works and handlers see `request.remote_addr()`. Clients use the `hyper`
//!   connector.
//! - `axum`: `axum::serve::Listener` for `lonet::net::TcpListener`, so
//!   `axum::serve(listener, router)` works.
//! - `full`: all of the above.
//!
//! The connector captures the namespace current when it is made
//! ([`Netns::current`]), since the client connects from its own pool tasks.
//!
//! # Examples
//! ```
//! use lonet::net::{TcpListener, TcpStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let ns = lonet::Netns::new(); // a namespace of our own: own ports, own counters
//! ns.clone().scope(async {
//!     let listener = TcpListener::bind("127.0.0.1:8080").await?;
//!     let server = tokio::spawn(lonet::Netns::current().scope(async move {
//!         let (mut sock, _) = listener.accept().await?;
//!         let mut buf = [0; 5];
//!         sock.read_exact(&mut buf).await?;
//!         sock.write_all(&buf).await?;
//!         std::io::Result::Ok(())
//!     }));
//!     let mut client = TcpStream::connect("localhost:8080").await?;
//!     client.write_all(b"hello").await?;
//!     let mut buf = [0; 5];
//!     client.read_exact(&mut buf).await?;
//!     assert_eq!(&buf, b"hello");
//!     server.await.unwrap()?;
//!     std::io::Result::Ok(())
//! })
//! .await?;
//!
//! let lo = ns.lo_stats(); // every SYN, ACK, data segment and FIN went through lo
//! assert_eq!(lo.rx_packets, lo.tx_packets);
//! assert!(lo.rx_packets >= 5);
//! println!("{lo}");
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// TCP and UDP sockets with `tokio::net`'s API, over the modeled loopback.
pub mod net {
    pub use lonet_transport::net::*;
}

/// Streams of sockets, as in `tokio-stream`.
pub mod stream {
    pub use lonet_transport::stream::*;
}

/// Bridges between a namespace's model and the machine's loopback: bring
/// [`NetnsBridgeExt`](bridge::NetnsBridgeExt) into scope for
/// `ns.expose(..)` (a service of the model reachable from the machine) and
/// `ns.forward(..)` (a real server reachable through the model). The third
/// bridge, fallthrough, is [`Netns::set_fallthrough`]. See docs/bridges.md.
pub mod bridge {
    pub use lonet_transport::bridge::*;
}

/// What the namespace shows, as the kernel's tools print it: `ip -s link`
/// ([`LinkStats`](stats::LinkStats)), `/proc/net/softnet_stat`
/// ([`SoftnetStats`](stats::SoftnetStats)), `netstat -s`
/// ([`TcpStats`](stats::TcpStats), [`UdpStats`](stats::UdpStats)), `/proc/net/sockstat`
/// ([`Sockstat`](stats::Sockstat)), `ss -tan` ([`SocketTable`](stats::SocketTable))
/// `ip route show table local` ([`FibEntry`](stats::FibEntry)) and
/// `tc -s qdisc show dev lo` ([`Qdisc`](stats::Qdisc)).
pub mod stats {
    pub use lonet_runtime::stats::{
        FibEntry, LinkStats, NetemQdisc, Netid, Qdisc, RouteType, SockInfo, SockTimer, SocketTable,
        Sockstat, SoftnetStat, SoftnetStats, TcpState, TcpStats, TimerKind, UdpStats,
    };
}

/// Faults on the modeled `lo`, as `tc qdisc add dev lo root netem ...` gives
/// them: [`Netns::add_fault`] takes a [`Match`](fault::Match) and a
/// [`Fault`](fault::Fault) and returns a [`FaultGuard`](fault::FaultGuard).
pub mod fault {
    pub use lonet_runtime::fault::{Fault, FaultGuard, FaultStats, Match, NETEM_LIMIT};
}

/// Packet capture on the modeled `lo`, as `tcpdump -i lo -w FILE`:
/// [`Netns::capture_to_file`] and its [`Capture`](capture::Capture) guard.
pub mod capture {
    pub use lonet_runtime::capture::{Capture, CaptureOptions};
}

/// Modeled time: [`time::use_tokio_time`] puts the namespace on tokio's
/// clock; [`Clock`](time::Clock) is the seam for a clock of your own
/// ([`Netns::set_clock`]).
pub mod time {
    pub use lonet_runtime::Clock;
    pub use lonet_transport::time::*;
}

/// hyper and hyper-util over the modeled loopback: the client [`Connector`](hyper::Connector).
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper {
    pub use lonet_transport::hyper::*;
}

/// QUIC over lonet's UDP (feature `quinn`): quinn's `Runtime` and
/// `AsyncUdpSocket` over [`net::UdpSocket`], and `client`/`server`
/// endpoints, so a quinn client and server talk through the model.
#[cfg(feature = "quinn")]
#[cfg_attr(docsrs, doc(cfg(feature = "quinn")))]
pub mod quinn {
    pub use lonet_transport::quinn::*;
}

pub use lonet_runtime::{EnterGuard, Netns, Scope, Sysctl, WeakNetns};

// The README's and the guide's Rust examples, compiled and run as doctests
// (`cargo test --doc -p lonet`); chapters without Rust blocks are not listed.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../README.md")]
    struct Readme;

    #[doc = include_str!("../docs/getting-started.md")]
    struct GettingStarted;

    #[doc = include_str!("../docs/testing.md")]
    struct Testing;

    #[doc = include_str!("../docs/routing.md")]
    struct Routing;

    #[cfg(feature = "full")]
    #[doc = include_str!("../docs/integrations.md")]
    struct Integrations;

    #[doc = include_str!("../docs/observing.md")]
    struct Observing;

    #[doc = include_str!("../docs/api.md")]
    struct Api;

    #[doc = include_str!("../docs/bridges.md")]
    struct Bridges;
}
