//! What a user can observe of Linux's TCP on loopback, measured on the kernel (tokio::net on
//! 127.0.0.1, in the same run) and on lonet: the send buffer a stalled reader leaves a writer,
//! the delayed-ACK stall of a Nagle exchange, segments in a connection's life, `TCP_QUICKACK`,
//! the handshake's windows. Timing comparisons use medians with generous bounds (±25%); the
//! kernel's segment count is the minimum over a few repetitions of the `OutSegs` delta, since
//! other tests send segments at the same time.
//!
//! The model takes the kernel's congestion control (its send-buffer factor) and `tcp_rmem`
//! from /proc, so both sides are configured alike.

use crate::common::*;
use lonet::Netns;
use std::io;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A /proc/sys value, as text.
fn proc_sys(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// A namespace configured as the kernel is: congestion control and `tcp_rmem`.
fn like_kernel() -> Netns {
    let ns = Netns::new();
    let cc = match proc_sys("net/ipv4/tcp_congestion_control").as_deref() {
        Some("bbr") => "bbr",
        Some("reno") => "reno",
        _ => "cubic",
    };
    let rmem: Option<Vec<usize>> = proc_sys("net/ipv4/tcp_rmem").map(|s| {
        s.split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    });
    ns.set_sysctl(|s| {
        s.tcp_congestion_control = cc;
        if let Some([a, b, c]) = rmem.as_deref() {
            s.tcp_rmem = [*a, *b, *c];
        }
    })
    .expect("sysctls");
    ns
}

/// `Tcp: OutSegs` of /proc/net/snmp (the machine's namespace: both ends of a loopback
/// connection count there).
fn kernel_out_segs() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").expect("/proc/net/snmp");
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let names: Vec<&str> = tcp.next().expect("Tcp header").split_whitespace().collect();
    let values: Vec<&str> = tcp.next().expect("Tcp values").split_whitespace().collect();
    let i = names.iter().position(|n| *n == "OutSegs").expect("OutSegs");
    values[i].parse().expect("a number")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `a` within `tol` (a fraction) of `b`.
fn within(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b
}

/// A writer facing a peer that never reads: bytes accepted until the writer has been held
/// back for 200 ms (WouldBlock, and no write space since).
macro_rules! stalled_reader {
    ($listener:ty, $stream:ty) => {{
        let l = <$listener>::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let (c, a) = tokio::join!(<$stream>::connect(addr), l.accept());
        let c = c?;
        let (_server, _) = a?;
        let chunk = vec![7u8; 65536];
        let mut total = 0usize;
        loop {
            match c.try_write(&chunk) {
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match tokio::time::timeout(Duration::from_millis(200), c.writable()).await {
                        Ok(r) => r?,
                        Err(_) => break,
                    }
                }
                Err(e) => return Err(e),
            }
            assert!(total < 64 << 20, "the writer must be held back");
        }
        io::Result::Ok(total)
    }};
}

#[tokio::test]
async fn a_stalled_reader_leaves_the_writer_a_send_buffer_like_linuxs() {
    bounded("stalled reader", async {
        let kernel = stalled_reader!(tokio::net::TcpListener, tokio::net::TcpStream)?;
        let ns = like_kernel();
        let lonet = ns
            .scope(async { stalled_reader!(lonet::net::TcpListener, lonet::net::TcpStream) })
            .await?;
        eprintln!("stalled reader: lonet {lonet} B, kernel {kernel} B");
        assert!(
            within(lonet as f64, kernel as f64, 0.25),
            "bytes accepted before the writer is held back: lonet {lonet}, kernel {kernel}"
        );
        io::Result::Ok(())
    })
    .await
    .unwrap();
}

/// Request/response with Nagle on at both ends, the request in two writes (the second
/// waits for the first's ACK, which the interactive server delays): the median time of a
/// request, after the first.
macro_rules! nagle_exchange {
    ($listener:ty, $stream:ty) => {{
        let l = <$listener>::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await?;
            let mut req = [0u8; 100];
            loop {
                match s.read_exact(&mut req).await {
                    Ok(_) => s.write_all(&[2u8; 200]).await?,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            io::Result::Ok(())
        });
        let mut c = <$stream>::connect(addr).await?;
        let mut times = Vec::new();
        let mut resp = [0u8; 200];
        for _ in 0..6 {
            let t = Instant::now();
            c.write_all(&[1u8; 50]).await?;
            c.write_all(&[1u8; 50]).await?;
            c.read_exact(&mut resp).await?;
            times.push(t.elapsed());
        }
        drop(c);
        server.await.expect("server task")?;
        times.remove(0);
        io::Result::Ok(median(times))
    }};
}

