//! A tour of lonet: the path bytes take through an in-process 127.0.0.1.
//!
//! Run it with `cargo run --release --example tour`. It
//!
//! - (a) runs an echo server and a client over `lonet::net` in a fresh namespace,
//! - (b) runs the very same exchange over a real `tokio::net` socket on 127.0.0.1,
//! - (c) connects to a port nobody listens on, with both, and shows the refusal,
//! - (d) prints the namespace's counters the way the kernel's own tools print them.
//!
//! Every byte sent in (a) goes through lonet's model of the Linux loopback path:
//! `tcp_sendmsg` → `tcp_write_xmit` → route lookup (local table → `lo`) →
//! `loopback_xmit` → `netif_rx` → per-CPU backlog → NET_RX softirq → `tcp_v4_rcv` →
//! the peer's receive queue. The counters in (d) are what that path counted.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lonet::Netns;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

/// The messages the client sends and expects back: (label, size, timed rounds).
const MESSAGES: [(&str, usize, u32); 3] = [
    ("5 B", 5, 1000),
    ("64 KiB", 64 * 1024, 100),
    ("1 MiB", 1024 * 1024, 10),
];

/// The port lonet's echo server binds in its own namespace. Nothing on the machine's
/// real 127.0.0.1 is touched, so it cannot collide with anything running here.
const LONET_ECHO_PORT: u16 = 7007;

/// How many more refused connects (c) times after the first.
const REFUSED_AGAIN: u32 = 10;

/// How long (d) waits for the namespace's helper thread to exit by itself.
const KSOFTIRQD_WAIT: Duration = Duration::from_secs(3);

