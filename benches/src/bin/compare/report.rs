//! The output: the header, the table (text, Markdown, CSV), the legend and
//! the notes.

use crate::row::{fmt_ratio, Cell, Row, COLS, TURMOIL};
use lonet_bench::{Duplex, Lonet, Tcp, Transport, Unix};
use std::fmt::Write as _;
use std::time::Duration;

/// The header, the table, the legend and the notes, on stdout.
pub fn print(header: &str, rows: &[Row], notes: &[String]) {
    println!("{header}\n");
    println!("{}", text_table(rows));
    println!("{}", legend());
    if !notes.is_empty() {
        println!("\nNotes from this run:");
        for n in notes {
            println!("- {n}");
        }
    }
}

/// The same as [`print()`], as a Markdown document.
pub fn markdown(header: &str, rows: &[Row], notes: &[String]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "{}\n", header.replace('\n', "  \n"));
    let _ = writeln!(md, "{}", markdown_table(rows));
    let _ = writeln!(md, "{}", legend());
    if !notes.is_empty() {
        let _ = writeln!(md, "\nNotes from this run:\n");
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// Writes `text` to `path`; a failure is reported, not fatal.
pub fn write_or_warn(path: &str, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("could not write {path}: {e}");
    }
}

/// The machine, the build, the runtimes and the method, and how long the
/// run took.
pub fn header(quick: bool, took: Duration) -> String {
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
        "lonet compare: lonet vs kernel loopback TCP vs Unix socket pair vs tokio::io::duplex \
         vs turmoil-net\n\
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

/// What the columns, the transports, the targets and the rows mean.
fn legend() -> String {
    "Legend:\n\
     - Each row's unit is in its figures: µs and bytes are lower-is-better, GB/s and per-second rates higher-is-better.\n\
     - lonet/TCP, lonet/duplex, lonet/turmoil-net: lonet's figure divided by the other transport's, in the row's unit. \
     On a µs row 0.10× means lonet takes a tenth of the time; on a rate row 4.00× means four times the rate.\n\
     - kernel TCP: tokio::net on 127.0.0.1 (TCP_NODELAY, as lonet's connections). Unix: UnixStream::pair(). \
     duplex: tokio::io::duplex with a 64 KiB buffer, the floor of an in-process pipe.\n\
     - turmoil-net: the turmoil-net crate (0.1), a simulated TCP/IP stack behind a tokio-shaped shim::tokio::net, \
     the nearest peer: one host, 127.0.0.1, default config, driven as its own test fixture (fixture::lo) drives it: \
     a current-thread runtime with a paused clock, the work on a LocalSet, the fabric pumped each time \
     the tasks are idle; in a process of its own (benches/turmoil-net), whose tokio has the test-util feature \
     turmoil-net needs, kept out of this binary's. Only on the current-thread ping-pong, bulk and connect rows (its stack lives on one thread); \
     its \"client in block_on\" is the fixture's task, which block_on drives. \
     lonet's target there: at least twice its rate (half its round trip).\n\
     - lonet: every workload in a namespace of its own (Netns::new()), default sysctls, the full modeled path \
     (route, lo, backlog, softirq, TCP segments and ACKs).\n\
     - target: lonet's performance targets, stated for the current-thread runtime. MET/MISSED checks it on this run; \
     MET*/MISSED* on the other rows apply the same ratios for information only.\n\
     - ping-pong: \"client in block_on\" runs the client's loop in the future block_on drives, as a \
     #[tokio::test] body or criterion's to_async does; it reproduces the reference real-socket figures \
     lonet's targets were set from (measured on a 2-core VM: duplex 0.42 µs, Unix 6.6 µs, TCP 12.7 µs). Each reply then wakes block_on through the runtime's driver, a fixed cost every transport \
     pays. \"client in a spawned task\" has no such cost, so duplex's floor is lower there.\n\
     - memory: user-space bytes counted by a counting global allocator around the system one. Kernel TCP and \
     Unix sockets keep their buffers in the kernel, which it cannot see: n/a. duplex is shown for reference.\n\
     - stalled reader: the reader never reads while a writer writes 64 KiB chunks; peak until the writer has \
     been held back for 100 ms. Bound: tcp_rmem max + tcp_wmem max, the most Linux lets one connection's buffers grow to.\n\
     - stalled reader, 1-byte writes: the same with one byte per write (try_write until WouldBlock and no write space \
     for 100 ms), tcp_wmem max set to the send buffer shown, which autotuning reaches on lo. Linux joins tiny writes \
     into the tail skb, so its queue holds about the send buffer: lonet must hold at most twice that."
        .into()
}

/// The table's head and body, every cell formatted.
fn table_cells(rows: &[Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let head: Vec<String> = ["workload"]
        .iter()
        .chain(COLS.iter())
        .chain(
            [
                "lonet/TCP",
                "lonet/duplex",
                "lonet/turmoil-net",
                "target",
                "result",
            ]
            .iter(),
        )
        .map(|s| s.to_string())
        .collect();
    let body = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.name.clone()];
            v.extend(r.cells.iter().map(|c| c.fmt(r.unit)));
            v.push(fmt_ratio(r.ratio(1)));
            v.push(fmt_ratio(r.ratio(3)));
            v.push(fmt_ratio(r.ratio(TURMOIL)));
            v.push(r.target_text.clone());
            v.push(r.verdict());
            v
        })
        .collect();
    (head, body)
}

/// The table, columns aligned, for a terminal.
fn text_table(rows: &[Row]) -> String {
    let (head, body) = table_cells(rows);
    crate::icount::stages::aligned(&head, &body)
}

/// The table in Markdown.
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

/// The table as CSV: the figures unformatted, one row a workload.
pub fn csv(rows: &[Row]) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let num = |c: &Cell| c.val().map(|v| format!("{v}")).unwrap_or_default();
    let mut out = format!(
        "workload,unit,lower_is_better,{},{},{},{},{},lonet_over_tcp,lonet_over_duplex,\
         lonet_over_turmoil_net,target,result\n",
        Lonet::ID,
        Tcp::ID,
        Unix::ID,
        Duplex::ID,
        "turmoil_net"
    );
    let ratio = |r: Option<f64>| r.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            q(&r.name),
            r.unit.name(),
            r.unit.lower_is_better(),
            num(&r.cells[0]),
            num(&r.cells[1]),
            num(&r.cells[2]),
            num(&r.cells[3]),
            num(&r.cells[TURMOIL]),
            ratio(r.ratio(1)),
            ratio(r.ratio(3)),
            ratio(r.ratio(TURMOIL)),
            q(&r.target_text),
            q(&r.verdict())
        );
    }
    out
}
