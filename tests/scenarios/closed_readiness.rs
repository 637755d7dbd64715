// What ready() reports once a direction is closed: read_closed (EPOLLRDHUP, or EPOLLHUP) and
// write_closed (EPOLLHUP: both directions shut, or the connection closed).

/// The flags of a `ready(READABLE | WRITABLE)` answer.
async fn flags(s: &TcpStream) -> io::Result<(bool, bool, bool, bool)> {
    let r = s.ready(Interest::READABLE | Interest::WRITABLE).await?;
    Ok((
        r.is_readable(),
        r.is_writable(),
        r.is_read_closed(),
        r.is_write_closed(),
    ))
}

/// The peer's FIN: readable and read-closed, still writable, not write-closed.
pub async fn after_peer_fin() -> Trace {
    let (a, mut b) = pair().await;
    b.shutdown().await.expect("shutdown");
    a.readable().await.expect("readable");
    vec![(
        "(readable, writable, read_closed, write_closed)",
        res(&flags(&a).await),
    )]
}

/// Our own shutdown(Write), then the peer writes: neither direction reads as closed.
pub async fn after_own_shutdown() -> Trace {
    let (mut a, mut b) = pair().await;
    a.shutdown().await.expect("shutdown");
    let peer = b.read(&mut [0u8; 8]).await;
    b.write_all(b"x").await.expect("write_all");
    a.readable().await.expect("readable");
    vec![
        ("peer read", res(&peer)),
        (
            "(readable, writable, read_closed, write_closed)",
            res(&flags(&a).await),
        ),
    ]
}

/// A reset: everything at once (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLHUP | EPOLLERR).
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn after_reset() -> Trace {
    let (a, b) = pair().await;
    b.set_linger(Some(std::time::Duration::ZERO))
        .expect("set_linger");
    drop(b);
    let err = a.ready(Interest::ERROR).await.map(|r| r.is_error());
    vec![
        ("ready(ERROR)", res(&err)),
        (
            "(readable, writable, read_closed, write_closed)",
            res(&flags(&a).await),
        ),
    ]
}

/// Both FINs, after ours went first: the socket is closed (EPOLLHUP).
pub async fn after_both_fins() -> Trace {
    let (mut a, mut b) = pair().await;
    a.shutdown().await.expect("a shutdown");
    let b_read = b.read(&mut [0u8; 8]).await;
    b.shutdown().await.expect("b shutdown");
    let a_read = a.read(&mut [0u8; 8]).await;
    vec![
        ("b read", res(&b_read)),
        ("a read", res(&a_read)),
        (
            "a (readable, writable, read_closed, write_closed)",
            res(&flags(&a).await),
        ),
    ]
}
