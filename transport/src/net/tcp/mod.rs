//! The halves of a split [`TcpStream`](super::TcpStream), as in
//! `tokio::net::tcp`.

pub(crate) mod split;
pub(crate) mod split_owned;

pub use split::{ReadHalf, WriteHalf};
pub use split_owned::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
