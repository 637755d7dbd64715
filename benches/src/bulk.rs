//! Bulk transfer on one connection: throughput.

use crate::{join_err, poisoned, Transport};
use std::io;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes in one bulk write.
pub const CHUNK: usize = 64 * 1024;

/// Bulk transfer: the writer writes `n` chunks of [`CHUNK`] bytes, the reader
/// (another task) reads them with a [`CHUNK`]-byte buffer. One iteration is
/// one chunk; the time runs until the reader has all of them.
pub struct Bulk<T: Transport> {
    ends: Option<Ends<T::S>>,
}

/// A connection's two ends and its reader's buffer, kept from run to run.
pub(crate) type Ends<S> = (S, S, Vec<u8>);

/// What every writer writes: one static chunk, so that the writers' side
/// allocates nothing (the readers' buffers are the connections' own).
static DATA: [u8; CHUNK] = [0x5a; CHUNK];

impl<T: Transport> Bulk<T> {
    /// Connects.
    pub async fn new(t: &T) -> io::Result<Self> {
        let (w, r) = t.pair().await?;
        Ok(Bulk {
            ends: Some((w, r, vec![0u8; CHUNK])),
        })
    }

    /// Moves `n` chunks; the time it took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let ends = self.ends.take().ok_or_else(poisoned)?;
        let t0 = Instant::now();
        let ends = transfer(ends, n).await?;
        let took = t0.elapsed();
        self.ends = Some(ends);
        Ok(took)
    }
}

/// Writes `n` chunks on `w` in one task, reads them from `r` in another.
pub(crate) async fn transfer<S>((mut w, mut r, mut buf): Ends<S>, n: u64) -> io::Result<Ends<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let total = n * CHUNK as u64;
    let reader = tokio::spawn(async move {
        let mut got = 0u64;
        while got < total {
            let want = (total - got).min(CHUNK as u64) as usize;
            let k = r.read(&mut buf[..want]).await?;
            if k == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("bulk: EOF after {got} of {total} bytes"),
                ));
            }
            got += k as u64;
        }
        io::Result::Ok((r, buf))
    });
    let writer = tokio::spawn(async move {
        for _ in 0..n {
            w.write_all(&DATA).await?;
        }
        io::Result::Ok(w)
    });
    let w = writer.await.map_err(join_err)??;
    let (r, buf) = reader.await.map_err(join_err)??;
    Ok((w, r, buf))
}
