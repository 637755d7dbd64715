//! Many connections moving random amounts of data, both ways at once, while the faults on `lo`
//! change (delay, jitter, loss, reordering, rate, short partitions), on a multi-thread runtime.
//! Every byte is checked, and afterwards the namespace holds no socket and no buffered byte.

use crate::common::*;
use lonet::fault::{Fault, Match};
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes `len` bytes of stream `seed` on `w` while reading `len` bytes of stream `peer_seed`
/// from `r` (both at once, so neither waits on a full window), then shuts down and expects EOF.
async fn both_ways(sock: TcpStream, seed: u64, peer_seed: u64, len: usize) -> Result<u64, String> {
    let (mut r, mut w) = sock.into_split();
    let writer = async move {
        let mut off = 0usize;
        let mut buf = vec![0; 64 * 1024];
        while off < len {
            let n = (len - off)
                .min(buf.len())
                .min(1 + (splitmix64(seed ^ off as u64) as usize % buf.len()));
            fill_pattern(seed, off as u64, &mut buf[..n]);
            w.write_all(&buf[..n])
                .await
                .map_err(|e| format!("write at {off}: {e}"))?;
            off += n;
        }
        w.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
        Ok::<_, String>(w)
    };
    let reader = async move {
        let mut check = PatternCheck::new(peer_seed);
        let mut buf = vec![0; 32 * 1024];
        loop {
            let n = r
                .read(&mut buf)
                .await
                .map_err(|e| format!("read at {}: {e}", check.offset()))?;
            if n == 0 {
                break;
            }
            check.check(&buf[..n])?;
        }
        if check.offset() != len as u64 {
            return Err(format!("EOF after {} bytes of {len}", check.offset()));
        }
        Ok(r)
    };
    let (w, r) = tokio::join!(writer, reader);
    let (w, r) = (w?, r?);
    drop(r.reunite(w).map_err(|e| e.to_string())?);
    // The bytes this end checked (its peer counts the other direction).
    Ok(len as u64)
}

/// What one run moved.
pub struct Figures {
    pub connections: usize,
    pub bytes: u64,
    pub retransmits: u64,
}

/// Opens `conns` connections in `ns` (at most `parallel` at once), each moving a random amount
/// of data (up to `max_len` each way, from `seed`) both ways at once; checks every byte.
pub async fn traffic(ns: &Netns, conns: usize, parallel: usize, max_len: usize, seed: u64) -> u64 {
    let listener = ns
        .clone()
        .scope(TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let len_of = move |i: usize| splitmix64(seed ^ (i as u64) << 32) as usize % (max_len + 1);
    let server = tokio::spawn(async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..conns {
            let (sock, peer) = listener.accept().await.expect("accept");
            set.spawn(async move {
                // The client says which connection it is, in its first 8 bytes.
                let mut sock = sock;
                let mut id = [0; 8];
                sock.read_exact(&mut id)
                    .await
                    .map_err(|e| format!("{peer}: id: {e}"))?;
                let i = u64::from_le_bytes(id) as usize;
                let len = len_of(i);
                both_ways(sock, seed ^ (2 * i as u64 + 1), seed ^ (2 * i as u64), len).await
            });
        }
        let mut total = 0;
        while let Some(r) = set.join_next().await {
            total += r.expect("server task").expect("server side");
        }
        total
    });
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..conns {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let ns = ns.clone();
        clients.spawn(async move {
            let mut sock = ns
                .scope(TcpStream::connect(addr))
                .await
                .map_err(|e| format!("connect {i}: {e}"))?;
            sock.write_all(&(i as u64).to_le_bytes())
                .await
                .map_err(|e| format!("id: {e}"))?;
            let r = both_ways(
                sock,
                seed ^ (2 * i as u64),
                seed ^ (2 * i as u64 + 1),
                len_of(i),
            )
            .await;
            drop(permit);
            r
        });
    }
    let mut total = 0;
    while let Some(r) = clients.join_next().await {
        total += r.expect("client task").expect("client side");
    }
    total + server.await.expect("server")
}

/// The faults the soak cycles through, each for a moment.
fn faults(step: u64) -> Option<Fault> {
    let ms = Duration::from_millis;
    Some(match step % 8 {
        0 => Fault::new().delay(ms(2)),
        1 => Fault::new().delay(ms(3)).jitter(ms(2)).seed(step),
        2 => Fault::new().loss(0.02).seed(step),
        3 => Fault::new().delay(ms(2)).reorder(0.25).seed(step),
        4 => Fault::new().rate(50_000_000),
        5 => Fault::partition(),
        6 => Fault::new()
            .delay(ms(1))
            .jitter(ms(1))
            .loss(0.01)
            .seed(step),
        _ => return None,
    })
}

/// Runs the soak on a 4-worker runtime, rounds of `conns` connections for at least `min_time`,
/// each round within `limit`, and returns its figures.
pub fn soak(
    conns: usize,
    max_len: usize,
    seed: u64,
    min_time: Duration,
    limit: Duration,
) -> Figures {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ns = Netns::new();
        // Retransmissions after a loss or a partition come sooner (a sysctl users can set too).
        ns.set_sysctl(|s| s.tcp_rto_min_us = 10_000).expect("sysctl");
        let done = Arc::new(AtomicBool::new(false));
        let changer = {
            let (ns, done) = (ns.clone(), done.clone());
            tokio::spawn(async move {
                let mut step = 0u64;
                while !done.load(Relaxed) {
                    let guard = faults(step).map(|f| ns.add_fault(Match::all(), f).expect("a valid fault"));
                    // The faults' schedule on the wall clock (not a synchronisation):
                    // partitions stay short, the other faults a little longer.
                    let hold = if step % 8 == 5 { 15 } else { 40 };
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    drop(guard);
                    step += 1;
                }
                step
            })
        };
        let start = Instant::now();
        // Rounds of traffic until `min_time` has passed, so the faults change many times.
        let (mut bytes, mut rounds) = (0, 0);
        while rounds == 0 || start.elapsed() < min_time {
            let round = traffic(&ns, conns, 32, max_len, seed ^ (rounds as u64) << 48);
            bytes += bounded_for("soak traffic", limit, round).await;
            rounds += 1;
        }
        let conns = conns * rounds;
        done.store(true, Relaxed);
        let steps = changer.await.expect("changer");
        assert!(ns.qdisc().is_noqueue(), "every fault lifted");
        wait_all_freed(&ns).await;
        let s = ns.sockstat();
        assert_eq!((s.inuse, s.orphan, s.alloc, s.mem), (0, 0, 0, 0), "{s}");
        let retransmits = ns.tcp_stats().retrans_segs;
        eprintln!(
            "soak: {conns} connections, {bytes} bytes checked, {retransmits} retransmitted segments, {steps} fault changes, {:?}",
            start.elapsed()
        );
        Figures { connections: conns, bytes, retransmits }
    })
}

/// The CI run: 5 seconds.
#[test]
fn soak_under_changing_faults() {
    let f = soak(
        96,
        256 * 1024,
        0x50a4,
        Duration::from_secs(5),
        Duration::from_secs(60),
    );
    assert!(f.bytes > 0 && f.connections >= 96);
}

/// The long run.
#[test]
#[ignore = "long: 5 minutes of traffic under changing faults; run with --ignored"]
fn soak_under_changing_faults_long() {
    let f = soak(
        500,
        2 << 20,
        0x50a5,
        Duration::from_secs(300),
        Duration::from_secs(600),
    );
    assert!(f.retransmits > 0, "the faults caused retransmissions");
}