#[tokio::test]
async fn a_nagle_exchange_waits_for_the_delayed_ack_as_on_linux() {
    bounded("nagle exchange", async {
        let kernel = nagle_exchange!(tokio::net::TcpListener, tokio::net::TcpStream)?;
        let ns = like_kernel();
        let lonet = ns
            .scope(async { nagle_exchange!(lonet::net::TcpListener, lonet::net::TcpStream) })
            .await?;
        eprintln!("nagle exchange per request: lonet {lonet:?}, kernel {kernel:?}");
        assert!(
            within(lonet.as_secs_f64(), kernel.as_secs_f64(), 0.25),
            "per request: lonet {lonet:?}, kernel {kernel:?}"
        );
        io::Result::Ok(())
    })
    .await
    .unwrap();
}

/// Open, one exchange of 100 B / 200 B, the server closes right after its reply, the
/// client closes on EOF. Returns when both ends are done.
macro_rules! short_connection {
    ($listener:ty, $stream:ty) => {{
        let l = <$listener>::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let server = async {
            let (mut s, _) = l.accept().await?;
            let mut req = [0u8; 100];
            s.read_exact(&mut req).await?;
            s.write_all(&[2u8; 200]).await?;
            drop(s);
            io::Result::Ok(())
        };
        let client = async {
            let mut c = <$stream>::connect(addr).await?;
            c.write_all(&[1u8; 100]).await?;
            let mut resp = Vec::new();
            c.read_to_end(&mut resp).await?;
            assert_eq!(resp.len(), 200);
            drop(c);
            io::Result::Ok(())
        };
        let (a, b) = tokio::join!(server, client);
        a?;
        b?;
        drop(l);
        io::Result::Ok(addr.port())
    }};
}

/// Whether the kernel holds a TIME_WAIT socket on local port `port` (`/proc/net/tcp{,6}`,
/// state 06): the server of a short connection enters it when it sends the last ACK.
fn kernel_time_wait_on(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                let local_port = cols.get(1).and_then(|a| a.rsplit(':').next());
                local_port.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port)
                    && cols.get(3) == Some(&"06")
            })
    })
}

#[tokio::test]
async fn a_short_connection_takes_as_many_segments_as_on_linux() {
    bounded("segments", async {
        // /proc/net/snmp counts the whole network namespace: other tests (and other
        // processes) add their segments to a try, never take any away, so the smallest
        // delta of a few tries is the connection's own.
        let mut kernel = u64::MAX;
        for _ in 0..20 {
            let before = kernel_out_segs();
            let port = short_connection!(tokio::net::TcpListener, tokio::net::TcpStream)?;
            // The last ACK answers the client's FIN; the server sends it as it enters
            // TIME_WAIT, so wait for that state before reading the counter.
            wait_until("the kernel's last ACK", Duration::from_secs(10), || {
                if kernel_time_wait_on(port) {
                    Ok(())
                } else {
                    Err(format!("no TIME_WAIT on port {port} yet"))
                }
            })
            .await;
            kernel = kernel.min(kernel_out_segs() - before);
        }
        let ns = like_kernel();
        ns.clone()
            .scope(async { short_connection!(lonet::net::TcpListener, lonet::net::TcpStream) })
            .await?;
        let lonet = wait_until(
            "the connection's last segment",
            Duration::from_secs(10),
            || {
                let tcp = ns.tcp_stats();
                let inuse = ns.sockstat().inuse;
                if inuse == 0 && tcp.curr_estab == 0 {
                    Ok(tcp.out_segs)
                } else {
                    Err(format!("inuse {inuse}, {tcp}"))
                }
            },
        )
        .await;
        eprintln!("segments: lonet {lonet}, kernel {kernel}");
        assert_eq!(lonet, kernel, "segments: lonet {lonet}, kernel {kernel}");
        io::Result::Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn quickack_is_on_for_a_fresh_connection() {
    bounded("quickack", async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let c = tokio::net::TcpStream::connect(l.local_addr()?).await?;
        let kernel = c.quickack()?;
        let ns = like_kernel();
        let lonet = ns
            .scope(async {
                let l = lonet::net::TcpListener::bind("127.0.0.1:0").await?;
                let c = lonet::net::TcpStream::connect(l.local_addr()?).await?;
                let (s, _) = l.accept().await?;
                // TCP_QUICKACK=0 is interactive mode; 1 leaves it again.
                s.set_quickack(false)?;
                assert!(!s.quickack()?);
                s.set_quickack(true)?;
                assert!(s.quickack()?);
                c.quickack()
            })
            .await?;
        assert!(kernel, "Linux: TCP_QUICKACK reads 1 on a fresh socket");
        assert_eq!(lonet, kernel);
        io::Result::Ok(())
    })
    .await
    .unwrap();
}

/// The SYN and SYN-ACK of a capture: (window, window-scale shift) of each.
fn handshake_windows(pcap: &[u8]) -> Vec<(u16, Option<u8>, bool)> {
    use etherparse::{Ethernet2Header, Ipv4Header, TcpHeader, TcpOptionElement};
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + incl];
        at += 16 + incl;
        let (_, ip) = Ethernet2Header::from_slice(frame).expect("ethernet");
        let (_, rest) = Ipv4Header::from_slice(ip).expect("ipv4");
        let (tcp, _) = TcpHeader::from_slice(rest).expect("tcp");
        if tcp.syn {
            let ws = tcp.options_iterator().find_map(|o| match o {
                Ok(TcpOptionElement::WindowScale(s)) => Some(s),
                _ => None,
            });
            out.push((tcp.window_size, ws, tcp.ack));
        }
    }
    out
}

