//! The memory rows' measurements: bytes held per idle connection, and the
//! peak held while a writer faces a reader that never reads (the workloads
//! are the library's [`lonet_bench::memory`]).

use crate::measure::LIMIT;
use crate::plan::thousands;
use crate::row::Unit;
use lonet_bench::memory::TinyStall;
use lonet_bench::*;
use std::io;
use tokio::runtime::Runtime;

/// Bytes held per idle connection (both ends); a note with lonet's figures.
pub async fn idle_per_conn<T: Transport>(n: usize, notes: &mut Vec<String>) -> io::Result<f64> {
    let idle = idle::<T>(n).await?;
    if let Some(sockstat) = &idle.sockstat {
        notes.push(format!(
            "idle: {} lonet connections held {} of user-space memory ({} per socket); \
             sockstat then: {}",
            thousands(n as u64),
            Unit::Bytes.fmt(idle.held as f64),
            Unit::Bytes.fmt(idle.held as f64 / (2 * n) as f64),
            // /proc/net/sockstat's lines, on one line of the note.
            sockstat.to_string().trim_end().replace('\n', "; ")
        ));
    }
    Ok(idle.per_connection())
}

/// The stalled reader on `T`, within [`LIMIT`]; a note with what it saw,
/// or why it failed (then `None`).
pub fn run_stall<T: Transport>(rt: &Runtime, notes: &mut Vec<String>) -> Option<Stall> {
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

/// The stalled reader under 1-byte writes (lonet only), within [`LIMIT`]; a
/// note with what it saw, or why it failed (then `None`).
pub fn run_tiny_stall(rt: &Runtime, notes: &mut Vec<String>) -> Option<TinyStall> {
    eprint!("  lonet ... ");
    let out =
        rt.block_on(async { tokio::time::timeout(LIMIT, lonet_bench::memory::tiny_stall()).await });
    match out {
        Ok(Ok(st)) => {
            eprintln!("done");
            notes.push(format!(
                "stalled reader, 1-byte writes, lonet: {} accepted with a {} send buffer; \
                 allocator peak {} ({:.2}× the send buffer), sockstat mem peak {}",
                Unit::Bytes.fmt(st.accepted as f64),
                Unit::Bytes.fmt(st.sndbuf as f64),
                Unit::Bytes.fmt(st.alloc_peak),
                st.ratio(),
                Unit::Bytes.fmt(st.sockstat_peak),
            ));
            Some(st)
        }
        Ok(Err(e)) => {
            eprintln!("FAILED: {e}");
            notes.push(format!("FAILED: stalled reader, 1-byte writes, lonet: {e}"));
            None
        }
        Err(_) => {
            eprintln!("FAILED: timeout");
            notes.push(format!(
                "FAILED: stalled reader, 1-byte writes, lonet: did not finish within {} s",
                LIMIT.as_secs()
            ));
            None
        }
    }
}
