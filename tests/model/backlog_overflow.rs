//! Softnet backlog overflow: packets dropped at `enqueue_to_backlog` are counted and TCP
//! retransmits them, so every stream still arrives whole and in order.

use crate::common::*;
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNS: usize = 16;
const EACH: u64 = 2 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_outrunning_the_softirq_lose_packets_that_tcp_retransmits_in_order() {
    // Linux: enqueue_to_backlog drops a packet when the CPU's backlog already holds more than
    // net.core.netdev_max_backlog (counted in /proc/net/softnet_stat column 2 and lo's
    // rx_dropped); TCP retransmits the lost segments (RetransSegs) and the stream stays intact.
    let ns = Netns::new();
    bounded_for(
        "16 senders through a 2-packet backlog",
        Duration::from_secs(180),
        ns.clone().scope(run(ns.clone())),
    )
    .await;
}

async fn run(ns: Netns) {
    // Many small segments (MSS 1460) and quick retransmits; set before connecting so the
    // connections' MSS and RTO follow them.
    ns.set_lo_mtu(1500).expect("set_lo_mtu(1500)");
    ns.set_sysctl(|s| s.tcp_rto_min_us = 1000)
        .expect("set_sysctl");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        conns.push((client.expect("connect"), accepted.expect("accept").0));
    }
    drop(listener);

    // Only now shrink the backlog: handshakes went through with the default.
    ns.set_sysctl(|s| s.netdev_max_backlog = 2)
        .expect("set_sysctl");

    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (i, (mut client, mut server)) in conns.into_iter().enumerate() {
        let seed = 1000 + i as u64;
        writers.push(tokio::spawn(ns.clone().scope(async move {
            let mut chunk = vec![0u8; 64 * 1024];
            let mut offset = 0u64;
            while offset < EACH {
                let n = chunk.len().min((EACH - offset) as usize);
                fill_pattern(seed, offset, &mut chunk[..n]);
                client.write_all(&chunk[..n]).await.expect("write_all");
                offset += n as u64;
            }
            client.shutdown().await.expect("shutdown");
            client
        })));
        readers.push(tokio::spawn(ns.clone().scope(async move {
            let mut check = PatternCheck::new(seed);
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = server
                    .read(&mut buf)
                    .await
                    .map_err(|e| format!("stream {seed}: {e}"))?;
                if n == 0 {
                    return Ok::<u64, String>(check.offset());
                }
                check.check(&buf[..n])?;
            }
        })));
    }

    let mut clients = Vec::new();
    for w in writers {
        clients.push(w.await.expect("writer task"));
    }
    let received: Vec<Result<u64, String>> = futures::future::join_all(readers)
        .await
        .into_iter()
        .map(|r| r.expect("reader task"))
        .collect();
    drop(clients);

    assert_eq!(
        received,
        vec![Ok(EACH); CONNS],
        "bytes each receiver got, in order"
    );

    let softnet = ns.softnet_stat();
    let lo = ns.lo_stats();
    let tcp = ns.tcp_stats();
    let state = format!("softnet_stat:\n{softnet}\nip -s link show lo:\n{lo}\nnetstat -s:\n{tcp}");
    println!("{state}");
    assert!(
        softnet.total().dropped > 0,
        "no backlog drops counted in softnet_stat\n{state}"
    );
    assert!(
        lo.rx_dropped > 0,
        "no drops counted in lo's rx_dropped\n{state}"
    );
    assert_eq!(
        softnet.total().dropped,
        lo.rx_dropped,
        "each backlog drop counts once in softnet_stat and once in lo's rx_dropped\n{state}"
    );
    assert!(
        tcp.retrans_segs > 0,
        "nothing retransmitted despite drops\n{state}"
    );
}
