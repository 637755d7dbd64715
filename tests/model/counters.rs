//! Kernel counters after known exchanges in a fresh namespace: `ip -s link show lo`,
//! `/proc/net/softnet_stat`, `netstat -s` (Tcp:), `/proc/net/sockstat`.

use crate::common::*;
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A connected pair in the current namespace: `(client, accepted end)`; the listener is dropped.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.expect("connect"), accepted.expect("accept").0)
}

/// ping/pong over one connection, then both ends close cleanly and everything is freed.
async fn ping_pong_and_close(ns: &Netns) {
    let (mut c, mut a) = pair().await;
    c.write_all(b"ping").await.expect("write ping");
    let mut buf = [0u8; 4];
    a.read_exact(&mut buf).await.expect("read ping");
    a.write_all(b"pong").await.expect("write pong");
    c.read_exact(&mut buf).await.expect("read pong");
    assert_eq!(&buf, b"pong");
    drop(c);
    assert_eq!(a.read(&mut buf).await.expect("read EOF"), 0);
    drop(a);
    wait_all_freed(ns).await;
}

/// Waits until every transmitted packet went through the backlog.
async fn settle(ns: &Netns) {
    wait_until("the backlog drains", Duration::from_secs(10), || {
        let lo = ns.lo_stats();
        let softnet = ns.softnet_stat();
        let t = softnet.total();
        if t.input_qlen == 0 && t.process_qlen == 0 && t.processed == lo.rx_packets {
            Ok(())
        } else {
            Err(format!("lo:\n{lo}\nsoftnet_stat:\n{softnet}"))
        }
    })
    .await;
}

/// Whether some line of `text` names the counter (netstat -s words or the /proc/net/snmp
/// name) and shows `n` as one of its words.
fn shows(text: &str, words: &str, kernel_name: &str, n: u64) -> bool {
    let n = n.to_string();
    text.lines().any(|l| {
        (l.contains(words) || l.contains(kernel_name))
            && l.split(|c: char| c.is_whitespace() || c == ':')
                .any(|w| w == n)
    })
}

#[tokio::test]
async fn a_ping_pong_exchange_shows_matching_lo_softnet_and_tcp_counters() {
    // Linux: lo counts every packet once on transmit and once on receive (rx == tx), each one
    // passes the softnet backlog (softnet_stat processed == lo rx_packets), all of them are TCP
    // (InSegs == OutSegs == packets), and one connect/accept is one ActiveOpens + one PassiveOpens.
    let ns = Netns::new();
    bounded(
        "counters after ping/pong",
        ns.clone().scope(async {
            ping_pong_and_close(&ns).await;
            settle(&ns).await;
            let (lo, softnet, tcp) = (ns.lo_stats(), ns.softnet_stat(), ns.tcp_stats());
            let state = format!("lo:\n{lo}\nsoftnet_stat:\n{softnet}\nnetstat -s:\n{tcp}");

            assert!(
                lo.tx_packets > 0 && lo.tx_bytes > 0,
                "nothing counted on lo\n{state}"
            );
            assert_eq!(
                lo.rx_packets, lo.tx_packets,
                "lo rx_packets vs tx_packets\n{state}"
            );
            assert_eq!(lo.rx_bytes, lo.tx_bytes, "lo rx_bytes vs tx_bytes\n{state}");
            assert_eq!((lo.rx_dropped, lo.tx_dropped), (0, 0), "lo drops\n{state}");
            assert_eq!(
                softnet.total().processed,
                lo.rx_packets,
                "softnet processed vs lo rx\n{state}"
            );
            assert_eq!(softnet.total().dropped, 0, "softnet drops\n{state}");

            assert_eq!(tcp.active_opens, 1, "ActiveOpens\n{state}");
            assert_eq!(tcp.passive_opens, 1, "PassiveOpens\n{state}");
            assert_eq!(tcp.curr_estab, 0, "CurrEstab after close\n{state}");
            assert_eq!(tcp.in_segs, tcp.out_segs, "InSegs vs OutSegs\n{state}");
            assert_eq!(
                tcp.out_segs, lo.tx_packets,
                "OutSegs vs lo tx_packets\n{state}"
            );
            assert_eq!(tcp.attempt_fails, 0, "AttemptFails\n{state}");
            assert_eq!(
                (tcp.out_rsts, tcp.in_rsts),
                (0, 0),
                "resets in a clean exchange\n{state}"
            );
            assert_eq!(
                tcp.retrans_segs, 0,
                "RetransSegs in a clean exchange\n{state}"
            );
        }),
    )
    .await;
}

