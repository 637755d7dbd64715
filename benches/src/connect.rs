//! Connect + accept + close: connections per second.

use crate::{join_err, spawn_in, Listening};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connect + accept + close, one after the other. One iteration is one
/// connection's whole life.
pub struct ConnectClose<T: Listening> {
    t: Arc<T>,
}

impl<T: Listening> ConnectClose<T> {
    /// Takes the transport (its listener) over.
    pub fn new(t: T) -> Self {
        ConnectClose { t: Arc::new(t) }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.t
    }

    /// `n` connections opened and closed; the time it took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let t = self.t.clone();
        spawn_in(self.t.ns(), async move {
            let t0 = Instant::now();
            for _ in 0..n {
                t.connect_accept_close().await?;
            }
            io::Result::Ok(t0.elapsed())
        })
        .await
        .map_err(join_err)?
    }
}
