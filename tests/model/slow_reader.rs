//! Backpressure: a fast writer and a slow reader move 256 MiB in bounded memory.

use crate::common::*;
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOTAL: u64 = 256 << 20;
const SEED: u64 = 0x51_0e;

/// Memory the namespace may hold at once: the send buffer at its largest (tcp_wmem[2], 4 MiB)
/// plus the receive buffer (tcp_rmem[1], 128 KiB, which a slow reader never lets autotuning
/// grow much) and slack for skb overhead and the softnet backlog. 256 MiB is 32 times this.
const MEM_LIMIT: u64 = 8 << 20;

#[tokio::test]
async fn a_slow_reader_gets_256_mib_in_order_while_memory_stays_bounded() {
    // Linux: when the reader falls behind, its receive window closes and the writer blocks once
    // its send buffer is full, so a socket never holds more than tcp_wmem + tcp_rmem.
    let ns = Netns::new();
    let (received, max_mem) = bounded_for(
        "256 MiB through a slow reader",
        Duration::from_secs(240),
        ns.clone().scope(transfer(ns.clone())),
    )
    .await;
    println!("256 MiB received; largest sockstat().mem seen: {max_mem} bytes");
    assert_eq!(received, TOTAL, "bytes received");
    assert!(
        max_mem > 0,
        "sockstat().mem never rose above 0 while 256 MiB went through"
    );
    assert!(
        max_mem < MEM_LIMIT,
        "sockstat().mem reached {max_mem} bytes, above the {MEM_LIMIT}-byte bound"
    );
    bounded("freeing", wait_all_freed(&ns)).await;
}

/// Runs the transfer; returns bytes received and the largest `sockstat().mem` seen.
async fn transfer(ns: Netns) -> (u64, u64) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");

    let reader_ns = ns.clone();
    let reader = tokio::spawn(ns.clone().scope(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        drop(listener);
        let mut check = PatternCheck::new(SEED);
        let mut buf = vec![0u8; 4096];
        let mut max_mem = 0;
        let mut rng = 1u64;
        loop {
            // Small reads of varying size, yielding after each: the reader is the bottleneck.
            rng = splitmix64(rng);
            let want = 1 + (rng % 4096) as usize;
            let n = s.read(&mut buf[..want]).await.expect("read");
            max_mem = max_mem.max(reader_ns.sockstat().mem);
            if n == 0 {
                break;
            }
            if let Err(e) = check.check(&buf[..n]) {
                panic!("{e}");
            }
            tokio::task::yield_now().await;
        }
        (check.offset(), max_mem)
    }));

    let writer_ns = ns.clone();
    let writer = tokio::spawn(ns.clone().scope(async move {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut chunk = vec![0u8; 64 * 1024];
        let mut offset = 0u64;
        let mut max_mem = 0;
        while offset < TOTAL {
            let n = chunk.len().min((TOTAL - offset) as usize);
            fill_pattern(SEED, offset, &mut chunk[..n]);
            s.write_all(&chunk[..n]).await.expect("write_all");
            offset += n as u64;
            max_mem = max_mem.max(writer_ns.sockstat().mem);
        }
        s.shutdown().await.expect("shutdown");
        max_mem
    }));

    let writer_max = writer.await.expect("writer task");
    let (received, reader_max) = reader.await.expect("reader task");
    (received, writer_max.max(reader_max))
}
