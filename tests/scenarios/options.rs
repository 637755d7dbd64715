// TcpSocket options read back, bind conflicts, fixed local ports, family mismatches.

use std::net::SocketAddr;

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// SO_SNDBUF / SO_RCVBUF: the defaults, and what is read back after a set (Linux stores
/// twice the value, at least its minimum).
pub async fn buffer_sizes() -> Trace {
    let s = TcpSocket::new_v4().expect("new_v4");
    let mut t: Trace = vec![
        ("send_buffer_size", res(&s.send_buffer_size())),
        ("recv_buffer_size", res(&s.recv_buffer_size())),
    ];
    t.push(("set_send_buffer_size(4096)", res(&s.set_send_buffer_size(4096))));
    t.push(("send_buffer_size", res(&s.send_buffer_size())));
    t.push(("set_recv_buffer_size(4096)", res(&s.set_recv_buffer_size(4096))));
    t.push(("recv_buffer_size", res(&s.recv_buffer_size())));
    t.push(("set_send_buffer_size(1)", res(&s.set_send_buffer_size(1))));
    t.push(("send_buffer_size", res(&s.send_buffer_size())));
    t.push(("set_recv_buffer_size(1)", res(&s.set_recv_buffer_size(1))));
    t.push(("recv_buffer_size", res(&s.recv_buffer_size())));
    t.push(("set_send_buffer_size(0)", res(&s.set_send_buffer_size(0))));
    t.push(("send_buffer_size", res(&s.send_buffer_size())));
    t.push(("set_recv_buffer_size(100000)", res(&s.set_recv_buffer_size(100_000))));
    t.push(("recv_buffer_size", res(&s.recv_buffer_size())));
    s.bind(v4(0)).expect("bind");
    t.push(("recv_buffer_size after bind", res(&s.recv_buffer_size())));
    t
}

/// SO_REUSEADDR / SO_REUSEPORT / TCP_NODELAY / SO_KEEPALIVE on a fresh socket, set and read back.
pub async fn flags_read_back() -> Trace {
    let s = TcpSocket::new_v4().expect("new_v4");
    vec![
        ("reuseaddr", res(&s.reuseaddr())),
        ("reuseport", res(&s.reuseport())),
        ("nodelay", res(&s.nodelay())),
        ("keepalive", res(&s.keepalive())),
        ("set_reuseaddr(true)", res(&s.set_reuseaddr(true))),
        ("reuseaddr", res(&s.reuseaddr())),
        ("set_reuseport(true)", res(&s.set_reuseport(true))),
        ("reuseport", res(&s.reuseport())),
        ("set_keepalive(true)", res(&s.set_keepalive(true))),
        ("keepalive", res(&s.keepalive())),
        ("set_reuseaddr(false)", res(&s.set_reuseaddr(false))),
        ("reuseaddr", res(&s.reuseaddr())),
        ("take_error", res(&s.take_error().map(|e| e.is_some()))),
        ("bind", res(&s.bind(v4(0)))),
        ("take_error once bound", res(&s.take_error().map(|e| e.is_some()))),
    ]
}

/// local_addr() of a socket never bound, of one bound to port 0, and of a v6 one.
pub async fn local_addr_before_and_after_bind() -> Trace {
    let s = TcpSocket::new_v4().expect("new_v4");
    let before = s.local_addr();
    s.bind(v4(0)).expect("bind");
    let after = s.local_addr().map(|a| (a.ip(), a.port() != 0));
    let s6 = TcpSocket::new_v6().expect("new_v6");
    let before6 = s6.local_addr();
    vec![
        ("unbound local_addr", res(&before)),
        ("bound local_addr", res(&after)),
        ("unbound v6 local_addr", res(&before6)),
    ]
}

/// Two sockets on one port: with SO_REUSEADDR on both, both bind while neither listens; the
/// second listen() then fails. Without it, the second bind fails.
pub async fn two_binds_one_port() -> Trace {
    let a = TcpSocket::new_v4().expect("new_v4");
    a.bind(v4(0)).expect("bind");
    let port = a.local_addr().expect("local_addr").port();
    let b = TcpSocket::new_v4().expect("new_v4");
    let plain = b.bind(v4(port));

    let c = TcpSocket::new_v4().expect("new_v4");
    c.set_reuseaddr(true).expect("set_reuseaddr");
    c.bind(v4(0)).expect("bind");
    let port2 = c.local_addr().expect("local_addr").port();
    let d = TcpSocket::new_v4().expect("new_v4");
    d.set_reuseaddr(true).expect("set_reuseaddr");
    let reuse = d.bind(v4(port2));
    let listen_c = c.listen(8);
    let listen_d = d.listen(8).map(|_| ());
    let listen_c = listen_c.map(|l| l.local_addr().map(|a| a.port() == port2));
    vec![
        ("bind the same port", done(&plain)),
        ("with SO_REUSEADDR: bind the same port", done(&reuse)),
        ("first listen", res(&listen_c.and_then(|r| r))),
        ("second listen", done(&listen_d)),
    ]
}

