//! TCP and UDP sockets with `tokio::net`'s API.
//!
//! | type | tokio's | what it is |
//! |---|---|---|
//! | [`TcpListener`] | `tokio::net::TcpListener` | a listening socket |
//! | [`TcpStream`] | `tokio::net::TcpStream` | a connection |
//! | [`TcpSocket`] | `tokio::net::TcpSocket` | a socket to bind, then connect or listen |
//! | [`tcp::ReadHalf`], [`tcp::WriteHalf`] | same | borrowed halves ([`TcpStream::split`]) |
//! | [`tcp::OwnedReadHalf`], [`tcp::OwnedWriteHalf`] | same | owned halves ([`TcpStream::into_split`]) |
//! | [`UdpSocket`] | `tokio::net::UdpSocket` | a UDP socket |
//! | [`ToSocketAddrs`] | `tokio::net::ToSocketAddrs` | what `bind`/`connect` accept |
//!
//! Sockets live in the current namespace ([`Netns::current`](crate::Netns)):
//! the default one, or the one of an enclosing `Netns::scope`.
//!
//! Readiness (`readable`, `writable`, `ready`, `poll_read_ready`, ...)
//! follows tokio's rules on both paths: it stays set until an operation
//! returns `WouldBlock` (see [`TcpStream::ready`]). A `std` socket is a
//! kernel socket: [`TcpStream::from_std`], [`TcpListener::from_std`] and
//! [`TcpSocket::from_std_stream`] give OS-path sockets, and `into_std` works
//! on those only.

mod addr;
mod listener;
mod readiness;
mod socket;
mod stream;
pub mod tcp;
mod udp;

pub use addr::{lookup_host, ToSocketAddrs};
pub use listener::TcpListener;
pub use socket::TcpSocket;
pub use stream::{Path, TcpStream};
pub use udp::UdpSocket;
