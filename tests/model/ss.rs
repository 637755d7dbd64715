//! `ss -tan` for a namespace (`Netns::sockets`) and TIME_WAIT: the socket table lists
//! listeners, connections in each state and TIME_WAIT entries with ss's Recv-Q / Send-Q, prints
//! as ss does, and TIME_WAIT entries hold, give back and hand over their 4-tuples as on Linux.

use crate::common::*;
use lonet::net::{TcpListener, TcpSocket, TcpStream};
use lonet::stats::{Netid, SockInfo, SocketTable, TcpState, TimerKind};
use lonet::Netns;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The row of the connection from `local` to `peer`, or what the table holds.
fn row(t: &SocketTable, local: SocketAddr, peer: SocketAddr) -> Result<SockInfo, String> {
    t.find(local, peer)
        .copied()
        .ok_or_else(|| format!("no row {local} -> {peer} in\n{t}"))
}

/// Waits until the row of `local -> peer` satisfies `ok`.
async fn wait_row(
    ns: &Netns,
    what: &str,
    local: SocketAddr,
    peer: SocketAddr,
    ok: impl Fn(&SockInfo) -> bool,
) -> SockInfo {
    wait_until(what, Duration::from_secs(10), || {
        let t = ns.sockets();
        match row(&t, local, peer) {
            Ok(r) if ok(&r) => Ok(r),
            Ok(r) => Err(format!("{r:?} in\n{t}")),
            Err(e) => Err(e),
        }
    })
    .await
}

/// A namespace with a listener on 127.0.0.1:8080 and one accepted connection:
/// `(listener, client, accepted end)`.
async fn connection() -> (TcpListener, TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:8080").await.expect("bind");
    let (c, a) = tokio::join!(TcpStream::connect("127.0.0.1:8080"), listener.accept());
    (listener, c.expect("connect"), a.expect("accept").0)
}

#[tokio::test]
async fn the_table_shows_listen_estab_close_wait_and_time_wait_as_they_occur() {
    // Linux (ss -tan): LISTEN for the listener, ESTAB for both ends, CLOSE-WAIT for the end
    // whose peer closed, and once that end closes too, TIME-WAIT for the end that closed first
    // (the other end is gone).
    let ns = Netns::new();
    bounded(
        "states in ss",
        ns.clone().scope(async {
            let (listener, client, mut accepted) = connection().await;
            let (c, s) = (
                client.local_addr().expect("local_addr"),
                accepted.local_addr().expect("local_addr"),
            );
            let t = ns.sockets();
            assert_eq!(t.len(), 3, "{t}");
            assert_eq!(t.sockets[0].state, TcpState::Listen, "listeners first\n{t}");
            assert_eq!(t.sockets[0].local, "127.0.0.1:8080".parse().unwrap());
            assert_eq!(row(&t, c, s).unwrap().state, TcpState::Established);
            assert_eq!(row(&t, s, c).unwrap().state, TcpState::Established);
            assert_ne!(row(&t, c, s).unwrap().inode, row(&t, s, c).unwrap().inode);

            drop(client);
            let r = wait_row(&ns, "CLOSE-WAIT", s, c, |r| r.state == TcpState::CloseWait).await;
            assert_eq!(
                r.recv_q, 1,
                "the unread FIN counts, as Linux's rcv_nxt - copied_seq"
            );
            let mut buf = [0u8; 8];
            assert_eq!(accepted.read(&mut buf).await.expect("read EOF"), 0);
            let r = row(&ns.sockets(), s, c).unwrap();
            assert_eq!((r.state, r.recv_q), (TcpState::CloseWait, 0));

            drop(accepted);
            let r = wait_row(&ns, "TIME-WAIT", c, s, |r| r.state == TcpState::TimeWait).await;
            assert_eq!((r.recv_q, r.send_q, r.inode), (0, 0, 0), "{r:?}");
            let timer = r.timer.expect("timewait timer");
            assert_eq!(timer.kind, TimerKind::TimeWait);
            assert!(timer.expires > Duration::from_secs(50), "{timer}");
            let t = ns.sockets();
            assert!(t.find(s, c).is_none(), "the server end is gone\n{t}");
            assert_eq!(t.len(), 2, "{t}");
            drop(listener);
        }),
    )
    .await;
}