/// A socket with SO_REUSEADDR binding the port of a listener (which has it too).
pub async fn bind_a_listeners_port_with_reuseaddr() -> Trace {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("local_addr").port();
    let s = TcpSocket::new_v4().expect("new_v4");
    s.set_reuseaddr(true).expect("set_reuseaddr");
    vec![("bind", done(&s.bind(v4(port))))]
}

/// Two sockets bound to one local port (SO_REUSEADDR) connect to the same listener: the
/// second connect would repeat the 4-tuple.
pub async fn same_fixed_port_same_destination() -> Trace {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("local_addr");
    let a = TcpSocket::new_v4().expect("new_v4");
    a.set_reuseaddr(true).expect("set_reuseaddr");
    a.bind(v4(0)).expect("bind");
    let port = a.local_addr().expect("local_addr").port();
    let (first, acc) = tokio::join!(a.connect(addr), l.accept());
    // The first connection stays open: closed, it could leave a TIME_WAIT entry the
    // second connect may take over.
    let first = first.map(|s| (s.local_addr().map(|a| a.port() == port), s));
    let (first, _first_stream) = match first {
        Ok((r, s)) => (r, Some(s)),
        Err(e) => (Err(e), None),
    };
    let _acc = acc.expect("accept");
    let b = TcpSocket::new_v4().expect("new_v4");
    b.set_reuseaddr(true).expect("set_reuseaddr");
    let bind_b = b.bind(v4(port));
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), b.connect(addr))
        .await
        .expect("the second connect returns at once");
    let c = TcpSocket::new_v4().expect("new_v4");
    let bind_c = c.bind(v4(port));
    vec![
        ("first connect", res(&first)),
        ("second bind (SO_REUSEADDR)", done(&bind_b)),
        ("second connect", done(&second)),
        ("third bind (no SO_REUSEADDR)", done(&bind_c)),
    ]
}

/// Two sockets bound to one local port (SO_REUSEADDR) connect to two different listeners.
pub async fn same_fixed_port_two_destinations() -> Trace {
    let l1 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let l2 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = TcpSocket::new_v4().expect("new_v4");
    a.set_reuseaddr(true).expect("set_reuseaddr");
    a.bind(v4(0)).expect("bind");
    let port = a.local_addr().expect("local_addr").port();
    let b = TcpSocket::new_v4().expect("new_v4");
    b.set_reuseaddr(true).expect("set_reuseaddr");
    let bind_b = b.bind(v4(port));
    let (c1, a1) = tokio::join!(a.connect(l1.local_addr().unwrap()), l1.accept());
    let (c2, a2) = tokio::join!(b.connect(l2.local_addr().unwrap()), l2.accept());
    let p1 = a1.map(|(_, p)| p.port() == port);
    let p2 = a2.map(|(_, p)| p.port() == port);
    vec![
        ("second bind (SO_REUSEADDR)", done(&bind_b)),
        ("first connect", done(&c1)),
        ("second connect", done(&c2)),
        ("first accepted from the port", res(&p1)),
        ("second accepted from the port", res(&p2)),
    ]
}

/// A socket of one family bound or connected to an address of the other.
pub async fn family_mismatch() -> Trace {
    let s4 = TcpSocket::new_v4().expect("new_v4");
    let bind46 = s4.bind("[::1]:0".parse().unwrap());
    let s6 = TcpSocket::new_v6().expect("new_v6");
    let bind64 = s6.bind("127.0.0.1:0".parse().unwrap());
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let l6 = TcpListener::bind("[::1]:0").await.expect("bind");
    let c46 = TcpSocket::new_v4()
        .expect("new_v4")
        .connect(l6.local_addr().unwrap())
        .await;
    let c64 = TcpSocket::new_v6()
        .expect("new_v6")
        .connect(l.local_addr().unwrap())
        .await;
    vec![
        ("v4 socket bind [::1]", done(&bind46)),
        ("v6 socket bind 127.0.0.1", done(&bind64)),
        ("v4 socket connect [::1]", done(&c46)),
        ("v6 socket connect 127.0.0.1", done(&c64)),
    ]
}

