//! # lonet-transport: tokio-facing sockets over the modeled loopback
//!
//! [`net::TcpListener`], [`net::TcpStream`] and [`net::UdpSocket`] have `tokio::net`'s method
//! names and signatures, implement `AsyncRead`/`AsyncWrite`, and run every
//! connection to a local address through `lonet-runtime`'s model of the Linux
//! loopback path instead of the kernel.
//!
//! - [`net`]: the sockets, split halves and address resolution.
//! - [`stream`]: [`stream::TcpListenerStream`], a `Stream` of connections.
//! - [`bridge`]: the model and the machine's loopback joined:
//!   [`bridge::NetnsBridgeExt`]'s `expose` and `forward`.
//!
//! Start at [`net::TcpListener::bind`] and [`net::TcpStream::connect`].
//!
//! # Optional features
//! Named after what they enable; none is on by default.
//! - `hyper`: the `hyper` module — a `tower_service::Service<Uri>`
//!   connector for hyper-util's client (HTTP/1 and HTTP/2) and tonic's
//!   `Endpoint::connect_with_connector`. Servers need no feature: wrap an
//!   accepted [`net::TcpStream`] in `hyper_util::rt::TokioIo` for hyper's
//!   `serve_connection` or hyper-util's `auto::Builder`.
//! - `tonic` (implies `hyper`): `tonic::transport::server::Connected` for
//!   [`net::TcpStream`], so `Server::serve_with_incoming` takes a
//!   [`stream::TcpListenerStream`] and handlers see `Request::remote_addr()`.
//! - `axum` (implies `hyper`): `axum::serve::Listener` for
//!   [`net::TcpListener`], so `axum::serve(listener, router)` works.
//! - `quinn`: the `quinn` module — quinn's `Runtime` and `AsyncUdpSocket`
//!   over [`net::UdpSocket`], and `client`/`server` endpoints, so QUIC runs
//!   through the model.
//! - `full`: hyper, tonic and axum.
//!
//! # Cancel safety
//! `accept`, `readable`, `writable`, `ready` and `peek` are cancel safe, as in
//! tokio. `connect` is not: dropping the future closes the half-open socket.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bridge;
pub mod net;
pub mod stream;

#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper;

#[cfg(feature = "quinn")]
#[cfg_attr(docsrs, doc(cfg(feature = "quinn")))]
pub mod quinn;

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "tonic")]
mod tonic;

pub use lonet_runtime::Netns;
pub mod time;