/// No phase of the tour may take longer than this: a stall is reported, not waited out.
const PHASE_LIMIT: Duration = Duration::from_secs(20);

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    println!("lonet tour: the path bytes take through an in-process 127.0.0.1");
    println!("(current-thread tokio runtime; times are wall clock for this run only)");

    // A fresh namespace: its own ports, sysctls and counters, so everything counted
    // in (d) comes from this tour alone.
    let ns = Netns::new();

    // (a) echo over lonet ------------------------------------------------------------
    header("(a) echo over lonet::net, in a fresh Netns");
    let (tx, rx) = oneshot::channel();
    // The server task creates its listener inside the namespace. `tokio::spawn` does not
    // carry the namespace into the task by itself (yet): wrap the task in `scope`.
    let server = tokio::spawn(ns.clone().scope(async move {
        let listener = lonet::net::TcpListener::bind(("127.0.0.1", LONET_ECHO_PORT)).await?;
        let _ = tx.send(listener.local_addr()?);
        let (stream, _) = listener.accept().await?;
        lonet_echo(stream).await
    }));
    let addr = rx
        .await
        .map_err(|_| io::Error::other("the lonet echo server failed to start"))?;
    println!("    server: lonet::net::TcpListener on {addr}, echoes one connection");

    let lonet_client = ns.clone().scope(async move {
        let mut stream = lonet::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        println!(
            "    client: lonet::net::TcpStream {} -> {}",
            stream.local_addr()?,
            stream.peer_addr()?
        );
        let results = exchange_all(&mut stream).await?;
        let during = Netns::current().sockstat();
        // Close cleanly: our FIN, then the server's FIN once it has echoed everything.
        stream.shutdown().await?;
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await?;
        Ok::<_, io::Error>((results, during))
    });
    let (lonet_results, sockstat_during) =
        within("the lonet echo exchange", lonet_client).await??;
    let echoed = within("the lonet echo server", server)
        .await?
        .map_err(io::Error::other)??;
    print_results(&lonet_results);
    println!(
        "    server echoed {} bytes in all, then saw EOF and closed",
        group(echoed)
    );
    println!("    (TCP_NODELAY on both ends: with Nagle on, an echo's last short segment can wait");
    println!("    for the peer's delayed ACK, 40 ms, on Linux and in lonet alike)");

    // (b) the same over the kernel ----------------------------------------------------
    header("(b) the same exchange over tokio::net (the kernel's loopback)");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        tokio_echo(stream).await
    });
    println!("    server: tokio::net::TcpListener on {addr}, echoes one connection");
    let tokio_client = async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        println!(
            "    client: tokio::net::TcpStream {} -> {}",
            stream.local_addr()?,
            stream.peer_addr()?
        );
        let results = exchange_all(&mut stream).await?;
        stream.shutdown().await?;
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await?;
        Ok::<_, io::Error>(results)
    };
    let tokio_results = within("the tokio echo exchange", tokio_client).await??;
    within("the tokio echo server", server)
        .await?
        .map_err(io::Error::other)??;
    print_results(&tokio_results);

    println!();
    println!("    mean round trip, side by side (one run, small counts: an illustration, not a benchmark):");
    println!(
        "    {:<8} {:>12} {:>12} {:>14}   (above 1: lonet is faster)",
        "size", "lonet", "kernel", "kernel/lonet"
    );
    for (l, k) in lonet_results.iter().zip(&tokio_results) {
        let ratio = k.mean.as_secs_f64() / l.mean.as_secs_f64().max(1e-12);
        println!(
            "    {:<8} {:>12} {:>12} {:>13.1}x",
            l.label,
            dur(l.mean),
            dur(k.mean),
            ratio
        );
    }

    // (c) connection refused ----------------------------------------------------------
    header("(c) connect to a port with no listener");
    // A port that is free on the real 127.0.0.1: bind it, note it, close it again.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await?
        .local_addr()?
        .port();
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    println!("    both connect to {target}; nothing listens there");
    let lonet = refusals(|| ns.clone().scope(lonet::net::TcpStream::connect(target))).await?;
    let kernel = refusals(|| tokio::net::TcpStream::connect(target)).await?;
    println!(
        "    {:<6} {:<18} {:>5}  {:<34} {:>10} {:>16}",
        "",
        "error kind",
        "errno",
        "message",
        "first",
        format!("next {REFUSED_AGAIN}, mean")
    );
    print_refusal("lonet", &lonet);
    print_refusal("tokio", &kernel);
    println!("    lonet's SYN met no socket in tcp_v4_rcv, so the model answered with a RST,");
    println!("    as Linux does; each RST shows as OutRsts and a failed attempt in (d).");

    // (d) counters --------------------------------------------------------------------
    header("(d) what the modeled path counted (namespace of (a) and (c))");
    let payload: u64 = lonet_results
        .iter()
        .map(|r| r.size as u64 * (u64::from(r.rounds) + 1))
        .sum();
    let sysctl = ns.sysctl();
    println!(
        "    payload the client sent (and got back): {} bytes each way",
        group(payload)
    );
    println!(
        "    sysctls (kernel defaults): netdev_max_backlog={} netdev_budget={} dev_weight={}",
        sysctl.netdev_max_backlog, sysctl.netdev_budget, sysctl.dev_weight
    );
    println!(
        "                               tcp_rmem={:?} tcp_wmem={:?}",
        sysctl.tcp_rmem, sysctl.tcp_wmem
    );

    let lo = ns.lo_stats();
    section(
        "ip -s link show lo",
        &[
            "lo counts every segment once on TX and once on RX: data, ACKs, SYN, FIN, RST.",
            "Bytes are IP packet lengths (payload + IP and TCP headers); dropped = backlog full.",
        ],
        &lo,
    );
    let headers = (lo.tx_bytes.saturating_sub(2 * payload)) as f64 / lo.tx_packets.max(1) as f64;
    println!(
        "    -> {} packets carried 2 x {} payload bytes; the rest is {:.1} header bytes per packet",
        group(lo.tx_packets),
        group(payload),
        headers
    );

    let softnet = ns.softnet_stat();
    section(
        "/proc/net/softnet_stat",
        &[
            "One row per CPU, in hex: packets the NET_RX softirq took off that CPU's backlog,",
            "packets dropped because the backlog was full, and runs cut short by the budget",
            "(time_squeeze). Without RPS a packet waits on its sender's CPU.",
        ],
        &softnet,
    );
    println!("    decoded:  cpu   processed   dropped  time_squeeze  input_qlen  process_qlen");
    for row in &softnet.cpus {
        println!(
            "    {:>13} {:>11} {:>9} {:>13} {:>11} {:>13}",
            row.cpu,
            group(row.processed),
            row.dropped,
            row.time_squeeze,
            row.input_qlen,
            row.process_qlen
        );
    }
    let total = softnet.total();
    println!(
        "    -> processed {} (lo rx_packets {}), dropped {}, time_squeeze {}",
        group(total.processed),
        group(lo.rx_packets),
        total.dropped,
        total.time_squeeze
    );

    let tcp = ns.tcp_stats();
    section(
        "netstat -s (Tcp:)",
        &[
            "A connect counts as an active open when its SYN leaves: the echo client and each",
            "refused connect. The server's accept is the passive open; each refused connect is",
            "a failed attempt and a RST sent. On loopback every segment sent is received, so",
            "InSegs = OutSegs = lo's packets, unless the backlog dropped some.",
        ],
        &tcp,
    );
    let refused = u64::from(REFUSED_AGAIN) + 1;
    println!(
        "    -> active opens {} (expected 1 + {refused}), passive {} (1), failed attempts {} ({refused}), resets sent {} ({refused})",
        tcp.active_opens, tcp.passive_opens, tcp.attempt_fails, tcp.out_rsts
    );
    println!(
        "    -> InSegs {}, OutSegs {}, lo packets {}; retransmitted {}",
        group(tcp.in_segs),
        group(tcp.out_segs),
        group(lo.tx_packets),
        tcp.retrans_segs
    );

    let after = ns.sockstat();
    section(
        "/proc/net/sockstat (TCP line), while the lonet connection was open",
        &[
            "inuse: sockets in the tables (the listener and both ends of the connection);",
            "alloc: TCP sockets allocated; mem: bytes held in socket send and receive queues.",
        ],
        &sockstat_during,
    );
    if sockstat_during.mem > 0 {
        println!(
            "    -> mem {}: sent bytes wait in the send queue until ACKed, received ones in the",
            group(sockstat_during.mem)
        );
        println!(
            "       receive queue until read. At rest, this is the tail of the last echo: the"
        );
        println!("       client got it but is delaying its ACK (up to 40 ms), as Linux would.");
    }
    section(
        "/proc/net/sockstat (TCP line), now",
        &[
            "Both ends closed and the server returned: nothing in use or held. tw 1: the",
            "side that closed first keeps a small TIME_WAIT entry for 60 s, as on Linux.",
        ],
        &after,
    );
    // The helper thread plays ksoftirqd and the timer softirq. Timers are lazy: a closed
    // socket's last registration still has to come due before the thread sees nothing
    // left and exits.
    println!();
    let started = Instant::now();
    while ns.ksoftirqd_running() && started.elapsed() < KSOFTIRQD_WAIT {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let what = "ksoftirqd (the namespace's helper thread for timers and leftover backlog)";
    if ns.ksoftirqd_running() {
        println!("  {what}: still running after {}", dur(started.elapsed()));
    } else if started.elapsed() > Duration::from_millis(1) {
        println!(
            "  {what}: exited by itself {} later, its last timer gone",
            dur(started.elapsed())
        );
    } else {
        println!("  {what}: not running, no timer armed and no backlog left");
    }
    println!();
    println!("done.");
    Ok(())
}

