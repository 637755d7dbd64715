//! One table: lonet against kernel loopback TCP, a Unix socket pair and
//! `tokio::io::duplex`, on the same workloads, with lonet's ratios and the
//! targets of DESIGN.md ("Numbers").
//!
//! ```text
//! cargo run --release --example compare
//! cargo run --release --example compare -- --markdown perf.md --csv perf.csv
//! cargo run --release --example compare -- --quick      # a tenth of the sizes
//! cargo run --release --example compare -- --svg perf.svg  # also a bar chart
//! ```
//!
//! Every workload runs a fixed number of iterations (after a warm-up of a
//! tenth of that) and has a time limit, so the run ends by itself; the exit
//! status is 1 if any workload failed or hung (CI runs `--quick`). The
//! workloads are the ones `cargo bench` measures (benches/workloads/mod.rs).
//! Memory is counted by a counting global allocator around the system one:
//! it sees lonet's buffers (they are user-space memory) but not the kernel's.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

use lonet_bench::*;

#[global_allocator]
static GLOBAL: lonet_bench::memory::Counting = lonet_bench::memory::Counting;

// ---------------------------------------------------------------------------
// Sizes.

/// How a figure is measured: `runs` timed runs of `per_run` iterations
/// each, after one untimed run of the same size; the figure is the median
/// run. Short runs and a median keep a figure from being one preemption by
/// another process on a busy machine.
#[derive(Clone, Copy)]
struct Plan {
    runs: u64,
    per_run: u64,
}

impl Plan {
    fn total(self) -> u64 {
        self.runs * self.per_run
    }

    /// "20,000 round trips, median of 10 runs".
    fn describe(self, what: &str) -> String {
        format!(
            "{} {what}, median of {} runs",
            thousands(self.total()),
            self.runs
        )
    }
}

struct Sizes {
    pings: Plan,
    bulk_chunks: Plan,
    connects: Plan,
    http1: Plan,
    http2: Plan,
    many_conns: usize,
    /// Chunks per connection.
    many_chunks: Plan,
    idle: usize,
}

impl Sizes {
    fn full() -> Sizes {
        let p = |runs, per_run| Plan { runs, per_run };
        Sizes {
            pings: p(10, 2_000),
            bulk_chunks: p(16, 1_024), // 1 GiB in runs of 64 MiB
            connects: p(10, 2_000),
            http1: p(10, 2_000),
            http2: p(10, 2_000),
            many_conns: 1_000,
            many_chunks: p(3, 16), // 1 MiB a connection, 1,000 MiB a run
            idle: 10_000,
        }
    }

    fn quick() -> Sizes {
        let p = |runs, per_run| Plan { runs, per_run };
        Sizes {
            pings: p(5, 400),
            bulk_chunks: p(8, 128),
            connects: p(5, 400),
            http1: p(5, 400),
            http2: p(5, 400),
            many_conns: 1_000,
            many_chunks: p(3, 2),
            idle: 10_000,
        }
    }
}

/// 20000 → "20,000".
fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `EMFILE`, "Too many open files" (the same number on every Linux arch).
const EMFILE: i32 = 24;

/// The longest one workload on one transport may take.
const LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Cells and rows.