#[tokio::test]
async fn an_established_connection_counts_in_curr_estab() {
    // Linux: CurrEstab is the number of connections in ESTABLISHED or CLOSE_WAIT now.
    let ns = Netns::new();
    bounded(
        "CurrEstab",
        ns.clone().scope(async {
            let (c, a) = pair().await;
            assert_eq!(
                ns.tcp_stats().curr_estab,
                2,
                "both ends established\n{}",
                ns.tcp_stats()
            );
            drop(c);
            drop(a);
            wait_all_freed(&ns).await;
            assert_eq!(
                ns.tcp_stats().curr_estab,
                0,
                "after close\n{}",
                ns.tcp_stats()
            );
        }),
    )
    .await;
}

#[tokio::test]
async fn closing_with_unread_data_counts_a_reset_sent_a_reset_received_and_an_abort_on_close() {
    // Linux: tcp_close() with unread data increments TCPAbortOnClose and sends RST (OutRsts);
    // the peer takes it (the RST lonet counts as in_rsts); both ends leave ESTABLISHED for
    // CLOSE, which counts two EstabResets.
    let ns = Netns::new();
    bounded(
        "RST counters",
        ns.clone().scope(async {
            let (mut c, a) = pair().await;
            c.write_all(b"never read").await.expect("write_all");
            a.readable().await.expect("readable");
            drop(a);
            let r = c.read(&mut [0u8; 16]).await;
            assert_eq!(
                res(&r),
                err(std::io::ErrorKind::ConnectionReset, errno::ECONNRESET)
            );
            let tcp = ns.tcp_stats();
            assert_eq!(tcp.out_rsts, 1, "OutRsts\n{tcp}");
            assert_eq!(tcp.in_rsts, 1, "resets received\n{tcp}");
            assert_eq!(tcp.tcp_abort_on_close, 1, "TCPAbortOnClose\n{tcp}");
            assert_eq!(tcp.tcp_abort_on_data, 0, "TCPAbortOnData\n{tcp}");
            assert_eq!(tcp.estab_resets, 2, "EstabResets\n{tcp}");
            assert_eq!(tcp.curr_estab, 0, "CurrEstab\n{tcp}");
        }),
    )
    .await;
}

#[tokio::test]
#[allow(deprecated)] // tokio's set_linger is deprecated; lonet's may not be
async fn closing_with_linger_zero_counts_a_reset_and_an_abort_on_data() {
    // Linux: close() with SO_LINGER {on, 0} and nothing unread calls tcp_disconnect(), which
    // sends RST (OutRsts) and increments TCPAbortOnData, not TCPAbortOnClose.
    let ns = Netns::new();
    bounded(
        "linger 0 counters",
        ns.clone().scope(async {
            let (mut c, a) = pair().await;
            a.set_linger(Some(Duration::ZERO)).expect("set_linger");
            drop(a);
            let r = c.read(&mut [0u8; 16]).await;
            assert_eq!(
                res(&r),
                err(std::io::ErrorKind::ConnectionReset, errno::ECONNRESET)
            );
            let tcp = ns.tcp_stats();
            assert_eq!(tcp.out_rsts, 1, "OutRsts\n{tcp}");
            assert_eq!(tcp.in_rsts, 1, "resets received\n{tcp}");
            assert_eq!(tcp.tcp_abort_on_data, 1, "TCPAbortOnData\n{tcp}");
            assert_eq!(tcp.tcp_abort_on_close, 0, "TCPAbortOnClose\n{tcp}");
        }),
    )
    .await;
}