#[tokio::test]
async fn the_handshake_carries_linuxs_windows() {
    bounded("handshake windows", async {
        let ns = like_kernel();
        let rmem2 = ns.sysctl().tcp_rmem[2];
        let cap = ns.capture_to_memory(lonet::capture::CaptureOptions::new());
        ns.scope(async {
            let l = lonet::net::TcpListener::bind("127.0.0.1:0").await?;
            let _c = lonet::net::TcpStream::connect(l.local_addr()?).await?;
            let _s = l.accept().await?;
            io::Result::Ok(())
        })
        .await?;
        let pcap = cap.stop()?;
        let syns = handshake_windows(&pcap);
        // tcp_select_initial_window on lo: 65536 rounded down to the MSS (65495) in the SYN,
        // to the MSS less timestamps (65483) in the SYN-ACK; the shift from tcp_rmem[2].
        let wscale = ((usize::BITS - 1 - rmem2.leading_zeros()) as i32 - 15).clamp(0, 14) as u8;
        assert_eq!(
            syns,
            vec![(65_495, Some(wscale), false), (65_483, Some(wscale), true)]
        );
        io::Result::Ok(())
    })
    .await
    .unwrap();
}

/// hyper-util's HTTP/2 client with its defaults (Nagle on) against hyper's HTTP/2 server:
/// the median time of a request on an open connection.
#[cfg(feature = "hyper")]
mod http2 {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::service::service_fn;
    use hyper_util::client::legacy::connect::Connect;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    async fn serve<S>(stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let svc = service_fn(|req: hyper::Request<Incoming>| async move {
            let body = req.into_body().collect().await?.to_bytes();
            let mut reply = body.to_vec();
            reply.extend_from_slice(&[b'x'; 100]);
            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(reply))))
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    }

    async fn requests<C>(client: Client<C, Full<Bytes>>, url: String) -> io::Result<Duration>
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        let mut times = Vec::new();
        for _ in 0..8 {
            let t = Instant::now();
            let req = hyper::Request::post(url.as_str())
                .body(Full::new(Bytes::from_static(&[b'a'; 100])))
                .map_err(io::Error::other)?;
            let resp = client.request(req).await.map_err(io::Error::other)?;
            let body = resp.into_body().collect().await.map_err(io::Error::other)?;
            assert_eq!(body.to_bytes().len(), 200);
            times.push(t.elapsed());
        }
        // The first request includes the connection and the HTTP/2 preface.
        times.remove(0);
        Ok(median(times))
    }

    #[tokio::test]
    async fn hyper_http2_requests_take_as_long_as_on_linux() {
        bounded_for("hyper http2", Duration::from_secs(60), async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}/", l.local_addr()?);
            let srv = tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    tokio::spawn(serve(s));
                }
            });
            let client = Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
            let kernel = requests(client, url).await?;
            srv.abort();

            let ns = like_kernel();
            let lonet = ns
                .scope(async {
                    let l = lonet::net::TcpListener::bind("127.0.0.1:0").await?;
                    let url = format!("http://{}/", l.local_addr()?);
                    let srv = tokio::spawn(Netns::current().scope(async move {
                        while let Ok((s, _)) = l.accept().await {
                            tokio::spawn(serve(s));
                        }
                    }));
                    let client = Client::builder(TokioExecutor::new())
                        .http2_only(true)
                        .build(lonet::hyper::Connector::new());
                    let r = requests(client, url).await;
                    srv.abort();
                    r
                })
                .await?;
            eprintln!("hyper http2 per request: lonet {lonet:?}, kernel {kernel:?}");
            // Within 25%, or both below a few milliseconds (no delayed-ACK stall on either).
            let small = Duration::from_millis(5);
            assert!(
                within(lonet.as_secs_f64(), kernel.as_secs_f64(), 0.25)
                    || (lonet < small && kernel < small),
                "per request: lonet {lonet:?}, kernel {kernel:?}"
            );
            io::Result::Ok(())
        })
        .await
        .unwrap();
    }
}

