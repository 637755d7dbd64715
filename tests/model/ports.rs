//! Ports and the socket options that live in the port tables and the address layer, each
//! observed the same way over the kernel's loopback (tokio::net), over lonet's model and over
//! lonet's kernel switch, and checked against what Linux does:
//!
//! - ephemeral ports: `connect()` prefers the range's low parity and walks forward per
//!   destination (`__inet_hash_connect`); `bind(0)` prefers the other parity, the lower half
//!   first with `SO_REUSEADDR` (`inet_csk_find_open_port`); a namespace's `net_secret`
//!   repeats a run's ports;
//! - `SO_REUSEPORT` groups; `SO_BINDTODEVICE`; `IP_TOS` / `IPV6_TCLASS` (in captures);
//!   `set_zero_linger` on `TcpSocket`; `Ready::ERROR`;
//! - sysctl bounds: what the kernel refuses is `InvalidInput`, what it accepts does not hang.

use crate::common::*;
use std::io::ErrorKind::*;
use std::net::SocketAddr;

/// `ENODEV`.
const ENODEV: i32 = 19;

/// The scenarios, instantiated once per stack.
macro_rules! scenarios {
    () => {
        use std::future::poll_fn;
        use std::task::Poll;
        use tokio::io::{AsyncReadExt, Interest};

        /// `connect()`s to one listener: whether every source port had the range's low
        /// parity (even), and how many steps from one port to the next were the short forward
        /// walk of `table_perturb` (2 to 16, or more when ports were skipped: at most a few).
        pub async fn connect_ports(n: usize) -> (bool, usize) {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let mut ports = Vec::new();
            let mut keep = Vec::new();
            for _ in 0..n {
                let c = TcpStream::connect(addr).await.unwrap();
                ports.push(c.local_addr().unwrap().port());
                keep.push((c, l.accept().await.unwrap().0));
            }
            let even = ports.iter().all(|p| p % 2 == 0);
            let short = ports
                .windows(2)
                .filter(|w| {
                    let d = (u32::from(w[1]) + 28232 - u32::from(w[0])) % 28232;
                    (2..=16).contains(&d)
                })
                .count();
            (even, short)
        }

        /// `bind(0)`: whether every port was odd; and whether the ports of sockets with
        /// `SO_REUSEADDR` were all in the lower half of the range (32768..46884).
        pub async fn bind_ports(n: usize) -> (bool, bool) {
            let mut odd = true;
            let mut lower = true;
            let mut keep = Vec::new();
            for i in 0..n {
                let s = TcpSocket::new_v4().unwrap();
                let reuse = i % 2 == 0;
                s.set_reuseaddr(reuse).unwrap();
                s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
                let p = s.local_addr().unwrap().port();
                odd &= p % 2 == 1;
                if reuse {
                    lower &= (32768..46884).contains(&p);
                }
                keep.push(s);
            }
            (odd, lower)
        }

        /// Accepts `n` connections from any of `ls`: how many each listener took.
        async fn accept_spread(ls: &[&TcpListener], n: usize) -> Vec<usize> {
            let mut counts = vec![0; ls.len()];
            for _ in 0..n {
                let i = poll_fn(|cx| {
                    for (i, l) in ls.iter().enumerate() {
                        if let Poll::Ready(r) = l.poll_accept(cx) {
                            r.unwrap();
                            return Poll::Ready(i);
                        }
                    }
                    Poll::Pending
                })
                .await;
                counts[i] += 1;
            }
            counts
        }

        fn reuseport_socket() -> TcpSocket {
            let s = TcpSocket::new_v4().unwrap();
            s.set_reuseport(true).unwrap();
            s
        }

        /// A `SO_REUSEPORT` group of two listeners: what a third socket without the option
        /// gets binding the port; whether both members took some of 64 connections; after
        /// one member closed, how many of 16 more the other took.
        pub async fn reuseport_group() -> (Res, bool, usize, bool) {
            let a = reuseport_socket();
            a.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = a.local_addr().unwrap();
            let b = reuseport_socket();
            b.bind(addr).unwrap();
            let opt = b.reuseport().unwrap();
            let c = TcpSocket::new_v4().unwrap();
            let third = done(&c.bind(addr));
            let la = a.listen(128).unwrap();
            let lb = b.listen(128).unwrap();
            let mut clients = Vec::new();
            for _ in 0..64 {
                clients.push(TcpStream::connect(addr).await.unwrap());
            }
            let counts = accept_spread(&[&la, &lb], 64).await;
            drop(la);
            for _ in 0..16 {
                clients.push(TcpStream::connect(addr).await.unwrap());
            }
            let after = accept_spread(&[&lb], 16).await;
            (third, counts.iter().all(|&n| n > 0), after[0], opt)
        }

        /// `SO_BINDTODEVICE`: to `lo`, to a device that does not exist, and unbinding; then
        /// a connection from the socket bound to `lo`.
        pub async fn bind_device() -> Trace {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let s = TcpSocket::new_v4().unwrap();
            let mut t: Trace = vec![("device before", res(&s.device()))];
            t.push(("bind lo", res(&s.bind_device(Some(b"lo")))));
            t.push(("device", res(&s.device())));
            let r = s.bind_device(Some(b"nosuchdev0"));
            t.push((
                "bind nosuchdev0",
                ok(r.err().and_then(|e| e.raw_os_error())),
            ));
            t.push(("unbind", res(&s.bind_device(None))));
            t.push(("device unbound", res(&s.device())));
            t.push(("bind lo again", res(&s.bind_device(Some(b"lo")))));
            let c = s.connect(addr).await;
            t.push(("connect", done(&c)));
            t
        }

        /// `IP_TOS` and `IPV6_TCLASS` as set and read back (TCP keeps the ECN bits).
        pub async fn tos_values() -> Trace {
            let s = TcpSocket::new_v4().unwrap();
            let mut t: Trace = vec![("tos default", res(&s.tos_v4()))];
            t.push(("set 0xb8", res(&s.set_tos_v4(0xb8))));
            t.push(("tos", res(&s.tos_v4())));
            t.push(("set 0xff", res(&s.set_tos_v4(0xff))));
            t.push(("tos ecn bits", res(&s.tos_v4())));
            let s6 = TcpSocket::new_v6().unwrap();
            t.push(("tclass default", res(&s6.tclass_v6())));
            t.push(("set tclass 0x29", res(&s6.set_tclass_v6(0x29))));
            t.push(("tclass", res(&s6.tclass_v6())));
            t.push(("set tclass 256", res(&s6.set_tclass_v6(256))));
            t
        }

        /// `set_zero_linger` on a `TcpSocket`: the value read back, and what the peer reads
        /// once the connection is dropped (a reset, not EOF).
        pub async fn zero_linger() -> Trace {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let s = TcpSocket::new_v4().unwrap();
            let mut t: Trace = vec![("set_zero_linger", res(&s.set_zero_linger()))];
            t.push(("linger", res(&s.linger())));
            let c = s.connect(l.local_addr().unwrap()).await.unwrap();
            let (mut a, _) = l.accept().await.unwrap();
            drop(c);
            let mut buf = [0u8; 8];
            t.push(("peer read", res(&a.read(&mut buf).await)));
            t
        }

        /// `Ready::ERROR`: a connection reset by its peer is ready for `Interest::ERROR`
        /// (`EPOLLERR`) until the error is taken.
        pub async fn ready_error() -> Trace {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (a, _) = l.accept().await.unwrap();
            a.set_zero_linger().unwrap();
            drop(a);
            let r = c.ready(Interest::ERROR).await.map(|r| r.is_error());
            let mut t: Trace = vec![("ready(ERROR)", res(&r))];
            let e = c.take_error().unwrap().map(|e| e.raw_os_error());
            t.push(("take_error", ok(e)));
            t
        }
    };
}

