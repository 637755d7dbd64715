//! Many connections moving data at once: aggregate throughput.

use crate::bulk::{transfer, Ends, CHUNK};
use crate::{join_err, Transport};
use std::io;
use std::time::{Duration, Instant};

/// Many connections moving data at once: on each, a writer task writes `n`
/// chunks of [`CHUNK`] bytes while a reader task reads them. One iteration is
/// one chunk on every connection; the time runs until the last reader is done.
pub struct Many<T: Transport> {
    pairs: Vec<Ends<T::S>>,
}

impl<T: Transport> Many<T> {
    /// Opens `conns` connections, one after the other.
    pub async fn new(t: &T, conns: usize) -> io::Result<Self> {
        let mut pairs = Vec::with_capacity(conns);
        for _ in 0..conns {
            // Errors unchanged: `raw_os_error` tells EMFILE (`ulimit -n`).
            let p = t.pair().await?;
            pairs.push((p.0, p.1, vec![0u8; CHUNK]));
        }
        Ok(Many { pairs })
    }

    /// `n` chunks on every connection, all at once; the time it took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let pairs = std::mem::take(&mut self.pairs);
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(pairs.len());
        for ends in pairs {
            tasks.push(tokio::spawn(transfer(ends, n)));
        }
        let mut back = Vec::with_capacity(tasks.len());
        for t in tasks {
            back.push(t.await.map_err(join_err)??);
        }
        let took = t0.elapsed();
        self.pairs = back;
        Ok(took)
    }
}
