//! Running one workload on one transport: bounded in time, timed as its
//! [`Plan`] says, with notes on anything a clean run should not show.

use crate::plan::Plan;
use crate::row::Cell;
use lonet_bench::*;
use std::future::Future;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// `EMFILE`, "Too many open files" (the same number on every Linux arch).
const EMFILE: i32 = 24;

/// The longest one workload on one transport may take.
pub const LIMIT: Duration = Duration::from_secs(20);

// Notes gathered while running: lonet's counters when they show something a
// clean run on loopback should not (drops, retransmissions, resets).

static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note(s: String) {
    NOTES.lock().unwrap_or_else(|e| e.into_inner()).push(s);
}

/// The notes gathered so far, in the order they were made.
pub fn take_notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().unwrap_or_else(|e| e.into_inner()))
}

fn lonet_counters<T: Transport>(t: &T, what: &str) {
    let Some(ns) = t.ns() else { return };
    let tcp = ns.tcp_stats();
    let sn = ns.softnet_stat().total();
    let mut odd = Vec::new();
    for (v, name) in [
        (sn.dropped, "softnet dropped"),
        (sn.time_squeeze, "softnet time_squeeze"),
        (tcp.retrans_segs, "TCP retrans_segs"),
        (tcp.tcp_timeouts, "TCP tcp_timeouts"),
        (tcp.estab_resets, "TCP estab_resets"),
        (tcp.out_rsts, "TCP out_rsts"),
        (tcp.listen_overflows, "TCP listen_overflows"),
        (tcp.attempt_fails, "TCP attempt_fails"),
    ] {
        if v > 0 {
            odd.push(format!("{name} {v}"));
        }
    }
    if !odd.is_empty() {
        note(format!(
            "lonet counters after {what}: {} (out of {} segments sent)",
            odd.join(", "),
            tcp.out_segs
        ));
    }
}

/// Runs `fut` on `rt` within [`LIMIT`]: its figure, or why there is none.
pub fn bounded<F>(rt: &Runtime, what: &str, fut: F) -> Cell
where
    F: Future<Output = io::Result<f64>>,
{
    eprint!("  {what} ... ");
    let t0 = Instant::now();
    let out = rt.block_on(async { tokio::time::timeout(LIMIT, fut).await });
    finish(what, t0, out.ok())
}

/// The program that runs turmoil-net's workloads for its column:
/// benches/turmoil-net, a package and a workspace of its own (turmoil-net
/// turns on tokio's `test-util` feature, whose clock checks would otherwise
/// be built into this binary's tokio and slow every other column). Found
/// beside this binary (one target directory for both) or in that package's
/// own target directory.
fn turmoil_runner() -> Option<PathBuf> {
    const NAME: &str = "compare-turmoil-net";
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join(NAME)));
    let own = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("turmoil-net/target/release")
        .join(NAME);
    beside.into_iter().chain([own]).find(|p| p.is_file())
}

/// turmoil-net's `workload` ("pingpong-in-place", "pingpong-spawned",
/// "bulk", "connect") as the plan says, in a child process (the runner above,
/// which times it as `timed!` does, drives turmoil-net as its own test
/// fixture does and keeps [`LIMIT`] itself): its figure, or why there is
/// none. The child is killed if it outlives [`LIMIT`] by a few seconds.
pub fn bounded_turmoil(what: &str, workload: &str, plan: Plan) -> Cell {
    eprint!("  {what} ... ");
    let t0 = Instant::now();
    let Some(bin) = turmoil_runner() else {
        eprintln!("not built");
        let n = "turmoil-net was not run: its runner is not built. It is a package of its own, \
                 built on its own so that turmoil-net's tokio features stay out of this binary: \
                 cargo build --release --manifest-path benches/turmoil-net/Cargo.toml";
        let mut notes = NOTES.lock().unwrap_or_else(|e| e.into_inner());
        if !notes.iter().any(|x| x == n) {
            notes.push(n.into());
        }
        return Cell::NotApplicable("n/a (not built)");
    };
    let spawned = Command::new(&bin)
        .args([
            workload.to_string(),
            plan.runs.to_string(),
            plan.per_run.to_string(),
            LIMIT.as_secs().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let e = io::Error::new(e.kind(), format!("{}: {e}", bin.display()));
            return finish(what, t0, Some(Err(e)));
        }
    };
    // Both pipes read to their end on threads of their own, so that neither
    // can fill up while the other is waited for.
    let (tx, rx) = mpsc::channel();
    let readers: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    ];
    for (i, r) in readers.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            let _ = tx.send((i, s));
        });
    }
    let deadline = t0 + LIMIT + Duration::from_secs(5);
    let mut text = [String::new(), String::new()];
    for _ in 0..2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((i, s)) => text[i] = s,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return finish(what, t0, None);
            }
        }
    }
    let [out, err] = text;
    let out = match child.wait() {
        Ok(st) if st.success() => out
            .trim()
            .parse::<f64>()
            .map_err(|_| io::Error::other(format!("unreadable figure {:?}", out.trim()))),
        Ok(st) => Err(io::Error::other(match err.trim() {
            "" => format!("{st}"),
            e => e.to_string(),
        })),
        Err(e) => Err(e),
    };
    finish(what, t0, Some(out))
}

