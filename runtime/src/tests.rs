//! Unit tests of the model's stages, driven without tokio: socket calls with
//! a no-op waker, and the softirq held back (`running` set) so the segments a
//! call emits can be looked at on the backlog before they are delivered, in
//! the way smoltcp's tests inject a segment and check the reply.

use crate::af_inet::Socket;
use crate::netns::Netns;
use crate::skbuff::{flags, proto, SkBuff};
use crate::stats::TimerKind;
use crate::sync::{lock, write};
use crate::tcp::TcpState;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};

pub(crate) fn cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// Marks every CPU's softirq as in progress: sends only enqueue.
pub(crate) fn hold(ns: &Netns) {
    // A run in progress (ksoftirqd's, with timers armed) clears `running`
    // when it ends: wait for it, then take the flag, so no run is left that
    // could drain the backlog behind the test's back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for sd in ns.0.softnet.iter() {
        loop {
            let mut q = lock(&sd.q);
            if !q.running {
                q.running = true;
                break;
            }
            drop(q);
            assert!(
                std::time::Instant::now() < deadline,
                "a softirq run never ended"
            );
            std::thread::yield_now();
        }
    }
}

/// Takes the queued segments off every backlog without delivering them.
pub(crate) fn take_queued(ns: &Netns) -> Vec<SkBuff> {
    let mut out = Vec::new();
    for sd in ns.0.softnet.iter() {
        out.extend(lock(&sd.q).input_pkt_queue.drain(..));
    }
    out
}

/// Lets the softirq run again and drains every CPU.
pub(crate) fn release(ns: &Netns) {
    for cpu in 0..ns.0.softnet.len() {
        lock(&ns.0.softnet[cpu].q).running = false;
        crate::dev::do_softirq(&ns.0, cpu);
    }
}

/// Re-injects segments as if `lo` had received them, and drains.
pub(crate) fn inject(ns: &Netns, skbs: Vec<SkBuff>) {
    for skb in skbs {
        let mut ctx = crate::ctx::Ctx::softirq(&ns.0, 0);
        crate::tcp::input::tcp_v4_rcv(&mut ctx, skb);
        ctx.local_bh_enable();
    }
    release(ns);
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(crate) fn send(s: &Socket, data: &[u8]) -> usize {
    match s.poll_send(None, &[IoSlice::new(data)]) {
        Poll::Ready(Ok(n)) => n,
        other => panic!("send: {other:?}"),
    }
}

pub(crate) fn recv(s: &Socket, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
    s.poll_recv(Some(&mut cx()), buf, false)
}

/// A connected pair (client, server) in `ns`.
pub(crate) fn pair(ns: &Netns) -> (Socket, Socket, Socket) {
    let l = Socket::listen(ns, addr("127.0.0.1:0"), 16).unwrap();
    let c = Socket::connect(ns, l.local_addr().unwrap()).unwrap();
    assert!(c.poll_connect(&mut cx()).is_ready());
    let Poll::Ready(Ok((s, _))) = l.poll_accept(&mut cx()) else {
        panic!("no child on the accept queue")
    };
    (l, c, s)
}

#[test]
fn test_syn_sent_then_syn_ack_then_ack_establishes_both_ends() {
    let ns = Netns::new();
    let l = Socket::listen(&ns, addr("127.0.0.1:7000"), 16).unwrap();
    hold(&ns);
    let c = Socket::connect(&ns, addr("127.0.0.1:7000")).unwrap();
    assert_eq!(c.state(), TcpState::SynSent);
    let syn = take_queued(&ns);
    assert_eq!(syn.len(), 1);
    assert_eq!(syn[0].flags, flags::SYN);
    assert_eq!(syn[0].mss, 65495, "lo advertises 65535 - 40");
    // Deliver the SYN: the listener answers with SYN-ACK.
    let iss = syn[0].seq;
    {
        let mut ctx = crate::ctx::Ctx::softirq(&ns.0, 0);
        crate::tcp::input::tcp_v4_rcv(&mut ctx, syn[0].clone());
    }
    let synack = take_queued(&ns);
    assert_eq!(synack.len(), 1);
    assert_eq!(synack[0].flags, flags::SYN | flags::ACK);
    assert_eq!(synack[0].ack_seq, iss.wrapping_add(1));
    assert!(
        l.poll_accept(&mut cx()).is_pending(),
        "not accepted before the final ACK"
    );
    inject(&ns, synack);
    assert_eq!(c.state(), TcpState::Established);
    let Poll::Ready(Ok((s, peer))) = l.poll_accept(&mut cx()) else {
        panic!("the child should be on the accept queue")
    };
    assert_eq!(s.state(), TcpState::Established);
    assert_eq!(peer, c.local_addr().unwrap());
    assert_eq!(c.local_addr().unwrap().ip(), addr("127.0.0.1:0").ip());
    assert_eq!(ns.tcp_stats().active_opens, 1);
    assert_eq!(ns.tcp_stats().passive_opens, 1);
    assert_eq!(ns.tcp_stats().curr_estab, 2);
}

#[test]
fn test_syn_to_closed_port_gets_rst_and_econnrefused() {
    let ns = Netns::new();
    let c = Socket::connect(&ns, addr("127.0.0.1:9")).unwrap();
    match c.poll_connect(&mut cx()) {
        Poll::Ready(Err(e)) => assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED)),
        other => panic!("{other:?}"),
    }
    let t = ns.tcp_stats();
    assert_eq!((t.out_rsts, t.in_rsts, t.attempt_fails), (1, 1, 1));
    assert_eq!(ns.sockstat().inuse, 0);
}

