// Half-close: shutdown() sends FIN; the peer reads everything, then EOF, and can still write.

pub async fn shutdown_then_peer_replies() -> Trace {
    let (mut client, mut server) = pair().await;
    let data = pattern_vec(7, 100_000);
    let client_side = async {
        client.write_all(&data).await.expect("client write_all");
        let shut = client.shutdown().await;
        let mut reply = Vec::new();
        let read = client.read_to_end(&mut reply).await;
        (
            done(&shut),
            res(&read),
            String::from_utf8_lossy(&reply).into_owned(),
        )
    };
    let server_side = async {
        let mut got = Vec::new();
        let read = server.read_to_end(&mut got).await;
        let intact = got == data;
        let again = server.read(&mut [0u8; 16]).await;
        let write = server.write(b"reply").await;
        server.shutdown().await.expect("server shutdown");
        (res(&read), intact, res(&again), res(&write))
    };
    let ((c_shut, c_read, reply), (s_read, intact, s_again, s_write)) =
        tokio::join!(client_side, server_side);
    vec![
        ("client shutdown", c_shut),
        ("server read_to_end", s_read),
        ("server got the bytes intact", ok(intact)),
        ("server read after EOF", s_again),
        ("server writes back", s_write),
        ("client read_to_end", c_read),
        ("client got", ok(reply)),
    ]
}

/// write() after our own shutdown(); the peer sees EOF.
pub async fn write_after_own_shutdown() -> Trace {
    let (mut a, mut b) = pair().await;
    let shut = a.shutdown().await;
    let write = a.write(b"x").await;
    let peer = b.read(&mut [0u8; 8]).await;
    vec![
        ("shutdown", done(&shut)),
        ("write", res(&write)),
        ("peer read", res(&peer)),
    ]
}
