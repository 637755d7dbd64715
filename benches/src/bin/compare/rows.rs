//! The table's rows, workload by workload: each runs its workload on every
//! transport that has it and states lonet's target on it.

use crate::measure::{self, bounded, memcpy_gbps, Client};
use crate::memory::{idle_per_conn, run_stall, run_tiny_stall};
use crate::plan::{size, thousands, Plan, Sizes};
use crate::row::{Cell, Row, Target, Unit, COLS};
use lonet_bench::{Duplex, Exposed, Lonet, Stall, Tcp, Unix, CHUNK, H2_STREAMS};
use tokio::runtime::Runtime;

/// Every row, in the table's order; `notes` gets what the rows have to say
/// beyond their figures.
pub fn all(s: &Sizes, ct: &Runtime, mt: &Runtime, notes: &mut Vec<String>) -> Vec<Row> {
    let mut rows = pingpong(s.pings, ct, mt);
    let bulk = bulk(s.bulk_chunks, ct, mt);
    // The current-thread bulk row: every transport's one stream.
    let one_stream = bulk[0].cells.clone();
    rows.extend(bulk);
    rows.push(connect(s.connects, ct));
    rows.extend(bridges(s, ct, notes));
    rows.push(http1(s.http1, ct));
    rows.push(http2(s.http2, ct));
    rows.push(many(s.many_conns, s.many_chunks, &one_stream, ct, notes));
    rows.push(idle(s.idle, ct, notes));
    rows.extend(stalled_reader(ct, notes));
    rows.push(tiny_writes(ct, notes));
    rows.extend(udp(s, ct));
    rows
}

/// UDP and QUIC, on the current-thread runtime. The "kernel TCP" column
/// holds the kernel's UDP here, and "Unix" a Unix datagram pair.
fn udp(s: &Sizes, ct: &Runtime) -> Vec<Row> {
    use lonet_bench::{KernelUdp, LonetUdp, QuicOver, UnixDgram};
    eprintln!("UDP 64 B ping-pong");
    let pingpong = Row {
        name: format!(
            "UDP 64 B ping-pong RTT, client in a spawned task; kernel column: kernel UDP, Unix: a datagram pair ({})",
            s.udp_pings.describe("round trips")
        ),
        unit: Unit::Micros,
        cells: [
            bounded(ct, "lonet", measure::udp_pingpong::<LonetUdp>(s.udp_pings)),
            bounded(ct, "kernel UDP", measure::udp_pingpong::<KernelUdp>(s.udp_pings)),
            bounded(ct, "Unix datagram", measure::udp_pingpong::<UnixDgram>(s.udp_pings)),
            na(),
            dash(),
        ],
        target: ratios(Some(0.1), None),
        target_text: "≤ 1/10 kernel UDP".into(),
        informational: false,
    };
    eprintln!("UDP 1,200 B datagrams");
    let stream = Row {
        name: format!(
            "UDP 1,200 B datagrams, acknowledged every 16, 64 in flight; kernel column: kernel UDP ({})",
            s.udp_dgrams.describe("datagrams")
        ),
        unit: Unit::GBps,
        cells: [
            bounded(ct, "lonet", measure::udp_stream::<LonetUdp>(s.udp_dgrams)),
            bounded(ct, "kernel UDP", measure::udp_stream::<KernelUdp>(s.udp_dgrams)),
            bounded(ct, "Unix datagram", measure::udp_stream::<UnixDgram>(s.udp_dgrams)),
            na(),
            dash(),
        ],
        target: ratios(Some(4.0), None),
        target_text: "≥ 4× kernel UDP".into(),
        informational: false,
    };
    eprintln!("QUIC bulk");
    let quic = Row {
        name: format!(
            "QUIC bulk (quinn), 64 KiB writes on one stream; kernel column: quinn on kernel UDP ({} in runs of {})",
            size(s.quic_chunks.total() * lonet_bench::QUIC_CHUNK as u64),
            size(s.quic_chunks.per_run * lonet_bench::QUIC_CHUNK as u64)
        ),
        unit: Unit::GBps,
        cells: [
            bounded(ct, "lonet", measure::quic_bulk(QuicOver::Lonet, s.quic_chunks)),
            bounded(ct, "kernel UDP", measure::quic_bulk(QuicOver::Kernel, s.quic_chunks)),
            na(),
            na(),
            dash(),
        ],
        target: ratios(Some(1.5), None),
        target_text: "≥ 1.5× quinn on kernel UDP".into(),
        informational: false,
    };
    vec![pingpong, stream, quic]
}