#[test]
fn test_connect_to_127_0_0_2_uses_source_127_0_0_1() {
    let ns = Netns::new();
    let l = Socket::listen(&ns, addr("127.0.0.2:80"), 16).unwrap();
    let c = Socket::connect(&ns, addr("127.0.0.2:80")).unwrap();
    assert!(c.poll_connect(&mut cx()).is_ready());
    assert_eq!(c.local_addr().unwrap().ip(), addr("127.0.0.1:0").ip());
    assert_eq!(c.peer_addr().unwrap(), addr("127.0.0.2:80"));
    drop(l);
}

#[test]
fn test_accept_queue_holds_backlog_plus_one_then_drops_syns() {
    let ns = Netns::new();
    let l = Socket::listen(&ns, addr("127.0.0.1:6000"), 1).unwrap();
    let c1 = Socket::connect(&ns, addr("127.0.0.1:6000")).unwrap();
    let c2 = Socket::connect(&ns, addr("127.0.0.1:6000")).unwrap();
    let c3 = Socket::connect(&ns, addr("127.0.0.1:6000")).unwrap();
    assert!(c1.poll_connect(&mut cx()).is_ready());
    assert!(c2.poll_connect(&mut cx()).is_ready());
    assert!(
        c3.poll_connect(&mut cx()).is_pending(),
        "SYN dropped, client waits"
    );
    let t = ns.tcp_stats();
    assert_eq!((t.listen_overflows, t.listen_drops), (1, 1));
    assert!(
        ns.ksoftirqd_running(),
        "the SYN retransmission timer is armed"
    );
    drop(l);
}

#[test]
fn test_established_data_is_cut_at_the_mss_and_acked() {
    let ns = Netns::new();
    ns.set_lo_mtu(1500).unwrap();
    let (_l, c, s) = pair(&ns);
    hold(&ns);
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    assert_eq!(send(&c, &data), 10_000);
    let segs = take_queued(&ns);
    assert!(
        segs.iter().all(|s| s.payload.len() <= 1448),
        "MSS 1500-40-12"
    );
    assert_eq!(segs.iter().map(|s| s.payload.len()).sum::<usize>(), 10_000);
    assert!(segs.last().unwrap().has(flags::PSH));
    inject(&ns, segs);
    let mut buf = vec![0; 20_000];
    let Poll::Ready(Ok(n)) = recv(&s, &mut buf) else {
        panic!()
    };
    assert_eq!(&buf[..n], &data[..]);
    // More than one full segment arrived: the receiver ACKed without delay,
    // so the sender's queue is empty.
    assert_eq!(c.queues().1, 0);
}

#[test]
fn test_nagle_holds_a_second_small_segment_until_the_ack() {
    let ns = Netns::new();
    let (_l, c, s) = pair(&ns);
    hold(&ns);
    send(&c, b"a");
    send(&c, b"b");
    let segs = take_queued(&ns);
    assert_eq!(segs.len(), 1, "the second write waits for the first's ACK");
    inject(&ns, segs);
    // The receiver's first data segment starts it in quick-ACK mode
    // (tcp_event_data_recv → tcp_incr_quickack): "a" is ACKed at once, which
    // releases "b".
    let mut buf = [0; 8];
    assert!(matches!(recv(&s, &mut buf), Poll::Ready(Ok(2))));
    assert_eq!(&buf[..2], b"ab");
    c.set_nodelay(true).unwrap();
    hold(&ns);
    send(&c, b"c");
    send(&c, b"d");
    assert_eq!(take_queued(&ns).len(), 2, "TCP_NODELAY sends both");
}

#[test]
fn test_writer_is_held_by_the_window_and_the_send_buffer() {
    let ns = Netns::new();
    let (_l, c, s) = pair(&ns);
    let chunk = vec![1u8; 65536];
    let mut sent = 0usize;
    while let Poll::Ready(Ok(n)) = c.poll_send(Some(&mut cx()), &[IoSlice::new(&chunk)]) {
        sent += n;
        assert!(sent < 64 << 20, "the writer must be held back");
    }
    let (rq, _) = s.queues();
    let (_, sq) = c.queues();
    assert!(rq <= 131_072, "receive queue within rcvbuf: {rq}");
    assert!(sq > 0, "the rest waits in the send queue");
    // Send-Q counts what is not yet acknowledged: the last segments queued at
    // the receiver may still wait for their (delayed) ACK, as on Linux.
    assert!(
        sent <= rq + sq && rq + sq - sent <= 2 * 65536,
        "{sent} {rq} {sq}"
    );
    assert!((ns.sockstat().mem as usize) < 4 << 20);
    // Reading opens the window; everything arrives in order.
    let mut buf = vec![0; 65536];
    let mut got = 0;
    while got < sent {
        match recv(&s, &mut buf) {
            Poll::Ready(Ok(n)) => got += n,
            other => panic!("{other:?} after {got}"),
        }
    }
    assert_eq!(c.queues().1, 0);
}

#[test]
fn test_fin_half_close_then_eof_then_last_ack() {
    let ns = Netns::new();
    let (_l, c, s) = pair(&ns);
    send(&c, b"bye");
    c.shutdown_write().unwrap();
    // tcp_fin: CLOSE_WAIT and pingpong mode, so the FIN's ACK is delayed
    // (40 ms); the client waits for it in FIN_WAIT1.
    assert_eq!(s.state(), TcpState::CloseWait);
    eventually("the FIN's delayed ACK", || c.state() == TcpState::FinWait2);
    let mut buf = [0; 8];
    assert!(matches!(recv(&s, &mut buf), Poll::Ready(Ok(3))));
    assert!(matches!(recv(&s, &mut buf), Poll::Ready(Ok(0))));
    // The half-closed side can still write back.
    send(&s, b"ok");
    assert!(matches!(recv(&c, &mut buf), Poll::Ready(Ok(2))));
    let e = c.poll_send(None, &[IoSlice::new(b"x")]);
    assert!(matches!(e, Poll::Ready(Err(ref e)) if e.raw_os_error() == Some(libc::EPIPE)));
    drop(s);
    assert!(matches!(recv(&c, &mut buf), Poll::Ready(Ok(0))));
    assert_eq!(
        c.state(),
        TcpState::Close,
        "FIN_WAIT2 → TIME_WAIT: the socket is released, an entry keeps the 4-tuple"
    );
}

