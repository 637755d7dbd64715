// Where a connect goes: port 0, the unspecified address, other 127/8 addresses, IPv4-mapped
// IPv6 and dual-stack listeners.

use std::net::{SocketAddr, SocketAddrV6};

/// The IPv4-mapped IPv6 form of `127.0.0.1:port`.
fn mapped(port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
        port,
        0,
        0,
    ))
}

/// connect() to port 0 of 127.0.0.1 and of ::1.
pub async fn connect_to_port_0() -> Trace {
    vec![
        ("127.0.0.1:0", done(&TcpStream::connect("127.0.0.1:0").await)),
        ("[::1]:0", done(&TcpStream::connect("[::1]:0").await)),
    ]
}

/// A connect to the unspecified address reaches the local host: 0.0.0.0 means 127.0.0.1 and
/// :: means ::1.
pub async fn connect_to_unspecified() -> Trace {
    let l4 = TcpListener::bind("127.0.0.1:0").await.expect("bind v4");
    let p4 = l4.local_addr().expect("local_addr").port();
    let l6 = TcpListener::bind("[::1]:0").await.expect("bind v6");
    let p6 = l6.local_addr().expect("local_addr").port();
    let (c4, a4) = tokio::join!(TcpStream::connect(("0.0.0.0", p4)), l4.accept());
    let (c6, a6) = tokio::join!(TcpStream::connect(("::", p6)), l6.accept());
    let (c4, c6) = (c4.expect("connect 0.0.0.0"), c6.expect("connect ::"));
    let (s4, s6) = (a4.expect("accept v4").0, a6.expect("accept v6").0);
    vec![
        ("v4 client peer", res(&c4.peer_addr().map(|a| a.ip()))),
        ("v4 client local ip", res(&c4.local_addr().map(|a| a.ip()))),
        ("v4 accepted local ip", res(&s4.local_addr().map(|a| a.ip()))),
        ("v6 client peer", res(&c6.peer_addr().map(|a| a.ip()))),
        ("v6 client local ip", res(&c6.local_addr().map(|a| a.ip()))),
        ("v6 accepted local ip", res(&s6.local_addr().map(|a| a.ip()))),
    ]
}

/// A connect to 0.0.0.0 with nobody listening on the port is refused.
pub async fn connect_to_unspecified_without_listener() -> Trace {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("local_addr").port()
    };
    vec![(
        "connect 0.0.0.0",
        done(&TcpStream::connect(("0.0.0.0", port)).await),
    )]
}

/// A listener on 0.0.0.0 takes a connect to any 127/8 address; the accepted socket's local
/// address is the one dialled, the client's is 127.0.0.1.
pub async fn wildcard_listener_takes_127_1_2_3() -> Trace {
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind 0.0.0.0:0");
    let port = listener.local_addr().expect("local_addr").port();
    let (c, a) = tokio::join!(TcpStream::connect(("127.1.2.3", port)), listener.accept());
    let mut c = c.expect("connect");
    let (mut s, peer) = a.expect("accept");
    c.write_all(b"to 127.1.2.3").await.expect("write_all");
    c.shutdown().await.expect("shutdown");
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.expect("read_to_end");
    vec![
        ("client local ip", res(&c.local_addr().map(|a| a.ip()))),
        ("client peer ip", res(&c.peer_addr().map(|a| a.ip()))),
        ("accepted local ip", res(&s.local_addr().map(|a| a.ip()))),
        ("accepted peer is the client", ok(Some(peer) == c.local_addr().ok())),
        ("server got", ok(String::from_utf8_lossy(&got).into_owned())),
    ]
}