#[tokio::test]
async fn recv_q_and_send_q_are_unread_bytes_and_pending_accepts() {
    // Linux (ss -tan): 1000 bytes the peer does not read are its Recv-Q; a listener's Recv-Q is
    // the connections waiting in its accept queue and its Send-Q the backlog (tokio's 1024,
    // within somaxconn 4096).
    let ns = Netns::new();
    bounded(
        "queues in ss",
        ns.clone().scope(async {
            let (listener, mut client, accepted) = connection().await;
            let (c, s) = (
                client.local_addr().expect("local_addr"),
                accepted.local_addr().expect("local_addr"),
            );
            client.write_all(&[1u8; 1000]).await.expect("write");
            let r = wait_row(&ns, "1000 bytes unread", s, c, |r| r.recv_q == 1000).await;
            assert_eq!(r.send_q, 0);
            wait_row(&ns, "all acknowledged", c, s, |r| r.send_q == 0).await;

            let waiting = [
                TcpStream::connect("127.0.0.1:8080").await.expect("connect"),
                TcpStream::connect("127.0.0.1:8080").await.expect("connect"),
            ];
            let t = ns.sockets();
            let l = &t.sockets[0];
            assert_eq!(
                (l.state, l.recv_q, l.send_q),
                (TcpState::Listen, 2, 1024),
                "{t}"
            );
            assert_eq!(l.peer, "0.0.0.0:0".parse().unwrap());
            drop((listener, waiting, accepted));
        }),
    )
    .await;
}

#[tokio::test]
async fn the_table_prints_as_ss_tan() {
    // Linux: `ss -tan` prints a header and one row per socket, columns as wide as their widest
    // cell, addresses right-aligned before their port, state names as ss spells them.
    let ns = Netns::new();
    bounded(
        "ss text",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:8080").await.expect("bind");
            let socket = TcpSocket::new_v4().expect("socket");
            socket
                .bind("127.0.0.1:40000".parse().unwrap())
                .expect("bind");
            let (c, a) = tokio::join!(
                socket.connect("127.0.0.1:8080".parse().unwrap()),
                listener.accept()
            );
            let (mut client, accepted) = (c.expect("connect"), a.expect("accept").0);
            client.write_all(&[0u8; 1000]).await.expect("write");
            wait_row(
                &ns,
                "data queued",
                accepted.local_addr().unwrap(),
                client.local_addr().unwrap(),
                |r| r.recv_q == 1000,
            )
            .await;
            // The receiver's delayed ACK (40 ms) empties the sender's Send-Q.
            wait_row(
                &ns,
                "data acknowledged",
                client.local_addr().unwrap(),
                accepted.local_addr().unwrap(),
                |r| r.send_q == 0,
            )
            .await;
            // `ss -tan`: the TCP rows, without the Netid column.
            let text = ns.sockets().only(Netid::Tcp).to_string();
            assert_eq!(
                text,
                "\
State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process
LISTEN 0      1024       127.0.0.1:8080       0.0.0.0:*
ESTAB  1000   0          127.0.0.1:8080     127.0.0.1:40000
ESTAB  0      0          127.0.0.1:40000    127.0.0.1:8080",
                "\n{text}"
            );
            // Read everything (closing with unread data would reset), the client closes first.
            let mut accepted = accepted;
            let mut buf = vec![0u8; 2000];
            accepted.read_exact(&mut buf[..1000]).await.expect("read");
            drop(client);
            assert_eq!(accepted.read(&mut buf).await.expect("EOF"), 0);
            drop(accepted);
            let text = format!("{:#}", ns.sockets().only(Netid::Tcp));
            let last = text.lines().last().expect("a row");
            assert!(
                last.starts_with("TIME-WAIT 0      0          127.0.0.1:40000    127.0.0.1:8080")
                    && last.contains(" timer:(timewait,"),
                "ss -tano\n{text}"
            );
        }),
    )
    .await;
}

