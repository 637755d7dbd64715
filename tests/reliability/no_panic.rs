//! Whatever the arguments, the public API answers with a value or a clear error, never a
//! panic; and a panic in a user's code (a waker) does not take the namespace down.

use crate::common::*;
use lonet::fault::{Fault, Match};
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use proptest::prelude::*;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `seed`, unless `PROPTEST_RNG_SEED` gives another.
pub fn seed(seed: u64) -> proptest::test_runner::RngSeed {
    let env = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    proptest::test_runner::RngSeed::Fixed(env.unwrap_or(seed))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A connection moving `len` bytes each way in `ns`, within `limit`.
async fn exchange(ns: &Netns, len: usize, limit: Duration) -> Result<(), String> {
    let work = ns.clone().scope(async move {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (c, s) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (mut c, mut s) = (
            c.map_err(|e| format!("connect: {e}"))?,
            s.map_err(|e| format!("accept: {e}"))?.0,
        );
        let data = pattern_vec(3, len);
        let mut got = vec![0; len];
        let (w, r) = tokio::join!(c.write_all(&data), s.read_exact(&mut got));
        w.map_err(|e| format!("write: {e}"))?;
        r.map_err(|e| format!("read: {e}"))?;
        if got != data {
            return Err("bytes differ".into());
        }
        Ok(())
    });
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no exchange of {len} bytes within {limit:?}")),
    }
}

/// Extreme and arbitrary values, biased to the edges.
fn wide_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX / 2),
        0u64..100_000,
        any::<u64>()
    ]
}
fn wide_usize() -> impl Strategy<Value = usize> {
    wide_u64().prop_map(|v| v as usize)
}
fn wide_u32() -> impl Strategy<Value = u32> {
    wide_u64().prop_map(|v| v as u32)
}
/// Buffer sizes as Linux takes them (`int`s): up to `i32::MAX`. Larger ones are
/// `rmem_beyond_int_max_is_refused`.
fn buf_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(i32::MAX as usize),
        0usize..10_000_000,
        0..=i32::MAX as usize
    ]
}

#[derive(Debug, Clone)]
enum SysctlChange {
    Backlog(usize),
    Budget(usize),
    BudgetUsecs(u64),
    Weight(usize),
    Somaxconn(u32),
    Rmem([usize; 3]),
    Wmem([usize; 3]),
    Ports(u16, u16),
    RtoMin(u64),
    SynRetries(u32),
    SynackRetries(u32),
    FinTimeout(u64),
    Retries2(u32),
    TwReuse(u8),
    MaxTw(usize),
}

fn sysctl_change() -> impl Strategy<Value = SysctlChange> {
    use SysctlChange::*;
    prop_oneof![
        wide_usize().prop_map(Backlog),
        wide_usize().prop_map(Budget),
        wide_u64().prop_map(BudgetUsecs),
        wide_usize().prop_map(Weight),
        wide_u32().prop_map(Somaxconn),
        [buf_size(), buf_size(), buf_size()].prop_map(Rmem),
        [buf_size(), buf_size(), buf_size()].prop_map(Wmem),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Ports(a, b)),
        wide_u64().prop_map(RtoMin),
        wide_u32().prop_map(SynRetries),
        wide_u32().prop_map(SynackRetries),
        wide_u64().prop_map(FinTimeout),
        wide_u32().prop_map(Retries2),
        any::<u8>().prop_map(TwReuse),
        wide_usize().prop_map(MaxTw),
    ]
}

fn apply(s: &mut lonet::Sysctl, c: &SysctlChange) {
    use SysctlChange::*;
    match *c {
        Backlog(v) => s.netdev_max_backlog = v,
        Budget(v) => s.netdev_budget = v,
        BudgetUsecs(v) => s.netdev_budget_usecs = v,
        Weight(v) => s.dev_weight = v,
        Somaxconn(v) => s.somaxconn = v,
        Rmem(v) => s.tcp_rmem = v,
        Wmem(v) => s.tcp_wmem = v,
        Ports(a, b) => s.ip_local_port_range = (a, b),
        RtoMin(v) => s.tcp_rto_min_us = v,
        SynRetries(v) => s.tcp_syn_retries = v,
        SynackRetries(v) => s.tcp_synack_retries = v,
        FinTimeout(v) => s.tcp_fin_timeout_secs = v,
        Retries2(v) => s.tcp_retries2 = v,
        TwReuse(v) => s.tcp_tw_reuse = v,
        MaxTw(v) => s.tcp_max_tw_buckets = v,
    }
}