fn ratios(tcp: Option<f64>, duplex: Option<f64>) -> Target {
    Target::Ratios {
        tcp,
        duplex,
        turmoil: None,
    }
}

/// The same bounds and one on lonet ÷ turmoil-net.
fn with_turmoil(tcp: Option<f64>, duplex: Option<f64>, turmoil: f64) -> Target {
    Target::Ratios {
        tcp,
        duplex,
        turmoil: Some(turmoil),
    }
}

fn na() -> Cell {
    Cell::NotApplicable("n/a")
}

/// turmoil-net on a workload it does not run here.
fn dash() -> Cell {
    Cell::NotApplicable("–")
}

/// turmoil-net on a multi-thread row: its stack lives on one thread.
fn one_thread() -> Cell {
    Cell::NotApplicable("n/a (1 thread)")
}

/// Ping-pong: the client in `block_on` (the way the reference real-socket
/// figures, from which lonet's targets were set, were measured), then in a
/// spawned task, on the current-thread runtime and on 2 workers.
/// turmoil-net runs the two current-thread rows, in a process of its own
/// ([`measure::bounded_turmoil`]).
fn pingpong(n: Plan, ct: &Runtime, mt: &Runtime) -> Vec<Row> {
    let mut rows = Vec::new();
    for (rt, flavor, client, mt_row, one_thread_row) in [
        (ct, "current-thread", Client::InPlace, false, true),
        (ct, "current-thread", Client::Spawned, true, true),
        (mt, "multi-thread 2 workers", Client::Spawned, true, false),
    ] {
        let how = match client {
            Client::InPlace => "client in block_on",
            Client::Spawned => "client in a spawned task",
        };
        eprintln!("64 B ping-pong, {flavor}, {how}");
        let what = format!("ping-pong, {flavor}, {how}");
        let lonet = bounded(rt, "lonet", measure::pingpong::<Lonet>(n, client, &what));
        let tcp = bounded(rt, "kernel TCP", measure::pingpong::<Tcp>(n, client, ""));
        let unix = bounded(rt, "Unix", measure::pingpong::<Unix>(n, client, ""));
        let duplex = bounded(rt, "duplex", measure::pingpong::<Duplex>(n, client, ""));
        let (turmoil, target, target_text) = if one_thread_row {
            (
                measure::bounded_turmoil(
                    "turmoil-net",
                    match client {
                        Client::InPlace => "pingpong-in-place",
                        Client::Spawned => "pingpong-spawned",
                    },
                    n,
                ),
                with_turmoil(Some(0.1), Some(2.0), 0.5),
                "≤ 1/10 TCP, ≤ 2× duplex, ≤ 1/2 turmoil-net",
            )
        } else {
            (
                one_thread(),
                ratios(Some(0.1), Some(2.0)),
                "≤ 1/10 TCP, ≤ 2× duplex",
            )
        };
        rows.push(Row {
            name: format!(
                "64 B ping-pong RTT, {flavor}, {how} ({})",
                n.describe("round trips")
            ),
            unit: Unit::Micros,
            cells: [lonet, tcp, unix, duplex, turmoil],
            target,
            target_text: target_text.into(),
            informational: mt_row,
        });
    }
    rows
}

