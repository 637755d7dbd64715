//! # lonet-transport: tokio-facing sockets over the modeled loopback
//!
//! [`net::TcpListener`] and [`net::TcpStream`] have `tokio::net`'s method
//! names and signatures, implement `AsyncRead`/`AsyncWrite`, and run every
//! connection to a local address through `lonet-runtime`'s model of the Linux
//! loopback path instead of the kernel.
//!
//! - [`net`]: the sockets, split halves and address resolution.
//! - [`stream`]: [`stream::TcpListenerStream`], a `Stream` of connections.
//!
//! Start at [`net::TcpListener::bind`] and [`net::TcpStream::connect`].
//!
//! # Cancel safety
//! `accept`, `readable`, `writable`, `ready` and `peek` are cancel safe, as in
//! tokio. `connect` is not: dropping the future closes the half-open socket.

#![deny(missing_docs)]

pub mod net;
pub mod stream;

pub use lonet_runtime::Netns;