#[test]
fn test_backlog_drop_is_counted_and_the_rto_retransmits() {
    let ns = Netns::new();
    ns.set_sysctl(|s| {
        s.netdev_max_backlog = 0;
        s.tcp_rto_min_us = 1000;
    })
    .unwrap();
    ns.set_lo_mtu(1500).unwrap();
    let (_l, c, s) = pair(&ns);
    hold(&ns);
    let data = vec![9u8; 8000];
    send(&c, &data);
    // One segment fits (qlen 0 <= 0), the rest is dropped.
    let delivered = take_queued(&ns);
    assert_eq!(delivered.len(), 1);
    assert!(ns.softnet_stat().total().dropped >= 4);
    assert_eq!(ns.lo_stats().rx_dropped, ns.softnet_stat().total().dropped);
    release(&ns);
    inject(&ns, delivered);
    // The RTO (1 ms here) resends the rest from the ksoftirqd thread.
    let mut got = 0;
    let mut buf = vec![0; 8000];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while got < data.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "retransmission stalled at {got}"
        );
        match recv(&s, &mut buf[got..]) {
            Poll::Ready(Ok(n)) => got += n,
            Poll::Pending => std::thread::yield_now(),
            Poll::Ready(Err(e)) => panic!("{e}"),
        }
    }
    assert_eq!(buf, data);
    assert!(ns.tcp_stats().retrans_segs > 0);
    assert!(ns.tcp_stats().tcp_timeouts > 0);
}

#[test]
fn test_budget_exhaustion_counts_time_squeeze_and_ksoftirqd_finishes() {
    let ns = Netns::new();
    ns.set_lo_mtu(1500).unwrap();
    let (_l, c, s) = pair(&ns);
    ns.set_sysctl(|s| {
        s.netdev_budget = 2;
        s.dev_weight = 1;
    })
    .unwrap();
    let data = vec![3u8; 20_000];
    send(&c, &data);
    let mut got = 0;
    let mut buf = vec![0; 20_000];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while got < data.len() {
        assert!(std::time::Instant::now() < deadline, "stalled at {got}");
        match recv(&s, &mut buf[got..]) {
            Poll::Ready(Ok(n)) => got += n,
            Poll::Pending => std::thread::yield_now(),
            Poll::Ready(Err(e)) => panic!("{e}"),
        }
    }
    assert!(ns.softnet_stat().total().time_squeeze > 0);
    // The last window updates may still be on the backlog, with ksoftirqd:
    // once it is drained, every packet lo carried was processed.
    while ns.softnet_stat().total().processed != ns.lo_stats().rx_packets {
        assert!(
            std::time::Instant::now() < deadline,
            "ksoftirqd left packets behind"
        );
        std::thread::yield_now();
    }
}

#[test]
fn test_zero_window_is_probed_until_the_reader_reads() {
    let ns = Netns::new();
    ns.set_sysctl(|s| s.tcp_rto_min_us = 1000).unwrap();
    let (_l, c, s) = pair(&ns);
    let chunk = vec![5u8; 65536];
    while let Poll::Ready(Ok(_)) = c.poll_send(Some(&mut cx()), &[IoSlice::new(&chunk)]) {}
    // Window closed, data waiting: the probe timer is armed.
    assert!(ns.ksoftirqd_running());
    let before = ns.tcp_stats().out_segs;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ns.tcp_stats().out_segs < before + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no zero-window probes"
        );
        std::thread::yield_now();
    }
    drop(s);
    drop(c);
}

#[test]
fn test_dropping_everything_frees_all_memory_and_sockets() {
    let ns = Netns::new();
    {
        let (l, c, s) = pair(&ns);
        send(&c, &[1u8; 100_000]);
        send(&s, &[2u8; 1000]);
        drop((l, c, s));
    }
    let st = ns.sockstat();
    assert_eq!(
        (st.alloc, st.inuse, st.orphan, st.mem),
        (0, 0, 0, 0),
        "{st}"
    );
    assert_eq!(ns.tcp_stats().curr_estab, 0);
}

#[test]
fn test_a_socket_connected_to_its_own_port_completes_a_simultaneous_open() {
    // Linux: with one ephemeral port left, connect(127.0.0.1:P) from port P
    // meets its own SYN (SYN_SENT → SYN_RECV → ESTABLISHED) and talks to
    // itself.
    let ns = Netns::new();
    ns.set_sysctl(|s| s.ip_local_port_range = (40000, 40000))
        .unwrap();
    let c = Socket::connect(&ns, addr("127.0.0.1:40000")).unwrap();
    assert!(matches!(c.poll_connect(&mut cx()), Poll::Ready(Ok(()))));
    assert_eq!(c.local_addr().unwrap(), c.peer_addr().unwrap());
    send(&c, b"echo");
    let mut buf = [0; 4];
    assert!(matches!(recv(&c, &mut buf), Poll::Ready(Ok(4))));
    assert_eq!(&buf, b"echo");
}

/// Polls `cond` until it holds, yielding, for at most 10 s of wall time.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::yield_now();
    }
}