/// The echo server's work for one lonet connection: copy everything back, then FIN.
async fn lonet_echo(mut stream: lonet::net::TcpStream) -> io::Result<u64> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.split();
    let n = tokio::io::copy(&mut rd, &mut wr).await?;
    wr.shutdown().await?;
    Ok(n)
}

/// The same for a kernel socket: the code is the same, only the type differs.
async fn tokio_echo(mut stream: tokio::net::TcpStream) -> io::Result<u64> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.split();
    let n = tokio::io::copy(&mut rd, &mut wr).await?;
    wr.shutdown().await?;
    Ok(n)
}

/// What one message size gave.
struct Exchange {
    label: &'static str,
    size: usize,
    rounds: u32,
    /// What came back the first time, described.
    came_back: String,
    mean: Duration,
    best: Duration,
}

/// Send each message once (and show what came back), then time `rounds` more.
async fn exchange_all<S>(stream: &mut S) -> io::Result<Vec<Exchange>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut results = Vec::new();
    for (label, size, rounds) in MESSAGES {
        let msg = message(size);
        let mut back = vec![0; size];
        round_trip(stream, &msg, &mut back).await?;
        let came_back = describe(&msg, &back);
        let mut total = Duration::ZERO;
        let mut best = Duration::MAX;
        for _ in 0..rounds {
            let t = round_trip(stream, &msg, &mut back).await?;
            total += t;
            best = best.min(t);
        }
        if back != msg {
            return Err(io::Error::other(format!(
                "{label}: the echo came back different"
            )));
        }
        results.push(Exchange {
            label,
            size,
            rounds,
            came_back,
            mean: total / rounds,
            best,
        });
    }
    Ok(results)
}

