//! Namespaces created and dropped in a loop, each with a connection that moves data, keep
//! the process's memory flat. A binary of its own: it measures the process's resident set,
//! which other tests running beside it in one process would inflate.

mod common;

use common::*;
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resident set size, from /proc/self/statm (pages of 4 KiB).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// Creates and drops `n` namespaces, each with a connection that moves data; every one is
/// freed, and the process's memory after `n` is about what it was after a warm-up.
fn namespace_loop(n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let one = |i: usize| {
        let ns = Netns::new();
        let weak = ns.downgrade();
        rt.block_on(ns.scope(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (c, s) = tokio::join!(
                TcpStream::connect(listener.local_addr().unwrap()),
                listener.accept()
            );
            let (mut c, mut s) = (c.unwrap(), s.unwrap().0);
            let data = pattern_vec(i as u64, 16 * 1024);
            let mut got = vec![0; data.len()];
            let (w, r) = tokio::join!(c.write_all(&data), s.read_exact(&mut got));
            w.unwrap();
            r.unwrap();
            assert_eq!(got, data);
        }));
        wait_freed(&weak);
    };
    let warm = 50.min(n);
    for i in 0..warm {
        one(i);
    }
    let before = rss_bytes();
    let start = Instant::now();
    for i in warm..n {
        one(i);
    }
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    eprintln!(
        "namespace loop: {n} namespaces in {:?}, RSS {} KiB after the warm-up, {} KiB at the end",
        start.elapsed(),
        before / 1024,
        after / 1024
    );
    // Other tests run in this process at the same time: the bound is loose, a leak of even
    // a few KiB per namespace over 10,000 still crosses it.
    assert!(
        growth < 32 << 20,
        "RSS grew by {} KiB over {n} namespaces",
        growth / 1024
    );
}

#[test]
fn namespaces_in_a_loop_keep_memory_flat() {
    namespace_loop(300);
}

#[test]
#[ignore = "long: 10,000 namespaces created and dropped with traffic; run with --ignored"]
fn namespaces_in_a_loop_keep_memory_flat_long() {
    namespace_loop(10_000);
}
