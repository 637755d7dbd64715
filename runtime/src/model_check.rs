//! The model check: the hand-offs between the threads that drive a
//! namespace (a writer's `sendmsg` running the softirq it raised, the
//! per-CPU backlogs and their `running` claim, the socket lock, the
//! reader's waker, the backlog and timers handed to `ksoftirqd`, the
//! thread's exit when the namespace is freed), explored by shuttle's
//! scheduler instead of hoped for.
//!
//! Run with `RUSTFLAGS="--cfg shuttle" cargo test -p lonet-runtime --lib
//! model_check` (`.ci/run` does, in a target directory of its own): under
//! that cfg the model's locks, condition variable, atomics, thread-locals and
//! thread are shuttle's (see sync.rs), and each test runs its scenario under
//! many schedules. Each scenario's threads wait for their sockets only
//! through the wakers the model calls, so a lost wakeup leaves a thread
//! blocked, which shuttle reports as a deadlock with the schedule that led
//! to it; a lost, duplicated or reordered byte fails the scenario's check.

use crate::af_inet::Socket;
use crate::clock::Clock;
use crate::netns::Netns;
use crate::sync::{lock, Arc, Condvar, Mutex};
use shuttle::thread;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

/// Schedules each scenario runs under (PCT, depth 3: bugs that need up to
/// three badly placed preemptions are found with good probability).
const SCHEDULES: usize = 300;

/// A clock that stands still: the scenarios need no timer, and time must
/// not decide what a schedule does (shuttle replays a failing schedule).
/// With a clock installed, the model's timers are its driver's, which these
/// scenarios never run.
struct Frozen(Instant);

impl Clock for Frozen {
    fn now(&self) -> Instant {
        self.0
    }
    fn schedule(&self, _when: Instant) {}
}

/// A waker that sets a flag under a lock and signals a condition variable,
/// so a thread can sleep until the model wakes it.
#[derive(Default)]
struct Signal {
    fired: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *lock(&self.fired) = true;
        self.cv.notify_all();
    }
}

/// Polls `f` until it is ready, sleeping between polls until the waker it
/// registered fires (a wake between the poll and the sleep is kept by the
/// flag). A wake that never comes blocks the thread for good.
fn wait_for<T>(mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    let signal = Arc::new(Signal::default());
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f(&mut cx) {
            return v;
        }
        let mut fired = lock(&signal.fired);
        while !*fired {
            fired = signal.cv.wait(fired).unwrap_or_else(|e| e.into_inner());
        }
        *fired = false;
    }
}

/// A namespace with the frozen clock, and a connected pair in it:
/// (listener, client, server).
fn setup() -> (Netns, Socket, Socket, Socket) {
    let ns = Netns::new();
    ns.set_clock(Arc::new(Frozen(Instant::now())))
        .expect("a fresh namespace takes a clock");
    let addr: SocketAddr = "127.0.0.1:7000".parse().expect("address");
    let l = Socket::listen(&ns, addr, 16).expect("listen");
    let c = Socket::connect(&ns, addr).expect("connect");
    wait_for(|cx| c.poll_connect(cx)).expect("connected");
    let (s, _) = wait_for(|cx| l.poll_accept(cx)).expect("accepted");
    (ns, l, c, s)
}

/// Byte `i` of a scenario's stream.
fn byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// Writes `len` pattern bytes in pieces of `piece`, then shuts down.
fn write_all(s: &Socket, len: usize, piece: usize) {
    let data: Vec<u8> = (0..len).map(byte).collect();
    let mut at = 0;
    while at < len {
        let end = (at + piece).min(len);
        let n =
            wait_for(|cx| s.poll_send(Some(cx), &[IoSlice::new(&data[at..end])])).expect("send");
        at += n;
    }
    s.shutdown_write().expect("shutdown");
}

/// Reads to EOF and checks every byte.
fn read_all(s: &Socket, len: usize) {
    let mut got = 0;
    let mut buf = vec![0u8; 512];
    loop {
        let n = wait_for(|cx| s.poll_recv(Some(cx), &mut buf, false)).expect("recv");
        if n == 0 {
            break;
        }
        for (k, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, byte(got + k), "byte {}", got + k);
        }
        got += n;
    }
    assert_eq!(got, len, "bytes before EOF");
}

/// One writer thread and one reader thread on the two ends of a connection:
/// every byte arrives, in order, then EOF; the reader is never left asleep
/// with data queued.
#[test]
fn model_check_a_writer_and_a_reader_on_two_threads() {
    shuttle::check_pct(
        || {
            let (_ns, _l, c, s) = setup();
            const LEN: usize = 3000;
            let w = thread::spawn(move || write_all(&c, LEN, 700));
            let r = thread::spawn(move || read_all(&s, LEN));
            w.join().expect("writer");
            r.join().expect("reader");
        },
        SCHEDULES,
        3,
    );
}