#[test]
fn test_a_lost_window_update_is_recovered_by_the_zero_window_probe() {
    // Linux: the receiver answers a zero-window probe with an ACK carrying
    // its current window, so a dropped window update costs one probe.
    let ns = Netns::new();
    ns.set_sysctl(|s| s.tcp_rto_min_us = 1000).unwrap();
    let (_l, c, s) = pair(&ns);
    let chunk = vec![7u8; 65536];
    let mut sent = 0;
    while let Poll::Ready(Ok(n)) = c.poll_send(Some(&mut cx()), &[IoSlice::new(&chunk)]) {
        sent += n;
    }
    let mut buf = vec![0; 1 << 20];
    hold(&ns);
    let mut got = 0;
    while let Poll::Ready(Ok(n)) = recv(&s, &mut buf) {
        got += n;
    }
    let lost = take_queued(&ns);
    assert!(
        lost.iter().any(|skb| skb.window > 0),
        "a window update was sent (sent {sent}, read {got} while held)"
    );
    release(&ns);
    eventually("the sender never learned the window opened", || {
        if let Poll::Ready(Ok(n)) = s.poll_recv(None, &mut buf, false) {
            got += n;
        }
        got == sent
    });
}

#[test]
fn test_reading_in_close_wait_after_a_reset_gives_eof_and_the_write_gets_epipe() {
    // Linux: after the peer's FIN (SOCK_DONE) reads return 0; an RST that
    // arrives later is reported by the next write, as EPIPE.
    let ns = Netns::new();
    let (_l, c, s) = pair(&ns);
    c.shutdown_write().unwrap();
    let mut buf = [0; 8];
    assert!(matches!(recv(&s, &mut buf), Poll::Ready(Ok(0))));
    drop(c);
    assert_eq!(send(&s, b"hello"), 5);
    assert_eq!(ns.tcp_stats().tcp_abort_on_data, 1);
    assert!(matches!(recv(&s, &mut buf), Poll::Ready(Ok(0))));
    let e = s.poll_send(None, &[IoSlice::new(b"x")]);
    assert!(matches!(e, Poll::Ready(Err(ref e)) if e.raw_os_error() == Some(libc::EPIPE)));
}

#[test]
fn test_an_orphan_in_fin_wait2_is_freed_after_tcp_fin_timeout() {
    // Linux: a closed socket whose peer never sends FIN waits in FIN_WAIT2
    // for tcp_fin_timeout, as a timewait socket in substate FIN_WAIT2
    // (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)): sockstat counts it in tw, not
    // as an orphan; ss shows FIN-WAIT-2.
    let ns = Netns::new();
    ns.set_sysctl(|s| s.tcp_fin_timeout_secs = 1).unwrap();
    let (_l, c, _s) = pair(&ns);
    c.shutdown_write().unwrap();
    eventually("the FIN's delayed ACK", || c.state() == TcpState::FinWait2);
    drop(c);
    let st = ns.sockstat();
    assert_eq!((st.orphan, st.tw), (0, 1), "{st}");
    assert!(ns.sockets().in_state(TcpState::FinWait2).next().is_some());
    eventually("the FIN_WAIT2 entry never expired", || {
        ns.sockstat().tw == 0
    });
}