three_stacks! {
    scenarios!();
}

// ---------------------------------------------------------------------------------------------
// Ephemeral ports

#[tokio::test]
async fn connect_takes_even_ports_walking_forward_per_destination() {
    // Linux (__inet_hash_connect): the offset of a destination is hashed, then perturbed by
    // table_perturb, which each pick moves on by max(i, 2 * random(8)) + 2: even ports, each a
    // short step after the last. (One longer step is allowed: the 10 s epoch may roll over.)
    let (even, short) = bounded("kernel", os::within(os::connect_ports(12))).await;
    assert!(
        even && short >= 10,
        "kernel: even {even}, short steps {short}"
    );
    let (even, short) = bounded("lonet", lo::within(lo::connect_ports(12))).await;
    assert!(
        even && short >= 10,
        "lonet: even {even}, short steps {short}"
    );
    let (even, short) = bounded("switch", kswitch::within(kswitch::connect_ports(12))).await;
    assert!(
        even && short >= 10,
        "switch: even {even}, short steps {short}"
    );
}

#[tokio::test]
async fn bind_0_takes_odd_ports_and_the_lower_half_first_with_so_reuseaddr() {
    // Linux (inet_csk_find_open_port): odd ports first (the parity connect avoids); with
    // SO_REUSEADDR the lower half of the range (32768..46884) first.
    differential!(bind_ports(16) => (true, true));
}

