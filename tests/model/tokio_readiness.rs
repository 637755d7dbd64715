//! Readiness with tokio's rules, the same over the kernel and over lonet.
//!
//! tokio caches a socket's readiness: an event sets it, and it stays set
//! until an operation returns `WouldBlock` (or, on Linux, a `poll_read`
//! comes back shorter than its buffer). A program written against that —
//! `readable().await`, then `try_read` until `WouldBlock` — must see the same
//! on lonet. Every scenario below runs three times: over `tokio::net` on the
//! kernel's loopback (module `os`), over `lonet::net` in a fresh namespace
//! (`lo`), and over `lonet::net` with the namespace's kernel switch on
//! (`kswitch`); each test checks the kernel's observations against the
//! expected Linux value, then lonet's two against the same.
//!
//! "at once" means one poll of the future: `ready` or `pending`. On the
//! kernel, tokio learns of events when its driver runs, so a scenario yields
//! once (`settle`) after the peer acted and before it looks at readiness
//! that the peer's action changes: the current-thread runtime polls its
//! driver before it resumes a task that yielded.

use crate::common::*;
use std::io::ErrorKind::*;

/// The scenarios, instantiated once per stack.
macro_rules! scenarios {
    () => {
        use std::future::poll_fn;
        use std::io;
        use std::sync::Arc;
        use std::task::Poll;
        use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest, Ready};

        /// A connected pair over 127.0.0.1: `(client, accepted end)`.
        pub async fn pair() -> (TcpStream, TcpStream) {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
            (client.expect("connect"), accepted.expect("accept").0)
        }

        /// Polls `f` once: `Some(output)` if it is ready at once.
        pub async fn at_once<F: Future>(f: F) -> Option<F::Output> {
            let mut f = std::pin::pin!(f);
            poll_fn(|cx| {
                Poll::Ready(match f.as_mut().poll(cx) {
                    Poll::Ready(v) => Some(v),
                    Poll::Pending => None,
                })
            })
            .await
        }

        /// Lets tokio's driver deliver what the kernel already queued.
        pub async fn settle() {
            tokio::task::yield_now().await;
        }

        /// `ready` or `pending` (or the error) for one poll of a readiness call.
        pub fn now<T>(r: Option<io::Result<T>>) -> Res {
            match r {
                Some(Ok(_)) => ok("ready"),
                Some(Err(e)) => Res::Err(e.kind(), e.raw_os_error()),
                None => ok("pending"),
            }
        }

        /// The bits of a `Ready`, by name, in a fixed order.
        pub fn bits(r: &io::Result<Ready>) -> Res {
            match r {
                Ok(r) => {
                    let mut v = Vec::new();
                    if r.is_readable() {
                        v.push("READABLE");
                    }
                    if r.is_writable() {
                        v.push("WRITABLE");
                    }
                    if r.is_read_closed() {
                        v.push("READ_CLOSED");
                    }
                    if r.is_write_closed() {
                        v.push("WRITE_CLOSED");
                    }
                    ok(v.join(" | "))
                }
                Err(e) => Res::Err(e.kind(), e.raw_os_error()),
            }
        }

        /// [`bits`] of one poll of `ready(interest)`, or `pending`.
        pub async fn ready_at_once(s: &TcpStream, interest: Interest) -> Res {
            match at_once(s.ready(interest)).await {
                Some(r) => bits(&r),
                None => ok("pending"),
            }
        }

        /// Drains the accepted end's assumed readiness: `try_read` until `WouldBlock`.
        pub fn drain(s: &TcpStream) -> Res {
            let mut buf = [0u8; 64];
            loop {
                match s.try_read(&mut buf) {
                    Ok(n) if n > 0 => continue,
                    r => return kind_only(&r),
                }
            }
        }

        /// The tokio way: `readable().await`, then `try_read` until `WouldBlock`; readiness
        /// is then gone until the peer writes again.
        pub async fn try_read_until_would_block() -> Trace {
            let (mut a, b) = pair().await;
            let mut t = Trace::new();
            let mut buf = [0u8; 64];
            a.write_all(b"hello").await.expect("write_all");
            settle().await;
            t.push(("readable", done(&b.readable().await)));
            t.push(("try_read", res(&b.try_read(&mut buf))));
            t.push((
                "readable at once after a read",
                now(at_once(b.readable()).await),
            ));
            t.push(("try_read again", kind_only(&b.try_read(&mut buf))));
            t.push((
                "readable at once after WouldBlock",
                now(at_once(b.readable()).await),
            ));
            t.push((
                "poll_read_ready at once",
                now(at_once(poll_fn(|cx| b.poll_read_ready(cx))).await),
            ));
            a.write_all(b"again").await.expect("write_all");
            t.push(("readable after the peer wrote", done(&b.readable().await)));
            t.push(("try_read", res(&b.try_read(&mut buf))));
            t
        }

        /// A read that did not hit `WouldBlock` leaves readiness set, except a `poll_read`
        /// shorter than its buffer (tokio on Linux); `try_read` never clears on a short read.
        pub async fn readiness_after_reads_without_would_block() -> Trace {
            let (mut a, mut b) = pair().await;
            let mut t = Trace::new();
            drain(&b);

            a.write_all(b"abcdefgh").await.expect("write_all");
            settle().await;
            t.push(("readable", done(&b.readable().await)));
            let mut eight = [0u8; 8];
            t.push(("read 8 into 8", res(&b.read(&mut eight).await)));
            t.push(("readable at once", now(at_once(b.readable()).await)));
            t.push((
                "poll_read_ready at once",
                now(at_once(poll_fn(|cx| b.poll_read_ready(cx))).await),
            ));
            t.push((
                "ready(READABLE) at once",
                ready_at_once(&b, Interest::READABLE).await,
            ));
            t.push(("try_read", kind_only(&b.try_read(&mut eight))));
            t.push((
                "readable at once after WouldBlock",
                now(at_once(b.readable()).await),
            ));

            a.write_all(b"abcd").await.expect("write_all");
            settle().await;
            let mut big = [0u8; 64];
            t.push(("try_read 4 into 64", res(&b.try_read(&mut big))));
            t.push((
                "readable at once after a short try_read",
                now(at_once(b.readable()).await),
            ));
            t.push(("try_read", kind_only(&b.try_read(&mut big))));

            a.write_all(b"wxyz").await.expect("write_all");
            settle().await;
            t.push(("readable", done(&b.readable().await)));
            t.push(("read 4 into 64", res(&b.read(&mut big).await)));
            t.push((
                "readable at once after a short read",
                now(at_once(b.readable()).await),
            ));
            t
        }

        /// A read that takes part of what is queued leaves the rest readable.
        pub async fn readiness_held_across_a_partial_read() -> Trace {
            let (mut a, mut b) = pair().await;
            let mut t = Trace::new();
            drain(&b);
            a.write_all(b"0123456789").await.expect("write_all");
            settle().await;
            let mut three = [0u8; 3];
            t.push(("read 3", res(&b.read(&mut three).await)));
            t.push(("readable at once", now(at_once(b.readable()).await)));
            t.push(("try_read 3", res(&b.try_read(&mut three))));
            t.push((
                "ready(READABLE) at once",
                ready_at_once(&b, Interest::READABLE).await,
            ));
            let mut rest = [0u8; 4];
            t.push(("read the last 4", res(&b.read(&mut rest).await)));
            t.push(("got", ok(String::from_utf8_lossy(&rest).into_owned())));
            t.push(("readable at once", now(at_once(b.readable()).await)));
            t.push(("try_read", kind_only(&b.try_read(&mut rest))));
            t.push((
                "readable at once after WouldBlock",
                now(at_once(b.readable()).await),
            ));
            t
        }

        /// The peer's FIN: READ_CLOSED (and readable for good); the write side is still open.
        /// Then our own shutdown too: both directions shut is EPOLLHUP, so WRITE_CLOSED.
        pub async fn read_closed_after_fin() -> Trace {
            let (mut a, mut b) = pair().await;
            let mut t = Trace::new();
            t.push(("drain", drain(&b)));
            t.push((
                "ready(READABLE) at once",
                ready_at_once(&b, Interest::READABLE).await,
            ));
            a.shutdown().await.expect("shutdown");
            settle().await;
            t.push(("ready(READABLE)", bits(&b.ready(Interest::READABLE).await)));
            t.push(("ready(WRITABLE)", bits(&b.ready(Interest::WRITABLE).await)));
            let mut buf = [0u8; 8];
            t.push(("read", res(&b.read(&mut buf).await)));
            t.push((
                "ready(READABLE) at once after EOF",
                ready_at_once(&b, Interest::READABLE).await,
            ));
            t.push(("try_read", res(&b.try_read(&mut buf))));
            b.shutdown().await.expect("own shutdown");
            settle().await;
            t.push((
                "ready(READABLE | WRITABLE) after own shutdown",
                bits(&b.ready(Interest::READABLE | Interest::WRITABLE).await),
            ));
            t
        }

        /// Own shutdown alone: still WRITABLE (a write fails with EPIPE), no WRITE_CLOSED on
        /// Linux (tcp_poll gives EPOLLOUT, no EPOLLHUP); the peer's FIN then closes both.
        pub async fn write_closed_after_own_shutdown() -> Trace {
            let (mut a, mut b) = pair().await;
            let mut t = Trace::new();
            drain(&b);
            a.shutdown().await.expect("shutdown");
            settle().await;
            t.push((
                "ready(WRITABLE) after own shutdown",
                bits(&a.ready(Interest::WRITABLE).await),
            ));
            t.push((
                "ready(READABLE) at once",
                ready_at_once(&a, Interest::READABLE).await,
            ));
            t.push(("try_write", res(&a.try_write(b"x"))));
            let mut buf = [0u8; 8];
            t.push(("peer read", res(&b.read(&mut buf).await)));
            b.shutdown().await.expect("peer shutdown");
            settle().await;
            t.push((
                "ready(READABLE | WRITABLE) after the peer's FIN",
                bits(&a.ready(Interest::READABLE | Interest::WRITABLE).await),
            ));
            t
        }

        /// RST: READ_CLOSED and WRITE_CLOSED (EPOLLHUP), the error reported once by a read.
        pub async fn read_and_write_closed_after_rst() -> Trace {
            let (a, mut b) = pair().await;
            let mut t = Trace::new();
            drain(&b);
            a.set_zero_linger().expect("linger 0");
            drop(a);
            settle().await;
            t.push(("ready(READABLE)", bits(&b.ready(Interest::READABLE).await)));
            t.push(("ready(WRITABLE)", bits(&b.ready(Interest::WRITABLE).await)));
            let mut buf = [0u8; 8];
            t.push(("read", res(&b.read(&mut buf).await)));
            t.push((
                "ready(READABLE) at once",
                ready_at_once(&b, Interest::READABLE).await,
            ));
            t.push(("read again", res(&b.read(&mut buf).await)));
            t
        }

        /// Two tasks wait for readable on one socket; one event wakes both, and both return
        /// even though the first one to run drains the queue (the second one then finds
        /// `WouldBlock`). Once through one handle, once through the two owned halves (the
        /// readiness is the socket's, shared by its halves).
        pub async fn two_waiters_are_both_woken() -> Trace {
            let mut t = Trace::new();
            async fn wait_then_drain(s: &TcpStream, ready: bool) -> usize {
                if ready {
                    let _ = s.ready(Interest::READABLE).await.expect("ready");
                } else {
                    s.readable().await.expect("readable");
                }
                drain_count(|buf| s.try_read(buf))
            }
            fn drain_count(mut read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> usize {
                let mut buf = [0u8; 64];
                let mut total = 0;
                while let Ok(n) = read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                total
            }

            let (mut a, b) = pair().await;
            drain(&b);
            let b = Arc::new(b);
            let waiters: Vec<_> = [false, true]
                .into_iter()
                .map(|ready| {
                    let b = b.clone();
                    spawn(async move { wait_then_drain(&b, ready).await })
                })
                .collect();
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            a.write_all(b"wake").await.expect("write_all");
            let mut total = 0;
            for w in waiters {
                total += w.await.expect("waiter task");
            }
            t.push((
                "one handle: both returned, bytes read between them",
                ok(total),
            ));

            let (mut a, b) = pair().await;
            drain(&b);
            let (r, w) = b.into_split();
            let r1 = spawn(async move {
                r.readable().await.expect("readable");
                let n = drain_count(|buf| r.try_read(buf));
                (r, n)
            });
            let w1 = spawn(async move {
                w.ready(Interest::READABLE).await.expect("ready");
                w
            });
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            a.write_all(b"halves").await.expect("write_all");
            let (r, n) = r1.await.expect("read half task");
            let w = w1.await.expect("write half task");
            t.push(("halves: both returned, bytes read", ok(n)));
            t.push((
                "write half ready(READABLE) at once after the read half's WouldBlock",
                match at_once(w.ready(Interest::READABLE)).await {
                    Some(r) => bits(&r),
                    None => ok("pending"),
                },
            ));
            a.write_all(b"x").await.expect("write_all");
            settle().await;
            let mut one = [0u8; 1];
            t.push(("read half try_read", res(&r.try_read(&mut one))));
            t.push((
                "write half ready(READABLE) at once after the read half's read",
                match at_once(w.ready(Interest::READABLE)).await {
                    Some(r) => bits(&r),
                    None => ok("pending"),
                },
            ));
            t
        }

        /// A listener: `poll_accept` pending with nothing queued, ready once a connection is;
        /// the accepted end starts readable and writable (tokio assumes so), the connecting
        /// end writable only.
        pub async fn listener_and_fresh_streams() -> Trace {
            let mut t = Trace::new();
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            t.push((
                "poll_accept at once, nothing queued",
                now(at_once(poll_fn(|cx| listener.poll_accept(cx))).await),
            ));
            let client = TcpStream::connect(addr).await.expect("connect");
            let accepted = poll_fn(|cx| listener.poll_accept(cx)).await;
            t.push(("poll_accept", done(&accepted)));
            let (server, _) = accepted.expect("accept");
            t.push((
                "accepted: readable at once",
                now(at_once(server.readable()).await),
            ));
            t.push((
                "accepted: writable at once",
                now(at_once(server.writable()).await),
            ));
            t.push(("accepted: drain", drain(&server)));
            t.push((
                "accepted: readable at once after WouldBlock",
                now(at_once(server.readable()).await),
            ));
            t.push((
                "connected: readable at once",
                now(at_once(client.readable()).await),
            ));
            t.push((
                "connected: ready(WRITABLE)",
                bits(&client.ready(Interest::WRITABLE).await),
            ));
            t.push((
                "poll_accept at once, nothing queued",
                now(at_once(poll_fn(|cx| listener.poll_accept(cx))).await),
            ));
            t
        }
    };
}