/// Bulk, on the current-thread runtime (first, with turmoil-net) and on 2
/// workers.
fn bulk(n: Plan, ct: &Runtime, mt: &Runtime) -> Vec<Row> {
    let mut rows = Vec::new();
    for (rt, flavor, mt_row) in [
        (ct, "current-thread", false),
        (mt, "multi-thread 2 workers", true),
    ] {
        let one_thread_row = !mt_row;
        eprintln!("bulk, {flavor}");
        let what = format!("bulk, {flavor}");
        rows.push(Row {
            name: format!(
                "bulk, 64 KiB writes, {flavor} ({} in runs of {})",
                size(n.total() * CHUNK as u64),
                size(n.per_run * CHUNK as u64)
            ),
            unit: Unit::GBps,
            cells: [
                bounded(rt, "lonet", measure::bulk::<Lonet>(n, &what)),
                bounded(rt, "kernel TCP", measure::bulk::<Tcp>(n, &what)),
                bounded(rt, "Unix", measure::bulk::<Unix>(n, &what)),
                bounded(rt, "duplex", measure::bulk::<Duplex>(n, &what)),
                if one_thread_row {
                    measure::bounded_turmoil("turmoil-net", "bulk", n)
                } else {
                    one_thread()
                },
            ],
            target: if one_thread_row {
                with_turmoil(Some(4.0), None, 2.0)
            } else {
                ratios(Some(4.0), None)
            },
            target_text: if one_thread_row {
                "≥ 4× TCP, ≥ 2× turmoil-net"
            } else {
                "≥ 4× TCP"
            }
            .into(),
            informational: mt_row,
        });
    }
    rows
}

/// Connect + accept + close (lonet, kernel TCP and turmoil-net: the others
/// have no listener).
fn connect(n: Plan, ct: &Runtime) -> Row {
    eprintln!("connect + accept + close");
    Row {
        name: format!(
            "connect + accept + close, one at a time ({})",
            n.describe("connections")
        ),
        unit: Unit::PerSec,
        cells: [
            bounded(ct, "lonet", measure::connects::<Lonet>(n)),
            bounded(ct, "kernel TCP", measure::connects::<Tcp>(n)),
            na(),
            na(),
            measure::bounded_turmoil("turmoil-net", "connect", n),
        ],
        target: with_turmoil(Some(20.0), None, 2.0),
        target_text: "≥ 20× TCP, ≥ 2× turmoil-net".into(),
        informational: false,
    }
}

/// The bridges: bulk and connects through `expose` (a kernel socket, the
/// relay, a connection of the model) against kernel TCP's own, and `wrk`
/// (another process, when installed) against an HTTP service exposed from a
/// namespace. The lonet column holds the figure through the bridge.
fn bridges(s: &Sizes, ct: &Runtime, notes: &mut Vec<String>) -> Vec<Row> {
    let n = s.bulk_chunks;
    eprintln!("bulk through expose");
    let bulk = Row {
        name: format!(
            "bulk through expose, kernel leg + model leg, 64 KiB writes ({} in runs of {})",
            size(n.total() * CHUNK as u64),
            size(n.per_run * CHUNK as u64)
        ),
        unit: Unit::GBps,
        cells: [
            bounded(
                ct,
                "lonet via expose",
                measure::bulk::<Exposed>(n, "bulk through expose"),
            ),
            bounded(ct, "kernel TCP", measure::bulk::<Tcp>(n, "")),
            na(),
            na(),
            dash(),
        ],
        target: ratios(Some(0.8), None),
        target_text: "≥ 0.8× TCP".into(),
        informational: false,
    };
    let n = s.connects;
    eprintln!("connect + accept + close through expose");
    let connect = Row {
        name: format!(
            "connect + accept + close through expose ({})",
            n.describe("connections")
        ),
        unit: Unit::PerSec,
        cells: [
            bounded(ct, "lonet via expose", measure::connects::<Exposed>(n)),
            bounded(ct, "kernel TCP", measure::connects::<Tcp>(n)),
            na(),
            na(),
            dash(),
        ],
        target: ratios(Some(0.5), None),
        target_text: "≥ 0.5× TCP".into(),
        informational: false,
    };
    let (conns, dur) = (8, std::time::Duration::from_secs(1));
    eprintln!("wrk through expose");
    let wrk_cell = |c: Cell| match c {
        Cell::Val(v) if v < 0.0 => Cell::NotApplicable("n/a (no wrk)"),
        c => c,
    };
    let or_none = |r: std::io::Result<Option<f64>>| r.map(|v| v.unwrap_or(-1.0));
    let wrk = Row {
        name: format!(
            "wrk (another process), HTTP/1.1, {conns} connections, {} s, hyper service through expose",
            dur.as_secs()
        ),
        unit: Unit::PerSec,
        cells: [
            wrk_cell(bounded(ct, "lonet via expose", async {
                or_none(lonet_bench::bridge::wrk(conns, dur).await)
            })),
            wrk_cell(bounded(ct, "kernel TCP", async {
                or_none(lonet_bench::bridge::wrk_kernel(conns, dur).await)
            })),
            na(),
            na(),
            dash(),
        ],
        target: Target::None,
        target_text: "none".into(),
        informational: true,
    };
    if wrk.cells[0].val().is_none() && wrk.cells[1].val().is_none() {
        notes.push(
            "wrk is not installed: the wrk row is skipped (Debian: apt-get install wrk)".into(),
        );
    }
    vec![bulk, connect, wrk]
}

