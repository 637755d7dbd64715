//! compare's turmoil-net column: one workload of lonet-bench over turmoil-net
//! 0.1 (a simulated socket stack behind a tokio-shaped `shim::tokio::net`,
//! the nearest peer of lonet), timed as compare times every other column, its
//! figure printed on stdout.
//!
//! ```text
//! compare-turmoil-net pingpong-in-place|pingpong-spawned|bulk|connect RUNS PER_RUN LIMIT_SECS
//! ```
//!
//! prints µs per round trip (ping-pong), GB/s (bulk) or connections per
//! second (connect): one untimed run of PER_RUN iterations, then RUNS timed
//! runs, the median run. Exit status 1 and a message on stderr when the
//! workload fails, panics or runs past LIMIT_SECS of wall-clock time.
//!
//! It is a package and a workspace of its own (see its Cargo.toml) so that
//! turmoil-net's tokio features stay out of compare's build; compare runs it
//! as a child process.
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

#![deny(missing_docs)]
#![deny(unsafe_code)]

use lonet_bench::{Bulk, ConnectClose, Listening, PingPong, Transport, CHUNK};
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

const USAGE: &str = "usage: compare-turmoil-net pingpong-in-place|pingpong-spawned|bulk|connect RUNS PER_RUN LIMIT_SECS";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((w, plan, limit)) = parse(&args) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    match run(limit, measure(w, plan)).and_then(|r| r) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// The workloads compare runs on turmoil-net.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Workload {
    /// 64 B ping-pong, the client in the fixture's task ([`PingPong::run_in_place`]).
    PingPongInPlace,
    /// 64 B ping-pong, the client in a spawned task ([`PingPong::run`]).
    PingPongSpawned,
    /// 64 KiB writes on one connection.
    Bulk,
    /// Connect + accept + close.
    Connect,
}

/// `runs` timed runs of `per_run` iterations, as compare's `Plan`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Plan {
    runs: u64,
    per_run: u64,
}

fn parse(args: &[String]) -> Option<(Workload, Plan, Duration)> {
    let [w, runs, per_run, limit] = args else {
        return None;
    };
    let w = match w.as_str() {
        "pingpong-in-place" => Workload::PingPongInPlace,
        "pingpong-spawned" => Workload::PingPongSpawned,
        "bulk" => Workload::Bulk,
        "connect" => Workload::Connect,
        _ => return None,
    };
    let plan = Plan {
        runs: runs.parse().ok().filter(|&n| n > 0)?,
        per_run: per_run.parse().ok().filter(|&n| n > 0)?,
    };
    Some((w, plan, Duration::from_secs(limit.parse().ok()?)))
}

/// One untimed run, then `plan.runs` timed runs of `plan.per_run`
/// iterations of `$w.$run`: the median run's duration (compare's `timed!`).
macro_rules! timed {
    ($w:expr, $plan:expr, $run:ident) => {{
        let plan: Plan = $plan;
        $w.$run(plan.per_run).await?;
        let mut ds = Vec::with_capacity(plan.runs as usize);
        for _ in 0..plan.runs {
            ds.push($w.$run(plan.per_run).await?);
        }
        ds.sort();
        ds[ds.len() / 2]
    }};
}

/// The workload on turmoil-net, in compare's unit for it.
async fn measure(w: Workload, plan: Plan) -> io::Result<f64> {
    let t = TurmoilNet::setup().await?;
    Ok(match w {
        Workload::PingPongInPlace | Workload::PingPongSpawned => {
            let mut p = PingPong::new(&t).await?;
            let d = if w == Workload::PingPongInPlace {
                timed!(p, plan, run_in_place)
            } else {
                timed!(p, plan, run)
            };
            d.as_secs_f64() * 1e6 / plan.per_run as f64
        }
        Workload::Bulk => {
            let mut b = Bulk::new(&t).await?;
            let d = timed!(b, plan, run);
            (plan.per_run * CHUNK as u64) as f64 / d.as_secs_f64() / 1e9
        }
        Workload::Connect => {
            let mut c = ConnectClose::new(t);
            let d = timed!(c, plan, run);
            plan.per_run as f64 / d.as_secs_f64()
        }
    })
}

/// Runs `fut` on a one-host turmoil-net `Net` (127.0.0.1 and ::1 only),
/// driven as `fixture::lo` drives it, for at most `limit` of wall-clock
/// time: its output, or why there is none (the limit, a failed or panicking
/// task, a panic in turmoil-net's stack).
fn run<F>(limit: Duration, fut: F) -> io::Result<F::Output>
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
                    return task
                        .await
                        .map_err(|e| io::Error::other(format!("task failed: {e}")));
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
struct TurmoilNet {
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

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_workload_gives_a_figure() {
        let plan = Plan {
            runs: 3,
            per_run: 20,
        };
        for w in [
            Workload::PingPongInPlace,
            Workload::PingPongSpawned,
            Workload::Bulk,
            Workload::Connect,
        ] {
            let v = run(Duration::from_secs(20), measure(w, plan)).and_then(|r| r);
            assert!(matches!(v, Ok(v) if v > 0.0), "{w:?}: {v:?}");
        }
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
        assert_eq!(out.err().map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
    }

    #[test]
    fn arguments() {
        let (w, plan, limit) = parse(&s(&["bulk", "8", "128", "20"])).unwrap();
        assert_eq!(w, Workload::Bulk);
        assert_eq!(
            plan,
            Plan {
                runs: 8,
                per_run: 128
            }
        );
        assert_eq!(limit, Duration::from_secs(20));
        assert!(parse(&s(&["bulk", "0", "128", "20"])).is_none());
        assert!(parse(&s(&["udp", "1", "1", "1"])).is_none());
        assert!(parse(&s(&["connect", "1", "1"])).is_none());
    }
}