#[tokio::test]
async fn time_wait_entries_are_counted_by_sockstat_and_netstat() {
    // Linux: /proc/net/sockstat's tw counts TIME_WAIT entries (not inuse, not alloc), netstat -s
    // counts connections that entered TIME_WAIT (TcpExt TW).
    let ns = Netns::new();
    bounded(
        "sockstat tw",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            for _ in 0..3 {
                let (c, a) = tokio::join!(TcpStream::connect(addr), listener.accept());
                let (c, mut a) = (c.expect("connect"), a.expect("accept").0);
                drop(c);
                let mut buf = [0u8; 1];
                assert_eq!(a.read(&mut buf).await.expect("EOF"), 0);
                drop(a);
            }
            let s = wait_until("three TIME_WAIT entries", Duration::from_secs(10), || {
                let s = ns.sockstat();
                if s.tw == 3 {
                    Ok(s)
                } else {
                    Err(s.to_string())
                }
            })
            .await;
            assert_eq!((s.inuse, s.alloc, s.orphan, s.mem), (1, 1, 0, 0), "{s}");
            assert!(s.to_string().contains("tw 3"), "{s}");
            let tcp = ns.tcp_stats();
            assert_eq!(tcp.tw, 3, "{tcp}");
            assert!(
                tcp.to_string()
                    .contains("3 TCP sockets finished time wait in fast timer"),
                "{tcp}"
            );
            assert_eq!(ns.sockets().in_state(TcpState::TimeWait).count(), 3);
        }),
    )
    .await;
}

/// Opens and closes (client first) one connection to `addr` from an ephemeral port.
async fn connect_and_close_first(listener: &TcpListener, addr: SocketAddr) -> SocketAddr {
    let (c, a) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (c, mut a) = (c.expect("connect"), a.expect("accept").0);
    let local = c.local_addr().expect("local_addr");
    drop(c);
    let mut buf = [0u8; 1];
    assert_eq!(a.read(&mut buf).await.expect("EOF"), 0);
    drop(a);
    local
}

#[tokio::test]
async fn tcp_tw_reuse_decides_whether_connect_takes_a_time_wait_port_over() {
    // Linux: with every port of ip_local_port_range in TIME_WAIT towards the server, connect()
    // fails with EADDRNOTAVAIL under tcp_tw_reuse=0; under the default 2 ("loopback only") it
    // takes a TIME_WAIT 4-tuple over (Linux after tcp_tw_reuse_delay, 1 s; the model at once).
    let ns = Netns::new();
    ns.set_sysctl(|s| {
        s.ip_local_port_range = (40000, 40001);
        s.tcp_tw_reuse = 0;
    })
    .expect("set_sysctl");
    assert_eq!(
        Netns::new().sysctl().tcp_tw_reuse,
        2,
        "the kernel's default"
    );
    bounded(
        "tcp_tw_reuse",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:8080").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            for _ in 0..2 {
                connect_and_close_first(&listener, addr).await;
            }
            assert_eq!(ns.sockets().in_state(TcpState::TimeWait).count(), 2);
            let r = TcpStream::connect(addr).await;
            assert_eq!(
                done(&r),
                err(ErrorKind::AddrNotAvailable, errno::EADDRNOTAVAIL),
                "tcp_tw_reuse=0"
            );

            ns.set_sysctl(|s| s.tcp_tw_reuse = 2).expect("set_sysctl");
            let port = connect_and_close_first(&listener, addr).await.port();
            assert!((40000..=40001).contains(&port), "{port}");
            assert_eq!(ns.tcp_stats().tw_recycled, 1);
            assert_eq!(ns.sockstat().tw, 2, "the new connection left its own entry");
        }),
    )
    .await;
}