/// The cell for a workload's outcome (`None`: it ran out of time), and the
/// line on stderr that [`bounded`] began.
fn finish(what: &str, t0: Instant, out: Option<io::Result<f64>>) -> Cell {
    let cell = match out {
        Some(Ok(v)) => Cell::Val(v),
        Some(Err(e)) if e.raw_os_error() == Some(EMFILE) => {
            // The machine's limit, not a failure of the transport.
            note(format!(
                "{what}: {e}: raise `ulimit -n` (1,000 connections over kernel sockets need ~2,016 descriptors)"
            ));
            Cell::NotApplicable("n/a (ulimit -n)")
        }
        Some(Err(e)) => Cell::Failed(format!("{what}: {e}")),
        None => Cell::Failed(format!(
            "{what}: did not finish within {} s (hang or far too slow)",
            LIMIT.as_secs()
        )),
    };
    match &cell {
        Cell::Failed(e) => eprintln!("FAILED: {e}"),
        _ => eprintln!("{:.2} s", t0.elapsed().as_secs_f64()),
    }
    cell
}

/// One untimed run, then `plan.runs` timed runs of `plan.per_run`
/// iterations of the workload `$w`: the median run's duration. With a
/// fourth argument, also the minor page faults of the timed runs.
macro_rules! timed {
    ($w:expr, $plan:expr) => {
        timed!($w, $plan, &mut None)
    };
    ($w:expr, $plan:expr, $run:ident) => {
        timed!($w, $plan, &mut None, $run)
    };
    ($w:expr, $plan:expr, $faults:expr) => {
        timed!($w, $plan, $faults, run)
    };
    ($w:expr, $plan:expr, $faults:expr, $run:ident) => {{
        let plan: Plan = $plan;
        $w.$run(plan.per_run).await?;
        let f0 = minor_faults();
        let mut ds = Vec::with_capacity(plan.runs as usize);
        for _ in 0..plan.runs {
            ds.push($w.$run(plan.per_run).await?);
        }
        *$faults = minor_faults().zip(f0).map(|(f1, f0)| f1 - f0);
        ds.sort();
        ds[ds.len() / 2]
    }};
}

/// The process's minor page faults so far (Linux: /proc/self/stat, field 10).
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(7)?.parse().ok()
}

/// A note when a bulk workload touched fresh pages on most of its writes:
/// the figure then measures page faults as much as the transport.
fn fault_note(who: &str, what: &str, faults: Option<u64>, writes: u64) {
    let Some(f) = faults else { return };
    let per_write = f as f64 / writes as f64;
    if per_write >= 1.0 {
        note(format!(
            "{what}, {who}: {per_write:.1} minor page faults per 64 KiB write in the timed runs \
             (16 would be every page of every write fresh from the OS)"
        ));
    }
}

/// Where the ping-pong client runs.
#[derive(Clone, Copy)]
pub enum Client {
    /// In the future `block_on` drives ([`PingPong::run_in_place`]).
    InPlace,
    /// In a task of its own ([`PingPong::run`]).
    Spawned,
}