three_stacks! {
    scenarios!();
}

#[tokio::test]
async fn readable_then_try_read_until_would_block_the_tokio_way() {
    // tokio: readiness stays set after a successful try_read and is cleared by WouldBlock;
    // the peer's next write sets it again.
    differential!(try_read_until_would_block() => vec![
        ("readable", ok_done()),
        ("try_read", ok(5usize)),
        ("readable at once after a read", ok("ready")),
        ("try_read again", err_kind(WouldBlock)),
        ("readable at once after WouldBlock", ok("pending")),
        ("poll_read_ready at once", ok("pending")),
        ("readable after the peer wrote", ok_done()),
        ("try_read", ok(5usize)),
    ]);
}

#[tokio::test]
async fn readiness_after_a_read_that_emptied_the_queue_returns_at_once() {
    // tokio on Linux: a read that filled its buffer, or any try_read, keeps readiness (the
    // next readable() returns at once, the next try_read says WouldBlock); a poll_read shorter
    // than its buffer clears it.
    differential!(readiness_after_reads_without_would_block() => vec![
        ("readable", ok_done()),
        ("read 8 into 8", ok(8usize)),
        ("readable at once", ok("ready")),
        ("poll_read_ready at once", ok("ready")),
        ("ready(READABLE) at once", ok("READABLE")),
        ("try_read", err_kind(WouldBlock)),
        ("readable at once after WouldBlock", ok("pending")),
        ("try_read 4 into 64", ok(4usize)),
        ("readable at once after a short try_read", ok("ready")),
        ("try_read", err_kind(WouldBlock)),
        ("readable", ok_done()),
        ("read 4 into 64", ok(4usize)),
        ("readable at once after a short read", ok("pending")),
    ]);
}