#[test]
fn test_sysctl_values_the_kernel_would_refuse_are_invalid_input() {
    let ns = Netns::new();
    let bad: [fn(&mut crate::Sysctl); 6] = [
        |s| s.netdev_budget = 0,
        |s| s.ip_local_port_range = (5000, 4000),
        |s| s.tcp_rmem = [0, 131_072, 131_072],
        |s| s.netdev_budget_usecs = u64::MAX,
        |s| s.tcp_rto_min_us = u64::MAX,
        |s| s.tcp_fin_timeout_secs = u64::MAX,
    ];
    for f in bad {
        let e = ns.set_sysctl(f).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
    assert_eq!(ns.sysctl(), crate::Sysctl::default(), "nothing changed");
}

#[test]
fn test_a_sysctl_change_may_read_the_namespace_and_connect_from_its_closure() {
    // The closure runs on a copy with no lock of the namespace held: reading
    // the sysctls or completing a handshake (which reads them) from inside it
    // must not deadlock. A nested set_sysctl is refused, not lost.
    let ns = Netns::new();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let ns2 = ns.clone();
    std::thread::spawn(move || {
        let r = ns2.set_sysctl(|s| {
            s.tcp_fin_timeout_secs = ns2.sysctl().tcp_fin_timeout_secs + 1;
            let (_l, c, _s) = pair(&ns2);
            assert_eq!(c.state(), TcpState::Established);
            let nested = ns2.set_sysctl(|s| s.netdev_budget = 7).unwrap_err();
            assert_eq!(nested.kind(), std::io::ErrorKind::InvalidInput);
        });
        let _ = done_tx.send(r.map_err(|e| e.to_string()));
    });
    let r = done_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("set_sysctl deadlocked");
    assert_eq!(r, Ok(()));
    assert_eq!(ns.sysctl().tcp_fin_timeout_secs, 61);
    assert_eq!(
        ns.sysctl().netdev_budget,
        crate::Sysctl::default().netdev_budget
    );
    // Outside the closure, set_sysctl works again on this thread.
    ns.set_sysctl(|s| s.netdev_budget = 7).unwrap();
    assert_eq!(ns.sysctl().netdev_budget, 7);
}

#[test]
fn test_segments_arriving_out_of_order_wait_in_the_ofo_queue() {
    // Linux: tcp_data_queue_ofo keeps segments beyond rcv_nxt; when the gap
    // fills, the receive queue gets everything in order, nothing resent.
    let ns = Netns::new();
    ns.set_lo_mtu(1500).unwrap();
    let (_l, c, s) = pair(&ns);
    c.set_nodelay(true).unwrap();
    hold(&ns);
    let data: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(send(&c, &data), 4000);
    let mut segs = take_queued(&ns);
    assert_eq!(segs.len(), 3);
    segs.reverse();
    inject(&ns, segs);
    let mut buf = vec![0; 8000];
    let Poll::Ready(Ok(n)) = recv(&s, &mut buf) else {
        panic!()
    };
    assert_eq!(&buf[..n], &data[..]);
    assert_eq!(ns.tcp_stats().retrans_segs, 0);
    assert_eq!(ns.sockstat().mem, 0, "the ofo queue is empty again");
}

/// A connection whose client closed first: both FINs exchanged, the client's
/// end in TIME_WAIT. Returns the listener and the server's FIN (to replay).
fn client_closes_first(ns: &Netns) -> (Socket, SocketAddr, SocketAddr, SkBuff) {
    let (l, c, s) = pair(ns);
    let (caddr, saddr) = (c.local_addr().unwrap(), s.local_addr().unwrap());
    drop(c);
    assert_eq!(s.state(), TcpState::CloseWait);
    hold(ns);
    drop(s);
    let fin = take_queued(ns);
    assert_eq!(fin.len(), 1);
    assert!(fin[0].has(flags::FIN));
    let copy = fin[0].clone();
    inject(ns, fin);
    (l, caddr, saddr, copy)
}

#[test]
fn test_the_active_closer_leaves_a_time_wait_entry_and_frees_its_socket() {
    // Linux: tcp_time_wait replaces the socket by an inet_timewait_sock for
    // TCP_TIMEWAIT_LEN; /proc/net/sockstat counts it as tw, not inuse/alloc.
    let ns = Netns::new();
    let (l, caddr, saddr, _) = client_closes_first(&ns);
    let st = ns.sockstat();
    assert_eq!((st.inuse, st.alloc, st.tw, st.mem), (1, 1, 1, 0), "{st}");
    assert_eq!(ns.tcp_stats().tw, 1);
    let table = ns.sockets();
    let tw = table.find(caddr, saddr).expect("a TIME-WAIT row");
    assert_eq!(tw.state, TcpState::TimeWait);
    assert_eq!((tw.recv_q, tw.send_q, tw.inode), (0, 0, 0));
    let timer = tw.timer.expect("the timewait timer");
    assert_eq!(timer.kind, crate::stats::TimerKind::TimeWait);
    assert!(
        timer.expires > std::time::Duration::from_secs(58)
            && timer.expires <= std::time::Duration::from_secs(60),
        "{timer}"
    );
    assert!(
        table.find(saddr, caddr).is_none(),
        "the server's end is gone"
    );
    drop(l);
}

#[test]
fn test_a_retransmitted_fin_is_acked_again_from_time_wait() {
    // Linux: tcp_timewait_state_process answers a FIN below rcv_nxt with an
    // ACK (TCP_TW_ACK) and restarts the 60 s.
    let ns = Netns::new();
    let (_l, caddr, saddr, fin) = client_closes_first(&ns);
    hold(&ns);
    {
        let mut ctx = crate::ctx::Ctx::softirq(&ns.0, 0);
        crate::tcp::input::tcp_v4_rcv(&mut ctx, fin.clone());
    }
    let out = take_queued(&ns);
    release(&ns);
    assert_eq!(out.len(), 1, "{out:?}");
    let ack = &out[0];
    assert_eq!(ack.flags, flags::ACK);
    assert_eq!((ack.saddr, ack.daddr), (caddr, saddr));
    assert_eq!(ack.ack_seq, fin.seq.wrapping_add(1));
    assert_eq!(ack.seq, fin.ack_seq);
    assert_eq!(ns.sockstat().tw, 1, "the entry stays");
    // An RST in the window ends it (TIME_WAIT assassination, tcp_rfc1337=0).
    let rst = SkBuff {
        protocol: proto::TCP,
        seq: fin.seq.wrapping_add(1),
        flags: flags::RST,
        payload: bytes::Bytes::new(),
        ..fin
    };
    inject(&ns, vec![rst]);
    assert_eq!(ns.sockstat().tw, 0);
}

#[test]
fn test_an_expired_entry_is_gone_for_lookups_and_counts() {
    // Linux: after 60 s the entry's timer frees it; a FIN for the 4-tuple
    // then finds no socket and is answered with RST.
    let ns = Netns::new();
    let (_l, _caddr, _saddr, fin) = client_closes_first(&ns);
    write(&ns.0.tables).tw_expire_all_for_test();
    hold(&ns);
    {
        let mut ctx = crate::ctx::Ctx::softirq(&ns.0, 0);
        crate::tcp::input::tcp_v4_rcv(&mut ctx, fin);
    }
    let out = take_queued(&ns);
    release(&ns);
    assert_eq!(out.len(), 1);
    assert!(out[0].has(flags::RST), "{out:?}");
    assert_eq!(ns.sockstat().tw, 0);
    assert!(ns.sockets().in_state(TcpState::TimeWait).next().is_none());
}

#[test]
fn test_tcp_tw_reuse_0_skips_time_wait_ports_and_2_takes_them_over() {
    // Linux: __inet_hash_connect skips a port whose 4-tuple is in TIME_WAIT
    // unless tcp_twsk_unique allows reuse (tcp_tw_reuse=2 on loopback).
    let ns = Netns::new();
    ns.set_sysctl(|s| {
        s.ip_local_port_range = (40000, 40001);
        s.tcp_tw_reuse = 0;
    })
    .unwrap();
    let l = Socket::listen(&ns, addr("127.0.0.1:5000"), 16).unwrap();
    for _ in 0..2 {
        let c = Socket::connect(&ns, addr("127.0.0.1:5000")).unwrap();
        assert!(c.poll_connect(&mut cx()).is_ready());
        let Poll::Ready(Ok((s, _))) = l.poll_accept(&mut cx()) else {
            panic!("accept")
        };
        drop(c);
        drop(s);
    }
    assert_eq!(ns.sockstat().tw, 2);
    let e = Socket::connect(&ns, addr("127.0.0.1:5000")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL));
    ns.set_sysctl(|s| s.tcp_tw_reuse = 2).unwrap();
    let c = Socket::connect(&ns, addr("127.0.0.1:5000")).unwrap();
    assert!(matches!(c.poll_connect(&mut cx()), Poll::Ready(Ok(()))));
    assert_eq!(ns.sockstat().tw, 1);
    assert_eq!(ns.tcp_stats().tw_recycled, 1);
    let e = ns.set_sysctl(|s| s.tcp_tw_reuse = 3).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn test_a_bound_port_takes_its_time_wait_tuple_over_whatever_tcp_tw_reuse_says() {
    // Linux (checked on 6.18): bind(SO_REUSEADDR) to the port of a
    // TIME_WAIT entry left by a SO_REUSEADDR socket, then connect to the
    // same peer, succeeds even with tcp_tw_reuse=0 (__inet_check_established
    // without twp); without SO_REUSEADDR the bind fails with EADDRINUSE.
    let ns = Netns::new();
    ns.set_sysctl(|s| s.tcp_tw_reuse = 0).unwrap();
    let l = Socket::listen(&ns, addr("127.0.0.1:5000"), 16).unwrap();
    let bound_connect = |reuse: bool| -> std::io::Result<Socket> {
        let c = Socket::new(&ns);
        c.bind(addr("127.0.0.1:45000"), reuse)?;
        c.start_connect(addr("127.0.0.1:5000"))?;
        Ok(c)
    };
    let c = bound_connect(true).unwrap();
    assert!(c.poll_connect(&mut cx()).is_ready());
    let Poll::Ready(Ok((s, _))) = l.poll_accept(&mut cx()) else {
        panic!("accept")
    };
    drop(c);
    drop(s);
    assert_eq!(ns.sockstat().tw, 1);
    let e = bound_connect(false).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
    let c = bound_connect(true).unwrap();
    assert!(matches!(c.poll_connect(&mut cx()), Poll::Ready(Ok(()))));
    assert_eq!(ns.sockstat().tw, 0);
    assert_eq!(ns.tcp_stats().tw_recycled, 1);
}

#[test]
fn test_a_syn_for_a_server_side_time_wait_tuple_reopens_it() {
    // Linux: a SYN (no ACK) for a TIME_WAIT 4-tuple that has a listener is
    // TCP_TW_SYN: the entry goes and the listener answers, its sequence
    // numbers starting at tw_snd_nxt + 65537.
    let ns = Netns::new();
    let l = Socket::listen(&ns, addr("127.0.0.1:5000"), 16).unwrap();
    let c = Socket::new(&ns);
    c.bind(addr("127.0.0.1:45000"), true).unwrap();
    c.start_connect(addr("127.0.0.1:5000")).unwrap();
    let Poll::Ready(Ok((s, _))) = l.poll_accept(&mut cx()) else {
        panic!("accept")
    };
    // The server closes first: its end goes to TIME_WAIT.
    drop(s);
    drop(c);
    let table = ns.sockets();
    let tw = table
        .find(addr("127.0.0.1:5000"), addr("127.0.0.1:45000"))
        .expect("server-side TIME-WAIT");
    assert_eq!(tw.state, TcpState::TimeWait);
    // The client port is free again (its socket went through LAST_ACK).
    hold(&ns);
    let c = Socket::new(&ns);
    c.bind(addr("127.0.0.1:45000"), false).unwrap();
    c.start_connect(addr("127.0.0.1:5000")).unwrap();
    let syn = take_queued(&ns);
    assert_eq!(syn.len(), 1);
    {
        let mut ctx = crate::ctx::Ctx::softirq(&ns.0, 0);
        crate::tcp::input::tcp_v4_rcv(&mut ctx, syn[0].clone());
    }
    let synack = take_queued(&ns);
    assert_eq!(synack.len(), 1, "{synack:?}");
    assert_eq!(synack[0].flags, flags::SYN | flags::ACK);
    inject(&ns, synack);
    assert!(matches!(c.poll_connect(&mut cx()), Poll::Ready(Ok(()))));
    assert_eq!(ns.sockstat().tw, 0);
    assert!(l.poll_accept(&mut cx()).is_ready());
}

#[test]
fn test_a_listener_binds_over_time_wait_entries_only_with_so_reuseaddr() {
    // Linux: inet_csk_bind_conflict lets a SO_REUSEADDR socket share a port
    // with TIME_WAIT entries of SO_REUSEADDR sockets (a restarted server);
    // without SO_REUSEADDR, EADDRINUSE.
    let ns = Netns::new();
    let l = Socket::listen(&ns, addr("127.0.0.1:5000"), 16).unwrap();
    let c = Socket::connect(&ns, addr("127.0.0.1:5000")).unwrap();
    let Poll::Ready(Ok((s, _))) = l.poll_accept(&mut cx()) else {
        panic!("accept")
    };
    drop(s);
    drop(c);
    drop(l);
    assert_eq!(ns.sockstat().tw, 1);
    let plain = Socket::new(&ns);
    let e = plain.bind(addr("127.0.0.1:5000"), false).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
    let e = Socket::new(&ns)
        .bind(addr("0.0.0.0:5000"), false)
        .unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EADDRINUSE),
        "wildcard overlaps"
    );
    Socket::new(&ns)
        .bind(addr("127.0.0.2:5000"), false)
        .expect("another address does not overlap");
    Socket::listen(&ns, addr("127.0.0.1:5000"), 16).expect("SO_REUSEADDR over TIME_WAIT");
}