/// IP_TTL bounds on a stream: 0 and 256 are invalid, 1 and 255 accepted.
pub async fn ttl_bounds() -> Trace {
    let (a, _b) = pair().await;
    vec![
        ("set_ttl(0)", res(&a.set_ttl(0))),
        ("set_ttl(1)", res(&a.set_ttl(1))),
        ("ttl", res(&a.ttl())),
        ("set_ttl(255)", res(&a.set_ttl(255))),
        ("ttl", res(&a.ttl())),
        ("set_ttl(256)", res(&a.set_ttl(256))),
        ("ttl", res(&a.ttl())),
    ]
}

/// TCP_NODELAY and SO_KEEPALIVE set on the listening socket are inherited by accepted ones.
pub async fn accepted_inherits_listener_options() -> Trace {
    let ls = TcpSocket::new_v4().expect("new_v4");
    ls.set_nodelay(true).expect("set_nodelay");
    ls.set_keepalive(true).expect("set_keepalive");
    ls.bind(v4(0)).expect("bind");
    let l = ls.listen(8).expect("listen");
    let (c, a) = tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
    let (c, (s, _)) = (c.expect("connect"), a.expect("accept"));
    vec![
        ("accepted nodelay", res(&s.nodelay())),
        ("client nodelay", res(&c.nodelay())),
        ("accepted ttl", res(&s.ttl())),
    ]
}

/// bind() on a socket that is already bound.
pub async fn bind_twice() -> Trace {
    let s = TcpSocket::new_v4().expect("new_v4");
    s.bind(v4(0)).expect("bind");
    let again = s.bind(v4(0));
    let s6 = TcpSocket::new_v6().expect("new_v6");
    s6.bind("[::1]:0".parse().unwrap()).expect("bind");
    let v4_on_bound_v6 = s6.bind(v4(0));
    vec![
        ("bind again", done(&again)),
        ("bound v6 socket bind 127.0.0.1", done(&v4_on_bound_v6)),
    ]
}

/// listen() on a socket never bound: Linux binds it to the wildcard address of its family
/// and a free port.
pub async fn listen_unbound() -> Trace {
    let l4 = TcpSocket::new_v4().expect("new_v4").listen(8).expect("listen v4");
    let l6 = TcpSocket::new_v6().expect("new_v6").listen(8).expect("listen v6");
    let a4 = l4.local_addr().expect("local_addr");
    let a6 = l6.local_addr().expect("local_addr");
    let c = TcpStream::connect(("::1", a6.port())).await;
    let acc = match &c {
        Ok(_) => tokio::time::timeout(std::time::Duration::from_secs(5), l6.accept())
            .await
            .expect("accept the connect that completed")
            .map(|(s, _)| s.local_addr().map(|a| a.ip())),
        Err(e) => Err(io::Error::new(e.kind(), "not connected")),
    };
    let c = c.map(|_| ());
    let c4 = TcpStream::connect(("127.0.0.1", a6.port())).await;
    let acc4 = match &c4 {
        Ok(_) => tokio::time::timeout(std::time::Duration::from_secs(5), l6.accept())
            .await
            .expect("accept the connect that completed")
            .map(|(s, _)| s.local_addr().map(|a| a.ip())),
        Err(e) => Err(io::Error::new(e.kind(), "not connected")),
    };
    let c4 = c4.map(|_| ());
    vec![
        ("v4 ip", ok(a4.ip())),
        ("v4 port picked", ok(a4.port() != 0)),
        ("v6 ip", ok(a6.ip())),
        ("v6 port picked", ok(a6.port() != 0)),
        ("connect [::1] to the v6 one", done(&c)),
        ("accepted local ip", res(&acc.and_then(|r| r))),
        ("connect 127.0.0.1 to the v6 one", done(&c4)),
        ("accepted local ip", res(&acc4.and_then(|r| r))),
    ]
}

/// A socket connected to itself (bound to the port it connects to): TCP's simultaneous open.
pub async fn self_connect() -> Trace {
    let s = TcpSocket::new_v4().expect("new_v4");
    s.bind(v4(0)).expect("bind");
    let addr = s.local_addr().expect("local_addr");
    let c = tokio::time::timeout(std::time::Duration::from_secs(5), s.connect(addr))
        .await
        .expect("a self-connect completes at once");
    let mut t: Trace = vec![("connect", done(&c))];
    if let Ok(mut c) = c {
        t.push(("peer is itself", ok(c.peer_addr().ok() == Some(addr))));
        t.push(("write", res(&c.write(b"echo").await)));
        let mut buf = [0u8; 4];
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), c.read_exact(&mut buf))
            .await
            .expect("the bytes come back");
        t.push(("read_exact", done(&r)));
        t.push(("got", ok(String::from_utf8_lossy(&buf).into_owned())));
    }
    t
}