#[tokio::test]
async fn readiness_is_held_across_a_partial_read() {
    // Linux: bytes left in the queue keep the socket readable; tokio's cache agrees.
    differential!(readiness_held_across_a_partial_read() => vec![
        ("read 3", ok(3usize)),
        ("readable at once", ok("ready")),
        ("try_read 3", ok(3usize)),
        ("ready(READABLE) at once", ok("READABLE")),
        ("read the last 4", ok(4usize)),
        ("got", ok("6789")),
        ("readable at once", ok("ready")),
        ("try_read", err_kind(WouldBlock)),
        ("readable at once after WouldBlock", ok("pending")),
    ]);
}

#[tokio::test]
async fn the_peers_fin_sets_read_closed_and_both_shut_sets_write_closed() {
    // Linux tcp_poll: RCV_SHUTDOWN gives EPOLLIN | EPOLLRDHUP (READABLE, READ_CLOSED), which
    // no read clears; both directions shut gives EPOLLHUP (READ_CLOSED and WRITE_CLOSED).
    differential!(read_closed_after_fin() => vec![
        ("drain", err_kind(WouldBlock)),
        ("ready(READABLE) at once", ok("pending")),
        ("ready(READABLE)", ok("READABLE | READ_CLOSED")),
        ("ready(WRITABLE)", ok("WRITABLE")),
        ("read", ok(0usize)),
        ("ready(READABLE) at once after EOF", ok("READABLE | READ_CLOSED")),
        ("try_read", ok(0usize)),
        ("ready(READABLE | WRITABLE) after own shutdown",
            ok("READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED")),
    ]);
}

