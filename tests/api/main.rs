//! lonet's public API against tokio's: the same signatures (checked at compile time) and the
//! same auto traits, plus a few runtime checks that the shared code behaves alike.

#[path = "../common/mod.rs"]
mod common;

/// `lonet::net` and `lonet::stream` against `tokio::net` and tokio-stream, method by method.
mod parity;

/// `Send`, `Sync` and `Unpin` of the public types and of their methods' futures.
mod async_send_sync;

/// `from_std`, `TryFrom`, `into_std` and `TcpSocket::from_std_stream`, with tokio's signatures.
mod std_conversions;