#[test]
fn the_same_net_secret_repeats_the_ports_and_another_does_not() {
    let run = |secret: u128| {
        let ns = lonet::Netns::new();
        ns.set_net_secret(secret);
        assert_eq!(ns.net_secret(), secret);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(ns.clone().scope(async {
            let l = lonet::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut ports = vec![l.local_addr().unwrap().port()];
            let mut keep = Vec::new();
            for _ in 0..5 {
                let c = lonet::net::TcpStream::connect(l.local_addr().unwrap())
                    .await
                    .unwrap();
                ports.push(c.local_addr().unwrap().port());
                keep.push(c);
            }
            ports
        }))
    };
    let a = run(0x1234_5678_9abc_def0);
    assert_eq!(a, run(0x1234_5678_9abc_def0), "same secret, same ports");
    assert_ne!(a, run(7), "another secret, other ports");
    // A new namespace draws a secret of its own.
    assert_ne!(
        lonet::Netns::new().net_secret(),
        lonet::Netns::new().net_secret()
    );
}

// ---------------------------------------------------------------------------------------------
// Socket options

#[tokio::test]
async fn so_reuseport_listeners_share_a_port_and_connections_spread_over_the_group() {
    // Linux: sockets that all set SO_REUSEPORT bind one port, one without it gets EADDRINUSE;
    // reuseport_select_sock spreads connections by the 4-tuple's hash (64 connections reach
    // both); a closed listener leaves the group, so the other takes every new connection.
    differential!(reuseport_group() => (err(AddrInUse, errno::EADDRINUSE), true, 16, true));
}

#[tokio::test]
async fn bind_device_takes_lo_refuses_other_devices_and_unbinds() {
    // Linux (SO_BINDTODEVICE): "lo" exists in the namespace, another name is ENODEV, None
    // unbinds (device() is None again).
    let lo = ok(Some(b"lo".to_vec()));
    differential!(bind_device() => vec![
        ("device before", ok(None::<Vec<u8>>)),
        ("bind lo", ok(())),
        ("device", lo.clone()),
        ("bind nosuchdev0", ok(Some(ENODEV))),
        ("unbind", ok(())),
        ("device unbound", ok(None::<Vec<u8>>)),
        ("bind lo again", ok(())),
        ("connect", ok_done()),
    ]);
}

#[tokio::test]
async fn tos_and_traffic_class_read_back_without_the_ecn_bits() {
    // Linux: for a TCP socket, __ip_sock_set_tos and IPV6_TCLASS keep the ECN bits TCP
    // manages (0 here), so 0xff reads back 0xfc; a traffic class above 255 is EINVAL.
    differential!(tos_values() => vec![
        ("tos default", ok(0u32)),
        ("set 0xb8", ok(())),
        ("tos", ok(0xb8u32)),
        ("set 0xff", ok(())),
        ("tos ecn bits", ok(0xfcu32)),
        ("tclass default", ok(0u32)),
        ("set tclass 0x29", ok(())),
        ("tclass", ok(0x28u32)),
        ("set tclass 256", err(InvalidInput, errno::EINVAL)),
    ]);
}

#[tokio::test]
async fn set_zero_linger_on_a_tcp_socket_resets_the_connection_on_drop() {
    // Linux: SO_LINGER {on, 0}: close sends RST, the peer's read fails with ECONNRESET.
    differential!(zero_linger() => vec![
        ("set_zero_linger", ok(())),
        ("linger", ok(Some(std::time::Duration::ZERO))),
        ("peer read", err(ConnectionReset, errno::ECONNRESET)),
    ]);
}

#[tokio::test]
async fn a_reset_connection_is_ready_error_until_the_error_is_taken() {
    // Linux: tcp_poll reports EPOLLERR while sk_err is set; SO_ERROR takes it (ECONNRESET).
    differential!(ready_error() => vec![
        ("ready(ERROR)", ok(true)),
        ("take_error", ok(Some(Some(errno::ECONNRESET)))),
    ]);
}