/// Wildcard listeners on the port of a specific one, in both families. (That a listener on
/// another specific address of the port does not clash is not checked here: on the kernel,
/// another process's socket may hold that address and port.)
pub async fn wildcard_conflicts() -> Trace {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let p = l.local_addr().expect("local_addr").port();
    let v6_wild_after_v4 = TcpListener::bind(("::", p)).await.map(|_| ());
    let v4_wild_after_v4 = TcpListener::bind(("0.0.0.0", p)).await.map(|_| ());
    vec![
        ("[::]:p after 127.0.0.1:p", done(&v6_wild_after_v4)),
        ("0.0.0.0:p after 127.0.0.1:p", done(&v4_wild_after_v4)),
    ]
}

/// The server closes first, so its side of the connection waits in TIME_WAIT on the
/// listener's port; the listener is dropped and the port bound again.
pub async fn rebind_over_time_wait() -> Trace {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("local_addr");
    let (c, a) = tokio::join!(TcpStream::connect(addr), l.accept());
    let (mut c, (s, _)) = (c.expect("connect"), a.expect("accept"));
    drop(s); // FIN from the server
    let eof = c.read(&mut [0u8; 8]).await;
    c.shutdown().await.expect("shutdown"); // the server's side: TIME_WAIT
    drop(l);
    let plain = TcpSocket::new_v4().expect("new_v4");
    let plain_bind = plain.bind(addr);
    drop(plain);
    let reuse = TcpSocket::new_v4().expect("new_v4");
    reuse.set_reuseaddr(true).expect("set_reuseaddr");
    let reuse_bind = reuse.bind(addr);
    drop(reuse);
    let listener_again = TcpListener::bind(addr).await.map(|_| ());
    vec![
        ("client read", res(&eof)),
        ("bind without SO_REUSEADDR", done(&plain_bind)),
        ("bind with SO_REUSEADDR", done(&reuse_bind)),
        ("TcpListener::bind", done(&listener_again)),
    ]
}

/// Options a listener had are what its accepted connections start with.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn accepted_inherits_ttl_and_linger() -> Trace {
    let ls = TcpSocket::new_v4().expect("new_v4");
    ls.set_linger(Some(std::time::Duration::from_secs(3)))
        .expect("set_linger");
    ls.bind(v4(0)).expect("bind");
    let l = ls.listen(8).expect("listen");
    l.set_ttl(42).expect("set_ttl");
    let (c, a) = tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
    let (_c, (s, _)) = (c.expect("connect"), a.expect("accept"));
    vec![
        ("accepted ttl", res(&s.ttl())),
        ("accepted linger", res(&s.linger())),
    ]
}

/// SO_REUSEPORT: every socket on the port must set it.
pub async fn reuseport_mixing() -> Trace {
    let rp = || {
        let s = TcpSocket::new_v4().expect("new_v4");
        s.set_reuseport(true).expect("set_reuseport");
        s
    };
    let a = rp();
    a.bind(v4(0)).expect("bind");
    let port = a.local_addr().expect("local_addr").port();
    let _la = a.listen(8).expect("listen");
    let without = TcpSocket::new_v4().expect("new_v4").bind(v4(port));
    let with = rp();
    let with_bind = with.bind(v4(port));
    let with_listen = with.listen(8).map(|_| ());
    vec![
        ("bind without SO_REUSEPORT", done(&without)),
        ("bind with SO_REUSEPORT", done(&with_bind)),
        ("listen with SO_REUSEPORT", done(&with_listen)),
    ]
}