#[tokio::test]
async fn connecting_to_a_port_without_listener_counts_an_attempt_fail_and_a_reset() {
    // Linux: the SYN to a closed port is answered by RST (OutRsts +1); the connecting socket
    // goes SYN_SENT -> CLOSE, one AttemptFails; ActiveOpens still counts the attempt.
    let ns = Netns::new();
    bounded(
        "refused counters",
        ns.clone().scope(async {
            let r = TcpStream::connect("127.0.0.1:9").await;
            assert_eq!(
                done(&r),
                err(std::io::ErrorKind::ConnectionRefused, errno::ECONNREFUSED)
            );
            let tcp = ns.tcp_stats();
            assert_eq!(tcp.active_opens, 1, "ActiveOpens\n{tcp}");
            assert_eq!(tcp.attempt_fails, 1, "AttemptFails\n{tcp}");
            assert_eq!(tcp.out_rsts, 1, "OutRsts\n{tcp}");
            assert_eq!(tcp.in_rsts, 1, "resets received\n{tcp}");
            assert_eq!(tcp.passive_opens, 0, "PassiveOpens\n{tcp}");
        }),
    )
    .await;
}

#[tokio::test]
async fn the_counters_print_in_the_kernel_tools_words() {
    // Linux: `ip -s link show lo` prints "lo:", "mtu 65536" and RX:/TX: blocks; `netstat -s`
    // says "N active connection openings" (/proc/net/snmp: ActiveOpens); /proc/net/sockstat
    // says "TCP: inuse N orphan N tw N alloc N mem N"; /proc/net/softnet_stat has one row of
    // %08x columns per CPU, processed first.
    let ns = Netns::new();
    bounded(
        "Display",
        ns.clone().scope(async {
            ping_pong_and_close(&ns).await;
            settle(&ns).await;
            let (lo, softnet, tcp) = (ns.lo_stats(), ns.softnet_stat(), ns.tcp_stats());

            assert_eq!(lo.mtu, 65536, "lo's default MTU");
            let text = lo.to_string();
            for word in ["lo:", "mtu 65536", "RX:", "TX:"] {
                assert!(
                    text.contains(word),
                    "ip -s link text lacks {word:?}:\n{text}"
                );
            }
            for n in [lo.rx_packets, lo.rx_bytes] {
                assert!(
                    text.contains(&n.to_string()),
                    "ip -s link text lacks {n}:\n{text}"
                );
            }

            let text = tcp.to_string();
            for (words, kernel_name, n) in [
                (
                    "active connection openings",
                    "ActiveOpens",
                    tcp.active_opens,
                ),
                (
                    "passive connection openings",
                    "PassiveOpens",
                    tcp.passive_opens,
                ),
                ("segments received", "InSegs", tcp.in_segs),
                ("segments retransmitted", "RetransSegs", tcp.retrans_segs),
            ] {
                assert!(
                    shows(&text, words, kernel_name, n),
                    "netstat -s text lacks {n} {words:?} / {kernel_name:?}:\n{text}"
                );
            }
            assert_eq!(tcp.active_opens, 1);

            let s = ns.sockstat();
            let text = s.to_string();
            for word in ["TCP:", "inuse", "orphan", "alloc", "mem"] {
                assert!(text.contains(word), "sockstat text lacks {word:?}:\n{text}");
            }

            let text = softnet.to_string();
            let rows: Vec<&str> = text.lines().collect();
            assert_eq!(
                rows.len(),
                softnet.cpus.len(),
                "one softnet_stat row per CPU:\n{text}"
            );
            for (row, cpu) in rows.iter().zip(&softnet.cpus) {
                let cols: Vec<&str> = row.split_whitespace().collect();
                assert_eq!(
                    cols.first().copied(),
                    Some(format!("{:08x}", cpu.processed).as_str()),
                    "processed column:\n{text}"
                );
                assert_eq!(
                    cols.get(1).copied(),
                    Some(format!("{:08x}", cpu.dropped).as_str()),
                    "dropped column:\n{text}"
                );
                assert_eq!(
                    cols.get(2).copied(),
                    Some(format!("{:08x}", cpu.time_squeeze).as_str()),
                    "time_squeeze column:\n{text}"
                );
            }

            ns.set_lo_mtu(1500).expect("set_lo_mtu(1500)");
            assert_eq!(ns.lo_stats().mtu, 1500);
            assert!(
                ns.lo_stats().to_string().contains("mtu 1500"),
                "{}",
                ns.lo_stats()
            );
        }),
    )
    .await;
}
