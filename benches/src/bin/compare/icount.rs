//! The instruction counts per operation and where they go, stage by stage,
//! printed after the timing table.
//!
//! Counting needs valgrind, which most machines running `compare` lack, so
//! by default the figures are the committed ones (`benches/icount-stages.txt`,
//! written by `.ci/icount --update`, built into this binary), labelled as
//! such with the commit, rustc and valgrind they were measured with. With
//! `--icount`, compare measures them in this run instead: it runs the
//! `icount` binary built beside it under callgrind, as `.ci/icount` does.

#[path = "../icount/stages.rs"]
pub mod stages;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The committed figures.
const COMMITTED: &str = include_str!("../../../icount-stages.txt");

/// The figures to print and where they come from.
pub struct Counts {
    /// One sentence: measured in this run, or committed (and from what).
    pub source: String,
    /// The figures, one per workload.
    rows: Vec<stages::PerOp>,
}

/// The committed figures, or, with `measure`, this run's; a measurement that
/// cannot be made (no valgrind, no icount binary, a failed run) falls back
/// to the committed figures and says why.
pub fn get(measure: bool) -> Counts {
    let committed = || {
        let (meta, rows) = stages::from_file(COMMITTED);
        (
            format!(
                "the committed figures (benches/icount-stages.txt, from .ci/icount --update: {}); \
                 `--icount` measures them in the run (needs valgrind)",
                stages::describe(&meta)
            ),
            rows,
        )
    };
    if !measure {
        let (source, rows) = committed();
        return Counts { source, rows };
    }
    match measure_now() {
        Ok(rows) => {
            let meta = stages::this_meta();
            Counts {
                source: format!("measured in this run ({})", stages::describe(&meta)),
                rows,
            }
        }
        Err(e) => {
            let (source, rows) = committed();
            Counts {
                source: format!("--icount could not measure ({e}): {source}"),
                rows,
            }
        }
    }
}

/// Runs the `icount` binary beside this one under callgrind.
fn measure_now() -> Result<Vec<stages::PerOp>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?;
    let bin: PathBuf = exe
        .parent()
        .map(|d| d.join("icount"))
        .ok_or("this binary has no directory")?;
    if !bin.exists() {
        return Err(format!(
            "no {} (build it: cargo build --release -p lonet-bench --bin icount)",
            bin.display()
        ));
    }
    let ok = std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Err("valgrind is not installed".into());
    }
    let dir = std::env::temp_dir().join(format!("lonet-compare-icount.{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("compare: counting instructions under callgrind (--icount)...");
    let res = stages::measure(&bin, Path::new(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    res
}

/// The counts table: lonet, duplex and their ratio per workload.
fn counts_rows(c: &Counts) -> Vec<[String; 5]> {
    c.rows
        .iter()
        .map(|r| {
            let what = stages::WORKLOADS
                .iter()
                .find(|w| w.name == r.workload)
                .map_or("", |w| w.what);
            let ratio = if r.duplex > 0 {
                format!("{:.2}×", r.lonet as f64 / r.duplex as f64)
            } else {
                "–".into()
            };
            [
                r.workload.clone(),
                what.to_string(),
                stages::thousands(r.lonet),
                stages::thousands(r.duplex),
                ratio,
            ]
        })
        .collect()
}

const HEAD: [&str; 5] = [
    "workload",
    "one operation",
    "lonet",
    "duplex",
    "lonet/duplex",
];

/// The section, for a terminal.
pub fn text(c: &Counts) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Instructions per operation (callgrind), {}:\n",
        c.source
    );
    let rows = counts_rows(c);
    let mut w: Vec<usize> = HEAD.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(w[i] - cell.chars().count());
            if i < 2 {
                let _ = write!(s, "{}{cell}{pad}", if i == 0 { "" } else { " | " });
            } else {
                let _ = write!(s, " | {pad}{cell}");
            }
        }
        s
    };
    let _ = writeln!(out, "{}", line(HEAD.to_vec()));
    let _ = writeln!(
        out,
        "{}",
        "-".repeat(w.iter().sum::<usize>() + 3 * (w.len() - 1))
    );
    for r in &rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
    let _ = writeln!(
        out,
        "\nWhere lonet's instructions per operation go, stage by stage:\n"
    );
    out += &stages::text(&c.rows);
    let _ = write!(out, "\n{}", stages::wrap(stages::LEGEND, 100));
    out
}

/// The section in Markdown.
pub fn markdown(c: &Counts) -> String {
    let mut out = format!("Instructions per operation (callgrind), {}:\n\n", c.source);
    let _ = writeln!(out, "| {} |", HEAD.join(" | "));
    out += "|---|---|---:|---:|---:|\n";
    for r in counts_rows(c) {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    let _ = writeln!(
        out,
        "\nWhere lonet's instructions per operation go, stage by stage:\n"
    );
    out += &stages::markdown(&c.rows);
    let _ = writeln!(out, "\n{}", stages::LEGEND);
    out
}
