// The accept queue: connections that are reset, closed or orphaned before accept() takes them.

/// A listener and a client whose connection completed but is not accepted yet.
async fn queued() -> (TcpListener, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    (listener, client)
}

/// The client resets its connection (SO_LINGER 0) while it waits in the accept queue; then
/// accept, read, read, write.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn reset_while_queued() -> Trace {
    let (listener, client) = queued().await;
    let client_addr = client.local_addr().expect("local_addr");
    client
        .set_linger(Some(std::time::Duration::ZERO))
        .expect("set_linger");
    drop(client);
    let accepted = listener.accept().await;
    let (mut s, peer) = accepted.expect("accept");
    s.readable().await.expect("readable");
    let mut buf = [0u8; 8];
    let first = s.read(&mut buf).await;
    let second = s.read(&mut buf).await;
    let write = s.write(b"x").await;
    vec![
        ("accepted peer is the client", ok(peer == client_addr)),
        ("read", res(&first)),
        ("read again", res(&second)),
        ("write", res(&write)),
    ]
}

/// The client writes and closes (FIN) while its connection waits in the accept queue; the
/// accepted socket reads the bytes, then EOF, and can still write once.
pub async fn fin_while_queued() -> Trace {
    let (listener, mut client) = queued().await;
    client.write_all(b"sent before accept").await.expect("write_all");
    drop(client);
    let (mut s, _) = listener.accept().await.expect("accept");
    let mut got = Vec::new();
    let read = s.read_to_end(&mut got).await;
    vec![
        ("read_to_end", res(&read)),
        ("got", ok(String::from_utf8_lossy(&got).into_owned())),
    ]
}

/// The listener is dropped while a completed connection waits in its queue: the client's read
/// sees a reset, then EOF; a write then is a broken pipe.
pub async fn listener_dropped_read() -> Trace {
    let (listener, mut client) = queued().await;
    drop(listener);
    let mut buf = [0u8; 8];
    let first = client.read(&mut buf).await;
    let second = client.read(&mut buf).await;
    let write = client.write(b"x").await;
    let peer = client.peer_addr();
    vec![
        ("read", res(&first)),
        ("read again", res(&second)),
        ("write", res(&write)),
        ("peer_addr", done(&peer)),
    ]
}

/// As above, with data the client sent before the listener was dropped; the client's first
/// call after the reset is a write.
pub async fn listener_dropped_write() -> Trace {
    let (listener, mut client) = queued().await;
    client.write_all(b"never accepted").await.expect("write_all");
    drop(listener);
    client.readable().await.expect("readable");
    let first = client.write(b"x").await;
    let second = client.write(b"x").await;
    let read = client.read(&mut [0u8; 8]).await;
    vec![
        ("write", res(&first)),
        ("write again", res(&second)),
        ("read", res(&read)),
    ]
}

/// Connections are accepted in the order they completed.
pub async fn accept_order() -> Trace {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("local_addr");
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut in_order = true;
    for c in &clients {
        let (_, peer) = l.accept().await.expect("accept");
        in_order &= Some(peer) == c.local_addr().ok();
    }
    vec![("accepted in connect order", ok(in_order))]
}
