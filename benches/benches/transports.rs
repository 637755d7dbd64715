//! lonet against kernel loopback TCP, a Unix socket pair and
//! `tokio::io::duplex`, workload by workload (and lonet's UDP and QUIC
//! against the kernel's UDP) (`cargo bench -p lonet-bench`;
//! `cargo bench -p lonet-bench -- pingpong` for one group).
//!
//! Each criterion group is one workload on one runtime flavor; its bench ids
//! are the transports (`lonet`, `kernel_tcp`, `unix`, `duplex`), so the HTML
//! report (target/criterion/report/index.html) shows them side by side.
//! Connections are set up once per bench, outside the timed part; each sample
//! times its iterations in freshly spawned tasks (`iter_custom`), except the
//! `_block_on` ping-pong, whose client runs in `block_on` itself. Every lonet
//! bench has a namespace of its own. Real sockets use 127.0.0.1 only.
//!
//! For one table of the same workloads with lonet's ratios and whether it
//! meets its targets, run `cargo run --release -p lonet-bench --bin compare`.

use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use std::time::Duration;
use tokio::runtime::Runtime;

use lonet_bench::*;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Small samples and short measurements: the whole `cargo bench` stays in
/// minutes, and each figure is still a median over 10 samples.
fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

/// The runtime, or the bench stops with why there is none.
fn runtime(rt: std::io::Result<Runtime>) -> Runtime {
    rt.unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

fn fail(what: &str, name: &str, e: std::io::Error) -> ! {
    panic!("{what} over {name}: {e}")
}

fn pingpong<T: Transport>(g: &mut Group<'_>, rt: &Runtime, in_place: bool) {
    let (_t, mut w) = rt.block_on(async {
        let t = T::setup()
            .await
            .unwrap_or_else(|e| fail("setup", T::NAME, e));
        let w = PingPong::new(&t)
            .await
            .unwrap_or_else(|e| fail("ping-pong", T::NAME, e));
        (t, w)
    });
    g.bench_function(T::ID, |b| {
        b.iter_custom(|n| {
            let took = if in_place {
                rt.block_on(w.run_in_place(n))
            } else {
                rt.block_on(w.run(n))
            };
            took.unwrap_or_else(|e| fail("ping-pong", T::NAME, e))
        })
    });
}

fn bulk<T: Transport>(g: &mut Group<'_>, rt: &Runtime) {
    let (_t, mut w) = rt.block_on(async {
        let t = T::setup()
            .await
            .unwrap_or_else(|e| fail("setup", T::NAME, e));
        let w = Bulk::new(&t)
            .await
            .unwrap_or_else(|e| fail("bulk", T::NAME, e));
        (t, w)
    });
    g.bench_function(T::ID, |b| {
        b.iter_custom(|n| {
            rt.block_on(w.run(n))
                .unwrap_or_else(|e| fail("bulk", T::NAME, e))
        })
    });
}

fn connect_close<T: Listening>(g: &mut Group<'_>, rt: &Runtime) {
    let mut w = rt.block_on(async {
        let t = T::setup()
            .await
            .unwrap_or_else(|e| fail("setup", T::NAME, e));
        ConnectClose::new(t)
    });
    g.bench_function(T::ID, |b| {
        b.iter_custom(|n| {
            rt.block_on(w.run(n))
                .unwrap_or_else(|e| fail("connect+accept+close", T::NAME, e))
        })
    });
}

fn http1<T: Transport>(g: &mut Group<'_>, rt: &Runtime) {
    let (_t, mut w) = rt.block_on(async {
        let t = T::setup()
            .await
            .unwrap_or_else(|e| fail("setup", T::NAME, e));
        let w = Http1::new(&t)
            .await
            .unwrap_or_else(|e| fail("HTTP/1.1", T::NAME, e));
        (t, w)
    });
    g.bench_function(T::ID, |b| {
        b.iter_custom(|n| {
            rt.block_on(w.run(n))
                .unwrap_or_else(|e| fail("HTTP/1.1", T::NAME, e))
        })
    });
}

fn http2<T: Transport>(g: &mut Group<'_>, rt: &Runtime) {
    let (_t, mut w) = rt.block_on(async {
        let t = T::setup()
            .await
            .unwrap_or_else(|e| fail("setup", T::NAME, e));
        let w = Http2::new(&t)
            .await
            .unwrap_or_else(|e| fail("HTTP/2", T::NAME, e));
        (t, w)
    });
    g.bench_function(T::ID, |b| {
        b.iter_custom(|n| {
            rt.block_on(w.run(n))
                .unwrap_or_else(|e| fail("HTTP/2", T::NAME, e))
        })
    });
}

/// Connections in the "many at once" workload.
const MANY: usize = 1000;

/// `EMFILE`, "Too many open files" (the same number on every Linux arch).
const EMFILE: i32 = 24;

fn many<T: Transport>(g: &mut Group<'_>, rt: &Runtime) {
    let (_t, w) = rt.block_on(async {
        let t = T::setup()
            .await
            .unwrap_or_else(|e| fail("setup", T::NAME, e));
        let w = Many::new(&t, MANY).await;
        (t, w)
    });
    let mut w = match w {
        Ok(w) => w,
        // Kernel TCP needs two descriptors a connection: with the common
        // default `ulimit -n` of 1024 it cannot open 1,000. Say so, go on.
        Err(e) if e.raw_os_error() == Some(EMFILE) => {
            eprintln!(
                "skipping concurrent_1000_conns/{}: {e}; it needs about {} file descriptors \
                 (raise `ulimit -n`)",
                T::ID,
                2 * MANY + 16
            );
            return;
        }
        Err(e) => fail("1,000 connections", T::NAME, e),
    };
    g.bench_function(T::ID, |b| {
        b.iter_custom(|n| {
            rt.block_on(w.run(n))
                .unwrap_or_else(|e| fail("1,000 connections", T::NAME, e))
        })
    });
    // Close the connections while the runtime that registered them runs.
    rt.block_on(async move { drop(w) });
}

/// Ping-pong with the client in `block_on` (`_block_on`: the way the
/// reference real-socket figures were measured) and in a spawned task.
fn bench_pingpong(c: &mut Criterion) {
    for (flavor, rt, in_place) in [
        ("current_thread_block_on", runtime(current_thread()), true),
        ("current_thread", runtime(current_thread()), false),
        ("multi_thread_2", runtime(multi_thread_2()), false),
    ] {
        let mut g = group(c, &format!("pingpong_64B_{flavor}"));
        pingpong::<Lonet>(&mut g, &rt, in_place);
        pingpong::<Tcp>(&mut g, &rt, in_place);
        pingpong::<Unix>(&mut g, &rt, in_place);
        pingpong::<Duplex>(&mut g, &rt, in_place);
        g.finish();
    }
}

fn bench_bulk(c: &mut Criterion) {
    for (flavor, rt) in [
        ("current_thread", runtime(current_thread())),
        ("multi_thread_2", runtime(multi_thread_2())),
    ] {
        let mut g = group(c, &format!("bulk_64KiB_writes_{flavor}"));
        g.throughput(Throughput::Bytes(CHUNK as u64));
        bulk::<Lonet>(&mut g, &rt);
        bulk::<Tcp>(&mut g, &rt);
        bulk::<Unix>(&mut g, &rt);
        bulk::<Duplex>(&mut g, &rt);
        g.finish();
    }
}

fn bench_connect(c: &mut Criterion) {
    let rt = runtime(current_thread());
    let mut g = group(c, "connect_accept_close_current_thread");
    connect_close::<Lonet>(&mut g, &rt);
    connect_close::<Tcp>(&mut g, &rt);
    g.finish();
}

fn bench_http(c: &mut Criterion) {
    let rt = runtime(current_thread());
    let mut g = group(c, "hyper_http1_keepalive_current_thread");
    g.throughput(Throughput::Elements(1));
    http1::<Lonet>(&mut g, &rt);
    http1::<Tcp>(&mut g, &rt);
    http1::<Unix>(&mut g, &rt);
    http1::<Duplex>(&mut g, &rt);
    g.finish();

    let mut g = group(c, "hyper_http2_100_streams_current_thread");
    g.throughput(Throughput::Elements(1));
    http2::<Lonet>(&mut g, &rt);
    http2::<Tcp>(&mut g, &rt);
    http2::<Unix>(&mut g, &rt);
    http2::<Duplex>(&mut g, &rt);
    g.finish();
}

fn bench_many(c: &mut Criterion) {
    let rt = runtime(current_thread());
    let mut g = group(c, "concurrent_1000_conns_current_thread");
    // One iteration: one 64 KiB write on each of the 1,000 connections (64 MB,
    // tens of milliseconds). Flat sampling gives every sample the same count,
    // so 10 samples fit in the measurement time; linear sampling would need at
    // least 1 + 2 + ... + 10 = 55 iterations.
    g.throughput(Throughput::Bytes((CHUNK * MANY) as u64))
        .sampling_mode(SamplingMode::Flat);
    many::<Lonet>(&mut g, &rt);
    many::<Tcp>(&mut g, &rt);
    many::<Unix>(&mut g, &rt);
    many::<Duplex>(&mut g, &rt);
    g.finish();
}

fn udp_pingpong<T: DgramTransport>(g: &mut Group<'_>, rt: &Runtime) {
    let mut w = rt
        .block_on(UdpPingPong::<T>::new())
        .unwrap_or_else(|e| fail("UDP ping-pong", T::NAME, e));
    g.bench_function(T::ID, |b| {
        b.iter_custom(|n| {
            rt.block_on(w.run(n))
                .unwrap_or_else(|e| fail("UDP ping-pong", T::NAME, e))
        })
    });
    rt.block_on(async move { drop(w) });
}

fn udp_stream<T: DgramTransport>(g: &mut Group<'_>, rt: &Runtime) {
    let mut w = rt
        .block_on(UdpStream::<T>::new())
        .unwrap_or_else(|e| fail("UDP datagrams", T::NAME, e));
    g.bench_function(T::ID, |b| {
        // One iteration: one burst of 16 datagrams (n is rounded up to whole
        // bursts, which the throughput per iteration counts).
        b.iter_custom(|n| {
            rt.block_on(w.run(n * lonet_bench::udp::BURST))
                .unwrap_or_else(|e| fail("UDP datagrams", T::NAME, e))
                .0
        })
    });
    rt.block_on(async move { drop(w) });
}

fn quic_bulk(g: &mut Group<'_>, rt: &Runtime, over: QuicOver) {
    let mut w = rt
        .block_on(QuicBulk::new(over))
        .unwrap_or_else(|e| fail("QUIC bulk", over.name(), e));
    g.bench_function(over.id(), |b| {
        b.iter_custom(|n| {
            rt.block_on(w.run(n))
                .unwrap_or_else(|e| fail("QUIC bulk", over.name(), e))
        })
    });
    rt.block_on(async move { drop(w) });
}

/// UDP beside the kernel's (and a Unix datagram pair), and QUIC (quinn) over
/// lonet's UDP beside quinn over the kernel's.
fn bench_udp(c: &mut Criterion) {
    let rt = runtime(current_thread());
    let mut g = group(c, "udp_pingpong_64B_current_thread");
    udp_pingpong::<LonetUdp>(&mut g, &rt);
    udp_pingpong::<KernelUdp>(&mut g, &rt);
    udp_pingpong::<UnixDgram>(&mut g, &rt);
    g.finish();

    let mut g = group(c, "udp_datagrams_1200B_current_thread");
    g.throughput(Throughput::Bytes(lonet_bench::udp::BURST * DGRAM as u64));
    udp_stream::<LonetUdp>(&mut g, &rt);
    udp_stream::<KernelUdp>(&mut g, &rt);
    udp_stream::<UnixDgram>(&mut g, &rt);
    g.finish();

    let mut g = group(c, "quic_bulk_64KiB_writes_current_thread");
    g.throughput(Throughput::Bytes(QUIC_CHUNK as u64));
    quic_bulk(&mut g, &rt, QuicOver::Lonet);
    quic_bulk(&mut g, &rt, QuicOver::Kernel);
    g.finish();
}

/// Fewer bootstrap resamples than criterion's 100,000: the analysis of each
/// bench then takes a fraction of a second instead of seconds on 2 cores,
/// and 10 samples do not support finer confidence intervals anyway.
fn config() -> Criterion {
    Criterion::default().nresamples(10_000)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_pingpong, bench_bulk, bench_connect, bench_http, bench_many, bench_udp
}
criterion_main!(benches);