/// TOS / traffic class in the model's captures, decoded with etherparse: the client's
/// segments carry its value, the listener's SYN-ACK and the accepted connection's segments the
/// listener's (Linux copies `inet->tos` to the child).
#[tokio::test]
async fn tos_and_traffic_class_are_carried_into_captures() {
    use etherparse::{Ethernet2Header, Ipv4Header, Ipv6Header, TcpHeader};
    use lonet::net::{TcpSocket, TcpStream};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ns = lonet::Netns::new();
    bounded(
        "tos in captures",
        ns.clone().scope(async {
            for (v6, client_tos, server_tos) in [(false, 0xb8u8, 0x20u8), (true, 0x28, 0x48)] {
                let cap = ns.capture_to_memory(lonet::capture::CaptureOptions::new());
                let ls = if v6 {
                    TcpSocket::new_v6()
                } else {
                    TcpSocket::new_v4()
                }
                .unwrap();
                let cs = if v6 {
                    TcpSocket::new_v6()
                } else {
                    TcpSocket::new_v4()
                }
                .unwrap();
                if v6 {
                    ls.set_tclass_v6(server_tos.into()).unwrap();
                    cs.set_tclass_v6(client_tos.into()).unwrap();
                } else {
                    ls.set_tos_v4(server_tos.into()).unwrap();
                    cs.set_tos_v4(client_tos.into()).unwrap();
                }
                let bind: SocketAddr = if v6 { "[::1]:0" } else { "127.0.0.1:0" }.parse().unwrap();
                ls.bind(bind).unwrap();
                let l = ls.listen(8).unwrap();
                let server = l.local_addr().unwrap();
                let mut c: TcpStream = cs.connect(server).await.unwrap();
                let (mut a, _) = l.accept().await.unwrap();
                c.write_all(b"ping").await.unwrap();
                let mut buf = [0u8; 4];
                a.read_exact(&mut buf).await.unwrap();
                a.write_all(b"pong").await.unwrap();
                c.read_exact(&mut buf).await.unwrap();
                let bytes = cap.stop().unwrap();
                let mut seen = (0, 0);
                for frame in pcap_frames(&bytes) {
                    let (_, ip) = Ethernet2Header::from_slice(&frame).unwrap();
                    let (tos, tcp) = if v6 {
                        let (h, rest) = Ipv6Header::from_slice(ip).unwrap();
                        (h.traffic_class, rest)
                    } else {
                        let (h, rest) = Ipv4Header::from_slice(ip).unwrap();
                        ((h.dscp.value() << 2) | h.ecn.value(), rest)
                    };
                    let (tcp, _) = TcpHeader::from_slice(tcp).unwrap();
                    if tcp.source_port == server.port() {
                        assert_eq!(tos, server_tos, "server segment (v6 {v6})");
                        seen.1 += 1;
                    } else {
                        assert_eq!(tos, client_tos, "client segment (v6 {v6})");
                        seen.0 += 1;
                    }
                }
                assert!(seen.0 >= 3 && seen.1 >= 2, "segments seen {seen:?}");
            }
        }),
    )
    .await;
}

/// The records of a pcap file (24-byte file header, 16-byte record headers).
fn pcap_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push(bytes[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Sysctl bounds

#[test]
fn sysctl_values_beyond_the_kernels_bounds_are_invalid_input() {
    // Linux (proc_dointvec_minmax): each tcp_rmem / tcp_wmem value 1..=INT_MAX, so a 3 GiB
    // tcp_rmem[1] is EINVAL; tcp_syn_retries 1..=127; the port range's low end at least 1024.
    let ns = lonet::Netns::new();
    let bad: [fn(&mut lonet::Sysctl); 6] = [
        |s| s.tcp_rmem = [4096, 3 << 30, 3 << 30],
        |s| s.tcp_wmem = [0, 16384, 4194304],
        |s| s.tcp_syn_retries = 0,
        |s| s.tcp_syn_retries = 128,
        |s| s.ip_local_port_range = (1023, 60999),
        |s| s.ip_local_port_range = (40000, 39999),
    ];
    for f in bad {
        let e = ns.set_sysctl(f).unwrap_err();
        assert_eq!(e.kind(), InvalidInput);
    }
    assert_eq!(ns.sysctl(), lonet::Sysctl::default());
}

#[tokio::test]
async fn buffer_sysctls_the_kernel_accepts_do_not_hang_a_connection() {
    // Linux accepts each of these (6.18: every value >= 1, in any order); a connection under
    // them still moves its data.
    let settings: [fn(&mut lonet::Sysctl); 5] = [
        |s| s.tcp_rmem = [1, 1, 1],
        |s| s.tcp_wmem = [1, 1, 1],
        |s| s.tcp_rmem = [10, 5, 1],
        |s| s.tcp_rmem = [4096, i32::MAX as usize, i32::MAX as usize],
        |s| s.tcp_wmem = [4096, i32::MAX as usize, i32::MAX as usize],
    ];
    for (i, f) in settings.into_iter().enumerate() {
        let ns = lonet::Netns::new();
        ns.set_sysctl(f).unwrap();
        let echoed = bounded(
            &format!("setting {i}"),
            ns.clone().scope(async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let l = lonet::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let mut c = lonet::net::TcpStream::connect(l.local_addr().unwrap())
                    .await
                    .unwrap();
                let (mut a, _) = l.accept().await.unwrap();
                let data = pattern_vec(i as u64, 64 * 1024);
                let writer = async {
                    c.write_all(&data).await.unwrap();
                    c.shutdown().await.unwrap();
                };
                let mut got = Vec::new();
                let reader = a.read_to_end(&mut got);
                let ((), r) = tokio::join!(writer, reader);
                r.unwrap();
                got == data
            }),
        )
        .await;
        assert!(echoed, "setting {i}: the data did not arrive intact");
    }
}