proptest! {
    // A fixed seed: the same cases on every run (PROPTEST_RNG_SEED overrides it to explore).
    #![proptest_config(ProptestConfig {
        cases: 192,
        failure_persistence: None,
        rng_seed: seed(0x0bad_a125),
        ..ProptestConfig::default()
    })]

    /// Any sysctl value: refused with `InvalidInput` (changing nothing), or accepted without a
    /// panic, and traffic still flows unless the value is one that fails connections on Linux.
    #[test]
    fn any_sysctl_value_is_refused_or_works(changes in proptest::collection::vec(sysctl_change(), 1..4)) {
        let ns = Netns::new();
        let before = ns.sysctl();
        let r = ns.set_sysctl(|s| changes.iter().for_each(|c| apply(s, c)));
        match r {
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
                prop_assert_eq!(ns.sysctl(), before, "a refused change changes nothing");
            }
            Ok(()) => {
                // Values that make Linux give up or drop (no retries, a backlog of one) may
                // fail a connection, as they would on Linux; the others must leave traffic
                // flowing.
                use SysctlChange::*;
                // A receive buffer of a few bytes stalls Linux too (`tcp_rmem` "4096 1 ..."
                // moves nothing on this machine's kernel); from `SOCK_MIN_RCVBUF` (2304) on
                // it moves data.
                let must_flow = changes.iter().all(|c| {
                    !matches!(c, Backlog(_) | Retries2(_) | SynRetries(_) | SynackRetries(_))
                        && !matches!(c, Rmem(v) if v[1] < 2304)
                });
                let limit = Duration::from_secs(if must_flow { 10 } else { 2 });
                let r = rt().block_on(exchange(&ns, 100_000, limit));
                prop_assert!(r.is_ok() || !must_flow, "accepted {:?}, then: {:?}", changes, r);
                let _ = (ns.sockstat(), ns.tcp_stats().to_string(), ns.softnet_stat().to_string());
            }
        }
    }

    /// Any MTU: refused with `InvalidInput`, or accepted and traffic still flows.
    #[test]
    fn any_mtu_is_refused_or_works(mtu in prop_oneof![wide_u32(), 1200u32..70_000]) {
        let ns = Netns::new();
        match ns.set_lo_mtu(mtu) {
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidInput),
            Ok(()) => {
                let r = rt().block_on(exchange(&ns, 200_000, Duration::from_secs(10)));
                prop_assert!(r.is_ok(), "mtu {}: {:?}", mtu, r);
            }
        }
    }

    /// Any fault parameters: `add_fault` refuses the invalid ones with `InvalidInput` and
    /// installs nothing; a valid one is installed and the datapath runs through it.
    #[test]
    fn any_fault_is_refused_or_installed(
        loss in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-0.0), Just(1.0), Just(1.0 + f64::EPSILON), -2.0f64..2.0, any::<f64>()],
        reorder in prop_oneof![Just(f64::NAN), Just(f64::NEG_INFINITY), Just(0.0), -2.0f64..2.0],
        delay in prop_oneof![Just(Duration::MAX), Just(Duration::ZERO), (0u64..7200).prop_map(Duration::from_secs), any::<u64>().prop_map(Duration::from_nanos)],
        jitter in prop_oneof![Just(Duration::MAX), Just(Duration::ZERO), (0u64..5000).prop_map(Duration::from_millis)],
        rate in wide_u64(),
        limit in wide_usize(),
    ) {
        let ns = Netns::new();
        let fault = Fault::new().loss(loss).reorder(reorder).delay(delay).jitter(jitter).rate(rate).limit(limit);
        let valid = (0.0..=1.0).contains(&loss)
            && (0.0..=1.0).contains(&reorder)
            && delay.checked_add(jitter).is_some_and(|t| t <= Fault::MAX_DELAY);
        match ns.add_fault(Match::all(), fault) {
            Err(e) => {
                prop_assert!(!valid, "a valid fault was refused: {} ({})", fault, e);
                prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
                prop_assert!(ns.qdisc().is_noqueue());
            }
            Ok(guard) => {
                prop_assert!(valid, "an invalid fault was installed: {:?}", fault);
                // Packets go through netem (a connect attempt: SYNs), no panic whatever
                // happens to them.
                rt().block_on(async {
                    let _ = tokio::time::timeout(Duration::from_millis(20), exchange(&ns, 1000, Duration::from_millis(20))).await;
                });
                let _ = guard.stats();
                let _ = ns.qdisc().to_string();
            }
        }
    }
}