#[test]
fn test_past_tcp_max_tw_buckets_a_connection_closes_without_time_wait() {
    // Linux: tcp_time_wait finds no room (inet_twsk_alloc fails) and counts
    // TCPTimeWaitOverflow; the socket is simply closed.
    let ns = Netns::new();
    ns.set_sysctl(|s| s.tcp_max_tw_buckets = 1).unwrap();
    for _ in 0..3 {
        let (_l, _, _, _) = client_closes_first(&ns);
    }
    assert_eq!(ns.sockstat().tw, 1);
    let t = ns.tcp_stats();
    assert_eq!((t.tw, t.tcp_time_wait_overflow), (1, 2));
    assert!(t.to_string().contains("TCPTimeWaitOverflow: 2"), "{t}");
}

#[test]
fn test_the_socket_table_shows_states_and_queues_as_ss_does() {
    // Linux (ss -tan): a listener's Recv-Q is its accept queue and Send-Q
    // its backlog; a connection's Recv-Q is unread bytes (plus an unread
    // FIN), Send-Q bytes not yet acknowledged (plus an unacknowledged
    // SYN or FIN).
    let ns = Netns::new();
    let l = Socket::listen(&ns, addr("127.0.0.1:8080"), 16).unwrap();
    let c = Socket::new(&ns);
    c.bind(addr("127.0.0.1:40000"), false).unwrap();
    c.start_connect(addr("127.0.0.1:8080")).unwrap();
    let pending = Socket::connect(&ns, addr("127.0.0.1:8080")).unwrap();
    let Poll::Ready(Ok((s, _))) = l.poll_accept(&mut cx()) else {
        panic!("accept")
    };
    s.set_quickack(true).unwrap();
    send(&c, &[7u8; 1000]);
    let table = ns.sockets();
    let caddr = addr("127.0.0.1:40000");
    let saddr = addr("127.0.0.1:8080");
    let listener = &table.sockets[0];
    assert_eq!(listener.state, TcpState::Listen);
    assert_eq!((listener.recv_q, listener.send_q), (1, 16), "one to accept");
    assert_eq!(listener.peer, addr("0.0.0.0:0"));
    assert_eq!(table.find(saddr, caddr).unwrap().recv_q, 1000);
    assert_eq!(table.find(caddr, saddr).unwrap().send_q, 0, "acked at once");
    assert_eq!(table.len(), 5, "{table}");
    // Held back: the client's data is unacknowledged, a new SYN too.
    hold(&ns);
    send(&c, &[8u8; 10]);
    let syn_sent = Socket::connect(&ns, addr("127.0.0.1:8080")).unwrap();
    let table = ns.sockets();
    let row = table.find(caddr, saddr).unwrap();
    assert_eq!((row.state, row.send_q), (TcpState::Established, 10));
    assert_eq!(row.timer.unwrap().kind, crate::stats::TimerKind::On);
    let ss = table.in_state(TcpState::SynSent).next().unwrap();
    assert_eq!((ss.recv_q, ss.send_q), (0, 1));
    release(&ns);
    // Ephemeral ports are hashed and perturbed as Linux picks them: read them.
    let (p1, p2) = (
        pending.local_addr().unwrap().port(),
        syn_sent.local_addr().unwrap().port(),
    );
    drop((syn_sent, pending));
    // CLOSE-WAIT: the FIN counts in Recv-Q until a read reaches it.
    c.shutdown_write().unwrap();
    let row = *ns.sockets().find(saddr, caddr).unwrap();
    assert_eq!((row.state, row.recv_q), (TcpState::CloseWait, 1011));
    let mut buf = [0u8; 2000];
    assert!(matches!(recv(&s, &mut buf), Poll::Ready(Ok(1010))));
    assert_eq!(ns.sockets().find(saddr, caddr).unwrap().recv_q, 0);
    // The FIN's ACK is delayed (tcp_fin enters pingpong mode): FIN-WAIT-1
    // until it comes, on every client.
    eventually("the FINs' delayed ACKs", || {
        ns.sockets().in_state(TcpState::FinWait1).next().is_none()
    });
    assert_eq!(
        ns.sockets().find(caddr, saddr).unwrap().state,
        TcpState::FinWait2
    );
    drop(s);
    // The two other clients were dropped: FIN-WAIT-2 orphans, their server
    // ends in CLOSE-WAIT on the accept queue (each with its FIN unread).
    // `ss -tan`: the TCP rows, without the Netid column.
    let table = ns.sockets().only(crate::stats::Netid::Tcp);
    let text = table.to_string();
    let mut expected = vec![
        "State      Recv-Q Send-Q Local Address:Port  Peer Address:Port Process".to_string(),
        "LISTEN     2      16         127.0.0.1:8080       0.0.0.0:*".to_string(),
        "TIME-WAIT  0      0          127.0.0.1:40000    127.0.0.1:8080".to_string(),
    ];
    for p in [p1, p2] {
        expected.push(format!(
            "CLOSE-WAIT 1      0          127.0.0.1:8080     127.0.0.1:{p}"
        ));
        expected.push(format!(
            "FIN-WAIT-2 0      0          127.0.0.1:{p}    127.0.0.1:8080"
        ));
    }
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines[..2], expected[..2], "\n{text}");
    lines.sort();
    expected.sort();
    assert_eq!(lines, expected, "\n{text}");
    let with_timers = format!("{table:#}");
    let tw = with_timers
        .lines()
        .find(|l| l.starts_with("TIME-WAIT"))
        .unwrap();
    assert!(
        tw.starts_with(
            "TIME-WAIT  0      0          127.0.0.1:40000    127.0.0.1:8080  timer:(timewait,"
        ),
        "{with_timers}"
    );
    assert!(
        with_timers
            .lines()
            .filter(|l| l.starts_with("FIN-WAIT-2"))
            .all(|l| l.contains("timer:(timewait,")),
        "{with_timers}"
    );
}