/// Memory-to-memory copy speed for a buffer of `len` bytes (the median of
/// a few passes over 1 GiB): what bounds a workload whose data does not stay
/// in the caches.
pub fn memcpy_gbps(len: usize) -> f64 {
    let src = vec![0x5au8; len];
    let mut dst = vec![0u8; len];
    let reps = ((1usize << 30) / len).max(1);
    let mut v: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..reps {
                dst.copy_from_slice(std::hint::black_box(&src));
                std::hint::black_box(&mut dst);
            }
            (reps * len) as f64 / t0.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// 64 B ping-pong on `T`, the client where `client` says: µs per round trip.
pub async fn pingpong<T: Transport>(plan: Plan, client: Client, what: &str) -> io::Result<f64> {
    let t = T::setup().await?;
    let mut w = PingPong::new(&t).await?;
    let d = match client {
        Client::InPlace => timed!(w, plan, run_in_place),
        Client::Spawned => timed!(w, plan),
    };
    lonet_counters(&t, what);
    Ok(d.as_secs_f64() * 1e6 / plan.per_run as f64)
}

/// Bulk on `T`: GB/s.
pub async fn bulk<T: Transport>(plan: Plan, what: &str) -> io::Result<f64> {
    let t = T::setup().await?;
    let mut w = Bulk::new(&t).await?;
    let mut faults = None;
    let d = timed!(w, plan, &mut faults);
    fault_note(T::NAME, what, faults, plan.total());
    lonet_counters(&t, what);
    Ok((plan.per_run * CHUNK as u64) as f64 / d.as_secs_f64() / 1e9)
}

/// Connect + accept + close on `T`: connections per second.
pub async fn connects<T: Listening>(plan: Plan) -> io::Result<f64> {
    let mut w = ConnectClose::new(T::setup().await?);
    let d = timed!(w, plan);
    lonet_counters(w.transport(), "connect + accept + close");
    Ok(plan.per_run as f64 / d.as_secs_f64())
}

/// hyper HTTP/1.1 keep-alive on `T`: requests per second.
pub async fn http1<T: Transport>(plan: Plan) -> io::Result<f64> {
    let t = T::setup().await?;
    let mut w = Http1::new(&t).await?;
    let d = timed!(w, plan);
    lonet_counters(&t, "HTTP/1.1");
    Ok(plan.per_run as f64 / d.as_secs_f64())
}

/// hyper HTTP/2 with concurrent streams on `T`: requests per second.
pub async fn http2<T: Transport>(plan: Plan) -> io::Result<f64> {
    let t = T::setup().await?;
    let mut w = Http2::new(&t).await?;
    let d = timed!(w, plan);
    lonet_counters(&t, "HTTP/2");
    Ok(plan.per_run as f64 / d.as_secs_f64())
}

/// `conns` connections moving data at once on `T`: aggregate GB/s.
pub async fn many<T: Transport>(conns: usize, plan: Plan) -> io::Result<f64> {
    let t = T::setup().await?;
    let mut w = Many::new(&t, conns).await?;
    // The untimed first run is also the allocator's first pass over ~1 GiB
    // of buffers (page faults; kernel TCP's first pass is slow too).
    let mut faults = None;
    let d = timed!(w, plan, &mut faults);
    let what = format!("{conns} concurrent connections");
    fault_note(T::NAME, &what, faults, plan.total() * conns as u64);
    lonet_counters(&t, &what);
    let bytes = conns as u64 * plan.per_run * CHUNK as u64;
    Ok(bytes as f64 / d.as_secs_f64() / 1e9)
}

fn lonet_udp_counters(ns: Option<&lonet::Netns>, what: &str) {
    let Some(ns) = ns else { return };
    let udp = ns.udp_stats();
    let sn = ns.softnet_stat().total();
    let mut odd = Vec::new();
    for (v, name) in [
        (sn.dropped, "softnet dropped"),
        (udp.rcvbuf_errors, "Udp RcvbufErrors"),
        (udp.no_ports, "Udp NoPorts"),
    ] {
        if v > 0 {
            odd.push(format!("{name} {v}"));
        }
    }
    if !odd.is_empty() {
        note(format!(
            "lonet counters after {what}: {} (out of {} datagrams sent)",
            odd.join(", "),
            udp.out_datagrams
        ));
    }
}

/// 64 B UDP ping-pong on `T`: µs per round trip.
pub async fn udp_pingpong<T: DgramTransport>(plan: Plan) -> io::Result<f64> {
    let mut w = UdpPingPong::<T>::new().await?;
    let d = timed!(w, plan);
    lonet_udp_counters(w.ns.as_ref(), "UDP ping-pong");
    Ok(d.as_secs_f64() * 1e6 / plan.per_run as f64)
}

/// 1,200-byte datagrams on `T`: delivered GB/s.
pub async fn udp_stream<T: DgramTransport>(plan: Plan) -> io::Result<f64> {
    let mut w = UdpStream::<T>::new().await?;
    w.run(plan.per_run).await?;
    let mut v = Vec::with_capacity(plan.runs as usize);
    for _ in 0..plan.runs {
        let (d, sent) = w.run(plan.per_run).await?;
        v.push((sent * DGRAM as u64) as f64 / d.as_secs_f64() / 1e9);
    }
    lonet_udp_counters(w.ns.as_ref(), "UDP datagrams");
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// QUIC bulk over `over`: GB/s of stream data.
pub async fn quic_bulk(over: QuicOver, plan: Plan) -> io::Result<f64> {
    let mut w = QuicBulk::new(over).await?;
    let d = timed!(w, plan);
    lonet_udp_counters(w.ns.as_ref(), "QUIC bulk");
    Ok((plan.per_run * QUIC_CHUNK as u64) as f64 / d.as_secs_f64() / 1e9)
}
