// shutdown() in every state, empty reads and writes, reads after our own shutdown.

/// shutdown(Write) twice: the second is accepted too; the peer sees one EOF.
pub async fn shutdown_twice() -> Trace {
    let (mut a, mut b) = pair().await;
    let first = a.shutdown().await;
    let second = a.shutdown().await;
    let peer = b.read(&mut [0u8; 8]).await;
    vec![
        ("shutdown", done(&first)),
        ("shutdown again", done(&second)),
        ("peer read", res(&peer)),
    ]
}

/// After the peer's reset was reported by a read: read, write, shutdown, take_error.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn calls_after_reset_reported() -> Trace {
    let (mut a, b) = pair().await;
    b.set_linger(Some(std::time::Duration::ZERO))
        .expect("set_linger");
    drop(b);
    let mut buf = [0u8; 8];
    let first = a.read(&mut buf).await;
    let taken = a.take_error().map(|e| e.map(|e| e.raw_os_error()));
    let read = a.read(&mut buf).await;
    let shut = a.shutdown().await;
    let write = a.write(b"x").await;
    let local = a.local_addr().map(|l| l.ip());
    vec![
        ("read", res(&first)),
        ("take_error", res(&taken)),
        ("read again", res(&read)),
        ("shutdown", done(&shut)),
        ("write", res(&write)),
        ("local_addr ip", res(&local)),
    ]
}

/// The reset not yet reported: take_error() returns it (and clears it), then the calls.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn take_error_consumes_the_reset() -> Trace {
    let (mut a, b) = pair().await;
    let before = a.take_error().map(|e| e.map(|e| e.raw_os_error()));
    b.set_linger(Some(std::time::Duration::ZERO))
        .expect("set_linger");
    drop(b);
    a.readable().await.expect("readable");
    let taken = a.take_error().map(|e| e.map(|e| e.raw_os_error()));
    let again = a.take_error().map(|e| e.map(|e| e.raw_os_error()));
    let read = a.read(&mut [0u8; 8]).await;
    let write = a.write(b"x").await;
    vec![
        ("take_error before", res(&before)),
        ("take_error", res(&taken)),
        ("take_error again", res(&again)),
        ("read", res(&read)),
        ("write", res(&write)),
    ]
}

/// shutdown() on a socket the peer reset, before any call reported the reset.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn shutdown_after_reset_unreported() -> Trace {
    let (mut a, b) = pair().await;
    b.set_linger(Some(std::time::Duration::ZERO))
        .expect("set_linger");
    drop(b);
    a.readable().await.expect("readable");
    let shut = a.shutdown().await;
    let read = a.read(&mut [0u8; 8]).await;
    vec![("shutdown", done(&shut)), ("read", res(&read))]
}

/// Both sides shut down and read EOF: the connection is closed on the side that sent the first
/// FIN; shutdown, peer_addr and a write there.
pub async fn calls_after_both_closed() -> Trace {
    let (mut a, mut b) = pair().await;
    a.shutdown().await.expect("a shutdown");
    let b_read = b.read(&mut [0u8; 8]).await;
    b.shutdown().await.expect("b shutdown");
    let a_read = a.read(&mut [0u8; 8]).await; // a has b's FIN: TIME_WAIT, the socket closed
    let shut = a.shutdown().await;
    let peer = a.peer_addr();
    let write = a.write(b"x").await;
    let again = a.read(&mut [0u8; 8]).await;
    vec![
        ("b read", res(&b_read)),
        ("a read", res(&a_read)),
        ("a shutdown again", done(&shut)),
        ("a peer_addr", done(&peer)),
        ("a write", res(&write)),
        ("a read again", res(&again)),
    ]
}

/// Writes of no bytes: accepted on an open connection, a broken pipe after our shutdown.
pub async fn empty_writes() -> Trace {
    let (mut a, mut b) = pair().await;
    let open = a.write(b"").await;
    let try_open = a.try_write(b"");
    a.write_all(b"end").await.expect("write_all");
    a.shutdown().await.expect("shutdown");
    let closed = a.write(b"").await;
    let mut got = Vec::new();
    let peer = b.read_to_end(&mut got).await;
    vec![
        ("write 0 bytes", res(&open)),
        ("try_write 0 bytes", res(&try_open)),
        ("write 0 bytes after shutdown", res(&closed)),
        ("peer read_to_end", res(&peer)),
        ("peer got", ok(String::from_utf8_lossy(&got).into_owned())),
    ]
}