/// A dual-stack listener on [::] reached over IPv4 and over IPv4-mapped IPv6: the accepted
/// sockets see IPv4-mapped addresses, each client the form it dialled.
pub async fn dual_stack_listener() -> Trace {
    let listener = TcpListener::bind("[::]:0").await.expect("bind [::]:0");
    let port = listener.local_addr().expect("local_addr").port();
    let (c4, a4) = tokio::join!(TcpStream::connect(("127.0.0.1", port)), listener.accept());
    let c4 = c4.expect("connect 127.0.0.1");
    let (s4, p4) = a4.expect("accept");
    let (cm, am) = tokio::join!(TcpStream::connect(mapped(port)), listener.accept());
    let cm = cm.expect("connect [::ffff:127.0.0.1]");
    let (sm, pm) = am.expect("accept");
    let (c6, a6) = tokio::join!(TcpStream::connect(("::1", port)), listener.accept());
    let c6 = c6.expect("connect [::1]");
    let (s6, p6) = a6.expect("accept");
    vec![
        ("v4 client local ip", res(&c4.local_addr().map(|a| a.ip()))),
        ("v4 client peer ip", res(&c4.peer_addr().map(|a| a.ip()))),
        ("v4 accepted peer ip", ok(p4.ip())),
        (
            "v4 accepted peer port is the client's",
            ok(Some(p4.port()) == c4.local_addr().ok().map(|a| a.port())),
        ),
        ("v4 accepted local", res(&s4.local_addr().map(|a| (a.ip(), a.port() == port)))),
        ("v4 accepted peer_addr", res(&s4.peer_addr().map(|a| a.ip()))),
        ("mapped client local ip", res(&cm.local_addr().map(|a| a.ip()))),
        ("mapped client peer", res(&cm.peer_addr().map(|a| (a.ip(), a.port() == port)))),
        ("mapped accepted peer ip", ok(pm.ip())),
        ("mapped accepted local", res(&sm.local_addr().map(|a| (a.ip(), a.port() == port)))),
        ("v6 client local ip", res(&c6.local_addr().map(|a| a.ip()))),
        ("v6 accepted peer ip", ok(p6.ip())),
        ("v6 accepted local ip", res(&s6.local_addr().map(|a| a.ip()))),
    ]
}

/// A listener on 127.0.0.1 reached through the IPv4-mapped address by an IPv6 socket.
pub async fn mapped_client_to_v4_listener() -> Trace {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    let (c, a) = tokio::join!(TcpStream::connect(mapped(port)), listener.accept());
    let mut c = c.expect("connect [::ffff:127.0.0.1]");
    let (mut s, peer) = a.expect("accept");
    c.write_all(b"mapped").await.expect("write_all");
    c.shutdown().await.expect("shutdown");
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.expect("read_to_end");
    vec![
        ("client local ip", res(&c.local_addr().map(|a| a.ip()))),
        ("client peer", res(&c.peer_addr().map(|a| (a.ip(), a.port() == port)))),
        ("accepted peer ip", ok(peer.ip())),
        (
            "accepted peer port is the client's",
            ok(Some(peer.port()) == c.local_addr().ok().map(|a| a.port())),
        ),
        ("server got", ok(String::from_utf8_lossy(&got).into_owned())),
    ]
}

/// A listener on ::1 is not reached by a connect to 127.0.0.1 on its port, nor one on
/// 127.0.0.1 by a connect to ::1.
pub async fn families_do_not_cross() -> Trace {
    let l6 = TcpListener::bind("[::1]:0").await.expect("bind [::1]:0");
    let p6 = l6.local_addr().expect("local_addr").port();
    let l4 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let p4 = l4.local_addr().expect("local_addr").port();
    let v4_to_v6 = TcpStream::connect(("127.0.0.1", p6)).await;
    let v6_to_v4 = TcpStream::connect(("::1", p4)).await;
    vec![
        ("127.0.0.1 to the ::1 listener's port", done(&v4_to_v6)),
        ("::1 to the 127.0.0.1 listener's port", done(&v6_to_v4)),
    ]
}

/// TcpStream::connect with several addresses tries each in turn: the first refused, the
/// second taken.
pub async fn connect_tries_each_address() -> Trace {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("local_addr")
    };
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let open = l.local_addr().expect("local_addr");
    let c = TcpStream::connect(&[closed, open][..]).await;
    let all_closed = TcpStream::connect(&[closed, closed][..]).await;
    vec![
        ("connected to the second", res(&c.map(|c| c.peer_addr().ok() == Some(open)))),
        ("all refused", done(&all_closed)),
    ]
}

