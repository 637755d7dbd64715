// Included once into each stack module of `differential.rs` (`os`: tokio::net over the
// kernel, `lo`: lonet::net), where `TcpListener`, `TcpStream` and `spawn` name that stack's.

/// A connected pair over `bind` (an `ip:0` string): `(client, accepted end)`.
pub async fn pair_at(bind: &str) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(bind).await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.expect("connect"), accepted.expect("accept").0)
}

/// A connected pair over 127.0.0.1.
pub async fn pair() -> (TcpStream, TcpStream) {
    pair_at("127.0.0.1:0").await
}

/// `readable()` then `try_read`, again while the readiness was spurious (bounded).
pub async fn try_read_when_ready(s: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    for _ in 0..1000 {
        s.readable().await?;
        match s.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
    panic!("{STACK}: readable() woke 1000 times without data");
}

/// An echo server for `n` connections: each copies what it reads back, then shuts down.
pub async fn echo_server(n: usize) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let server = spawn(async move {
        let mut conns = Vec::new();
        for _ in 0..n {
            let (mut s, _) = listener.accept().await.expect("accept");
            conns.push(spawn(async move {
                let (mut r, mut w) = s.split();
                tokio::io::copy(&mut r, &mut w).await.expect("echo copy");
                w.shutdown().await.expect("echo shutdown");
            }));
        }
        for c in conns {
            c.await.expect("echo task");
        }
    });
    (addr, server)
}