/// The table of the values the issue lists, each with the error it must give.
#[test]
fn bad_values_table() {
    let ns = Netns::new();
    let invalid = |r: std::io::Result<()>, what: &str| match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}"),
        Ok(()) => panic!("{what}: accepted"),
    };
    for p in [f64::NAN, -0.01, 1.01, f64::INFINITY, f64::NEG_INFINITY, 5.0] {
        invalid(
            ns.add_fault(Match::all(), Fault::new().loss(p)).map(drop),
            &format!("loss {p}"),
        );
        invalid(
            ns.add_fault(Match::all(), Fault::new().reorder(p))
                .map(drop),
            &format!("reorder {p}"),
        );
    }
    invalid(
        ns.add_fault(Match::all(), Fault::new().delay(Duration::MAX))
            .map(drop),
        "delay MAX",
    );
    invalid(
        ns.add_fault(Match::all(), Fault::new().jitter(Duration::MAX))
            .map(drop),
        "jitter MAX",
    );
    invalid(
        ns.add_fault(
            Match::all(),
            Fault::new()
                .delay(Fault::MAX_DELAY)
                .jitter(Duration::from_nanos(1)),
        )
        .map(drop),
        "delay + jitter over the maximum",
    );
    assert!(ns.qdisc().is_noqueue(), "nothing installed: {}", ns.qdisc());
    // Edges that are valid: probability 0 and 1, rate 0 (no limit), the longest delay.
    for f in [
        Fault::new().loss(0.0),
        Fault::new().loss(1.0),
        Fault::new().rate(0),
        Fault::new().delay(Fault::MAX_DELAY),
    ] {
        drop(ns.add_fault(Match::all(), f).expect("valid fault"));
    }
    invalid(ns.set_lo_mtu(0), "mtu 0");
    invalid(ns.set_lo_mtu(u32::MAX), "mtu MAX");
    invalid(ns.set_sysctl(|s| s.netdev_budget = 0), "netdev_budget 0");
    invalid(
        ns.set_sysctl(|s| s.ip_local_port_range = (60999, 32768)),
        "port range reversed",
    );
    // The kernel takes tcp_rmem/tcp_wmem in any order (proc_dointvec_minmax per
    // field), but each within 1..=INT_MAX.
    invalid(
        ns.set_sysctl(|s| s.tcp_rmem = [0, 131072, 6291456]),
        "tcp_rmem 0",
    );
    invalid(
        ns.set_sysctl(|s| s.tcp_wmem = [4096, 16384, usize::MAX]),
        "tcp_wmem above INT_MAX",
    );
    // Addresses: the unspecified, broadcast, multicast and mapped ones.
    for a in [
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
    ] {
        let _ = ns.add_local_addr(a);
        ns.del_local_addr(a);
    }
    ns.del_local_addr(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)));
    let nowhere = SocketAddr::from(([127, 0, 0, 1], 0));
    assert!(ns.inject_rst(nowhere, nowhere).is_err());
    drop(ns.fill_accept_queue(nowhere));
    // Sockets: zero-length buffers, odd options, port 0.
    let ns2 = ns.clone();
    rt().block_on(ns.clone().scope(async move {
        assert!(TcpStream::connect("127.0.0.1:0").await.is_err());
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
        let (mut c, mut s) = (c.unwrap(), s.unwrap().0);
        assert_eq!(c.write(&[]).await.unwrap(), 0);
        assert_eq!(c.try_write(&[]).unwrap_or(0), 0);
        c.write_all(b"x").await.unwrap();
        let mut one = [0];
        s.read_exact(&mut one).await.unwrap();
        assert_eq!(s.read(&mut []).await.unwrap(), 0);
        assert_eq!(s.try_read(&mut []).unwrap_or(0), 0);
        for ttl in [0, 1, 255, 256, u32::MAX] {
            let _ = c.set_ttl(ttl);
        }
        let _ = c.set_linger(Some(Duration::MAX));
        let _ = c.set_linger(Some(Duration::ZERO));
        let _ = ns2.sockets().to_string();
    }));
}

/// A waker that panics when woken.
struct Boom;
impl futures::task::ArcWake for Boom {
    fn wake_by_ref(_: &std::sync::Arc<Self>) {
        panic!("a user's waker panics");
    }
}

