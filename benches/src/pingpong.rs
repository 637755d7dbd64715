//! 64-byte ping-pong: round-trip time.

use crate::{join_err, poisoned, Transport};
use std::io;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Bytes in one ping or pong.
pub const PING: usize = 64;

/// 64-byte ping-pong: the client writes 64 bytes, the server echoes them,
/// the client reads them back. One iteration is one round trip.
pub struct PingPong<T: Transport> {
    client: Option<T::S>,
    _server: JoinHandle<()>,
}

impl<T: Transport> PingPong<T> {
    /// Connects and starts the echo server task.
    pub async fn new(t: &T) -> io::Result<Self> {
        let (client, mut server) = t.pair().await?;
        let server = tokio::spawn(async move {
            let mut buf = [0u8; PING];
            // Ends when the client goes away (EOF or reset).
            while server.read_exact(&mut buf).await.is_ok() {
                if server.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
        Ok(PingPong {
            client: Some(client),
            _server: server,
        })
    }

    /// `n` round trips with the client in a task of its own (so on a
    /// multi-thread runtime it runs on a worker); the time they took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let client = self.client.take().ok_or_else(poisoned)?;
        let (client, took) = tokio::spawn(round_trips(client, n))
            .await
            .map_err(join_err)??;
        self.client = Some(client);
        Ok(took)
    }

    /// `n` round trips with the client in the caller's future: under
    /// `block_on`, the way a `#[tokio::test]` body or criterion's
    /// `to_async` runs it (the way the reference real-socket figures were measured).
    /// Every reply then wakes `block_on` itself, through the runtime's
    /// driver, which costs every transport the same fixed amount.
    pub async fn run_in_place(&mut self, n: u64) -> io::Result<Duration> {
        let client = self.client.take().ok_or_else(poisoned)?;
        let (client, took) = round_trips(client, n).await?;
        self.client = Some(client);
        Ok(took)
    }
}

/// The client's side of [`PingPong`]: `n` round trips, timed.
async fn round_trips<S>(mut client: S, n: u64) -> io::Result<(S, Duration)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = [7u8; PING];
    let t0 = Instant::now();
    for _ in 0..n {
        client.write_all(&buf).await?;
        client.read_exact(&mut buf).await?;
    }
    Ok((client, t0.elapsed()))
}