/// One transport's figure for one workload.
#[derive(Clone)]
enum Cell {
    Val(f64),
    NotApplicable(&'static str),
    Failed(String),
}

impl Cell {
    fn val(&self) -> Option<f64> {
        match self {
            Cell::Val(v) => Some(*v),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Micros,
    GBps,
    PerSec,
    Bytes,
}

impl Unit {
    fn lower_is_better(self) -> bool {
        matches!(self, Unit::Micros | Unit::Bytes)
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::GBps => "GB/s",
            Unit::PerSec => "per s",
            Unit::Bytes => "bytes",
        }
    }

    fn fmt(self, v: f64) -> String {
        match self {
            Unit::Micros => format!("{v:.2} µs"),
            Unit::GBps => format!("{v:.2} GB/s"),
            Unit::PerSec if v >= 1e6 => format!("{:.2}M/s", v / 1e6),
            Unit::PerSec if v >= 1e3 => format!("{:.1}k/s", v / 1e3),
            Unit::PerSec => format!("{v:.0}/s"),
            Unit::Bytes if v >= 1024.0 * 1024.0 => format!("{:.2} MiB", v / 1024.0 / 1024.0),
            Unit::Bytes if v >= 1024.0 => format!("{:.2} KiB", v / 1024.0),
            Unit::Bytes => format!("{v:.0} B"),
        }
    }
}

/// What DESIGN.md asks of lonet on a row.
#[derive(Clone)]
enum Target {
    /// lonet ÷ TCP and lonet ÷ duplex within bounds (`None`: no bound).
    Ratios {
        tcp: Option<f64>,
        duplex: Option<f64>,
    },
    /// lonet's own figure at most this.
    AtMost(f64),
    /// lonet's aggregate ÷ its single-stream figure at least this.
    VsOneStream { min: f64, one_stream: Option<f64> },
    /// No target in DESIGN.md.
    None,
}

struct Row {
    name: String,
    unit: Unit,
    cells: [Cell; 4],
    target: Target,
    target_text: String,
    /// Targets are stated for the current-thread runtime; on other rows the
    /// verdict is for information (marked with *).
    informational: bool,
}

const COLS: [&str; 4] = ["lonet", "kernel TCP", "Unix", "duplex"];

impl Row {
    fn ratio(&self, other: usize) -> Option<f64> {
        Some(self.cells[0].val()? / self.cells[other].val()?)
    }