#[tokio::test]
async fn own_shutdown_alone_is_not_write_closed_on_linux() {
    // Linux tcp_poll: SEND_SHUTDOWN alone gives EPOLLOUT and no EPOLLHUP, so tokio reports
    // WRITABLE without WRITE_CLOSED (a write then fails with EPIPE); the peer's FIN completes
    // SHUTDOWN_MASK: EPOLLHUP.
    differential!(write_closed_after_own_shutdown() => vec![
        ("ready(WRITABLE) after own shutdown", ok("WRITABLE")),
        ("ready(READABLE) at once", ok("pending")),
        ("try_write", err(BrokenPipe, crate::common::errno::EPIPE)),
        ("peer read", ok(0usize)),
        ("ready(READABLE | WRITABLE) after the peer's FIN",
            ok("READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED")),
    ]);
}

#[tokio::test]
async fn a_reset_sets_read_closed_and_write_closed() {
    // Linux: tcp_reset + tcp_done: sk_err, SHUTDOWN_MASK and TCP_CLOSE give EPOLLIN, EPOLLOUT,
    // EPOLLRDHUP, EPOLLHUP and EPOLLERR; the first read reports ECONNRESET, later ones 0.
    differential!(read_and_write_closed_after_rst() => vec![
        ("ready(READABLE)", ok("READABLE | READ_CLOSED")),
        ("ready(WRITABLE)", ok("WRITABLE | WRITE_CLOSED")),
        ("read", err(ConnectionReset, crate::common::errno::ECONNRESET)),
        ("ready(READABLE) at once", ok("READABLE | READ_CLOSED")),
        ("read again", ok(0usize)),
    ]);
}

