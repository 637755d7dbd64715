//! Ephemeral ports (net.ipv4.ip_local_port_range) and the accept queue (net.core.somaxconn).

use crate::common::*;
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::time::Duration;

/// A four-port range. Linux's connect() walks the range in steps of 2 over an even-sized span
/// (`__inet_hash_connect`: `remaining &= ~1U`), so in an odd-sized range such as
/// 40000..=40002 connect() never uses the last port; an even-sized range is used whole.
const RANGE: (u16, u16) = (40000, 40003);

fn in_range(port: u16) -> bool {
    (RANGE.0..=RANGE.1).contains(&port)
}

fn namespace_with_small_range() -> Netns {
    let ns = Netns::new();
    ns.set_sysctl(|s| s.ip_local_port_range = RANGE)
        .expect("set_sysctl");
    assert_eq!(ns.sysctl().ip_local_port_range, RANGE);
    ns
}

#[tokio::test]
async fn connections_take_source_ports_from_the_range_until_it_runs_out() {
    // Linux: connect() on an unbound socket picks a source port in ip_local_port_range; once
    // every port in it is used towards that destination, connect() fails with EADDRNOTAVAIL.
    let ns = namespace_with_small_range();
    bounded(
        "port range exhaustion",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:8080").await.expect("bind");
            let mut conns = Vec::new();
            let mut ports = BTreeSet::new();
            for _ in RANGE.0..=RANGE.1 {
                let s = TcpStream::connect("127.0.0.1:8080")
                    .await
                    .expect("connect within the range");
                let port = s.local_addr().expect("local_addr").port();
                assert!(in_range(port), "source port {port} outside {RANGE:?}");
                ports.insert(port);
                conns.push(s);
            }
            assert_eq!(
                ports,
                (RANGE.0..=RANGE.1).collect::<BTreeSet<_>>(),
                "every port used once"
            );

            let r = TcpStream::connect("127.0.0.1:8080").await;
            assert_eq!(
                done(&r),
                err(ErrorKind::AddrNotAvailable, errno::EADDRNOTAVAIL)
            );
            drop((listener, conns));
        }),
    )
    .await;
}

#[tokio::test]
async fn an_exhausted_range_still_reaches_a_different_destination() {
    // Linux: a port picked by connect() can be shared by connections whose 4-tuples differ, so
    // the range is per destination: a new destination gets ports again.
    let ns = namespace_with_small_range();
    bounded(
        "second destination",
        ns.clone().scope(async {
            let first = TcpListener::bind("127.0.0.1:8080")
                .await
                .expect("bind 8080");
            let second = TcpListener::bind("127.0.0.1:8081")
                .await
                .expect("bind 8081");
            let mut conns = Vec::new();
            for _ in RANGE.0..=RANGE.1 {
                conns.push(
                    TcpStream::connect("127.0.0.1:8080")
                        .await
                        .expect("connect to 8080"),
                );
            }
            let r = TcpStream::connect("127.0.0.1:8080").await;
            assert_eq!(
                done(&r),
                err(ErrorKind::AddrNotAvailable, errno::EADDRNOTAVAIL)
            );

            let other = TcpStream::connect("127.0.0.1:8081")
                .await
                .expect("connect to 8081");
            let port = other.local_addr().expect("local_addr").port();
            assert!(in_range(port), "source port {port} outside {RANGE:?}");
            drop((first, second, conns, other));
        }),
    )
    .await;
}

#[tokio::test]
async fn binding_port_zero_takes_a_port_from_the_range() {
    // Linux: bind() to port 0 picks a free port in ip_local_port_range.
    let ns = namespace_with_small_range();
    bounded(
        "bind port 0",
        ns.clone().scope(async {
            let a = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let b = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let (pa, pb) = (
                a.local_addr().unwrap().port(),
                b.local_addr().unwrap().port(),
            );
            assert!(
                in_range(pa) && in_range(pb),
                "ports {pa}, {pb} outside {RANGE:?}"
            );
            assert_ne!(pa, pb, "two listeners on one port");
        }),
    )
    .await;
}

#[tokio::test]
async fn a_connect_beyond_a_full_accept_queue_waits_and_completes_once_one_is_accepted() {
    // Linux: listen()'s backlog is capped by net.core.somaxconn and the accept queue holds
    // backlog + 1 connections; a SYN arriving at a full queue is dropped (ListenOverflows,
    // ListenDrops), not refused, so connect() keeps waiting, retransmits its SYN after the
    // 1 s initial RTO, and completes once accept() made room.
    let ns = Netns::new();
    ns.set_sysctl(|s| s.somaxconn = 2).expect("set_sysctl");
    bounded(
        "full accept queue",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let mut clients = Vec::new();
            for i in 0..3 {
                let s = bounded_for(
                    &format!("connect {i} (fits the accept queue)"),
                    Duration::from_secs(5),
                    TcpStream::connect(addr),
                )
                .await
                .expect("connect");
                clients.push(s);
            }

            let mut fourth = Box::pin(TcpStream::connect(addr));
            let early = tokio::time::timeout(Duration::from_millis(300), &mut fourth).await;
            assert!(
                early.is_err(),
                "connect beyond the full accept queue finished early: {:?}",
                early.map(|r| done(&r))
            );
            let tcp = ns.tcp_stats();
            assert!(tcp.listen_overflows >= 1, "ListenOverflows\n{tcp}");
            assert!(tcp.listen_drops >= 1, "ListenDrops\n{tcp}");

            let mut accepted = Vec::new();
            accepted.push(listener.accept().await.expect("accept").1);
            let s = bounded_for("the waiting connect", Duration::from_secs(5), fourth)
                .await
                .expect("connect after accept made room");
            clients.push(s);
            assert!(
                ns.tcp_stats().retrans_segs >= 1,
                "the SYN was retransmitted\n{}",
                ns.tcp_stats()
            );

            for _ in 0..3 {
                accepted.push(listener.accept().await.expect("accept").1);
            }
            let client_addrs: BTreeSet<_> = clients
                .iter()
                .map(|c| c.local_addr().expect("local_addr"))
                .collect();
            let peer_addrs: BTreeSet<_> = accepted.into_iter().collect();
            assert_eq!(client_addrs, peer_addrs, "every client accepted once");
        }),
    )
    .await;
}