/// Whether a connection's local port is free again once it was reset: a port picked by
/// bind(0) is released at once, a port given to bind stays held until the socket is closed.
/// (Not checked for a port picked by connect: the kernel shares those among connections to
/// other destinations, so another test's connection may hold it.)
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn port_after_reset() -> Trace {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("local_addr");
    // Autobound by connect.
    let (c, a) = tokio::join!(TcpStream::connect(addr), l.accept());
    let (mut c, (s, _)) = (c.expect("connect"), a.expect("accept"));
    let auto = c.local_addr().expect("local_addr");
    s.set_linger(Some(std::time::Duration::ZERO)).expect("set_linger");
    drop(s);
    let read = c.read(&mut [0u8; 8]).await;
    let local_after = c.local_addr().map(|a| a == auto);
    // Bound before connect, to port 0, then to a port given (SOCK_BINDPORT_LOCK).
    let sock = TcpSocket::new_v4().expect("new_v4");
    sock.bind(v4(0)).expect("bind");
    let picked = sock.local_addr().expect("local_addr");
    let (c1, a1) = tokio::join!(sock.connect(addr), l.accept());
    let (mut c1, (s1, _)) = (c1.expect("connect"), a1.expect("accept"));
    s1.set_linger(Some(std::time::Duration::ZERO)).expect("set_linger");
    drop(s1);
    let read1 = c1.read(&mut [0u8; 8]).await;
    let rebind_picked = TcpSocket::new_v4().expect("new_v4").bind(picked);
    let fixed = {
        let probe = TcpSocket::new_v4().expect("new_v4");
        probe.bind(v4(0)).expect("bind");
        probe.local_addr().expect("local_addr")
    };
    let sock = TcpSocket::new_v4().expect("new_v4");
    sock.bind(fixed).expect("bind a given port");
    let (c2, a2) = tokio::join!(sock.connect(addr), l.accept());
    let (mut c2, (s2, _)) = (c2.expect("connect"), a2.expect("accept"));
    s2.set_linger(Some(std::time::Duration::ZERO)).expect("set_linger");
    drop(s2);
    let read2 = c2.read(&mut [0u8; 8]).await;
    let rebind_fixed = TcpSocket::new_v4().expect("new_v4").bind(fixed);
    drop(c2);
    let rebind_fixed_closed = TcpSocket::new_v4().expect("new_v4").bind(fixed);
    drop((c, c1));
    vec![
        ("autobound: read", res(&read)),
        ("autobound: local_addr unchanged", res(&local_after)),
        ("bound to port 0: read", res(&read1)),
        ("bound to port 0: bind its port", done(&rebind_picked)),
        ("bound: read", res(&read2)),
        ("bound: bind its port", done(&rebind_fixed)),
        ("bound, closed: bind its port", done(&rebind_fixed_closed)),
    ]
}

/// SO_LINGER keeps whole seconds: a fraction is dropped, and under a second is a linger of 0
/// (which aborts the connection on close).
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn linger_whole_seconds() -> Trace {
    let (mut a, b) = pair().await;
    let ms = std::time::Duration::from_millis;
    let mut t: Trace = vec![
        ("set_linger(1.5s)", res(&b.set_linger(Some(ms(1500))))),
        ("linger", res(&b.linger())),
        ("set_linger(500ms)", res(&b.set_linger(Some(ms(500))))),
        ("linger", res(&b.linger())),
    ];
    let s = TcpSocket::new_v4().expect("new_v4");
    t.push(("TcpSocket set_linger(2.9s)", res(&s.set_linger(Some(ms(2900))))));
    t.push(("TcpSocket linger", res(&s.linger())));
    drop(b);
    t.push(("peer read after the 500ms-linger close", res(&a.read(&mut [0u8; 8]).await)));
    t
}

/// TCP_QUICKACK read back on a fresh connection, then set off and on.
pub async fn quickack_read_back() -> Trace {
    let (a, _b) = pair().await;
    vec![
        ("quickack", res(&a.quickack())),
        ("set_quickack(false)", res(&a.set_quickack(false))),
        ("quickack", res(&a.quickack())),
        ("set_quickack(true)", res(&a.set_quickack(true))),
        ("quickack", res(&a.quickack())),
    ]
}

/// IP_TOS and IPV6_TCLASS on a socket of each family.
pub async fn tos_and_tclass_across_families() -> Trace {
    let s4 = TcpSocket::new_v4().expect("new_v4");
    let s6 = TcpSocket::new_v6().expect("new_v6");
    vec![
        ("v4 set_tclass_v6(0x20)", res(&s4.set_tclass_v6(0x20))),
        ("v4 tclass_v6", res(&s4.tclass_v6())),
        ("v4 set_tos_v4(0x20)", res(&s4.set_tos_v4(0x20))),
        ("v4 tos_v4", res(&s4.tos_v4())),
        ("v6 set_tos_v4(0x40)", res(&s6.set_tos_v4(0x40))),
        ("v6 tos_v4", res(&s6.tos_v4())),
        ("v6 set_tclass_v6(0x48)", res(&s6.set_tclass_v6(0x48))),
        ("v6 tclass_v6", res(&s6.tclass_v6())),
        ("v6 set_tclass_v6(256)", res(&s6.set_tclass_v6(256))),
        ("v4 set_tos_v4(256)", res(&s4.set_tos_v4(256))),
    ]
}