    fn verdict(&self) -> String {
        let star = if self.informational { "*" } else { "" };
        let ok = |b: bool| if b { "MET" } else { "MISSED" };
        let lower = self.unit.lower_is_better();
        let within = |r: f64, bound: f64| if lower { r <= bound } else { r >= bound };
        match &self.target {
            Target::None => "–".into(),
            Target::Ratios { tcp, duplex } => {
                let mut missed = Vec::new();
                for (bound, col, name) in [(tcp, 1, "TCP"), (duplex, 3, "duplex")] {
                    if let Some(bound) = bound {
                        match self.ratio(col) {
                            Some(r) if within(r, *bound) => {}
                            Some(r) => missed.push(format!("{} vs {name}", fmt_ratio(Some(r)))),
                            None => return "no figure".into(),
                        }
                    }
                }
                if missed.is_empty() {
                    format!("MET{star}")
                } else {
                    format!("MISSED{star} ({})", missed.join(", "))
                }
            }
            Target::AtMost(max) => match self.cells[0].val() {
                Some(v) => format!("{}{star}", ok(v <= *max)),
                None => "no figure".into(),
            },
            Target::VsOneStream { min, one_stream } => match (self.cells[0].val(), one_stream) {
                (Some(agg), Some(one)) => {
                    let r = agg / one;
                    format!("{}{star} ({r:.2}× one stream)", ok(r >= *min))
                }
                _ => "no figure".into(),
            },
        }
    }
}

/// A size for a row's name: "1 GiB", "102.4 MiB", "128 KiB".
fn size(bytes: u64) -> String {
    let (v, unit) = match bytes {
        b if b >= 1 << 30 => (b as f64 / (1u64 << 30) as f64, "GiB"),
        b if b >= 1 << 20 => (b as f64 / (1u64 << 20) as f64, "MiB"),
        b => (b as f64 / 1024.0, "KiB"),
    };
    if v.fract() == 0.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r < 0.1 => format!("{r:.4}×"),
        Some(r) if r < 1.0 => format!("{r:.3}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

fn fmt_cell(c: &Cell, unit: Unit) -> String {
    match c {
        Cell::Val(v) => unit.fmt(*v),
        Cell::NotApplicable(why) => why.to_string(),
        Cell::Failed(_) => "FAILED".into(),
    }
}

// ---------------------------------------------------------------------------
// Notes gathered while running: lonet's counters when they show something a
// clean run on loopback should not (drops, retransmissions, resets).

static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note(s: String) {
    NOTES.lock().unwrap_or_else(|e| e.into_inner()).push(s);
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

// ---------------------------------------------------------------------------
// Running one workload on one transport, bounded.

fn bounded<F>(rt: &Runtime, what: &str, fut: F) -> Cell
where
    F: Future<Output = io::Result<f64>>,
{
    eprint!("  {what} ... ");
    let t0 = Instant::now();
    let out = rt.block_on(async { tokio::time::timeout(LIMIT, fut).await });
    let cell = match out {
        Ok(Ok(v)) => Cell::Val(v),
        Ok(Err(e)) if e.raw_os_error() == Some(EMFILE) => {
            // The machine's limit, not a failure of the transport.
            note(format!(
                "{what}: {e}: raise `ulimit -n` (1,000 connections over kernel sockets need ~2,016 descriptors)"
            ));
            Cell::NotApplicable("n/a (ulimit -n)")
        }
        Ok(Err(e)) => Cell::Failed(format!("{what}: {e}")),
        Err(_) => Cell::Failed(format!(
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
enum Client {
    /// In the future `block_on` drives ([`PingPong::run_in_place`]).
    InPlace,
    /// In a task of its own ([`PingPong::run`]).
    Spawned,
}

/// Memory-to-memory copy speed for a buffer of `len` bytes (the median of
/// a few passes over 1 GiB): what bounds a workload whose data does not stay
/// in the caches.
fn memcpy_gbps(len: usize) -> f64 {
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

async fn pingpong<T: Transport>(plan: Plan, client: Client, what: &str) -> io::Result<f64> {
    let t = T::setup().await?;
    let mut w = PingPong::new(&t).await?;
    let d = match client {
        Client::InPlace => timed!(w, plan, run_in_place),
        Client::Spawned => timed!(w, plan),
    };
    lonet_counters(&t, what);
    Ok(d.as_secs_f64() * 1e6 / plan.per_run as f64)
}

async fn bulk<T: Transport>(plan: Plan, what: &str) -> io::Result<f64> {
    let t = T::setup().await?;
    let mut w = Bulk::new(&t).await?;
    let mut faults = None;
    let d = timed!(w, plan, &mut faults);
    fault_note(T::NAME, what, faults, plan.total());
    lonet_counters(&t, what);
    Ok((plan.per_run * CHUNK as u64) as f64 / d.as_secs_f64() / 1e9)
}

async fn connects<T: Listening>(plan: Plan) -> io::Result<f64> {
    let mut w = ConnectClose::new(T::setup().await?);
    let d = timed!(w, plan);
    lonet_counters(w.transport(), "connect + accept + close");
    Ok(plan.per_run as f64 / d.as_secs_f64())
}

async fn http1<T: Transport>(plan: Plan) -> io::Result<f64> {
    let t = T::setup().await?;
    let mut w = Http1::new(&t).await?;
    let d = timed!(w, plan);
    lonet_counters(&t, "HTTP/1.1");
    Ok(plan.per_run as f64 / d.as_secs_f64())
}

async fn http2<T: Transport>(plan: Plan) -> io::Result<f64> {
    let t = T::setup().await?;
    let mut w = Http2::new(&t).await?;
    let d = timed!(w, plan);
    lonet_counters(&t, "HTTP/2");
    Ok(plan.per_run as f64 / d.as_secs_f64())
}

async fn many<T: Transport>(conns: usize, plan: Plan) -> io::Result<f64> {
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

/// Bytes held per idle connection (both ends); a note with lonet's figures.
async fn idle_per_conn<T: Transport>(n: usize, notes: &mut Vec<String>) -> io::Result<f64> {
    let idle = idle::<T>(n).await?;
    if let Some(sockstat) = &idle.sockstat {
        notes.push(format!(
            "idle: {} lonet connections held {} of user-space memory ({} per socket); \
             sockstat then: {}",
            thousands(n as u64),
            Unit::Bytes.fmt(idle.held as f64),
            Unit::Bytes.fmt(idle.held as f64 / (2 * n) as f64),
            sockstat
        ));
    }
    Ok(idle.per_connection())
}

// ---------------------------------------------------------------------------

struct Args {
    csv: Option<String>,
    markdown: Option<String>,
    svg: Option<String>,
    quick: bool,
}

fn args() -> Args {
    let mut a = Args {
        csv: None,
        markdown: None,
        svg: None,
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--csv" => a.csv = Some(it.next().expect("--csv needs a PATH")),
            "--markdown" => a.markdown = Some(it.next().expect("--markdown needs a PATH")),
            "--svg" => a.svg = Some(it.next().expect("--svg needs a PATH")),
            "--quick" => a.quick = true,
            "-h" | "--help" => {
                println!(
                    "usage: cargo run --release --example compare [-- [--quick] [--csv PATH] [--markdown PATH] [--svg PATH]]\n\
                     --quick          a tenth of the sizes (a smoke run; figures are noisier)\n\
                     --csv PATH       also write the table as CSV\n\
                     --markdown PATH  also write the header, table and legend as Markdown\n\
                     --svg PATH       also draw the figures as a bar chart (SVG)"
                );
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other:?}; try --help");
                std::process::exit(2);
            }
        }
    }
    a
}

fn main() {
    let args = args();
    let s = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let started = Instant::now();
    let (ct, mt) = match (current_thread(), multi_thread_2()) {
        (Ok(ct), Ok(mt)) => (ct, mt),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot start a tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let na = || Cell::NotApplicable("n/a");

    let ratios = |tcp: Option<f64>, duplex: Option<f64>| Target::Ratios { tcp, duplex };

    // Ping-pong: the client in `block_on` (the method that reproduces
    // ANCHORS.md's real-socket figures, from which DESIGN.md's targets were
    // set), then in a spawned task.
    for (rt, flavor, client, mt_row) in [
        (&ct, "current-thread", Client::InPlace, false),
        (&ct, "current-thread", Client::Spawned, true),
        (&mt, "multi-thread 2 workers", Client::Spawned, true),
    ] {
        let how = match client {
            Client::InPlace => "client in block_on",
            Client::Spawned => "client in a spawned task",
        };
        eprintln!("64 B ping-pong, {flavor}, {how}");
        let n = s.pings;
        let what = format!("ping-pong, {flavor}, {how}");
        rows.push(Row {
            name: format!(
                "64 B ping-pong RTT, {flavor}, {how} ({})",
                n.describe("round trips")
            ),
            unit: Unit::Micros,
            cells: [
                bounded(rt, "lonet", pingpong::<Lonet>(n, client, &what)),
                bounded(rt, "kernel TCP", pingpong::<Tcp>(n, client, "")),
                bounded(rt, "Unix", pingpong::<Unix>(n, client, "")),
                bounded(rt, "duplex", pingpong::<Duplex>(n, client, "")),
            ],
            target: ratios(Some(0.1), Some(2.0)),
            target_text: "≤ 1/10 TCP, ≤ 2× duplex".into(),
            informational: mt_row,
        });
    }

    // Bulk.
    for (rt, flavor, mt_row) in [
        (&ct, "current-thread", false),
        (&mt, "multi-thread 2 workers", true),
    ] {
        eprintln!("bulk, {flavor}");
        let n = s.bulk_chunks;
        let what = format!("bulk, {flavor}");
        rows.push(Row {
            name: format!(
                "bulk, 64 KiB writes, {flavor} ({} in runs of {})",
                size(n.total() * CHUNK as u64),
                size(n.per_run * CHUNK as u64)
            ),
            unit: Unit::GBps,
            cells: [
                bounded(rt, "lonet", bulk::<Lonet>(n, &what)),
                bounded(rt, "kernel TCP", bulk::<Tcp>(n, &what)),
                bounded(rt, "Unix", bulk::<Unix>(n, &what)),
                bounded(rt, "duplex", bulk::<Duplex>(n, &what)),
            ],
            target: ratios(Some(4.0), None),
            target_text: "≥ 4× TCP".into(),
            informational: mt_row,
        });
    }
    // Rows 0 to 2 are ping-pong, 3 and 4 bulk (current-thread, multi-thread).
    const BULK_CT: usize = 3;
    let one_stream = rows[BULK_CT].cells[0].val();

    // Connect + accept + close.
    eprintln!("connect + accept + close");
    let n = s.connects;
    rows.push(Row {
        name: format!(
            "connect + accept + close, one at a time ({})",
            n.describe("connections")
        ),
        unit: Unit::PerSec,
        cells: [
            bounded(&ct, "lonet", connects::<Lonet>(n)),
            bounded(&ct, "kernel TCP", connects::<Tcp>(n)),
            na(),
            na(),
        ],
        target: ratios(Some(20.0), None),
        target_text: "≥ 20× TCP".into(),
        informational: false,
    });

    // hyper.
    eprintln!("hyper HTTP/1.1 keep-alive");
    let n = s.http1;
    rows.push(Row {
        name: format!("hyper HTTP/1.1 keep-alive ({})", n.describe("requests")),
        unit: Unit::PerSec,
        cells: [
            bounded(&ct, "lonet", http1::<Lonet>(n)),
            bounded(&ct, "kernel TCP", http1::<Tcp>(n)),
            bounded(&ct, "Unix", http1::<Unix>(n)),
            bounded(&ct, "duplex", http1::<Duplex>(n)),
        ],
        target: ratios(Some(4.0), Some(0.8)),
        target_text: "≥ 4× TCP, ≥ 0.8× duplex".into(),
        informational: false,
    });
    eprintln!("hyper HTTP/2, 100 streams");
    let n = s.http2;
    rows.push(Row {
        name: format!(
            "hyper HTTP/2, {H2_STREAMS} concurrent streams ({})",
            n.describe("requests")
        ),
        unit: Unit::PerSec,
        cells: [
            bounded(&ct, "lonet", http2::<Lonet>(n)),
            bounded(&ct, "kernel TCP", http2::<Tcp>(n)),
            bounded(&ct, "Unix", http2::<Unix>(n)),
            bounded(&ct, "duplex", http2::<Duplex>(n)),
        ],
        target: Target::None,
        target_text: "none".into(),
        informational: false,
    });

    // Many connections at once.
    eprintln!("{} concurrent connections", s.many_conns);
    let (conns, chunks) = (s.many_conns, s.many_chunks);
    let many_row = Row {
        name: format!(
            "{} concurrent connections, aggregate ({} each, {} a run, median of {} runs)",
            thousands(conns as u64),
            size(chunks.per_run * CHUNK as u64),
            size(conns as u64 * chunks.per_run * CHUNK as u64),
            chunks.runs
        ),
        unit: Unit::GBps,
        cells: [
            bounded(&ct, "lonet", many::<Lonet>(conns, chunks)),
            bounded(&ct, "kernel TCP", many::<Tcp>(conns, chunks)),
            bounded(&ct, "Unix", many::<Unix>(conns, chunks)),
            bounded(&ct, "duplex", many::<Duplex>(conns, chunks)),
        ],
        target: Target::VsOneStream {
            min: 0.7,
            one_stream,
        },
        target_text: "≥ 0.7× one stream's (bulk, current-thread)".into(),
        informational: false,
    };
    let own: Vec<String> = (0..4)
        .filter_map(|i| {
            let (agg, one) = (many_row.cells[i].val()?, rows[BULK_CT].cells[i].val()?);
            Some(format!("{} {:.2}×", COLS[i], agg / one))
        })
        .collect();
    if !own.is_empty() {
        notes.push(format!(
            "{} connections, each transport's aggregate against its own one stream: {}",
            thousands(conns as u64),
            own.join(", ")
        ));
    }
    let (in_cache, beyond) = (memcpy_gbps(64 << 10), memcpy_gbps(256 << 20));
    notes.push(format!(
        "memory copies on this machine: {in_cache:.1} GB/s within the caches (64 KiB), \
         {beyond:.1} GB/s beyond them (256 MiB). Every transport here copies each byte twice \
         (into its buffer, out to the reader); one stream stays in the caches, while {} \
         connections' buffers and their readers' 64 KiB buffers do not, so their aggregate \
         is bounded near {:.1} GB/s",
        thousands(conns as u64),
        beyond / 2.0
    ));
    rows.push(many_row);

    // Memory: idle connections.
    eprintln!("memory: {} idle connections", s.idle);
    let n = s.idle;
    let mut idle_notes = Vec::new();
    let lonet_idle = bounded(&ct, "lonet", idle_per_conn::<Lonet>(n, &mut idle_notes));
    let duplex_idle = bounded(&ct, "duplex", idle_per_conn::<Duplex>(n, &mut idle_notes));
    notes.extend(idle_notes);
    rows.push(Row {
        name: format!(
            "memory per idle connection, both ends ({} connections)",
            thousands(n as u64)
        ),
        unit: Unit::Bytes,
        cells: [
            lonet_idle,
            Cell::NotApplicable("n/a (kernel)"),
            Cell::NotApplicable("n/a (kernel)"),
            duplex_idle,
        ],
        target: Target::AtMost(4096.0),
        target_text: "≤ 4 KiB".into(),
        informational: false,
    });

    // Memory: a stalled reader.
    eprintln!("memory: a stalled reader under a fast writer");
    let lonet_stall = run_stall::<Lonet>(&ct, &mut notes);
    let duplex_stall = run_stall::<Duplex>(&ct, &mut notes);
    let sysctl = lonet::Sysctl::default();
    let bound = (sysctl.tcp_rmem[2] + sysctl.tcp_wmem[2]) as f64;
    let peak_cell = |st: &Option<Stall>, f: fn(&Stall) -> Option<f64>| match st {
        Some(st) if !st.blocked => Cell::Failed("the writer was never held back".into()),
        Some(st) => f(st).map_or(Cell::NotApplicable("n/a"), Cell::Val),
        None => Cell::Failed("failed".into()),
    };
    rows.push(Row {
        name: "stalled reader: peak sockstat mem (socket queues + backlog)".into(),
        unit: Unit::Bytes,
        cells: [
            peak_cell(&lonet_stall, |s| s.sockstat_peak),
            Cell::NotApplicable("n/a (kernel)"),
            Cell::NotApplicable("n/a (kernel)"),
            Cell::NotApplicable("n/a"),
        ],
        target: Target::AtMost(bound),
        target_text: format!(
            "bounded by the socket buffers (≤ {})",
            Unit::Bytes.fmt(bound)
        ),
        informational: false,
    });
    rows.push(Row {
        name: "stalled reader: peak bytes held (allocator)".into(),
        unit: Unit::Bytes,
        cells: [
            peak_cell(&lonet_stall, |s| Some(s.alloc_peak)),
            Cell::NotApplicable("n/a (kernel)"),
            Cell::NotApplicable("n/a (kernel)"),
            peak_cell(&duplex_stall, |s| Some(s.alloc_peak)),
        ],
        target: Target::AtMost(bound),
        target_text: format!(
            "bounded by the socket buffers (≤ {})",
            Unit::Bytes.fmt(bound)
        ),
        informational: false,
    });

    notes.extend(std::mem::take(
        &mut *NOTES.lock().unwrap_or_else(|e| e.into_inner()),
    ));
    let mut failed = false;
    for r in &rows {
        for c in &r.cells {
            if let Cell::Failed(e) = c {
                notes.push(format!("FAILED: {e}"));
                failed = true;
            }
        }
    }

    let took = started.elapsed();
    let header = header(args.quick, took);
    let legend = legend();
    println!("{header}\n");
    println!("{}", text_table(&rows));
    println!("{legend}");
    if !notes.is_empty() {
        println!("\nNotes from this run:");
        for n in &notes {
            println!("- {n}");
        }
    }
    if let Some(path) = &args.markdown {
        let mut md = String::new();
        let _ = writeln!(md, "{}\n", header.replace('\n', "  \n"));
        let _ = writeln!(md, "{}", markdown_table(&rows));
        let _ = writeln!(md, "{legend}");
        if !notes.is_empty() {
            let _ = writeln!(md, "\nNotes from this run:\n");
            for n in &notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        write_or_warn(path, &md);
    }
    if let Some(path) = &args.csv {
        write_or_warn(path, &csv(&rows));
    }
    if let Some(path) = &args.svg {
        write_or_warn(path, &svg(&rows, &header));
    }
    // Connections and namespaces end with the runtimes.
    drop(mt);
    drop(ct);
    if failed {
        // A workload that errs or hangs is a bug, whatever the figures.
        eprintln!("some workloads FAILED (see the notes)");
        std::process::exit(1);
    }
}

fn run_stall<T: Transport>(rt: &Runtime, notes: &mut Vec<String>) -> Option<Stall> {
    eprint!("  {} ... ", T::NAME);
    let out = rt.block_on(async { tokio::time::timeout(LIMIT, stall::<T>()).await });
    match out {
        Ok(Ok(st)) => {
            eprintln!("done");
            notes.push(format!(
                "stalled reader, {}: the writer got {} accepted before {}; allocator peak {}{}",
                T::NAME,
                Unit::Bytes.fmt(st.accepted as f64),
                if st.blocked {
                    "it was held back"
                } else {
                    "the cap, never held back"
                },
                Unit::Bytes.fmt(st.alloc_peak),
                st.sockstat_peak
                    .map(|p| format!(", sockstat mem peak {}", Unit::Bytes.fmt(p)))
                    .unwrap_or_default()
            ));
            Some(st)
        }
        Ok(Err(e)) => {
            eprintln!("FAILED: {e}");
            notes.push(format!("FAILED: stalled reader, {}: {e}", T::NAME));
            None
        }
        Err(_) => {
            eprintln!("FAILED: timeout");
            notes.push(format!(
                "FAILED: stalled reader, {}: did not finish within {} s",
                T::NAME,
                LIMIT.as_secs()
            ));
            None
        }
    }
}

fn write_or_warn(path: &str, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("could not write {path}: {e}");
    }
}

fn header(quick: bool, took: Duration) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    // Other processes compete for the same cores: say how busy the machine
    // was (the 1-minute load average, at the end of the run).
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let build = if cfg!(debug_assertions) {
        "DEBUG build: figures are meaningless, use --release"
    } else {
        "release build"
    };
    format!(
        "lonet compare: lonet vs kernel loopback TCP vs Unix socket pair vs tokio::io::duplex\n\
         machine: {cores} cores (available_parallelism), Linux {kernel}, {build}, \
         load average {load} (1 min, at the end)\n\
         runtime: tokio current-thread, except the rows marked multi-thread (2 workers)\n\
         method: each figure is the median of several timed runs (sizes in the rows), after one \
         untimed run; every ratio comes from this one invocation{}\n\
         whole run: {:.1} s",
        if quick {
            " (--quick: about a tenth of the default sizes)"
        } else {
            ""
        },
        took.as_secs_f64(),
    )
}

fn legend() -> String {
    "Legend:\n\
     - Each row's unit is in its figures: µs and bytes are lower-is-better, GB/s and per-second rates higher-is-better.\n\
     - lonet/TCP, lonet/duplex: lonet's figure divided by the other transport's, in the row's unit. \
     On a µs row 0.10× means lonet takes a tenth of the time; on a rate row 4.00× means four times the rate.\n\
     - kernel TCP: tokio::net on 127.0.0.1 (TCP_NODELAY, as lonet's connections). Unix: UnixStream::pair(). \
     duplex: tokio::io::duplex with a 64 KiB buffer, the floor of an in-process pipe.\n\
     - lonet: every workload in a namespace of its own (Netns::new()), default sysctls, the full modeled path \
     (route, lo, backlog, softirq, TCP segments and ACKs).\n\
     - target: DESIGN.md \"Numbers\", stated for the current-thread runtime. MET/MISSED checks it on this run; \
     MET*/MISSED* on the other rows apply the same ratios for information only.\n\
     - ping-pong: \"client in block_on\" runs the client's loop in the future block_on drives, as a \
     #[tokio::test] body or criterion's to_async does; it reproduces the real-socket figures in ANCHORS.md that \
     DESIGN.md's targets were set from (duplex 0.42 µs, Unix 6.6 µs, TCP 12.7 µs). Each reply then wakes block_on through the runtime's driver, a fixed cost every transport \
     pays. \"client in a spawned task\" has no such cost, so duplex's floor is lower there.\n\
     - memory: user-space bytes counted by a counting global allocator around the system one. Kernel TCP and \
     Unix sockets keep their buffers in the kernel, which it cannot see: n/a. duplex is shown for reference.\n\
     - stalled reader: the reader never reads while a writer writes 64 KiB chunks; peak until the writer has \
     been held back for 100 ms. Bound: tcp_rmem max + tcp_wmem max, the most Linux lets one connection's buffers grow to."
        .into()
}

fn table_cells(rows: &[Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let head: Vec<String> = ["workload"]
        .iter()
        .chain(COLS.iter())
        .chain(["lonet/TCP", "lonet/duplex", "target (DESIGN.md)", "result"].iter())
        .map(|s| s.to_string())
        .collect();
    let body = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.name.clone()];
            v.extend(r.cells.iter().map(|c| fmt_cell(c, r.unit)));
            v.push(fmt_ratio(r.ratio(1)));
            v.push(fmt_ratio(r.ratio(3)));
            v.push(r.target_text.clone());
            v.push(r.verdict());
            v
        })
        .collect();
    (head, body)
}

fn text_table(rows: &[Row]) -> String {
    let (head, body) = table_cells(rows);
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &body {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if i == 0 {
                let _ = write!(s, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, " | {}{c}", " ".repeat(pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(&head) + "\n";
    let total: usize = w.iter().sum::<usize>() + 3 * (w.len() - 1);
    out += &"-".repeat(total);
    out += "\n";
    for r in &body {
        out += &line(r);
        out += "\n";
    }
    out
}

fn markdown_table(rows: &[Row]) -> String {
    let (head, body) = table_cells(rows);
    let mut out = format!("| {} |\n", head.join(" | "));
    out += &format!(
        "|{}|\n",
        head.iter()
            .enumerate()
            // Figures right-aligned; the workload, target and result left.
            .map(|(i, _)| if i == 0 || i + 2 >= head.len() {
                "---"
            } else {
                "---:"
            })
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in &body {
        out += &format!("| {} |\n", r.join(" | "));
    }
    out
}

/// The figures as a bar chart: per workload one bar per transport, scaled to
/// the row's largest figure, each labelled with its value, and lonet's
/// verdict beside the workload's name.
fn svg(rows: &[Row], header: &str) -> String {
    const W: f64 = 1100.0;
    const LABEL: f64 = 150.0;
    const BAR_MAX: f64 = 760.0;
    const BAR: f64 = 16.0;
    const COLORS: [&str; 4] = ["#d9480f", "#1c7ed6", "#37b24d", "#868e96"];
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let charted: Vec<&Row> = rows
        .iter()
        .filter(|r| r.cells.iter().any(|c| c.val().is_some()))
        .collect();
    let row_h = 4.0 * BAR + 44.0;
    let top = 70.0;
    let h = top + row_h * charted.len() as f64 + 20.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, line) in header.lines().take(2).enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{}\" font-size=\"{}\">{}</text>",
            20.0 + 18.0 * i as f64,
            if i == 0 { 15 } else { 11 },
            esc(line)
        );
    }
    for (k, r) in charted.iter().enumerate() {
        let y0 = top + row_h * k as f64;
        let better = if r.unit.lower_is_better() {
            "lower is better"
        } else {
            "higher is better"
        };
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{:.1}\" font-weight=\"bold\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ({better}) · lonet: {}</text>",
            y0 + 14.0,
            esc(&r.name),
            W - 10.0,
            y0 + 14.0,
            r.unit.name(),
            esc(&r.verdict())
        );
        let max = r.cells.iter().filter_map(Cell::val).fold(0.0f64, f64::max);
        for (j, c) in r.cells.iter().enumerate() {
            let y = y0 + 22.0 + BAR * j as f64;
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LABEL - 6.0,
                y + BAR - 4.0,
                COLS[j]
            );
            let (len, text) = match c {
                Cell::Val(v) if max > 0.0 => (v / max * BAR_MAX, r.unit.fmt(*v)),
                Cell::Val(v) => (0.0, r.unit.fmt(*v)),
                Cell::NotApplicable(why) => (0.0, why.to_string()),
                Cell::Failed(_) => (0.0, "failed".to_string()),
            };
            let _ = writeln!(
                out,
                "<rect x=\"{LABEL}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                y + 1.0,
                BAR - 2.0,
                COLORS[j],
                LABEL + len + 6.0,
                y + BAR - 4.0,
                esc(&text)
            );
        }
    }
    out += "</svg>\n";
    out
}

fn csv(rows: &[Row]) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let num = |c: &Cell| c.val().map(|v| format!("{v}")).unwrap_or_default();
    let mut out = format!(
        "workload,unit,lower_is_better,{},{},{},{},lonet_over_tcp,lonet_over_duplex,target,result\n",
        Lonet::ID,
        Tcp::ID,
        Unix::ID,
        Duplex::ID
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            q(&r.name),
            r.unit.name(),
            r.unit.lower_is_better(),
            num(&r.cells[0]),
            num(&r.cells[1]),
            num(&r.cells[2]),
            num(&r.cells[3]),
            r.ratio(1).map(|v| v.to_string()).unwrap_or_default(),
            r.ratio(3).map(|v| v.to_string()).unwrap_or_default(),
            q(&r.target_text),
            q(&r.verdict())
        );
    }
    out
}
