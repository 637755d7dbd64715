//! One table: lonet against kernel loopback TCP, a Unix socket pair,
//! `tokio::io::duplex` and turmoil-net (ping-pong, bulk and connects), on the
//! same workloads, with lonet's ratios and whether lonet meets its
//! performance targets.
//!
//! ```text
//! cargo run --release -p lonet-bench --bin compare
//! cargo run --release -p lonet-bench --bin compare -- --markdown perf.md --csv perf.csv
//! cargo run --release -p lonet-bench --bin compare -- --quick          # a tenth of the sizes
//! cargo run --release -p lonet-bench --bin compare -- --svg perf.svg   # also a bar chart
//! cargo build --release -p lonet-bench --bins && target/release/compare --icount
//! cargo build --release --manifest-path benches/turmoil-net/Cargo.toml  # the turmoil-net column
//! ```
//!
//! The turmoil-net column comes from a program of its own
//! (benches/turmoil-net, a separate build: turmoil-net turns on tokio's
//! `test-util` feature, which would slow every other column), run once per
//! cell ([`measure::bounded_turmoil`]); unbuilt, its cells read "n/a (not
//! built)".
//!
//! Every figure is the median of several timed runs of a fixed number of
//! iterations, after one untimed run, and every workload has a time limit,
//! so the run ends by itself; the exit status is 1 if any workload failed
//! or hung (CI runs `--quick`). The workloads are the ones
//! `cargo bench -p lonet-bench` measures (this crate's library). Memory is
//! counted by a counting global allocator around the system one, installed
//! here: it sees lonet's buffers (they are user-space memory) but not the
//! kernel's.
//!
//! After the timing table come the instruction counts per operation (lonet,
//! duplex) and where lonet's go, stage by stage ([`icount`]): the committed
//! figures, or with `--icount` this run's (valgrind).
//!
//! The parts: [`args`] (the command line), [`plan`] (how much each workload
//! runs), [`measure`] (running one workload on one transport, bounded),
//! [`memory`] (the memory rows' measurements), [`rows`] (the table's rows,
//! workload by workload), [`row`] (a row's cells, units and lonet's target,
//! and how the target is judged), [`report`] (the text, Markdown and CSV
//! output), [`svg`] (the bar chart) and [`icount`] (the instruction counts).

mod args;
mod icount;
mod measure;
mod memory;
mod plan;
mod report;
mod row;
mod rows;
mod svg;

use lonet_bench::{current_thread, multi_thread_2};
use row::Cell;
use std::time::Instant;

#[global_allocator]
static GLOBAL: lonet_bench::memory::Counting = lonet_bench::memory::Counting;

fn main() {
    let args = args::parse();
    let sizes = if args.quick {
        plan::Sizes::quick()
    } else {
        plan::Sizes::full()
    };
    let started = Instant::now();
    let (ct, mt) = match (current_thread(), multi_thread_2()) {
        (Ok(ct), Ok(mt)) => (ct, mt),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot start a tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut notes = Vec::new();
    let rows = rows::all(&sizes, &ct, &mt, &mut notes);
    notes.extend(measure::take_notes());
    let mut failed = false;
    for r in &rows {
        for c in &r.cells {
            if let Cell::Failed(e) = c {
                notes.push(format!("FAILED: {e}"));
                failed = true;
            }
        }
    }
    let header = report::header(args.quick, started.elapsed());
    report::print(&header, &rows, &notes);
    // After the timed rows, so that callgrind's runs (--icount) load no
    // core while anything is timed.
    let counts = icount::get(args.icount);
    println!("\n{}", icount::text(&counts));
    if let Some(path) = &args.markdown {
        let md = report::markdown(&header, &rows, &notes) + "\n" + &icount::markdown(&counts);
        report::write_or_warn(path, &md);
    }
    if let Some(path) = &args.csv {
        report::write_or_warn(path, &report::csv(&rows));
    }
    if let Some(path) = &args.svg {
        report::write_or_warn(path, &svg::chart(&rows, &header));
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