/// An IPv6 socket listening on the v4-mapped ::ffff:127.0.0.1: reached over IPv4 and over the
/// mapped address.
pub async fn mapped_listener() -> Trace {
    let ls = TcpSocket::new_v6().expect("new_v6");
    ls.bind(mapped(0)).expect("bind [::ffff:127.0.0.1]:0");
    let l = ls.listen(8).expect("listen");
    let la = l.local_addr().expect("local_addr");
    let port = la.port();
    let (c4, a4) = tokio::join!(TcpStream::connect(("127.0.0.1", port)), l.accept());
    let c4 = c4.expect("connect 127.0.0.1");
    let (s4, p4) = a4.expect("accept");
    let (cm, am) = tokio::join!(TcpStream::connect(mapped(port)), l.accept());
    let cm = cm.expect("connect mapped");
    let (_sm, pm) = am.expect("accept");
    let v6 = TcpStream::connect(("::1", port)).await.map(|_| ());
    vec![
        ("listener ip", ok(la.ip())),
        ("v4 client peer ip", res(&c4.peer_addr().map(|a| a.ip()))),
        ("v4 accepted peer ip", ok(p4.ip())),
        ("v4 accepted local ip", res(&s4.local_addr().map(|a| a.ip()))),
        ("mapped client local ip", res(&cm.local_addr().map(|a| a.ip()))),
        ("mapped accepted peer ip", ok(pm.ip())),
        ("connect [::1]", done(&v6)),
    ]
}

/// An IPv6 socket bound to ::1 connecting to a v4-mapped address, and one bound to the v4-mapped
/// address connecting to ::1.
pub async fn bound_family_mismatch() -> Trace {
    let l4 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let p4 = l4.local_addr().expect("local_addr").port();
    let l6 = TcpListener::bind("[::1]:0").await.expect("bind");
    let p6 = l6.local_addr().expect("local_addr").port();
    let a = TcpSocket::new_v6().expect("new_v6");
    a.bind("[::1]:0".parse().unwrap()).expect("bind");
    let a = tokio::time::timeout(std::time::Duration::from_secs(5), a.connect(mapped(p4)))
        .await
        .expect("returns");
    let b = TcpSocket::new_v6().expect("new_v6");
    b.bind(mapped(0)).expect("bind");
    let b = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        b.connect(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, p6))),
    )
    .await
    .expect("returns");
    vec![
        ("bound to ::1, connect ::ffff:127.0.0.1", done(&a)),
        ("bound to ::ffff:127.0.0.1, connect ::1", done(&b)),
    ]
}

/// A connect to ::1 with a flow label and a scope id: both ends report neither.
pub async fn v6_flowinfo_and_scope_id() -> Trace {
    let l = TcpListener::bind("[::1]:0").await.expect("bind");
    let port = l.local_addr().expect("local_addr").port();
    let dst = SocketAddr::V6(SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, port, 7, 3));
    let (c, a) = tokio::join!(TcpStream::connect(dst), l.accept());
    let c = c.expect("connect");
    let (_s, peer) = a.expect("accept");
    let v6 = |a: SocketAddr| match a {
        SocketAddr::V6(v) => Some((v.flowinfo(), v.scope_id())),
        SocketAddr::V4(_) => None,
    };
    vec![
        ("client peer (flowinfo, scope_id)", res(&c.peer_addr().map(v6))),
        ("client local (flowinfo, scope_id)", res(&c.local_addr().map(v6))),
        ("accepted peer (flowinfo, scope_id)", ok(v6(peer))),
    ]
}

/// A mapped listener and an IPv4 one share the IPv4 port space; a listener on ::1 takes no
/// IPv4 connection; a connect to ::ffff:0.0.0.0 reaches 127.0.0.1.
pub async fn mapped_port_space() -> Trace {
    let l4 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let p4 = l4.local_addr().expect("local_addr").port();
    let m = TcpSocket::new_v6().expect("new_v6");
    let mapped_on_v4_port = m.bind(mapped(p4));
    let ls = TcpSocket::new_v6().expect("new_v6");
    ls.bind(mapped(0)).expect("bind mapped");
    let pm = ls.local_addr().expect("local_addr").port();
    let _lm = ls.listen(8).expect("listen");
    let v4_on_mapped_port = TcpListener::bind(("127.0.0.1", pm)).await.map(|_| ());
    let any_mapped = SocketAddr::V6(SocketAddrV6::new(
        std::net::Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(),
        p4,
        0,
        0,
    ));
    let (c, a) = tokio::join!(TcpStream::connect(any_mapped), l4.accept());
    let c = c.expect("connect ::ffff:0.0.0.0");
    let (_s, _) = a.expect("accept");
    vec![
        ("bind ::ffff:127.0.0.1 on the IPv4 listener's port", done(&mapped_on_v4_port)),
        ("bind 127.0.0.1 on the mapped listener's port", done(&v4_on_mapped_port)),
        ("::ffff:0.0.0.0 client peer ip", res(&c.peer_addr().map(|a| a.ip()))),
        ("::ffff:0.0.0.0 client local ip", res(&c.local_addr().map(|a| a.ip()))),
    ]
}