/// Both ends write and read at once, each from two threads: the softirq a
/// send raises on one CPU delivers to a socket whose owner runs on the
/// other, and ACKs cross the data.
#[test]
fn model_check_both_directions_at_once() {
    shuttle::check_pct(
        || {
            let (_ns, _l, c, s) = setup();
            let (c, s) = (Arc::new(c), Arc::new(s));
            const LEN: usize = 1500;
            let threads = [
                thread::spawn({
                    let c = c.clone();
                    move || write_all(&c, LEN, 500)
                }),
                thread::spawn({
                    let s = s.clone();
                    move || read_all(&s, LEN)
                }),
                thread::spawn({
                    let s = s.clone();
                    move || write_all(&s, LEN, 300)
                }),
                thread::spawn({
                    let c = c.clone();
                    move || read_all(&c, LEN)
                }),
            ];
            for t in threads {
                t.join().expect("thread");
            }
        },
        SCHEDULES,
        3,
    );
}

/// Two readers wait on one socket while a writer writes: each wake reaches
/// a waiter, and together they read everything exactly once.
#[test]
fn model_check_two_readers_share_a_socket() {
    shuttle::check_pct(
        || {
            let (_ns, _l, c, s) = setup();
            let s = Arc::new(s);
            const LEN: usize = 2000;
            let total = Arc::new(Mutex::new(Vec::<(usize, u8)>::new()));
            let w = thread::spawn(move || write_all(&c, LEN, 400));
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (s, total) = (s.clone(), total.clone());
                    thread::spawn(move || {
                        let mut buf = vec![0u8; 256];
                        loop {
                            // Reads and records under one lock, so the order
                            // of records is the order of the stream.
                            let mut t = lock(&total);
                            let r = s.poll_recv(None, &mut buf, false);
                            match r {
                                Poll::Ready(Ok(0)) => return,
                                Poll::Ready(Ok(n)) => {
                                    let at = t.len();
                                    t.extend(
                                        buf[..n].iter().enumerate().map(|(k, b)| (at + k, *b)),
                                    );
                                }
                                Poll::Ready(Err(e))
                                    if e.kind() == std::io::ErrorKind::WouldBlock =>
                                {
                                    drop(t);
                                    wait_for(|cx| s.poll_read_ready(cx)).expect("readable");
                                }
                                other => panic!("recv: {other:?}"),
                            }
                        }
                    })
                })
                .collect();
            w.join().expect("writer");
            for r in readers {
                r.join().expect("reader");
            }
            let t = lock(&total);
            assert_eq!(t.len(), LEN);
            assert!(t.iter().all(|&(i, b)| b == byte(i)), "stream intact");
        },
        SCHEDULES,
        3,
    );
}

/// A client that connects and closes at once while the server accepts and
/// reads: the server sees EOF, never a hang, and once both ends are closed
/// no socket is left but the TIME_WAIT entry.
#[test]
fn model_check_close_races_accept() {
    shuttle::check_pct(
        || {
            let ns = Netns::new();
            ns.set_clock(Arc::new(Frozen(Instant::now())))
                .expect("clock");
            let addr: SocketAddr = "127.0.0.1:7001".parse().expect("address");
            let l = Socket::listen(&ns, addr, 16).expect("listen");
            let client = thread::spawn({
                let ns = ns.clone();
                move || {
                    let c = Socket::connect(&ns, addr).expect("connect");
                    wait_for(|cx| c.poll_connect(cx)).expect("connected");
                    wait_for(|cx| c.poll_send(Some(cx), &[IoSlice::new(b"bye")])).expect("send");
                    drop(c);
                }
            });
            let (s, _) = wait_for(|cx| l.poll_accept(cx)).expect("accept");
            let mut buf = [0u8; 16];
            let mut got = Vec::new();
            loop {
                let n = wait_for(|cx| s.poll_recv(Some(cx), &mut buf, false)).expect("recv");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"bye");
            client.join().expect("client");
            drop(s);
            drop(l);
            let st = ns.sockstat();
            assert_eq!((st.inuse, st.orphan, st.alloc), (0, 0, 0), "{st}");
        },
        SCHEDULES,
        3,
    );
}

/// The softirq cut short after every packet (`netdev_budget` 1), so each
/// writer's run hands the rest of its backlog to `ksoftirqd`, and the timers
/// are the thread's too (no clock): backlog handed over while the thread
/// runs, sleeps or starts, a reader woken from the thread. At the end the
/// namespace is dropped with timers armed, and the thread must exit (a
/// thread left asleep fails the execution).
#[test]
fn model_check_backlog_handed_to_ksoftirqd() {
    shuttle::check_pct(
        || {
            let ns = Netns::new();
            ns.set_sysctl(|s| {
                s.netdev_budget = 1;
                s.dev_weight = 1;
            })
            .expect("sysctl");
            let addr: SocketAddr = "127.0.0.1:7002".parse().expect("address");
            let l = Socket::listen(&ns, addr, 16).expect("listen");
            let c = Socket::connect(&ns, addr).expect("connect");
            wait_for(|cx| c.poll_connect(cx)).expect("connected");
            let (s, _) = wait_for(|cx| l.poll_accept(cx)).expect("accepted");
            const LEN: usize = 2000;
            let w = thread::spawn(move || write_all(&c, LEN, 250));
            let r = thread::spawn(move || read_all(&s, LEN));
            w.join().expect("writer");
            r.join().expect("reader");
            assert!(
                ns.softnet_stat().cpus.iter().any(|c| c.time_squeeze > 0),
                "the softirq was cut short"
            );
            drop(l);
            drop(ns);
        },
        SCHEDULES,
        3,
    );
}
