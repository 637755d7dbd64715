// split() and into_split(): halves used concurrently, reunited, and the owned write half's
// drop as shutdown(Write).

/// into_split: a writer task and a reader task run at once through an echo server; then the
/// halves are reunited; halves of two different streams are not.
pub async fn into_split_concurrent_then_reunite() -> Trace {
    const LEN: usize = 1 << 20;
    let (addr, server) = echo_server(1).await;
    let (mut r, mut w) = TcpStream::connect(addr)
        .await
        .expect("connect")
        .into_split();
    let writer = spawn(async move {
        let wrote = w.write_all(&pattern_vec(3, LEN)).await;
        (wrote, w)
    });
    let reader = spawn(async move {
        let mut got = vec![0; LEN];
        let read = r.read_exact(&mut got).await;
        (read, first_mismatch(3, 0, &got), r)
    });
    let (wrote, w) = writer.await.expect("writer task");
    let (read, mismatch, r) = reader.await.expect("reader task");
    let mut t = vec![
        ("write_all", done(&wrote)),
        ("read_exact", done(&read)),
        ("first mismatch", ok(mismatch)),
    ];
    let mut s = match r.reunite(w) {
        Ok(s) => s,
        Err(_) => panic!("{STACK}: reunite of a stream's own halves failed"),
    };
    t.push(("reunite own halves", ok_done()));
    s.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    t.push((
        "read to EOF after reunite",
        res(&s.read_to_end(&mut rest).await),
    ));
    server.await.expect("server task");

    let (c1, _s1) = pair().await;
    let (c2, _s2) = pair().await;
    let (r1, _w1) = c1.into_split();
    let (_r2, w2) = c2.into_split();
    t.push((
        "reunite halves of different streams fails",
        ok(r1.reunite(w2).is_err()),
    ));
    t
}

/// Dropping an OwnedWriteHalf shuts the write side down; the read half keeps working.
pub async fn dropping_owned_write_half_sends_fin() -> Trace {
    let (client, mut server) = pair().await;
    let (mut r, w) = client.into_split();
    drop(w);
    let eof = server.read(&mut [0u8; 8]).await;
    server.write_all(b"still open").await.expect("write_all");
    let mut buf = [0u8; 10];
    let read = r.read_exact(&mut buf).await;
    vec![
        ("peer read", res(&eof)),
        ("read_exact", done(&read)),
        ("got", ok(String::from_utf8_lossy(&buf).into_owned())),
    ]
}

/// split(&mut self): borrowed halves read and write at once in one task.
pub async fn borrowed_split_concurrent() -> Trace {
    const LEN: usize = 300_000;
    let (mut client, mut server) = pair().await;
    let data = pattern_vec(4, LEN);
    let server_side = async {
        let (mut sr, mut sw) = server.split();
        let copied = tokio::io::copy(&mut sr, &mut sw).await;
        sw.shutdown().await.expect("server shutdown");
        copied
    };
    let client_side = async {
        let (mut r, mut w) = client.split();
        let write = async {
            w.write_all(&data).await?;
            w.shutdown().await
        };
        let mut got = Vec::new();
        let read = r.read_to_end(&mut got);
        let (wrote, read) = tokio::join!(write, read);
        (wrote, read, got)
    };
    let (copied, (wrote, read, got)) = tokio::join!(server_side, client_side);
    vec![
        ("server copied", res(&copied)),
        ("client write_all + shutdown", done(&wrote)),
        ("client read_to_end", res(&read)),
        ("first mismatch", ok(first_mismatch(4, 0, &got))),
    ]
}
