//! Runs exactly `n` operations of one workload over one transport, once, and
//! prints nothing on success: the body that `.ci/icount` runs under
//! valgrind's callgrind to count instructions per operation.
//!
//! ```sh
//! cargo build --release -p lonet-bench --bin icount
//! target/release/icount <workload> <transport> <n>
//! ```
//!
//! Workloads: `pingpong` (a 64-byte round trip, the client in `block_on`),
//! `bulk` (one 64 KiB write, read by another task), `connect` (connect +
//! accept + close; for duplex, a new pair dropped), `http1` (one hyper
//! HTTP/1.1 keep-alive request). Transports: `lonet`, `duplex`.
//!
//! Everything runs on one current-thread runtime. Setup (the namespace,
//! the connection, one warm-up operation) and teardown are the same whatever
//! `n` is, so `.ci/icount` takes the difference of two runs with different
//! `n` and divides by the difference of `n`: what is left is the cost of
//! one operation.
//!
//! `icount stages DIR [--write FILE]` reads the profiles `.ci/icount --stages`
//! (or `--update`) left in `DIR` (`cg.<workload>.<transport>.<n>`), prints
//! where lonet's instructions per operation go, stage by stage ([`stages`]),
//! and with `--write` writes them to `FILE` (`benches/icount-stages.txt`),
//! with the commit, rustc and valgrind they come from.

mod stages;

use lonet_bench::{current_thread, Bulk, Duplex, Http1, Lonet, PingPong, Transport};
use std::io;
use std::process::ExitCode;

const USAGE: &str = "usage: icount <pingpong|bulk|connect|http1> <lonet|duplex> <n>
       icount stages DIR [--write FILE]";

async fn pingpong<T: Transport>(n: u64) -> io::Result<()> {
    let t = T::setup().await?;
    let mut w = PingPong::new(&t).await?;
    w.run_in_place(1).await?;
    w.run_in_place(n).await?;
    Ok(())
}

async fn bulk<T: Transport>(n: u64) -> io::Result<()> {
    let t = T::setup().await?;
    let mut w = Bulk::new(&t).await?;
    w.run(1).await?;
    w.run(n).await?;
    Ok(())
}

async fn http1<T: Transport>(n: u64) -> io::Result<()> {
    let t = T::setup().await?;
    let mut w = Http1::new(&t).await?;
    w.run(1).await?;
    w.run(n).await?;
    Ok(())
}

/// Connect + accept + close over lonet, in the caller's future (no task per
/// run: the loop is the only thing that grows with `n`).
async fn connect_lonet(n: u64) -> io::Result<()> {
    let t = Lonet::setup().await?;
    let ns = t.ns.clone();
    ns.scope(async {
        use lonet_bench::Listening;
        t.connect_accept_close().await?;
        for _ in 0..n {
            t.connect_accept_close().await?;
        }
        io::Result::Ok(())
    })
    .await
}

/// The duplex floor of connect + close: a new pair, both ends dropped.
async fn connect_duplex(n: u64) -> io::Result<()> {
    let t = Duplex::setup().await?;
    drop(t.pair().await?);
    for _ in 0..n {
        let (a, b) = t.pair().await?;
        drop(a);
        drop(b);
    }
    Ok(())
}

/// `icount stages DIR [--write FILE]`: the stage table from the profiles in
/// `DIR`.
fn stages_main(args: &[String]) -> ExitCode {
    let (dir, write) = match args {
        [dir] => (dir, None),
        [dir, flag, file] if flag == "--write" => (dir, Some(file)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let all: Vec<&stages::Workload> = stages::WORKLOADS.iter().collect();
    let rows = match stages::from_dir(std::path::Path::new(dir), &all) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("icount stages: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("\nWhere lonet's instructions per operation go, stage by stage:\n");
    print!("{}", stages::text(&rows));
    println!("\n{}", stages::wrap(stages::LEGEND, 100));
    if let Some(file) = write {
        let text = stages::to_file(&stages::this_meta(), &rows);
        if let Err(e) = std::fs::write(file, text) {
            eprintln!("icount stages: {file}: {e}");
            return ExitCode::FAILURE;
        }
        println!("icount: wrote {file} (commit it)");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("stages") {
        return stages_main(&args[1..]);
    }
    let (workload, transport, n) = match args.as_slice() {
        [w, t, n] => match n.parse::<u64>() {
            Ok(n) => (w.as_str(), t.as_str(), n),
            Err(_) => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match current_thread() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("icount: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async {
        match (workload, transport) {
            ("pingpong", "lonet") => pingpong::<Lonet>(n).await,
            ("pingpong", "duplex") => pingpong::<Duplex>(n).await,
            ("bulk", "lonet") => bulk::<Lonet>(n).await,
            ("bulk", "duplex") => bulk::<Duplex>(n).await,
            ("connect", "lonet") => connect_lonet(n).await,
            ("connect", "duplex") => connect_duplex(n).await,
            ("http1", "lonet") => http1::<Lonet>(n).await,
            ("http1", "duplex") => http1::<Duplex>(n).await,
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, USAGE)),
        }
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("icount: {workload} over {transport}: {e}");
            ExitCode::FAILURE
        }
    }
}