#[tokio::test]
async fn a_fixed_bound_port_reconnects_over_its_time_wait_entry_whatever_tcp_tw_reuse_says() {
    // Linux (checked on 6.18): bind(SO_REUSEADDR) + connect from the port of a TIME_WAIT entry
    // left by the same kind of socket succeeds with tcp_tw_reuse 0 and 2 alike: a bound port
    // goes through __inet_check_established without twp, where timestamps suffice. A bind
    // without SO_REUSEADDR conflicts with the entry: EADDRINUSE.
    let ns = Netns::new();
    bounded(
        "fixed source port",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:8080").await.expect("bind");
            let from: SocketAddr = "127.0.0.1:45000".parse().unwrap();
            let to: SocketAddr = "127.0.0.1:8080".parse().unwrap();
            for reuse in [0, 2, 0] {
                ns.set_sysctl(|s| s.tcp_tw_reuse = reuse)
                    .expect("set_sysctl");
                let socket = TcpSocket::new_v4().expect("socket");
                socket.set_reuseaddr(true).expect("SO_REUSEADDR");
                socket
                    .bind(from)
                    .expect("bind over TIME_WAIT with SO_REUSEADDR");
                let (c, a) = tokio::join!(socket.connect(to), listener.accept());
                let (c, mut a) = (
                    c.unwrap_or_else(|e| panic!("connect with tcp_tw_reuse={reuse}: {e}")),
                    a.expect("accept").0,
                );
                assert_eq!(c.local_addr().unwrap(), from);
                drop(c);
                let mut buf = [0u8; 1];
                assert_eq!(a.read(&mut buf).await.expect("EOF"), 0);
                drop(a);
                wait_row(&ns, "TIME-WAIT", from, to, |r| {
                    r.state == TcpState::TimeWait
                })
                .await;
            }
            let socket = TcpSocket::new_v4().expect("socket");
            let r = socket.bind(from);
            assert_eq!(done(&r), err(ErrorKind::AddrInUse, errno::EADDRINUSE));
            assert_eq!(ns.tcp_stats().tw_recycled, 2);
        }),
    )
    .await;
}

#[tokio::test]
async fn a_restarted_server_binds_over_its_time_wait_entries_with_so_reuseaddr_only() {
    // Linux: when the server closes first, TIME_WAIT entries hold its port; TcpListener::bind
    // (SO_REUSEADDR) binds it again, a socket without SO_REUSEADDR gets EADDRINUSE. A SYN for a
    // 4-tuple in TIME_WAIT reaches the new listener.
    let ns = Netns::new();
    bounded(
        "server restart",
        ns.clone().scope(async {
            let (listener, mut client, accepted) = connection().await;
            let (c, s) = (client.local_addr().unwrap(), accepted.local_addr().unwrap());
            drop(accepted);
            let mut buf = [0u8; 1];
            assert_eq!(client.read(&mut buf).await.expect("EOF"), 0);
            drop(client);
            drop(listener);
            wait_row(&ns, "server-side TIME-WAIT", s, c, |r| {
                r.state == TcpState::TimeWait
            })
            .await;

            let plain = TcpSocket::new_v4().expect("socket");
            assert_eq!(
                done(&plain.bind(s)),
                err(ErrorKind::AddrInUse, errno::EADDRINUSE)
            );
            let listener = TcpListener::bind(s)
                .await
                .expect("rebind with SO_REUSEADDR");

            let socket = TcpSocket::new_v4().expect("socket");
            socket.bind(c).expect("the client's old port is free");
            let (again, a) = tokio::join!(socket.connect(s), listener.accept());
            let (again, a) = (again.expect("reopen the 4-tuple"), a.expect("accept").0);
            assert_eq!(a.peer_addr().unwrap(), c);
            let t = ns.sockets();
            assert_eq!(row(&t, s, c).unwrap().state, TcpState::Established, "{t}");
            drop((again, a));
        }),
    )
    .await;
}

#[tokio::test]
async fn many_short_connections_keep_finding_ports_through_time_wait() {
    // Linux: with tcp_tw_reuse=2, a client that closes first can open far more connections to
    // one server than there are ephemeral ports: TIME_WAIT 4-tuples are taken over.
    let ns = Netns::new();
    ns.set_sysctl(|s| s.ip_local_port_range = (40000, 40099))
        .expect("set_sysctl");
    bounded(
        "port reuse",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:8080").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            for _ in 0..1000 {
                connect_and_close_first(&listener, addr).await;
            }
            let s = ns.sockstat();
            assert!(s.tw <= 100, "at most one entry per port: {s}");
            assert!(ns.tcp_stats().tw_recycled >= 900, "{}", ns.tcp_stats());
        }),
    )
    .await;
}
