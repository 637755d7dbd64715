//! lonet sockets on tokio's runtimes: current-thread, multi-thread, several at once, one shutting
//! down under live connections; and what is left once every socket is dropped.

use crate::common::*;
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// tokio::spawn in the current namespace (spawned tasks do not inherit it).
fn spawn<F>(f: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(Netns::current().scope(f))
}

/// Accepts `n` connections and echoes each in its own task until the client shuts down.
async fn echo_server(listener: TcpListener, n: usize) {
    let mut conns = Vec::new();
    for _ in 0..n {
        let (mut s, _) = listener.accept().await.expect("accept");
        conns.push(spawn(async move {
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await.expect("echo copy");
            w.shutdown().await.expect("echo shutdown");
        }));
    }
    for c in conns {
        c.await.expect("echo task");
    }
}

/// The scenarios' helpers and echo scenario (tests/scenarios/), over `lonet::net`, for their
/// echo client.
#[allow(dead_code, unused_imports)]
mod scenario {
    pub use crate::common::spawn_here as spawn;
    pub use crate::common::*;
    pub use lonet::net::{TcpListener, TcpStream};
    pub use std::io;
    pub use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub const STACK: &str = "lonet";

    include!("../scenarios/helpers.rs");

    pub mod echo {
        use super::*;
        include!("../scenarios/echo.rs");
    }
}

/// One client: writes `len` pattern bytes from one task while another reads the echo back
/// (the echo scenario's client), and checks that every byte came back in order.
async fn echo_client(addr: SocketAddr, seed: u64, len: usize) {
    let got = scenario::echo::echo_client(addr, seed, len).await;
    assert_eq!(got, Echoed::intact(len), "stream {seed}: the echo");
}

/// `n` clients at once, each echoing `len` bytes, against an echo server in this namespace.
async fn echo_round(n: usize, len: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let server = spawn(echo_server(listener, n));
    let clients: Vec<_> = (0..n)
        .map(|i| spawn(echo_client(addr, i as u64 + 1, len)))
        .collect();
    for c in clients {
        c.await.expect("client task");
    }
    server.await.expect("server task");
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[tokio::test]
async fn connections_work_on_the_current_thread_runtime() {
    // Linux: sockets work from a single thread that multiplexes them with epoll.
    let ns = Netns::new();
    bounded(
        "echo on current-thread",
        ns.clone().scope(echo_round(8, 256 * 1024)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_work_on_the_multi_thread_runtime() {
    // Linux: a socket can be used from any thread; wake-ups cross threads.
    let ns = Netns::new();
    bounded(
        "echo on multi-thread",
        ns.clone().scope(echo_round(8, 256 * 1024)),
    )
    .await;
}

#[test]
fn a_server_on_one_runtime_serves_clients_on_another_at_the_same_time() {
    // Linux: a socket belongs to the kernel, not to a thread or event loop: two event loops
    // in one process can hold the two ends of a connection.
    const CLIENTS: usize = 8;
    let ns = Netns::new();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server_ns = ns.clone();
    let server = std::thread::spawn(move || {
        current_thread_runtime().block_on(bounded(
            "server runtime",
            server_ns.scope(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("local_addr"))
                    .unwrap();
                echo_server(listener, CLIENTS).await;
            }),
        ))
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server address");
    multi_thread_runtime().block_on(bounded(
        "client runtime",
        ns.clone().scope(async move {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| spawn(echo_client(addr, i as u64 + 1, 256 * 1024)))
                .collect();
            for c in clients {
                c.await.expect("client task");
            }
        }),
    ));
    server.join().expect("server thread");
    wait_until_blocking(
        "every socket and buffer freed",
        Duration::from_secs(10),
        || {
            let s = ns.sockstat();
            if s.alloc == 0 && s.mem == 0 {
                Ok(())
            } else {
                Err(format!("{s}"))
            }
        },
    );
}

#[test]
fn dropping_a_runtime_that_owns_one_end_of_some_connections_does_not_stall_the_others() {
    // Linux: shutting an event loop down closes the sockets its tasks own, so their peers get
    // FIN (read returns 0); every other connection in the system carries on untouched.
    const FROM_A: usize = 4;
    const BYSTANDER_BYTES: usize = 4 << 20;
    let ns = Netns::new();
    let b = multi_thread_runtime();
    b.block_on(bounded(
        "runtime shutdown scenario",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");

            // Runtime A, in its own thread: FROM_A clients that say hello, then park on a
            // read that never completes, until A is dropped.
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
            let a_ns = ns.clone();
            let a_thread = std::thread::spawn(move || {
                let a = current_thread_runtime();
                a.block_on(a_ns.scope(async move {
                    for _ in 0..FROM_A {
                        let mut s = TcpStream::connect(addr).await.expect("A: connect");
                        s.write_all(b"hello from A").await.expect("A: write_all");
                        spawn(async move {
                            let _ = s.read(&mut [0u8; 1]).await;
                            std::future::pending::<()>().await;
                        });
                    }
                    tokio::task::yield_now().await; // let the tasks park on their reads
                    ready_tx.send(()).unwrap();
                    let _ = stop_rx.await;
                }));
                drop(a); // drops the parked tasks and with them A's sockets
                gone_tx.send(()).unwrap();
            });

            let mut from_a = Vec::new();
            for _ in 0..FROM_A {
                let (mut s, _) = listener.accept().await.expect("accept from A");
                let mut hello = [0u8; 12];
                s.read_exact(&mut hello).await.expect("read hello");
                assert_eq!(&hello, b"hello from A");
                from_a.push(s);
            }
            ready_rx.await.expect("A ready");

            // Runtime C, in its own thread: an echo server for one connection from B.
            let (c_addr_tx, c_addr_rx) = tokio::sync::oneshot::channel();
            let (c_done_tx, c_done_rx) = tokio::sync::oneshot::channel::<()>();
            let c_ns = ns.clone();
            let c_thread = std::thread::spawn(move || {
                current_thread_runtime().block_on(c_ns.scope(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("C: bind");
                    c_addr_tx
                        .send(listener.local_addr().expect("C: local_addr"))
                        .unwrap();
                    echo_server(listener, 1).await;
                }));
                c_done_tx.send(()).unwrap();
            });
            let c_addr = c_addr_rx.await.expect("C's address");

            // Bystanders, started before A goes away: B <-> C, and B <-> B.
            let to_c = spawn(echo_client(c_addr, 77, BYSTANDER_BYTES));
            let local = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let local_addr = local.local_addr().expect("local_addr");
            let local_server = spawn(echo_server(local, 1));
            let on_b = spawn(echo_client(local_addr, 78, BYSTANDER_BYTES));

            // Shut A down while the bystanders run.
            stop_tx.send(()).unwrap();
            gone_rx.await.expect("A dropped");

            for (i, s) in from_a.iter_mut().enumerate() {
                let r = s.read(&mut [0u8; 16]).await;
                assert_eq!(
                    res(&r),
                    ok(0usize),
                    "connection {i} from the dropped runtime: read"
                );
            }
            to_c.await.expect("bystander B <-> C");
            on_b.await.expect("bystander B <-> B");
            local_server.await.expect("B's echo server");
            c_done_rx.await.expect("C finished");
            drop(from_a);
            drop(listener);
            a_thread.join().expect("A's thread");
            c_thread.join().expect("C's thread");
            wait_all_freed(&ns).await;
        }),
    ));
}