/// A read into an empty buffer with bytes queued returns 0 and leaves the bytes.
pub async fn empty_read_with_data_queued() -> Trace {
    let (mut a, mut b) = pair().await;
    a.write_all(b"queued").await.expect("write_all");
    b.readable().await.expect("readable");
    let empty = b.read(&mut []).await;
    let try_empty = b.try_read(&mut []);
    let mut buf = [0u8; 16];
    let n = b.read(&mut buf).await;
    let got = String::from_utf8_lossy(&buf[..*n.as_ref().unwrap_or(&0)]).into_owned();
    vec![
        ("read into []", res(&empty)),
        ("try_read into []", res(&try_empty)),
        ("read", res(&n)),
        ("got", ok(got)),
    ]
}

/// After our own shutdown(Write) the read side stays open: the peer writes, we read it all,
/// then EOF once the peer shuts down too.
pub async fn read_after_own_shutdown() -> Trace {
    let (mut a, mut b) = pair().await;
    a.shutdown().await.expect("shutdown");
    let peer_eof = b.read(&mut [0u8; 8]).await;
    let data = pattern_vec(3, 50_000);
    let writer = async {
        let w = b.write_all(&data).await;
        let s = b.shutdown().await;
        (done(&w), done(&s))
    };
    let reader = async {
        let mut got = Vec::new();
        let r = a.read_to_end(&mut got).await;
        (res(&r), got == data)
    };
    let ((w, s), (r, intact)) = tokio::join!(writer, reader);
    vec![
        ("peer read", res(&peer_eof)),
        ("peer write_all", w),
        ("peer shutdown", s),
        ("read_to_end", r),
        ("intact", ok(intact)),
    ]
}

/// peek() after the peer's FIN and after a reset.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn peek_at_eof_and_after_reset() -> Trace {
    let (mut a, b) = pair().await;
    drop(b);
    let mut buf = [0u8; 8];
    let fin = a.peek(&mut buf).await;
    let fin_again = a.peek(&mut buf).await;
    let read = a.read(&mut buf).await;
    let (c, d) = pair().await;
    d.set_linger(Some(std::time::Duration::ZERO)).expect("set_linger");
    drop(d);
    let rst = c.peek(&mut buf).await;
    let rst_again = c.peek(&mut buf).await;
    vec![
        ("peek at EOF", res(&fin)),
        ("peek at EOF again", res(&fin_again)),
        ("read at EOF", res(&read)),
        ("peek after reset", res(&rst)),
        ("peek again", res(&rst_again)),
    ]
}

/// try_write until WouldBlock with the peer not reading; then the peer reads what was
/// accepted, exactly.
pub async fn fill_then_drain() -> Trace {
    let (a, mut b) = pair().await;
    let chunk = vec![7u8; 65_536];
    let mut sent = 0usize;
    let mut blocked = false;
    for _ in 0..10_000 {
        match a.try_write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                blocked = true;
                break;
            }
            Err(e) => panic!("{STACK}: try_write: {e}"),
        }
    }
    drop(a);
    let mut got = 0usize;
    let mut buf = vec![0u8; 65_536];
    loop {
        match b.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("{STACK}: read: {e}"),
        }
    }
    vec![
        ("try_write blocked", ok(blocked)),
        ("bytes read equal bytes accepted", ok(got == sent)),
    ]
}

/// The peer shuts down, then closes with SO_LINGER 0: a FIN, then a RST in CLOSE_WAIT.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn linger_zero_after_shutdown() -> Trace {
    let (mut a, mut b) = pair().await;
    b.set_linger(Some(std::time::Duration::ZERO))
        .expect("set_linger");
    b.shutdown().await.expect("shutdown");
    drop(b);
    let read = a.read(&mut [0u8; 8]).await;
    let ready = tokio::time::timeout(std::time::Duration::from_secs(5), a.ready(Interest::ERROR))
        .await
        .expect("the reset arrives")
        .map(|r| r.is_error());
    let taken = a.take_error().map(|e| e.map(|e| e.raw_os_error()));
    let write = a.write(b"x").await;
    let again = a.read(&mut [0u8; 8]).await;
    vec![
        ("read", res(&read)),
        ("ready(ERROR)", res(&ready)),
        ("take_error", res(&taken)),
        ("write", res(&write)),
        ("read again", res(&again)),
    ]
}

