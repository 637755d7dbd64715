//! lonet's benchmark harness: the workloads shared by the criterion bench
//! (`cargo bench -p lonet-bench`, benches/transports.rs) and the `compare`
//! binary (`cargo run --release -p lonet-bench --bin compare`, one table),
//! written once over any transport.
//!
//! A [`Transport`] hands out connected pairs of streams. Four of them:
//! - [`Lonet`], `lonet::net` in a namespace of its own (`Netns::new()`), a
//!   listener on 127.0.0.1, the full modeled loopback path;
//! - [`Tcp`], `tokio::net` on the kernel's 127.0.0.1;
//! - [`Unix`], `tokio::net::UnixStream::pair()`;
//! - [`Duplex`], `tokio::io::duplex` with a [`DUPLEX_BUF`] buffer.
//!
//! A lonet socket keeps its namespace once created, so tasks that only move
//! data on existing connections are plain `tokio::spawn`s; tasks that create
//! sockets (connect, accept, hyper's connection setup) run in the
//! transport's namespace ([`spawn_in`]): `tokio::spawn` does not carry the
//! namespace over.
//!
//! [`Exposed`] (module [`bridge`]) is a fifth: a kernel socket reaching a
//! listener of lonet through `expose`'s relay, for the bridge rows.
//!
//! The workloads, one module each:
//! - [`pingpong`]: 64-byte round trips ([`PingPong`]);
//! - [`bulk`]: 64 KiB writes on one connection ([`Bulk`]);
//! - [`connect`]: connect + accept + close ([`ConnectClose`]);
//! - [`http`]: hyper HTTP/1.1 keep-alive and HTTP/2 with concurrent streams
//!   ([`Http1`], [`Http2`]);
//! - [`many`]: 1,000 connections moving data at once ([`Many`]);
//! - [`udp`]: UDP 64-byte ping-pong, 1,200-byte datagram throughput and
//!   QUIC bulk over quinn ([`UdpPingPong`], [`UdpStream`], [`QuicBulk`]),
//!   over lonet's UDP and the kernel's ([`LonetUdp`], [`KernelUdp`],
//!   [`UnixDgram`]);
//! - [`memory`]: bytes held by idle connections and under a stalled reader
//!   ([`idle`], [`stall`]), counted by [`memory::Counting`], a global
//!   allocator the `compare` binary installs.
//!
//! Each timed workload sets its connections up once ([`PingPong::new`], ...)
//! and then times `run(n)`: `n` iterations in freshly spawned tasks, so on a
//! multi-thread runtime the timed work runs on the workers, not on the thread
//! that called `block_on` ([`PingPong::run_in_place`] is the exception: its
//! client runs in the caller's future). The connections survive between runs,
//! so criterion's samples reuse them.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod bridge;
pub mod bulk;
pub mod connect;
pub mod http;
pub mod many;
pub mod memory;
pub mod pingpong;
pub mod transport;
pub mod udp;

pub use bridge::Exposed;
pub use bulk::{Bulk, CHUNK};
pub use connect::ConnectClose;
pub use http::{Exec, Http1, Http2, BODY, H2_STREAMS};
pub use many::Many;
pub use memory::{idle, stall, Idle, Stall, STALL_CAP};
pub use pingpong::{PingPong, PING};
pub use transport::{spawn_in, Duplex, Listening, Lonet, Tcp, Transport, Unix, DUPLEX_BUF};
pub use udp::{
    DgramTransport, KernelUdp, LonetUdp, QuicBulk, QuicOver, UdpPingPong, UdpStream, UnixDgram,
    DGRAM, QUIC_CHUNK, UDP_PING,
};

use std::io;

/// A current-thread runtime with I/O and timers.
pub fn current_thread() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A multi-thread runtime with 2 workers.
pub fn multi_thread_2() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// A spawned task that failed (panicked or was cancelled), as an I/O error.
fn join_err(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("task failed: {e}"))
}

/// A workload whose earlier run failed and took its connection with it.
fn poisoned() -> io::Error {
    io::Error::other("an earlier run failed; the connection is gone")
}
