//! Faults on the modeled loopback, observed end to end: latency, jitter,
//! rate, loss, reordering, partitions, an injected RST and a full accept
//! queue.
//!
//! Every test runs under a paused tokio clock with the namespace on tokio
//! time (`lonet::time::use_tokio_time`): injected delays and TCP's
//! retransmission timers take no real time, and the durations measured are
//! exact.

use crate::common::{bounded, errno, fill_pattern};
use lonet::fault::{Fault, Match};
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// `len` bytes of the position-dependent test pattern.
fn pattern(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(1, 0, &mut v);
    v
}

/// A namespace on tokio's (paused) clock.
fn paused_ns() -> Netns {
    let ns = Netns::new();
    lonet::time::use_tokio_time(&ns).expect("tokio time");
    ns
}

/// A connected pair (client, server end) on `addr`, with TCP_NODELAY.
async fn pair(addr: &str) -> io::Result<(TcpStream, TcpStream, TcpListener)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (client, accepted) = tokio::join!(TcpStream::connect(local), listener.accept());
    let client = client?;
    let (server, _) = accepted?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok((client, server, listener))
}

/// Writes `data` in `chunk`-byte writes on `c`, shuts it down, and returns
/// what `s` read up to EOF.
async fn transfer(
    c: &mut TcpStream,
    s: &mut TcpStream,
    data: &[u8],
    chunk: usize,
) -> io::Result<Vec<u8>> {
    let writer = async {
        for piece in data.chunks(chunk) {
            c.write_all(piece).await?;
        }
        c.shutdown().await
    };
    let reader = async {
        let mut got = Vec::new();
        s.read_to_end(&mut got).await?;
        io::Result::Ok(got)
    };
    let (w, got) = tokio::join!(writer, reader);
    w?;
    got
}

