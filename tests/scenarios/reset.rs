// Resets: closing with unread data (or SO_LINGER 0) sends RST; the error is reported once.

/// `b` closes while bytes from `a` sit unread in its receive queue.
async fn reset_by_peer() -> TcpStream {
    let (mut a, b) = pair().await;
    a.write_all(b"never read").await.expect("write_all");
    // The bytes must be in b's receive queue when it closes, or it sends FIN, not RST.
    b.readable().await.expect("readable");
    drop(b);
    a
}

/// read() first (waits for the RST), then read, then write.
pub async fn read_after_peer_dropped_unread() -> Trace {
    let mut a = reset_by_peer().await;
    let mut buf = [0u8; 16];
    let first = a.read(&mut buf).await;
    let second = a.read(&mut buf).await;
    let write = a.write(b"x").await;
    vec![
        ("read", res(&first)),
        ("read again", res(&second)),
        ("write", res(&write)),
    ]
}

/// write() first, once readiness shows the RST arrived (readable() does not consume the error).
pub async fn write_after_peer_dropped_unread() -> Trace {
    let mut a = reset_by_peer().await;
    a.readable().await.expect("readable");
    let first = a.write(b"x").await;
    let second = a.write(b"x").await;
    let read = a.read(&mut [0u8; 16]).await;
    vec![
        ("write", res(&first)),
        ("write again", res(&second)),
        ("read", res(&read)),
    ]
}

/// peer_addr() once the connection was reset.
pub async fn peer_addr_after_reset() -> Trace {
    let mut a = reset_by_peer().await;
    let read = a.read(&mut [0u8; 16]).await;
    let peer = a.peer_addr();
    vec![("read", res(&read)), ("peer_addr", done(&peer))]
}

/// The peer sets SO_LINGER to zero and closes with nothing unread.
#[allow(deprecated)] // tokio deprecates set_linger (a non-zero linger blocks on drop)
pub async fn linger_zero_close() -> Trace {
    let (mut a, b) = pair().await;
    let set = b.set_linger(Some(std::time::Duration::ZERO));
    let get = b.linger();
    drop(b);
    let read = a.read(&mut [0u8; 16]).await;
    let again = a.read(&mut [0u8; 16]).await;
    vec![
        ("set_linger(0)", res(&set)),
        ("linger", res(&get)),
        ("read", res(&read)),
        ("read again", res(&again)),
    ]
}

/// The peer closes cleanly (FIN): read gives EOF, a write is accepted (the closed peer answers
/// it with RST), and a later write fails.
pub async fn write_after_peer_closed_cleanly() -> Trace {
    let (mut a, b) = pair().await;
    drop(b);
    let read = a.read(&mut [0u8; 16]).await; // waits for the FIN
    let first = a.write(b"after the FIN").await;
    // The RST answering that write comes back asynchronously: write (bounded) until it shows.
    let mut later = Res::Ok("no write failed".to_string());
    for _ in 0..100_000 {
        match a.write(b"x").await {
            Ok(_) => {
                tokio::task::yield_now().await;
                std::thread::yield_now();
            }
            Err(e) => {
                later = Res::Err(e.kind(), e.raw_os_error());
                break;
            }
        }
    }
    let read_after = a.read(&mut [0u8; 16]).await;
    vec![
        ("read", res(&read)),
        ("write", res(&first)),
        ("a later write", later),
        ("read after the RST", res(&read_after)),
    ]
}
