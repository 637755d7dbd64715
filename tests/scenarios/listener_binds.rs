// Listener binds: one port, two addresses; SO_REUSEADDR and listen(); a port still held by an
// accepted connection. Every port is one the kernel gave (bound to 0) and stays held.

/// A listener on `first` (port 0), then one on `second` at the same port: whether the second
/// bind succeeds. `TcpListener::bind` sets `SO_REUSEADDR`, which does not let two listeners
/// share a port.
pub async fn second_listener(first: &str, second: std::net::IpAddr) -> Trace {
    let a = TcpListener::bind(first).await.expect("bind first");
    let port = a.local_addr().expect("local_addr").port();
    let b = TcpListener::bind((second, port)).await;
    vec![("second bind", done(&b))]
}

/// `TcpSocket` binds (not listening) on the port of a listener, with and without
/// `SO_REUSEADDR`.
pub async fn socket_on_listener_port() -> Trace {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("local_addr");
    let mut t = Trace::new();
    let plain = TcpSocket::new_v4().expect("socket");
    t.push(("without SO_REUSEADDR", done(&plain.bind(addr))));
    let reuse = TcpSocket::new_v4().expect("socket");
    reuse.set_reuseaddr(true).expect("SO_REUSEADDR");
    t.push(("with SO_REUSEADDR", done(&reuse.bind(addr))));
    t
}

/// Two `TcpSocket`s with `SO_REUSEADDR` bound to one port (neither listening), then each
/// listens: the first gets the port, the second's `listen` fails; a third without
/// `SO_REUSEADDR` cannot bind while they hold it.
pub async fn two_reuseaddr_sockets_then_listen() -> Trace {
    let mut t = Trace::new();
    let a = TcpSocket::new_v4().expect("socket");
    a.set_reuseaddr(true).expect("SO_REUSEADDR");
    a.bind("127.0.0.1:0".parse().expect("addr")).expect("bind a");
    let addr = a.local_addr().expect("local_addr");
    let b = TcpSocket::new_v4().expect("socket");
    b.set_reuseaddr(true).expect("SO_REUSEADDR");
    t.push(("bind b", done(&b.bind(addr))));
    let c = TcpSocket::new_v4().expect("socket");
    t.push(("bind c without SO_REUSEADDR", done(&c.bind(addr))));
    let la = a.listen(8);
    t.push(("listen a", done(&la)));
    t.push(("listen b", done(&b.listen(8))));
    let d = TcpSocket::new_v4().expect("socket");
    d.set_reuseaddr(true).expect("SO_REUSEADDR");
    t.push(("bind d while a listens", done(&d.bind(addr))));
    t
}

/// An accepted connection keeps its listener's port after the listener closes: a new
/// listener on 127.0.0.1 at that port (`SO_REUSEADDR`, as the connection's) binds, one on
/// 0.0.0.0 does not once that one listens; the connection still works.
pub async fn port_of_a_live_accepted_connection() -> Trace {
    let mut t = Trace::new();
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("local_addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
    let mut client = client.expect("connect");
    let (mut accepted, _) = accepted.expect("accept");
    drop(l);
    let again = TcpListener::bind(addr).await;
    t.push(("TcpListener again", done(&again)));
    let wild = TcpListener::bind(("0.0.0.0", addr.port())).await;
    t.push(("0.0.0.0 listener", done(&wild)));
    client.write_all(b"still").await.expect("write");
    let mut buf = [0u8; 5];
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        accepted.read_exact(&mut buf),
    )
    .await;
    t.push((
        "connection",
        match got {
            Ok(r) => res(&r.map(|_| buf.to_vec())),
            Err(_) => ok("timed out"),
        },
    ));
    t
}