/// Bytes sit unread in our receive queue when the peer resets: what the reads then give.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn reset_with_data_unread_on_our_side() -> Trace {
    let (mut a, mut b) = pair().await;
    b.write_all(b"data before the reset").await.expect("write_all");
    a.readable().await.expect("readable");
    b.set_linger(Some(std::time::Duration::ZERO))
        .expect("set_linger");
    drop(b);
    let ready = tokio::time::timeout(std::time::Duration::from_secs(5), a.ready(Interest::ERROR))
        .await
        .expect("the reset arrives")
        .map(|r| r.is_error());
    let mut buf = [0u8; 64];
    let first = a.read(&mut buf).await;
    let got = match &first {
        Ok(n) => String::from_utf8_lossy(&buf[..*n]).into_owned(),
        Err(_) => String::new(),
    };
    let second = a.read(&mut buf).await;
    let third = a.read(&mut buf).await;
    vec![
        ("ready(ERROR)", res(&ready)),
        ("read", res(&first)),
        ("got", ok(got)),
        ("read again", res(&second)),
        ("read a third time", res(&third)),
    ]
}

/// The side that closes second (LAST_ACK, then CLOSE once its FIN is acknowledged).
pub async fn calls_on_the_second_closer() -> Trace {
    let (mut a, mut b) = pair().await;
    a.shutdown().await.expect("a shutdown");
    let b_read = b.read(&mut [0u8; 8]).await;
    let b_peer_in_close_wait = b.peer_addr().map(|_| ());
    b.shutdown().await.expect("b shutdown");
    let a_read = a.read(&mut [0u8; 8]).await; // a ACKed b's FIN as it took it
    let peer = b.peer_addr();
    let write = b.write(b"x").await;
    let read = b.read(&mut [0u8; 8]).await;
    vec![
        ("b read", res(&b_read)),
        ("b peer_addr in CLOSE_WAIT", done(&b_peer_in_close_wait)),
        ("a read", res(&a_read)),
        ("b peer_addr", done(&peer)),
        ("b write", res(&write)),
        ("b read again", res(&read)),
    ]
}

/// A writer blocked on a full send buffer when the peer resets: the write fails with the reset,
/// the next with EPIPE.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn blocked_writer_sees_the_reset() -> Trace {
    let (mut a, b) = pair().await;
    let chunk = vec![1u8; 65_536];
    let mut blocked = false;
    for _ in 0..10_000 {
        match a.try_write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                blocked = true;
                break;
            }
            Err(e) => panic!("{STACK}: try_write: {e}"),
        }
    }
    let writer = async {
        tokio::time::timeout(std::time::Duration::from_secs(5), a.write(&chunk))
            .await
            .expect("the blocked write returns once the reset arrives")
    };
    let resetter = async move {
        tokio::task::yield_now().await;
        b.set_linger(Some(std::time::Duration::ZERO))
            .expect("set_linger");
        drop(b);
    };
    let (first, ()) = tokio::join!(writer, resetter);
    let second = a.write(&chunk).await;
    let read = a.read(&mut [0u8; 8]).await;
    vec![
        ("try_write blocked", ok(blocked)),
        ("blocked write", res(&first)),
        ("next write", res(&second)),
        ("read", res(&read)),
    ]
}

/// Socket options still read and set on a connection the peer reset.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn options_after_reset() -> Trace {
    let (mut a, b) = pair().await;
    b.set_linger(Some(std::time::Duration::ZERO))
        .expect("set_linger");
    drop(b);
    let read = a.read(&mut [0u8; 8]).await;
    vec![
        ("read", res(&read)),
        ("set_nodelay(true)", res(&a.set_nodelay(true))),
        ("nodelay", res(&a.nodelay())),
        ("set_ttl(9)", res(&a.set_ttl(9))),
        ("ttl", res(&a.ttl())),
        ("set_linger(2s)", res(&a.set_linger(Some(std::time::Duration::from_secs(2))))),
        ("linger", res(&a.linger())),
        ("local_addr ip", res(&a.local_addr().map(|l| l.ip()))),
    ]
}

/// writable() and try_write after our own shutdown, and after the peer's reset.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn writable_after_close() -> Trace {
    let (mut a, _b) = pair().await;
    a.shutdown().await.expect("shutdown");
    let w = a.writable().await;
    let tw = a.try_write(b"x");
    let (c, d) = pair().await;
    d.set_linger(Some(std::time::Duration::ZERO))
        .expect("set_linger");
    drop(d);
    c.readable().await.expect("readable");
    let w2 = c.writable().await;
    let tw2 = c.try_write(b"x");
    let tw3 = c.try_write(b"x");
    let tr = c.try_read(&mut [0u8; 8]);
    vec![
        ("writable after shutdown", done(&w)),
        ("try_write after shutdown", res(&tw)),
        ("writable after reset", done(&w2)),
        ("try_write after reset", res(&tw2)),
        ("try_write again", res(&tw3)),
        ("try_read", res(&tr)),
    ]
}
