//! TCP sockets with `tokio::net`'s API.
//!
//! | type | tokio's | what it is |
//! |---|---|---|
//! | [`TcpListener`] | `tokio::net::TcpListener` | a listening socket |
//! | [`TcpStream`] | `tokio::net::TcpStream` | a connection |
//! | [`TcpSocket`] | `tokio::net::TcpSocket` | a socket to bind, then connect or listen |
//! | [`tcp::ReadHalf`], [`tcp::WriteHalf`] | same | borrowed halves ([`TcpStream::split`]) |
//! | [`tcp::OwnedReadHalf`], [`tcp::OwnedWriteHalf`] | same | owned halves ([`TcpStream::into_split`]) |
//! | [`ToSocketAddrs`] | `tokio::net::ToSocketAddrs` | what `bind`/`connect` accept |
//!
//! Sockets live in the current namespace ([`Netns::current`](crate::Netns)):
//! the default one, or the one of an enclosing `Netns::scope`.

mod addr;
mod listener;
mod readiness;
mod socket;
mod stream;
pub mod tcp;

pub use addr::{lookup_host, ToSocketAddrs};
pub use listener::TcpListener;
pub use socket::TcpSocket;
pub use stream::{Path, TcpStream};