/// One 64-byte round trip through an echo on `server`.
async fn round_trip(client: &mut TcpStream, server: &mut TcpStream) -> io::Result<Duration> {
    let t0 = Instant::now();
    let ping = [7u8; 64];
    client.write_all(&ping).await?;
    let mut buf = [0u8; 64];
    server.read_exact(&mut buf).await?;
    server.write_all(&buf).await?;
    client.read_exact(&mut buf).await?;
    assert_eq!(buf, ping);
    Ok(t0.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_fixed_delay_adds_exactly_twice_its_value_to_a_round_trip() {
    let ns = paused_ns();
    bounded(
        "delay",
        ns.clone().scope(async {
            let (mut c, mut s, _l) = pair("127.0.0.1:7000").await?;
            let before = round_trip(&mut c, &mut s).await?;
            assert_eq!(before, Duration::ZERO, "no modeled time without a fault");
            let delay = ns
                .add_fault(Match::all(), Fault::new().delay(20 * MS))
                .unwrap();
            for _ in 0..3 {
                assert_eq!(round_trip(&mut c, &mut s).await?, 40 * MS);
            }
            assert!(delay.stats().sent_packets >= 6, "{:?}", delay.stats());
            drop(delay);
            assert_eq!(round_trip(&mut c, &mut s).await?, Duration::ZERO);
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_delay_on_one_port_leaves_other_connections_alone() {
    let ns = paused_ns();
    bounded(
        "per-port delay",
        ns.clone().scope(async {
            let (mut c1, mut s1, _l1) = pair("127.0.0.1:7001").await?;
            let (mut c2, mut s2, _l2) = pair("127.0.0.1:7002").await?;
            let _d = ns
                .add_fault(Match::port(7001), Fault::new().delay(5 * MS))
                .unwrap();
            assert_eq!(round_trip(&mut c1, &mut s1).await?, 10 * MS);
            assert_eq!(round_trip(&mut c2, &mut s2).await?, Duration::ZERO);
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_round_trips_within_its_bounds_and_repeats_with_the_seed() {
    async fn run() -> Vec<Duration> {
        let ns = paused_ns();
        ns.clone()
            .scope(async {
                let (mut c, mut s, _l) = pair("127.0.0.1:7003").await.unwrap();
                let _j = ns
                    .add_fault(Match::all(), Fault::new().delay(20 * MS).jitter(5 * MS))
                    .unwrap();
                let mut rtts = Vec::new();
                for _ in 0..20 {
                    rtts.push(round_trip(&mut c, &mut s).await.unwrap());
                }
                rtts
            })
            .await
    }
    let a = bounded("jitter", run()).await;
    for r in &a {
        assert!(
            *r >= 30 * MS && *r <= 50 * MS,
            "{r:?} outside 40 ms ± 2 × 5 ms"
        );
    }
    assert!(a.iter().any(|r| *r != a[0]), "jitter varied nothing: {a:?}");
    let b = bounded("jitter again", run()).await;
    assert_eq!(a, b, "the same seed and traffic give the same delays");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_paces_a_bulk_transfer() {
    let ns = paused_ns();
    bounded(
        "rate",
        ns.clone().scope(async {
            let (mut c, mut s, _l) = pair("127.0.0.1:7004").await?;
            // 1 MB/s on the data direction only matters: 256 KiB take ~0.26 s.
            let _r = ns
                .add_fault(Match::all(), Fault::new().rate(1_000_000))
                .unwrap();
            let data = pattern(256 * 1024);
            let t0 = Instant::now();
            let got = transfer(&mut c, &mut s, &data, data.len()).await?;
            let took = t0.elapsed();
            assert!(got == data, "bytes intact and in order");
            let wire = 256.0 * 1024.0 / 1_000_000.0;
            assert!(
                took.as_secs_f64() >= wire && took.as_secs_f64() < wire * 1.2,
                "256 KiB at 1 MB/s took {took:?}"
            );
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn loss_costs_retransmissions_but_every_byte_arrives_in_order() {
    let ns = paused_ns();
    bounded(
        "loss",
        ns.clone().scope(async {
            let (mut c, mut s, _l) = pair("127.0.0.1:7005").await?;
            let lossy = ns
                .add_fault(Match::all(), Fault::new().loss(0.10).delay(MS))
                .unwrap();
            let len = 2 * 1024 * 1024;
            let data = pattern(len);
            // Writes of 1 KiB: many segments, so 10% loss hits many.
            let got = transfer(&mut c, &mut s, &data, 1024).await?;
            assert!(got == data, "every byte, in order, then EOF");
            let dropped = lossy.stats().dropped;
            let tcp = ns.tcp_stats();
            assert!(dropped > 0, "{:?}", lossy.stats());
            assert!(
                tcp.retrans_segs > 0,
                "drops are recovered by retransmission: {tcp}"
            );
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn reordering_is_absorbed_by_the_receiver() {
    let ns = paused_ns();
    bounded(
        "reorder",
        ns.clone().scope(async {
            let (mut c, mut s, _l) = pair("127.0.0.1:7006").await?;
            let f = ns
                .add_fault(Match::all(), Fault::new().delay(10 * MS).reorder(0.25))
                .unwrap();
            let len = 512 * 1024;
            let data = pattern(len);
            let got = transfer(&mut c, &mut s, &data, 1000).await?;
            assert!(got == data, "bytes intact and in order");
            assert!(f.stats().reordered > 0, "{:?}", f.stats());
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_partition_times_connects_out_stalls_streams_and_heals() {
    let ns = paused_ns();
    bounded(
        "partition",
        ns.clone().scope(async {
            let (mut c, mut s, listener) = pair("127.0.0.1:7007").await?;
            let addr = listener.local_addr()?;
            let cut = ns.add_fault(Match::port(7007), Fault::partition()).unwrap();

            // A connect: its SYNs vanish; the caller's timeout ends it.
            let t0 = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await;
            assert!(r.is_err(), "connect through a partition: {r:?}");
            assert_eq!(t0.elapsed(), Duration::from_secs(5));

            // An established stream stalls.
            c.write_all(b"across the cut").await?;
            let mut buf = [0u8; 14];
            let stalled =
                tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut buf)).await;
            assert!(stalled.is_err(), "data crossed a partition");
            assert!(cut.stats().dropped > 0);

            // Healed: the retransmission gets through, new connects work.
            drop(cut);
            s.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"across the cut");
            let again = TcpStream::connect(addr).await?;
            let (_accepted, peer) = listener.accept().await?;
            assert_eq!(peer, again.local_addr()?);
            assert!(ns.tcp_stats().retrans_segs > 0);
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_injected_rst_resets_the_connection() {
    let ns = paused_ns();
    bounded(
        "rst",
        ns.clone().scope(async {
            let (mut c, mut s, _l) = pair("127.0.0.1:7008").await?;
            round_trip(&mut c, &mut s).await?;
            let client: SocketAddr = c.local_addr()?;
            let server: SocketAddr = s.local_addr()?;
            // As if the client had sent an RST: the server end is reset.
            ns.inject_rst(client, server)?;
            let mut buf = [0u8; 8];
            let e = s.read(&mut buf).await.expect_err("read after an RST");
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
            assert_eq!(e.raw_os_error(), Some(errno::ECONNRESET));
            // The client learns it from the RST answering its next segment.
            c.write_all(b"anyone?").await?;
            let e = c
                .read(&mut buf)
                .await
                .expect_err("read after the peer reset");
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
            // No such connection: NotFound.
            let e = ns
                .inject_rst(client, "127.0.0.1:1".parse().unwrap())
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_full_accept_queue_drops_syns_until_lifted() {
    let ns = paused_ns();
    bounded(
        "accept queue",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:7009").await?;
            let addr = listener.local_addr()?;
            let full = ns.fill_accept_queue(addr);
            let t0 = Instant::now();
            let connect = tokio::spawn(Netns::current().scope(TcpStream::connect(addr)));
            // 1.5 s of modeled time: the first SYN and its 1 s retransmission
            // are dropped.
            tokio::time::sleep(Duration::from_millis(1500)).await; // modeled time (paused clock)
            let tcp = ns.tcp_stats();
            assert_eq!((tcp.listen_overflows, tcp.listen_drops), (2, 2), "{tcp}");
            drop(full);
            // The next SYN, 2 s after the first, is taken: Linux 6.5+ keeps
            // the 1 s RTO for the first tcp_syn_linear_timeouts (4)
            // retransmissions instead of doubling it.
            let stream = connect.await.expect("task")?;
            assert_eq!(t0.elapsed(), Duration::from_secs(2));
            let (_s, peer) = listener.accept().await?;
            assert_eq!(peer, stream.local_addr()?);
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn faults_show_in_the_qdisc_like_tc() {
    let ns = paused_ns();
    assert!(
        ns.qdisc().to_string().starts_with("qdisc noqueue"),
        "{}",
        ns.qdisc()
    );
    let g = ns
        .add_fault(
            Match::port(80),
            Fault::new().delay(20 * MS).jitter(5 * MS).loss(0.05),
        )
        .unwrap();
    let q = ns.qdisc().to_string();
    assert!(q.starts_with("qdisc netem 8001: root"), "{q}");
    assert!(q.contains("delay 20ms 5ms loss 5%"), "{q}");
    assert!(q.contains("match port 80"), "{q}");
    assert!(q.contains(" Sent 0 bytes 0 pkt (dropped 0"), "{q}");
    drop(g);
    assert!(ns.qdisc().to_string().starts_with("qdisc noqueue"));
}

#[tokio::test]
async fn tokio_time_must_be_set_before_sockets_exist_and_only_once() {
    let ns = Netns::new();
    lonet::time::use_tokio_time(&ns).unwrap();
    let e = lonet::time::use_tokio_time(&ns).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    let other = Netns::new();
    let _l = other
        .clone()
        .scope(TcpListener::bind("127.0.0.1:1"))
        .await
        .unwrap();
    let e = lonet::time::use_tokio_time(&other).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn without_tokio_time_faults_run_on_the_wall_clock_and_the_timer_thread() {
    // No use_tokio_time: netem's queue and TCP's timers run on ksoftirqd.
    let ns = Netns::new();
    bounded(
        "wall clock",
        ns.clone().scope(async {
            let (mut c, mut s, _l) = pair("127.0.0.1:7010").await?;
            let _d = ns
                .add_fault(Match::all(), Fault::new().delay(5 * MS).loss(0.2))
                .unwrap();
            for _ in 0..5 {
                let rtt = round_trip(&mut c, &mut s).await?;
                assert!(rtt >= 10 * MS, "a 5 ms delay each way, yet {rtt:?}");
            }
            io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn the_tokio_time_driver_task_ends_with_its_namespace() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let ns = Netns::new();
    lonet::time::use_tokio_time(&ns).unwrap();
    ns.clone()
        .scope(async {
            let (mut c, mut s, _l) = pair("127.0.0.1:7011").await.unwrap();
            round_trip(&mut c, &mut s).await.unwrap();
        })
        .await;
    assert_eq!(
        metrics.num_alive_tasks(),
        before + 1,
        "the driver task runs"
    );
    drop(ns); // its sockets are gone too: the namespace goes, and its clock with it
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "the driver task outlived its namespace: {} tasks alive, {before} before",
        metrics.num_alive_tasks()
    );
}
