//! 8 runtime worker threads (on a machine with perhaps 2 cores) moving data on many
//! connections at once: every byte checked, nothing left behind.

use crate::common::*;
use crate::soak::traffic;
use std::time::{Duration, Instant};

fn stress(conns: usize, parallel: usize, max_len: usize, seed: u64, limit: Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ns = lonet::Netns::new();
        let start = Instant::now();
        let bytes = bounded_for(
            "stress traffic",
            limit,
            traffic(&ns, conns, parallel, max_len, seed),
        )
        .await;
        wait_all_freed(&ns).await;
        let s = ns.sockstat();
        assert_eq!((s.inuse, s.orphan, s.alloc, s.mem), (0, 0, 0, 0), "{s}");
        eprintln!(
            "stress: 8 workers, {conns} connections, {bytes} bytes checked, {:?}",
            start.elapsed()
        );
    });
}

/// The CI run.
#[test]
fn eight_workers_many_connections() {
    stress(2_000, 500, 128 * 1024, 0x57e5, Duration::from_secs(60));
}

/// The long run.
#[test]
#[ignore = "long: 20,000 connections on 8 workers (minutes); run with --ignored"]
fn eight_workers_many_connections_long() {
    stress(20_000, 1_000, 1 << 20, 0x57e6, Duration::from_secs(1800));
}