/// hyper HTTP/1.1 keep-alive.
fn http1(n: Plan, ct: &Runtime) -> Row {
    eprintln!("hyper HTTP/1.1 keep-alive");
    Row {
        name: format!("hyper HTTP/1.1 keep-alive ({})", n.describe("requests")),
        unit: Unit::PerSec,
        cells: [
            bounded(ct, "lonet", measure::http1::<Lonet>(n)),
            bounded(ct, "kernel TCP", measure::http1::<Tcp>(n)),
            bounded(ct, "Unix", measure::http1::<Unix>(n)),
            bounded(ct, "duplex", measure::http1::<Duplex>(n)),
            dash(),
        ],
        target: ratios(Some(4.0), Some(0.8)),
        target_text: "≥ 4× TCP, ≥ 0.8× duplex".into(),
        informational: false,
    }
}

/// hyper HTTP/2 with [`H2_STREAMS`] concurrent streams (no target).
fn http2(n: Plan, ct: &Runtime) -> Row {
    eprintln!("hyper HTTP/2, 100 streams");
    Row {
        name: format!(
            "hyper HTTP/2, {H2_STREAMS} concurrent streams ({})",
            n.describe("requests")
        ),
        unit: Unit::PerSec,
        cells: [
            bounded(ct, "lonet", measure::http2::<Lonet>(n)),
            bounded(ct, "kernel TCP", measure::http2::<Tcp>(n)),
            bounded(ct, "Unix", measure::http2::<Unix>(n)),
            bounded(ct, "duplex", measure::http2::<Duplex>(n)),
            dash(),
        ],
        target: Target::None,
        target_text: "none".into(),
        informational: false,
    }
}