/// A user's waker panics while lonet wakes it (under a socket lock, maybe on lonet's own
/// thread): the namespace keeps working, new connections and old ones alike.
#[test]
fn a_panicking_waker_does_not_take_the_namespace_down() {
    let ns = Netns::new();
    let rt = rt();
    rt.block_on(ns.clone().scope(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
        let (mut c, s) = (c.unwrap(), s.unwrap().0);
        // The server waits to read with the panicking waker.
        let waker = futures::task::waker(std::sync::Arc::new(Boom));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut buf = [0; 16];
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        let mut s = s;
        assert!(
            tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut s), &mut cx, &mut rb)
                .is_pending()
        );
        // The write delivers, the delivery wakes the waker: it panics here or on lonet's thread.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.try_write(b"ping")));
        eprintln!(
            "the write with a panicking waker on the other end: {:?}",
            r.as_ref().map(|r| r.as_ref().map_err(|e| e.kind()))
        );
        drop(waker);
        // The namespace goes on: the same connection...
        let mut got = [0; 4];
        bounded("read after the panic", s.read_exact(&mut got))
            .await
            .unwrap();
        assert_eq!(&got, b"ping");
        bounded("echo after the panic", async {
            s.write_all(b"pong").await.unwrap();
            c.read_exact(&mut got).await.unwrap();
        })
        .await;
        assert_eq!(&got, b"pong");
    }));
    // ...and new ones.
    rt.block_on(async {
        exchange(&ns, 100_000, Duration::from_secs(10))
            .await
            .unwrap();
    });
}

/// A thread panics while it owns a connection: unwinding drops the socket, whose close sends
/// a FIN, and the peer's waker (which panics too) must not be woken from that destructor, a
/// second panic during unwinding aborting the process. lonet hands the softirq to its own
/// thread then; the peer sees the EOF.
#[test]
fn no_datapath_in_a_destructor_while_panicking() {
    let ns = Netns::new();
    let rt = rt();
    let (c, mut s) = rt.block_on(ns.clone().scope(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
        (c.unwrap(), s.unwrap().0)
    }));
    let waker = futures::task::waker(std::sync::Arc::new(Boom));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut buf = [0; 16];
    let mut rb = tokio::io::ReadBuf::new(&mut buf);
    assert!(
        tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut s), &mut cx, &mut rb).is_pending()
    );
    let owner = std::thread::spawn(move || {
        let _c = c;
        panic!("the connection's owner panics");
    });
    assert!(owner.join().is_err());
    drop(waker);
    let n = rt
        .block_on(bounded("EOF after the owner's panic", s.read(&mut buf)))
        .unwrap();
    assert_eq!(n, 0);
}

/// Found by `any_sysctl_value_is_refused_or_works`: `tcp_rmem` = 4096 2304 33554432
/// stalled the model, where Linux moves 100 kB at once (checked on this machine's 6.18
/// kernel in a network namespace of its own). The window offered counts payload at the
/// measured ratio, so a segment can land in a queue already over the tiny buffer; the
/// model dropped it forever, where Linux's `tcp_prune_queue` first grows the buffer to what
/// the queue holds (`tcp_clamp_window`).
#[test]
fn a_small_receive_buffer_under_a_large_window_scale_moves_data() {
    let ns = Netns::new();
    ns.set_sysctl(|s| s.tcp_rmem = [4096, 2304, 33_554_432])
        .unwrap();
    rt().block_on(exchange(&ns, 100_000, Duration::from_secs(10)))
        .unwrap();
    assert_eq!(ns.tcp_stats().tcp_rcvq_drop, 0);
}

/// Found by `any_sysctl_value_is_refused_or_works`: `tcp_rmem` above `INT_MAX` was
/// accepted, then no connection moved data (the window went through an `i32`). The kernel
/// refuses such values, and so does the model now.
#[test]
fn rmem_beyond_int_max_is_refused() {
    let ns = Netns::new();
    let r = ns.set_sysctl(|s| s.tcp_rmem = [1, usize::MAX, usize::MAX]);
    assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput);
    // What the kernel does accept still moves data.
    ns.set_sysctl(|s| s.tcp_rmem = [1, i32::MAX as usize, i32::MAX as usize])
        .unwrap();
    rt().block_on(exchange(&ns, 100_000, Duration::from_secs(10)))
        .unwrap();
}
