use crate::common::{bounded, fill_pattern, PatternCheck};
use lonet::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A `std::net` echo server on the machine's 127.0.0.1 (a thread per connection): echoes
/// until EOF, then shuts its write side down. Its threads live as long as the test binary.
pub fn std_echo_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0; 64 * 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = conn.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// A port of the machine's 127.0.0.1 on which nothing listens (bound, then closed).
pub fn closed_os_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr")
}

/// Writes `text` and reads back as many bytes.
pub async fn echo_once(s: &mut TcpStream, text: &[u8]) -> io::Result<Vec<u8>> {
    s.write_all(text).await?;
    let mut back = vec![0; text.len()];
    s.read_exact(&mut back).await?;
    Ok(back)
}

/// Half-close through a relay: each direction's FIN arrives as EOF on the other side after
/// the data, and the other direction keeps working.
pub async fn check_half_close(mut client: TcpStream, mut server: TcpStream) {
    bounded("half-close through the relay", async {
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request", "the data, then EOF");
        // The other direction is still open.
        server.write_all(b"response").await.unwrap();
        server.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"response");
    })
    .await
}

/// A reset through a relay: `from` closes with `SO_LINGER` 0 and `to` reads `ConnectionReset`.
pub async fn check_reset(from: TcpStream, mut to: TcpStream) {
    bounded("reset through the relay", async {
        // A byte first, so both legs are surely established end to end.
        let mut from = from;
        from.write_all(b"x").await.unwrap();
        let mut one = [0; 1];
        to.read_exact(&mut one).await.unwrap();
        from.set_zero_linger().unwrap();
        drop(from);
        let mut buf = [0; 16];
        let r = to.read(&mut buf).await;
        match r {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
            Ok(n) => {
                panic!("expected a reset, read {n} bytes (0 = a FIN: the reset became a close)")
            }
        }
    })
    .await
}

/// Sends `len` bytes of pattern `seed` and shuts down.
async fn send_pattern(w: &mut (impl AsyncWriteExt + Unpin), seed: u64, len: u64) {
    let mut buf = vec![0; 256 * 1024];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        fill_pattern(seed, off, &mut buf[..n]);
        w.write_all(&buf[..n]).await.unwrap();
        off += n as u64;
    }
    w.shutdown().await.unwrap();
}

/// Reads to EOF, checking pattern `seed` byte for byte; returns the count.
async fn recv_pattern(r: &mut (impl AsyncReadExt + Unpin), seed: u64) -> u64 {
    let mut check = PatternCheck::new(seed);
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            return check.offset();
        }
        check.check(&buf[..n]).unwrap();
    }
}

/// 64 MiB each way at once through a relay, checked byte for byte (no loss, no reordering,
/// no duplication), each direction ending in EOF.
pub async fn check_bulk(client: TcpStream, server: TcpStream) {
    const LEN: u64 = 64 << 20;
    bounded("64 MiB each way through the relay", async {
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let ((), (), up, down) = tokio::join!(
            send_pattern(&mut cw, 1, LEN),
            send_pattern(&mut sw, 2, LEN),
            recv_pattern(&mut sr, 1),
            recv_pattern(&mut cr, 2),
        );
        assert_eq!((up, down), (LEN, LEN));
    })
    .await
}

/// How long a stalled exchange is watched before it is declared stalled.
pub const STALL: Duration = Duration::from_millis(300);