/// `conns` connections at once, judged against lonet's one stream
/// (`one_stream`: the current-thread bulk row's cells); notes compare every
/// transport with its own one stream and give the machine's copy speed.
fn many(
    conns: usize,
    chunks: Plan,
    one_stream: &[Cell; 5],
    ct: &Runtime,
    notes: &mut Vec<String>,
) -> Row {
    eprintln!("{conns} concurrent connections");
    let row = Row {
        name: format!(
            "{} concurrent connections, aggregate ({} each, {} a run, median of {} runs)",
            thousands(conns as u64),
            size(chunks.per_run * CHUNK as u64),
            size(conns as u64 * chunks.per_run * CHUNK as u64),
            chunks.runs
        ),
        unit: Unit::GBps,
        cells: [
            bounded(ct, "lonet", measure::many::<Lonet>(conns, chunks)),
            bounded(ct, "kernel TCP", measure::many::<Tcp>(conns, chunks)),
            bounded(ct, "Unix", measure::many::<Unix>(conns, chunks)),
            bounded(ct, "duplex", measure::many::<Duplex>(conns, chunks)),
            dash(),
        ],
        target: Target::VsOneStream {
            min: 0.7,
            one_stream: one_stream[0].val(),
        },
        target_text: "≥ 0.7× one stream's (bulk, current-thread)".into(),
        informational: false,
    };
    let own: Vec<String> = (0..COLS.len())
        .filter_map(|i| {
            let (agg, one) = (row.cells[i].val()?, one_stream[i].val()?);
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
    row
}

/// Memory per idle connection (lonet and duplex: the allocator does not see
/// the kernel's buffers).
fn idle(n: usize, ct: &Runtime, notes: &mut Vec<String>) -> Row {
    eprintln!("memory: {n} idle connections");
    let mut idle_notes = Vec::new();
    let lonet_idle = bounded(ct, "lonet", idle_per_conn::<Lonet>(n, &mut idle_notes));
    let duplex_idle = bounded(ct, "duplex", idle_per_conn::<Duplex>(n, &mut idle_notes));
    notes.extend(idle_notes);
    Row {
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
            dash(),
        ],
        target: Target::AtMost(4096.0),
        target_text: "≤ 4 KiB".into(),
        informational: false,
    }
}

/// The stalled reader: lonet's peak sockstat mem, and the peak bytes held
/// (lonet and duplex), each bounded by the most Linux lets one connection's
/// buffers grow to.
fn stalled_reader(ct: &Runtime, notes: &mut Vec<String>) -> [Row; 2] {
    eprintln!("memory: a stalled reader under a fast writer");
    let lonet_stall = run_stall::<Lonet>(ct, notes);
    let duplex_stall = run_stall::<Duplex>(ct, notes);
    let sysctl = lonet::Sysctl::default();
    let bound = (sysctl.tcp_rmem[2] + sysctl.tcp_wmem[2]) as f64;
    let peak_cell = |st: &Option<Stall>, f: fn(&Stall) -> Option<f64>| match st {
        Some(st) if !st.blocked => Cell::Failed("the writer was never held back".into()),
        Some(st) => f(st).map_or(Cell::NotApplicable("n/a"), Cell::Val),
        None => Cell::Failed("failed".into()),
    };
    let row = |name: &str, cells| Row {
        name: name.into(),
        unit: Unit::Bytes,
        cells,
        target: Target::AtMost(bound),
        target_text: format!(
            "bounded by the socket buffers (≤ {})",
            Unit::Bytes.fmt(bound)
        ),
        informational: false,
    };
    [
        row(
            "stalled reader: peak sockstat mem (socket queues + backlog)",
            [
                peak_cell(&lonet_stall, |s| s.sockstat_peak),
                Cell::NotApplicable("n/a (kernel)"),
                Cell::NotApplicable("n/a (kernel)"),
                Cell::NotApplicable("n/a"),
                dash(),
            ],
        ),
        row(
            "stalled reader: peak bytes held (allocator)",
            [
                peak_cell(&lonet_stall, |s| Some(s.alloc_peak)),
                Cell::NotApplicable("n/a (kernel)"),
                Cell::NotApplicable("n/a (kernel)"),
                peak_cell(&duplex_stall, |s| Some(s.alloc_peak)),
                dash(),
            ],
        ),
    ]
}

/// The stalled reader under 1-byte writes: lonet's peak bytes held, at most
/// twice its send buffer (Linux's queue holds each skb's payload and one
/// head per `size_goal` bytes, about the send buffer).
fn tiny_writes(ct: &Runtime, notes: &mut Vec<String>) -> Row {
    eprintln!("memory: a stalled reader under 1-byte writes");
    let st = run_tiny_stall(ct, notes);
    let bound = 2.0 * lonet_bench::memory::TINY_SNDBUF as f64;
    Row {
        name: format!(
            "stalled reader, 1-byte writes until WouldBlock: peak bytes held (allocator, send buffer {})",
            Unit::Bytes.fmt(lonet_bench::memory::TINY_SNDBUF as f64)
        ),
        unit: Unit::Bytes,
        cells: [
            st.map_or(Cell::Failed("failed".into()), |s| Cell::Val(s.alloc_peak)),
            Cell::NotApplicable("n/a (kernel)"),
            Cell::NotApplicable("n/a (kernel)"),
            Cell::NotApplicable("n/a"),
            dash(),
        ],
        target: Target::AtMost(bound),
        target_text: format!("≤ 2× the send buffer ({})", Unit::Bytes.fmt(bound)),
        informational: false,
    }
}
