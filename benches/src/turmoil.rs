//! turmoil-net (the `turmoil-net` crate, 0.1): a simulated socket stack
//! behind a tokio-shaped `shim::tokio::net`, the nearest peer of lonet, as a
//! transport of the same workloads ([`TurmoilNet`]) and the harness that
//! drives it ([`run`]).
//!
//! turmoil-net's sockets live in a `Net` installed in a thread-local of the
//! thread that uses them, and its segments move only when the harness pumps
//! the fabric (`EnterGuard::egress_all`, which delivers loopback packets
//! inside the call and wakes the tasks they are for). [`run`] drives it the
//! way the crate's own `fixture::lo` does: a current-thread runtime with a
//! paused clock, the work on a `LocalSet`, and between two drains of the set
//! to idle (`run_until(sleep(1 ms))` returns once every task waits on
//! something else) one pump of the fabric. The workloads' `tokio::spawn`s run
//! on that runtime, on the same thread. Two things differ from the fixture,
//! neither on the measured path: the run stops after a wall-clock limit (the
//! paused clock's millisecond ticks say nothing of wall time), and a panic
//! becomes an error.

use crate::{join_err, Listening, Transport};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};
use tokio::task::LocalSet;
use turmoil_net::shim::tokio::net::{TcpListener, TcpStream};

/// A drain of the work to idle between two pumps of the fabric: the paused
/// clock's tick, as in turmoil-net's fixtures (its length does not matter:
/// nothing on the path waits on time).
const TICK: Duration = Duration::from_millis(1);

/// Runs `fut` on a one-host turmoil-net `Net` (127.0.0.1 and ::1 only),
/// driven as `fixture::lo` drives it, for at most `limit` of wall-clock
/// time: its output, or why there is none (the limit, a failed or panicking
/// task, a panic in turmoil-net's stack).
///
/// The `Net` is installed on the calling thread for the call; the call
/// fails if one is installed there already.
pub fn run<F>(limit: Duration, fut: F) -> io::Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    catch_unwind(AssertUnwindSafe(|| {
        let mut net = turmoil_net::Net::new();
        net.add_host::<[IpAddr; 0]>([]);
        // Declared before the runtime, so dropped after it: the tasks the
        // runtime still holds (an echo server waiting for its next ping)
        // close their sockets when dropped, through the installed `Net`.
        let guard = net.enter();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()?;
        let out = rt.block_on(async {
            let set = LocalSet::new();
            let task = set.spawn_local(fut);
            let t0 = Instant::now();
            let mut egress = Vec::new();
            loop {
                set.run_until(tokio::time::sleep(TICK)).await;
                guard.egress_all(&mut egress);
                // Only packets for other hosts come out (loopback's are
                // delivered within `egress_all`): none on this one host. No
                // rule is installed, so each is delivered at once, as the
                // fixture's scheduler does with an empty rule chain.
                for pkt in egress.drain(..) {
                    guard.deliver(pkt);
                }
                if task.is_finished() {
                    return task.await.map_err(join_err);
                }
                if t0.elapsed() > limit {
                    task.abort();
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("did not finish within {} s", limit.as_secs()),
                    ));
                }
            }
        });
        drop(rt);
        drop(guard);
        out
    }))
    .unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(io::Error::other(format!("turmoil-net panicked: {msg}")))
    })
}

/// turmoil-net on 127.0.0.1: its `TcpListener` and `TcpStream` (tokio's
/// `AsyncRead`/`AsyncWrite`). Only inside [`run`], on its thread.
pub struct TurmoilNet {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Transport for TurmoilNet {
    type S = TcpStream;
    const NAME: &'static str = "turmoil-net";
    const ID: &'static str = "turmoil_net";

    async fn setup() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        Ok(TurmoilNet { listener, addr })
    }

    async fn pair(&self) -> io::Result<(Self::S, Self::S)> {
        let (c, a) = tokio::join!(TcpStream::connect(self.addr), self.listener.accept());
        let (c, (a, _)) = (c?, a?);
        // As the other transports' connections (turmoil-net models no
        // Nagle: every write goes out at the next pump anyway).
        c.set_nodelay(true)?;
        a.set_nodelay(true)?;
        Ok((c, a))
    }
}

impl Listening for TurmoilNet {
    async fn connect_accept_close(&self) -> io::Result<()> {
        let (c, a) = tokio::join!(TcpStream::connect(self.addr), self.listener.accept());
        // The client closes first, as with the other transports.
        drop(c?);
        drop(a?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bulk, ConnectClose, PingPong};

    #[test]
    fn the_workloads_run_on_turmoil_net() {
        let out = run(Duration::from_secs(20), async {
            let t = TurmoilNet::setup().await?;
            let mut p = PingPong::new(&t).await?;
            p.run(10).await?;
            p.run_in_place(10).await?;
            let mut b = Bulk::new(&t).await?;
            b.run(4).await?;
            let mut c = ConnectClose::new(t);
            c.run(10).await?;
            io::Result::Ok(())
        });
        assert!(matches!(out, Ok(Ok(()))), "{out:?}");
    }

    #[test]
    fn a_hang_ends_at_the_limit() {
        // A read nobody will ever answer.
        let out = run(Duration::from_millis(50), async {
            let t = TurmoilNet::setup().await?;
            let (mut c, _a) = t.pair().await?;
            let mut buf = [0u8; 1];
            tokio::io::AsyncReadExt::read(&mut c, &mut buf).await
        });
        let e = out.err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::TimedOut));
    }
}