#[test]
fn test_the_socket_table_prints_ipv6_in_brackets_and_the_dual_stack_wildcard_as_a_star() {
    let ns = Netns::new();
    let _any = Socket::listen(&ns, addr("[::]:8080"), 5).unwrap();
    let _one = Socket::listen(&ns, addr("[::1]:9090"), 128).unwrap();
    let c = Socket::connect(&ns, addr("127.0.0.1:8080")).unwrap();
    let text = ns.sockets().only(crate::stats::Netid::Tcp).to_string();
    let cport = c.local_addr().unwrap().port();
    let expected = format!(
        "\
State  Recv-Q Send-Q      Local Address:Port        Peer Address:Port Process
LISTEN 1      5                       *:8080                   *:*
LISTEN 0      128                 [::1]:9090                [::]:*
ESTAB  0      0               127.0.0.1:{cport}          127.0.0.1:8080
ESTAB  0      0      [::ffff:127.0.0.1]:8080  [::ffff:127.0.0.1]:{cport}"
    );
    assert_eq!(text, expected, "\n{text}");
}

#[test]
fn test_ss_timer_text_is_iproute2_s() {
    use crate::stats::{SockTimer, TimerKind};
    use std::time::Duration;
    let t = |kind, ms, retrans| {
        SockTimer {
            kind,
            expires: Duration::from_millis(ms),
            retrans,
        }
        .to_string()
    };
    assert_eq!(
        t(TimerKind::TimeWait, 59_400, 0),
        "timer:(timewait,59sec,0)"
    );
    assert_eq!(t(TimerKind::On, 200, 0), "timer:(on,200ms,0)");
    assert_eq!(t(TimerKind::On, 1_500, 2), "timer:(on,1.500ms,2)");
    assert_eq!(
        t(TimerKind::Persist, 90_000, 3),
        "timer:(persist,1min30sec,3)"
    );
}