/// Write `msg` and read as many bytes back. Both at once: a 1 MiB message does not fit
/// in the socket buffers, so a client that wrote it all before reading would stall, on
/// lonet exactly as on the kernel.
async fn round_trip<S>(stream: &mut S, msg: &[u8], back: &mut [u8]) -> io::Result<Duration>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let start = Instant::now();
    tokio::try_join!(wr.write_all(msg), rd.read_exact(back))?;
    Ok(start.elapsed())
}

fn message(size: usize) -> Vec<u8> {
    if size == 5 {
        return b"hello".to_vec();
    }
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

fn describe(sent: &[u8], back: &[u8]) -> String {
    if sent.len() <= 16 {
        return format!("{:?}", String::from_utf8_lossy(back));
    }
    match sent.iter().zip(back).position(|(a, b)| a != b) {
        None => format!("{} bytes, all equal", group(back.len() as u64)),
        Some(i) => format!(
            "{} bytes, DIFFERENT from byte {i}",
            group(back.len() as u64)
        ),
    }
}

fn print_results(results: &[Exchange]) {
    println!();
    println!(
        "    {:<8} {:<28} {:>7} {:>12} {:>12}",
        "size", "came back", "rounds", "mean RTT", "best RTT"
    );
    for r in results {
        println!(
            "    {:<8} {:<28} {:>7} {:>12} {:>12}",
            r.label,
            r.came_back,
            r.rounds,
            dur(r.mean),
            dur(r.best)
        );
    }
}

/// What connecting to a port nobody listens on gave: the first attempt's result and
/// time, and the mean time of [`REFUSED_AGAIN`] more attempts.
struct Refusals {
    first: io::Result<()>,
    first_took: Duration,
    mean_again: Duration,
}

async fn refusals<T, F, Fut>(mut connect: F) -> io::Result<Refusals>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let started = Instant::now();
    let first = within("a refused connect", connect()).await?.map(|_| ());
    let first_took = started.elapsed();
    let started = Instant::now();
    for _ in 0..REFUSED_AGAIN {
        let _ = within("a refused connect", connect()).await?;
    }
    Ok(Refusals {
        first,
        first_took,
        mean_again: started.elapsed() / REFUSED_AGAIN,
    })
}

fn print_refusal(who: &str, r: &Refusals) {
    match &r.first {
        Ok(()) => println!("    {who:<6} connected (unexpected: something listens there)"),
        Err(e) => println!(
            "    {who:<6} {:<18} {:>5}  {:<34} {:>10} {:>16}",
            format!("{:?}", e.kind()),
            e.raw_os_error().map_or("-".to_string(), |n| n.to_string()),
            e.to_string(),
            dur(r.first_took),
            dur(r.mean_again)
        ),
    }
}

/// Await `fut`, but give up with an error after [`PHASE_LIMIT`].
async fn within<F: Future>(what: &str, fut: F) -> io::Result<F::Output> {
    tokio::time::timeout(PHASE_LIMIT, fut)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{what} stalled")))
}

fn header(title: &str) {
    println!();
    println!("{title}");
    println!("{}", "=".repeat(title.chars().count()));
}

/// A counter block: the kernel tool it imitates, what the numbers say, the numbers.
fn section(tool: &str, explain: &[&str], value: &dyn Display) {
    println!();
    println!("  == {tool}");
    for line in explain {
        println!("     {line}");
    }
    for line in value.to_string().lines() {
        println!("    {line}");
    }
}

fn dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// 1234567 -> "1,234,567".
fn group(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().collect();
    let mut out = String::new();
    for (i, chunk) in digits.rchunks(3).rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.extend(chunk);
    }
    out
}