/// A peer that has vanished (its namespace drops everything) is found by keepalive after
/// `tcp_keepalive_time + tcp_keepalive_probes × tcp_keepalive_intvl`, as on Linux, and the
/// connection fails with `ETIMEDOUT`. Under tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn keepalive_detects_a_dead_peer() {
    let ns = Netns::new();
    lonet::time::use_tokio_time(&ns).expect("tokio time");
    ns.set_sysctl(|s| {
        s.tcp_keepalive_time_secs = 10;
        s.tcp_keepalive_intvl_secs = 2;
        s.tcp_keepalive_probes = 3;
    })
    .unwrap();
    bounded(
        "keepalive",
        ns.clone().scope(async {
            let l = lonet::net::TcpListener::bind("127.0.0.1:0").await?;
            let sock = lonet::net::TcpSocket::new_v4()?;
            sock.set_keepalive(true)?;
            assert!(sock.keepalive()?);
            let (c, a) = tokio::join!(sock.connect(l.local_addr()?), l.accept());
            let mut c = c?;
            let _s = a?;
            let _cut = ns
                .add_fault(lonet::fault::Match::all(), lonet::fault::Fault::partition())
                .unwrap();
            let t0 = tokio::time::Instant::now();
            let mut buf = [0u8; 8];
            let e = c.read(&mut buf).await.expect_err("keepalive gives up");
            assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
            assert_eq!(t0.elapsed(), Duration::from_secs(10 + 3 * 2));
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

/// SYNs to a peer that never answers go out at 0, 1, 2, 3, 4, 5, 7, 11, 19, 35 and 67 s
/// (`tcp_syn_linear_timeouts` 4, then doubling), and connect fails at 131 s.
#[tokio::test(start_paused = true)]
async fn syn_retransmissions_follow_linuxs_linear_then_exponential_schedule() {
    let ns = Netns::new();
    lonet::time::use_tokio_time(&ns).expect("tokio time");
    // Modeled time (the paused clock): 131 s of it pass at once.
    bounded_for(
        "syn schedule",
        Duration::from_secs(200),
        ns.clone().scope(async {
            let l = lonet::net::TcpListener::bind("127.0.0.1:0").await?;
            let _cut = ns
                .add_fault(lonet::fault::Match::all(), lonet::fault::Fault::partition())
                .unwrap();
            let t0 = tokio::time::Instant::now();
            let e = lonet::net::TcpStream::connect(l.local_addr()?)
                .await
                .expect_err("no answer");
            assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
            assert_eq!(t0.elapsed(), Duration::from_secs(131));
            assert_eq!(ns.tcp_stats().retrans_segs, 10);
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

/// `SO_SNDBUF`/`SO_RCVBUF` read back as Linux gives them: doubled, at least the minimum,
/// capped by `wmem_max`/`rmem_max`; the same on the kernel.
#[tokio::test]
async fn buffer_sizes_read_back_as_linux_gives_them() {
    bounded("buffer sizes", async {
        let wmem_max: u32 = proc_sys("net/core/wmem_max")
            .and_then(|v| v.parse().ok())
            .unwrap_or(212_992);
        let rmem_max: u32 = proc_sys("net/core/rmem_max")
            .and_then(|v| v.parse().ok())
            .unwrap_or(212_992);
        let ns = Netns::new();
        ns.set_sysctl(|s| {
            s.wmem_max = wmem_max as usize;
            s.rmem_max = rmem_max as usize;
        })
        .unwrap();
        for (snd, rcv) in [(1000, 1000), (65536, 65536), (1 << 30, 1 << 30)] {
            let k = tokio::net::TcpSocket::new_v4()?;
            k.set_send_buffer_size(snd)?;
            k.set_recv_buffer_size(rcv)?;
            let kernel = (k.send_buffer_size()?, k.recv_buffer_size()?);
            let lonet = ns
                .clone()
                .scope(async {
                    let s = lonet::net::TcpSocket::new_v4()?;
                    s.set_send_buffer_size(snd)?;
                    s.set_recv_buffer_size(rcv)?;
                    let before = (s.send_buffer_size()?, s.recv_buffer_size()?);
                    s.bind("127.0.0.1:0".parse().unwrap())?;
                    assert_eq!(before, (s.send_buffer_size()?, s.recv_buffer_size()?));
                    io::Result::Ok(before)
                })
                .await?;
            assert_eq!(lonet, kernel, "SO_SNDBUF {snd}, SO_RCVBUF {rcv}");
        }
        io::Result::Ok(())
    })
    .await
    .unwrap();
}

/// A writer of 1-byte writes facing a peer that never reads (the peer's receive buffer
/// small, `SO_RCVBUF` 4096, so the send buffer dominates): bytes accepted until the writer has
/// been held back for 200 ms, with the writer's `SO_SNDBUF` at 64 KiB (131072 read back).
/// Linux fills the tail skb with each tiny write (`tcp_sendmsg`, up to `size_goal`), so the
/// writer gets about its send buffer accepted, not one skb per byte.
macro_rules! tiny_writes {
    ($socket:ty, $ns:expr) => {{
        let ls = <$socket>::new_v4()?;
        ls.set_recv_buffer_size(4096)?;
        ls.bind("127.0.0.1:0".parse().unwrap())?;
        let l = ls.listen(16)?;
        let addr = l.local_addr()?;
        let cs = <$socket>::new_v4()?;
        cs.set_send_buffer_size(65536)?;
        let sndbuf = cs.send_buffer_size()? as usize;
        let (c, a) = tokio::join!(cs.connect(addr), l.accept());
        let c = c?;
        let (_server, _) = a?;
        let mut total = 0usize;
        let mut mem_peak = 0u64;
        let ns: Option<&Netns> = $ns;
        loop {
            match c.try_write(&[7u8]) {
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(ns) = ns {
                        mem_peak = mem_peak.max(ns.sockstat().mem);
                    }
                    match tokio::time::timeout(Duration::from_millis(200), c.writable()).await {
                        Ok(r) => r?,
                        Err(_) => break,
                    }
                }
                Err(e) => return Err(e),
            }
            assert!(total < 16 << 20, "the writer must be held back");
        }
        if let Some(ns) = ns {
            mem_peak = mem_peak.max(ns.sockstat().mem);
        }
        io::Result::Ok((total, sndbuf, mem_peak))
    }};
}

#[tokio::test]
async fn tiny_writes_fill_the_send_buffer_as_on_linux_in_bounded_memory() {
    bounded("tiny writes", async {
        let (kernel, ksndbuf, _) = tiny_writes!(tokio::net::TcpSocket, None)?;
        let ns = like_kernel();
        let (lonet, sndbuf, mem_peak) = ns
            .clone()
            .scope(async { tiny_writes!(lonet::net::TcpSocket, Some(&ns)) })
            .await?;
        eprintln!(
            "1-byte writes: lonet {lonet} B accepted (SO_SNDBUF {sndbuf}, sockstat mem peak \
             {mem_peak}), kernel {kernel} B (SO_SNDBUF {ksndbuf})"
        );
        assert_eq!(sndbuf, ksndbuf, "SO_SNDBUF read back");
        assert!(
            within(lonet as f64, kernel as f64, 0.25),
            "bytes accepted before the writer is held back: lonet {lonet}, kernel {kernel}"
        );
        // The send queue is charged by skb truesize (payload + head per skb): one head per
        // byte would have held the writer to a few hundred bytes.
        assert!(lonet >= sndbuf / 2, "accepted {lonet} of {sndbuf}");
        assert!(
            mem_peak as usize <= 2 * sndbuf,
            "sockstat mem {mem_peak} above twice the send buffer {sndbuf}"
        );
        io::Result::Ok(())
    })
    .await
    .unwrap();
}

/// Every segment of a capture: (source port, SYN, window field, payload length).
fn segments(pcap: &[u8]) -> Vec<(u16, bool, u16, usize)> {
    use etherparse::{Ethernet2Header, Ipv4Header, TcpHeader};
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + incl];
        at += 16 + incl;
        let (_, ip) = Ethernet2Header::from_slice(frame).expect("ethernet");
        let (iph, rest) = Ipv4Header::from_slice(ip).expect("ipv4");
        let (tcp, _) = TcpHeader::from_slice(rest).expect("tcp");
        let len = usize::from(iph.total_len) - iph.header_len() - tcp.header_len();
        out.push((tcp.source_port, tcp.syn, tcp.window_size, len));
    }
    out
}

#[tokio::test]
async fn the_third_ack_and_the_first_segment_are_linuxs() {
    bounded("third ACK and first segment", async {
        let ns = like_kernel();
        let rmem2 = ns.sysctl().tcp_rmem[2];
        let cap = ns.capture_to_memory(lonet::capture::CaptureOptions::new());
        let client_port = ns
            .scope(async {
                let l = lonet::net::TcpListener::bind("127.0.0.1:0").await?;
                let mut c = lonet::net::TcpStream::connect(l.local_addr()?).await?;
                let (mut s, _) = l.accept().await?;
                let port = c.local_addr()?.port();
                // A request first: the server's first ACK carries its window before any
                // full segment moved its scaling ratio.
                let mut req = [0u8; 100];
                c.write_all(&[4u8; 100]).await?;
                s.read_exact(&mut req).await?;
                let data = vec![5u8; 100_000];
                let mut got = vec![0u8; data.len()];
                let (w, r) = tokio::join!(c.write_all(&data), s.read_exact(&mut got));
                w?;
                r?;
                io::Result::Ok(port)
            })
            .await?;
        let segs = segments(&cap.stop()?);
        let wscale = ((usize::BITS - 1 - rmem2.leading_zeros()) as i32 - 15).clamp(0, 14) as u32;
        // The third ACK (__tcp_select_window): the free space, bounded by rcv_ssthresh
        // (65495, the SYN's window), rounded up to the scale: 65536, field 64 with wscale 10
        // as measured on 6.18.
        let third = segs
            .iter()
            .find(|s| s.0 == client_port && !s.1)
            .expect("the third ACK");
        let unit = 1u32 << wscale;
        assert_eq!(
            u32::from(third.2),
            (65_495u32.div_ceil(unit) * unit) >> wscale
        );
        // The server's first window: 65483 (its SYN-ACK's) rounded up the same way.
        let server_first = segs
            .iter()
            .find(|s| s.0 != client_port && !s.1)
            .expect("the server's first ACK");
        assert_eq!(
            u32::from(server_first.2),
            (65_483u32.div_ceil(unit) * unit) >> wscale
        );
        // The bulk write's segments: the MSS bounded by half the SYN-ACK's window when the
        // handshake completed (tcp_sync_mss, tcp_bound_to_half_wnd: 65483 / 2 = 32741, as
        // measured on 6.18), though the server's windows have grown since.
        let bulk: Vec<usize> = segs
            .iter()
            .filter(|s| s.0 == client_port && s.3 > 100)
            .map(|s| s.3)
            .collect();
        assert_eq!(bulk[..3], [32_741, 32_741, 32_741], "{bulk:?}");
        assert!(bulk.iter().all(|&n| n <= 32_741), "{bulk:?}");
        io::Result::Ok(())
    })
    .await
    .unwrap();
}