#[test]
fn test_a_time_wait_entry_is_small() {
    // The entry itself (24 bytes) in a (port pair → entry) table: 32 bytes
    // a slot, under 80 bytes an entry with hashbrown's load factor.
    assert!(std::mem::size_of::<crate::tcp::minisocks::TwSock>() <= 24);
    assert!(std::mem::size_of::<(u32, crate::tcp::minisocks::TwSock)>() <= 32);
}

/// A clock the test moves by hand: the model's timers fire only when the
/// test calls `run_timers`.
struct ManualClock(crate::sync::Mutex<std::time::Instant>);

impl crate::Clock for ManualClock {
    fn now(&self) -> std::time::Instant {
        *lock(&self.0)
    }
    fn schedule(&self, _when: std::time::Instant) {}
}

impl ManualClock {
    /// Installs a clock in a new namespace.
    fn install(ns: &Netns) -> crate::sync::Arc<ManualClock> {
        let clock = crate::sync::Arc::new(ManualClock(crate::sync::Mutex::new(
            std::time::Instant::now(),
        )));
        ns.set_clock(clock.clone()).unwrap();
        clock
    }

    /// Moves the clock by `d` and runs what fell due.
    fn advance(&self, ns: &Netns, d: std::time::Duration) {
        *lock(&self.0) += d;
        ns.run_timers();
    }
}

#[test]
fn test_the_probe_timer_is_rearmed_when_an_ack_empties_the_flight_after_a_rewind() {
    // Linux: an RTO that finds the window narrower than the head segment
    // leaves the window to the probe timer; the ACK of what was in flight
    // then clears that timer (tcp_rearm_rto clears icsk_pending), and with
    // the window closed and data waiting the push that follows arms it again
    // (tcp_check_probe_timer). So a window update lost after that is still
    // recovered by a probe, and ss -o shows the persist timer meanwhile.
    let ns = Netns::new();
    let clock = ManualClock::install(&ns);
    let (_l, c, s) = pair(&ns);
    let chunk = vec![9u8; 65536];
    let mut sent = 0;
    while let Poll::Ready(Ok(n)) = c.poll_send(Some(&mut cx()), &[IoSlice::new(&chunk)]) {
        sent += n;
    }
    // A small read opens the window by less than a segment: the sender
    // waits on the probe timer.
    let mut buf = vec![0; 4 << 20];
    let mut got = 0;
    if let Poll::Ready(Ok(n)) = recv(&s, &mut buf[..1000]) {
        got += n;
    }
    let persist = |ns: &Netns| {
        let local = c.local_addr().unwrap();
        ns.sockets()
            .iter()
            .find(|r| r.local == local)
            .and_then(|r| r.timer.as_ref().map(|t| t.kind))
    };
    assert_eq!(persist(&ns), Some(TimerKind::Persist));
    // The probe timer sends what fits (tcp_write_wakeup); held on the
    // backlog, it is still in flight when the RTO rewinds onto the window.
    hold(&ns);
    let ms50 = std::time::Duration::from_millis(50);
    let out = ns.tcp_stats().out_segs;
    for _ in 0..40 {
        if ns.tcp_stats().out_segs > out {
            break;
        }
        clock.advance(&ns, ms50);
    }
    assert_eq!(ns.tcp_stats().out_segs, out + 1, "the window's worth");
    assert_eq!(ns.tcp_stats().tcp_timeouts, 0);
    for _ in 0..40 {
        if ns.tcp_stats().tcp_timeouts > 0 {
            break;
        }
        clock.advance(&ns, ms50);
    }
    assert_eq!(ns.tcp_stats().tcp_timeouts, 1);
    // The segment arrives and fills the receiver: its ACK closes the window
    // and empties the flight.
    release(&ns);
    assert_eq!(persist(&ns), Some(TimerKind::Persist), "{:#}", ns.sockets());
    // The reader takes everything; its window update is lost.
    hold(&ns);
    while let Poll::Ready(Ok(n)) = recv(&s, &mut buf) {
        got += n;
    }
    assert!(take_queued(&ns).iter().any(|skb| skb.window > 0));
    release(&ns);
    // The probes find the open window: everything arrives.
    for _ in 0..200 {
        if got == sent {
            break;
        }
        clock.advance(&ns, std::time::Duration::from_millis(500));
        while let Poll::Ready(Ok(n)) = recv(&s, &mut buf) {
            got += n;
        }
    }
    assert_eq!(got, sent, "{:#}", ns.sockets());
}