#[tokio::test]
async fn dropping_every_socket_frees_every_buffer_and_the_helper_thread_ends() {
    // Linux: closed sockets give their memory back (/proc/net/sockstat: alloc 0, mem 0) and
    // ksoftirqd goes back to sleep once no packets are queued and no timers are pending.
    let ns = Netns::new();
    bounded(
        "freeing everything",
        ns.clone().scope(async {
            echo_round(4, 512 * 1024).await;

            // A socket closed with unread data (RST), one half-closed from both sides, and a
            // listener dropped with a connection still waiting in its accept queue.
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let (c, a) = tokio::join!(TcpStream::connect(addr), listener.accept());
            let (mut unread_writer, unread_reader) = (c.expect("connect"), a.expect("accept").0);
            unread_writer
                .write_all(&[7u8; 10_000])
                .await
                .expect("write_all");
            unread_reader.readable().await.expect("readable");
            let s = ns.sockstat();
            assert!(
                s.mem >= 10_000,
                "10 000 unread bytes are queued, sockstat says {s}"
            );
            drop(unread_reader);

            let (c, a) = tokio::join!(TcpStream::connect(addr), listener.accept());
            let (mut x, mut y) = (c.expect("connect"), a.expect("accept").0);
            x.shutdown().await.expect("shutdown");
            y.shutdown().await.expect("shutdown");

            let queued = TcpStream::connect(addr)
                .await
                .expect("connect (left in accept queue)");
            drop(listener);
            drop((unread_writer, x, y, queued));

            wait_all_freed(&ns).await;
            wait_until("ksoftirqd ends", Duration::from_secs(10), || {
                if ns.ksoftirqd_running() {
                    Err(format!("still running; sockstat {}", ns.sockstat()))
                } else {
                    Ok(())
                }
            })
            .await;
        }),
    )
    .await;
}

/// Found by the comparison's multi-thread bulk row, which hung in CI: with reader and writer on
/// two workers, a large write's short tail segment could land in a receive queue already a
/// little over its buffer (the window counts payload at the measured ratio, each segment's head
/// comes on top). The model dropped it, and every retransmission met the same full queue, so
/// the transfer crawled at the retransmission timer's pace. Linux's `tcp_prune_queue` grows the
/// buffer to what the queue holds instead (`tcp_clamp_window`): on lo nothing is dropped and
/// nothing retransmitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_on_two_workers_drops_and_retransmits_nothing() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 1024; // 64 MiB
    let ns = Netns::new();
    let listener = ns
        .clone()
        .scope(TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let (c, a) = ns
        .clone()
        .scope(async { tokio::join!(TcpStream::connect(addr), listener.accept()) })
        .await;
    let (mut w, (mut r, _)) = (c.expect("connect"), a.expect("accept"));
    // The writer reuses one pattern chunk: every 64 KiB of the stream is alike, and the reader
    // checks each byte against its offset within the chunk.
    let chunk = pattern_vec(7, CHUNK);
    let expect = chunk.clone();
    let writer = tokio::spawn(async move {
        for _ in 0..CHUNKS {
            w.write_all(&chunk).await.expect("write_all");
        }
        w.shutdown().await.expect("shutdown");
    });
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0usize;
        loop {
            let n = r.read(&mut buf).await.expect("read");
            if n == 0 {
                return got;
            }
            let mut piece = &buf[..n];
            while !piece.is_empty() {
                let at = got % CHUNK;
                let k = piece.len().min(CHUNK - at);
                assert!(piece[..k] == expect[at..at + k], "bytes {got}..{}", got + k);
                piece = &piece[k..];
                got += k;
            }
        }
    });
    let got = bounded("64 MiB on two workers", async {
        writer.await.expect("writer task");
        reader.await.expect("reader task")
    })
    .await;
    assert_eq!(got, CHUNK * CHUNKS);
    let t = ns.tcp_stats();
    assert_eq!(
        (t.retrans_segs, t.tcp_rcvq_drop, t.rcv_pruned),
        (0, 0, 0),
        "{t}"
    );
}