#[tokio::test]
async fn two_tasks_waiting_for_readable_are_both_woken_and_both_return() {
    // tokio: an event marks every matching waiter ready; each returns even if another task
    // cleared the readiness before it ran. The halves share the socket's readiness.
    differential!(two_waiters_are_both_woken() => vec![
        ("one handle: both returned, bytes read between them", ok(4usize)),
        ("halves: both returned, bytes read", ok(6usize)),
        ("write half ready(READABLE) at once after the read half's WouldBlock", ok("pending")),
        ("read half try_read", ok(1usize)),
        ("write half ready(READABLE) at once after the read half's read", ok("READABLE")),
    ]);
}

#[tokio::test]
async fn listener_poll_accept_and_the_readiness_of_fresh_streams() {
    // tokio: poll_accept tries accept() when the listener is readable; an accepted stream
    // starts assumed readable and writable; connect() returns once the socket is writable.
    differential!(listener_and_fresh_streams() => vec![
        ("poll_accept at once, nothing queued", ok("pending")),
        ("poll_accept", ok_done()),
        ("accepted: readable at once", ok("ready")),
        ("accepted: writable at once", ok("ready")),
        ("accepted: drain", err_kind(WouldBlock)),
        ("accepted: readable at once after WouldBlock", ok("pending")),
        ("connected: readable at once", ok("pending")),
        ("connected: ready(WRITABLE)", ok("WRITABLE")),
        ("poll_accept at once, nothing queued", ok("pending")),
    ]);
}
