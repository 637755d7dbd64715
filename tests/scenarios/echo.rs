// Echo: bytes come back intact and in order.

/// One connection per size: the client writes `size` pattern bytes and shuts down from one
/// task while another reads the echo to EOF.
pub async fn one_connection_per_size(sizes: Vec<usize>) -> Vec<Echoed> {
    let (addr, server) = echo_server(sizes.len()).await;
    let mut out = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        out.push(echo_client(addr, i as u64 + 1, size).await);
    }
    server.await.expect("server task");
    out
}

/// One echo client: connects to `addr`, writes `size` pattern bytes (seeded with `seed`) and
/// shuts down from one task while another reads the echo to EOF. (tests/model/runtimes.rs runs
/// it too, on several runtimes at once.)
pub async fn echo_client(addr: std::net::SocketAddr, seed: u64, size: usize) -> Echoed {
    let (mut r, mut w) = TcpStream::connect(addr)
        .await
        .expect("connect")
        .into_split();
    let writer = spawn(async move {
        w.write_all(&pattern_vec(seed, size))
            .await
            .expect("write_all");
        w.shutdown().await.expect("shutdown");
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.expect("read_to_end");
    writer.await.expect("writer task");
    let first_mismatch = first_mismatch(seed, 0, &got[..got.len().min(size)]);
    Echoed {
        size,
        received: got.len(),
        first_mismatch,
    }
}

/// Many request/response round trips on one connection, each message a different size.
/// Returns how many came back exactly.
pub async fn round_trips(count: usize) -> usize {
    let (addr, server) = echo_server(1).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut offset = 0u64;
    let mut exact = 0;
    for i in 0..count {
        let len = 1 + (i * 997) % 3000;
        let mut msg = vec![0; len];
        fill_pattern(99, offset, &mut msg);
        offset += len as u64;
        s.write_all(&msg).await.expect("write_all");
        let mut back = vec![0; len];
        s.read_exact(&mut back).await.expect("read_exact");
        if back == msg {
            exact += 1;
        }
    }
    s.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.expect("read_to_end");
    assert!(
        rest.is_empty(),
        "{STACK}: {} bytes echoed beyond what was sent",
        rest.len()
    );
    server.await.expect("server task");
    exact
}
