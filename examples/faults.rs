//! A flaky network between two in-process services, and what it does to a
//! careful client.
//!
//! A server answers one-line requests on 127.0.0.1:7000. A client sends
//! requests with a timeout and retries (reconnecting when a connection is
//! given up). The network between them is made bad in three acts:
//!
//! 1. 20 ms latency and 5% packet loss (`tc qdisc ... netem delay 20ms loss 5%`);
//! 2. a partition on top of it, which heals after 3 s;
//! 3. the lossy link again.
//!
//! As it goes it prints the socket table (`ss -tan`), the qdisc (`tc -s
//! qdisc`) and the TCP counters (`netstat -s`), and everything on the modeled
//! `lo` is captured to a pcap file for Wireshark.
//!
//! The namespace keeps time with tokio (`lonet::time::use_tokio_time`) on a
//! paused clock, so the run takes well under a second of real time while the
//! times printed are the modeled ones, exact and the same on every run.
//!
//! ```sh
//! cargo run --release --example faults
//! tshark -r "$TMPDIR/lonet-faults.pcap" | head   # or open it in Wireshark
//! ```

use lonet::capture::CaptureOptions;
use lonet::fault::{Fault, Match};
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::{timeout, Instant};

const ADDR: &str = "127.0.0.1:7000";
/// How long the client waits for one answer before giving the connection up.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(800);
/// How long the client waits for a connect.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Attempts per request, the first included.
const ATTEMPTS: u32 = 8;

/// The server: one line in, one line out, per connection, until EOF.
async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(Netns::current().scope(async move {
            let (rd, mut wr) = stream.into_split();
            let mut lines = BufReader::new(rd).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if wr
                    .write_all(format!("ok {line}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
}

/// A client with a timeout per request and retries with backoff.
struct Client {
    conn: Option<(
        BufReader<lonet::net::tcp::OwnedReadHalf>,
        lonet::net::tcp::OwnedWriteHalf,
    )>,
    retries: u64,
    reconnects: u64,
}

impl Client {
    async fn request(&mut self, n: u64) -> io::Result<Duration> {
        let t0 = Instant::now();
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            match self.try_once(n).await {
                Ok(()) => return Ok(t0.elapsed()),
                Err(e) => {
                    println!(
                        "  request {n}: attempt {attempt} failed after {:?}: {e}",
                        t0.elapsed()
                    );
                    self.conn = None; // give the connection up
                    self.retries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("request {n}: no answer after {ATTEMPTS} attempts"),
        ))
    }

    async fn try_once(&mut self, n: u64) -> io::Result<()> {
        if self.conn.is_none() {
            let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(ADDR))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            stream.set_nodelay(true)?;
            let (rd, wr) = stream.into_split();
            self.conn = Some((BufReader::new(rd), wr));
            self.reconnects += 1;
        }
        let Some((rd, wr)) = self.conn.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        let exchange = async {
            wr.write_all(format!("req {n}\n").as_bytes()).await?;
            let mut line = String::new();
            if rd.read_line(&mut line).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed",
                ));
            }
            if line.trim_end() != format!("ok req {n}") {
                return Err(io::Error::other(format!("wrong answer {line:?}")));
            }
            Ok(())
        };
        timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
    }
}

/// Sends `count` requests and prints how long they took.
async fn act(client: &mut Client, first: u64, count: u64) -> io::Result<()> {
    let mut took = Vec::new();
    for n in first..first + count {
        took.push(client.request(n).await?);
    }
    took.sort();
    println!(
        "  {count} requests answered: fastest {:?}, median {:?}, slowest {:?}",
        took[0],
        took[took.len() / 2],
        took[took.len() - 1]
    );
    Ok(())
}

fn show(ns: &Netns, title: &str) {
    println!("\n--- {title}: ss -tan");
    println!("{}", ns.sockets());
    println!("--- tc -s qdisc show dev lo");
    print!("{}", ns.qdisc());
    let t = ns.tcp_stats();
    println!(
        "--- netstat -s (part): {} segments sent, {} retransmitted, {} retransmission timeouts, {} resets sent\n",
        t.out_segs, t.retrans_segs, t.tcp_timeouts, t.out_rsts
    );
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> io::Result<()> {
    let ns = Netns::new();
    lonet::time::use_tokio_time(&ns)?;
    let pcap = std::env::temp_dir().join("lonet-faults.pcap");
    let capture = ns.capture_to_file(&pcap, CaptureOptions::new())?;
    let t_start = Instant::now();

    ns.clone()
        .scope(async {
            let listener = TcpListener::bind(ADDR).await?;
            let server = tokio::spawn(Netns::current().scope(serve(listener)));
            let mut client = Client {
                conn: None,
                retries: 0,
                reconnects: 0,
            };

            println!("act 1: 20 ms latency, 5% loss on port 7000");
            let lossy = ns.add_fault(
                Match::port(7000),
                Fault::new().delay(Duration::from_millis(20)).loss(0.05),
            )?;
            act(&mut client, 1, 40).await?;
            show(&ns, "after act 1");

            println!("act 2: a partition on top, healing after 3 s");
            let cut = ns.add_fault(Match::port(7000), Fault::partition())?;
            let heal = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                drop(cut);
                println!("  ... the partition heals");
            });
            act(&mut client, 41, 5).await?;
            heal.await.map_err(io::Error::other)?;
            show(&ns, "after act 2");

            println!("act 3: the lossy link again");
            act(&mut client, 46, 20).await?;
            println!(
                "\nthe client retried {} times and connected {} times",
                client.retries, client.reconnects
            );
            let stats = lossy.stats();
            println!(
                "the lossy link matched {} packets and dropped {}",
                stats.matched, stats.dropped
            );
            drop(lossy);
            drop(client); // the client closes first: its end goes to TIME-WAIT
            tokio::task::yield_now().await;
            show(&ns, "at the end");
            server.abort();
            io::Result::Ok(())
        })
        .await?;

    let packets = capture.packets();
    capture.stop()?;
    println!(
        "{:?} of modeled time; {packets} packets captured to {} (open it in Wireshark, or: tshark -r {})",
        t_start.elapsed(),
        pcap.display(),
        pcap.display()
    );
    println!("\n{}", ns.lo_stats());
    Ok(())
}
