// Addresses: IPv6 ::1, the 127/8 source-address choice, socket options.

/// A full exchange over [::1].
pub async fn ipv6_loopback() -> Trace {
    let listener = TcpListener::bind("[::1]:0").await.expect("bind [::1]:0");
    let addr = listener.local_addr().expect("local_addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let mut client = client.expect("connect");
    let (mut server, peer) = accepted.expect("accept");
    client.write_all(b"hello over v6").await.expect("write_all");
    client.shutdown().await.expect("shutdown");
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.expect("read_to_end");
    vec![
        ("listener ip", ok(addr.ip())),
        (
            "client local ip",
            ok(client.local_addr().expect("local_addr").ip()),
        ),
        (
            "client peer is the listener",
            ok(client.peer_addr().expect("peer_addr") == addr),
        ),
        ("accepted peer ip", ok(peer.ip())),
        (
            "accepted peer is the client",
            ok(peer == client.local_addr().unwrap()),
        ),
        (
            "accepted local is the listener",
            ok(server.local_addr().expect("local_addr") == addr),
        ),
        ("server got", ok(String::from_utf8_lossy(&got).into_owned())),
    ]
}

/// connect() to [::1] with nobody listening.
pub async fn ipv6_connect_without_listener() -> Trace {
    let port = {
        let listener = TcpListener::bind("[::1]:0").await.expect("bind");
        listener.local_addr().expect("local_addr").port()
    };
    vec![("connect", done(&TcpStream::connect(("::1", port)).await))]
}

/// An unbound socket connecting to 127.0.0.2 gets source address 127.0.0.1.
pub async fn connect_to_127_0_0_2() -> Trace {
    let listener = TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2:0");
    let addr = listener.local_addr().expect("local_addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect");
    let (server, peer) = accepted.expect("accept");
    vec![
        (
            "client local ip",
            ok(client.local_addr().expect("local_addr").ip()),
        ),
        (
            "client peer is the listener",
            ok(client.peer_addr().expect("peer_addr") == addr),
        ),
        (
            "accepted local ip",
            ok(server.local_addr().expect("local_addr").ip()),
        ),
        ("accepted peer ip", ok(peer.ip())),
        (
            "accepted peer is the client",
            ok(peer == client.local_addr().unwrap()),
        ),
    ]
}

/// TCP_NODELAY, IP_TTL and SO_LINGER getters and setters, on a stream and a listener.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn socket_options() -> Trace {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (a, _b) = (client.expect("connect"), accepted.expect("accept").0);
    let linger = std::time::Duration::from_secs(5);
    vec![
        ("nodelay", res(&a.nodelay())),
        ("set_nodelay(true)", res(&a.set_nodelay(true))),
        ("nodelay", res(&a.nodelay())),
        ("set_nodelay(false)", res(&a.set_nodelay(false))),
        ("nodelay", res(&a.nodelay())),
        ("ttl", res(&a.ttl())),
        ("set_ttl(100)", res(&a.set_ttl(100))),
        ("ttl", res(&a.ttl())),
        ("set_ttl(256)", res(&a.set_ttl(256))),
        ("ttl", res(&a.ttl())),
        ("linger", res(&a.linger())),
        ("set_linger(5s)", res(&a.set_linger(Some(linger)))),
        ("linger", res(&a.linger())),
        ("set_linger(None)", res(&a.set_linger(None))),
        ("linger", res(&a.linger())),
        ("listener ttl", res(&listener.ttl())),
        ("listener set_ttl(42)", res(&listener.set_ttl(42))),
        ("listener ttl", res(&listener.ttl())),
    ]
}
