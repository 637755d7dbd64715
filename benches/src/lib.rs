//! The workloads shared by `benches/transports.rs` (criterion) and the
//! `compare` binary (one table), written once over any transport.
//!
//! A [`Transport`] hands out connected pairs of streams. Four of them:
//! - [`Lonet`], `lonet::net` in a namespace of its own (`Netns::new()`), a
//!   listener on 127.0.0.1, the full modeled loopback path;
//! - [`Tcp`], `tokio::net` on the kernel's 127.0.0.1;
//! - [`Unix`], `tokio::net::UnixStream::pair()`;
//! - [`Duplex`], `tokio::io::duplex` with a [`DUPLEX_BUF`] buffer.
//!
//! A lonet socket keeps its namespace once created, so tasks that only move
//! data on existing connections are plain `tokio::spawn`s; tasks that create
//! sockets (connect, accept, hyper's connection setup) run in the
//! transport's namespace ([`spawn_in`]): `tokio::spawn` does not carry the
//! namespace over.
//!
//! Each workload sets its connections up once ([`PingPong::new`], ...) and
//! then times `run(n)`: `n` iterations in freshly spawned tasks, so on a
//! multi-thread runtime the timed work runs on the workers, not on the thread
//! that called `block_on` ([`PingPong::run_in_place`] is the exception: its
//! client runs in the caller's future). The connections survive between runs, so
//! criterion's samples reuse them.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lonet::Netns;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Bytes in one ping or pong.
pub const PING: usize = 64;
/// Bytes in one bulk write.
pub const CHUNK: usize = 64 * 1024;
/// `tokio::io::duplex`'s buffer size (its `max_buf_size`).
pub const DUPLEX_BUF: usize = 64 * 1024;
/// Concurrent HTTP/2 streams on the one connection.
pub const H2_STREAMS: u64 = 100;
/// The response body of the hyper workloads.
pub const BODY: &[u8] = b"hello, world";

/// Spawns `fut` on the current runtime, inside `ns`'s scope when there is one.
pub fn spawn_in<F>(ns: Option<Netns>, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match ns {
        Some(ns) => tokio::spawn(ns.scope(fut)),
        None => tokio::spawn(fut),
    }
}

fn join_err(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("task failed: {e}"))
}

fn hyper_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("hyper: {e}"))
}

/// Something that hands out connected pairs of byte streams.
pub trait Transport: Sized + Send + Sync + 'static {
    /// One end of a connection.
    type S: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The transport's name in tables and messages.
    const NAME: &'static str;
    /// Its criterion bench id.
    const ID: &'static str;
    /// Creates the transport (a listener, a namespace, as it needs).
    fn setup() -> impl Future<Output = io::Result<Self>> + Send;
    /// A connected pair: (client end, server end). Call it from one task
    /// at a time: the listener's next accept is taken as this connect's peer.
    fn pair(&self) -> impl Future<Output = io::Result<(Self::S, Self::S)>> + Send;
    /// The namespace its tasks must run in (lonet only).
    fn ns(&self) -> Option<Netns> {
        None
    }
}

/// A transport with addresses and a listener: connections can be opened and
/// closed (lonet and kernel TCP; a Unix pair or a duplex has no connect).
pub trait Listening: Transport {
    /// One `connect` + `accept`, then both ends dropped (closed).
    fn connect_accept_close(&self) -> impl Future<Output = io::Result<()>> + Send;
}

/// lonet on 127.0.0.1, in a namespace of its own.
pub struct Lonet {
    /// The namespace every socket and task of this transport lives in.
    pub ns: Netns,
    listener: lonet::net::TcpListener,
    addr: SocketAddr,
}

impl Transport for Lonet {
    type S = lonet::net::TcpStream;
    const NAME: &'static str = "lonet";
    const ID: &'static str = "lonet";

    async fn setup() -> io::Result<Self> {
        let ns = Netns::new();
        let listener = ns
            .clone()
            .scope(lonet::net::TcpListener::bind("127.0.0.1:0"))
            .await?;
        let addr = listener.local_addr()?;
        Ok(Lonet { ns, listener, addr })
    }

    async fn pair(&self) -> io::Result<(Self::S, Self::S)> {
        let (c, a) = self
            .ns
            .clone()
            .scope(async {
                tokio::join!(
                    lonet::net::TcpStream::connect(self.addr),
                    self.listener.accept()
                )
            })
            .await;
        let (c, (a, _)) = (c?, a?);
        c.set_nodelay(true)?;
        a.set_nodelay(true)?;
        Ok((c, a))
    }

    fn ns(&self) -> Option<Netns> {
        Some(self.ns.clone())
    }
}

impl Listening for Lonet {
    async fn connect_accept_close(&self) -> io::Result<()> {
        let (c, a) = self
            .ns
            .clone()
            .scope(async {
                tokio::join!(
                    lonet::net::TcpStream::connect(self.addr),
                    self.listener.accept()
                )
            })
            .await;
        // The client closes first, as a client usually does.
        drop(c?);
        drop(a?);
        Ok(())
    }
}

/// The kernel's loopback TCP, through `tokio::net` on 127.0.0.1.
pub struct Tcp {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl Transport for Tcp {
    type S = tokio::net::TcpStream;
    const NAME: &'static str = "kernel TCP";
    const ID: &'static str = "kernel_tcp";

    async fn setup() -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        Ok(Tcp { listener, addr })
    }

    async fn pair(&self) -> io::Result<(Self::S, Self::S)> {
        let (c, a) = tokio::join!(
            tokio::net::TcpStream::connect(self.addr),
            self.listener.accept()
        );
        let (c, (a, _)) = (c?, a?);
        c.set_nodelay(true)?;
        a.set_nodelay(true)?;
        Ok((c, a))
    }
}

impl Listening for Tcp {
    async fn connect_accept_close(&self) -> io::Result<()> {
        let (c, a) = tokio::join!(
            tokio::net::TcpStream::connect(self.addr),
            self.listener.accept()
        );
        // The client closes first: its side takes TIME_WAIT, which the
        // kernel reuses for loopback (net.ipv4.tcp_tw_reuse = 2).
        drop(c?);
        drop(a?);
        Ok(())
    }
}

/// A Unix stream socket pair (`socketpair(AF_UNIX, SOCK_STREAM)`).
pub struct Unix;

impl Transport for Unix {
    type S = tokio::net::UnixStream;
    const NAME: &'static str = "Unix";
    const ID: &'static str = "unix";

    async fn setup() -> io::Result<Self> {
        Ok(Unix)
    }

    async fn pair(&self) -> io::Result<(Self::S, Self::S)> {
        tokio::net::UnixStream::pair()
    }
}

/// `tokio::io::duplex`: an in-process pipe, no addresses, no kernel model.
pub struct Duplex;

impl Transport for Duplex {
    type S = tokio::io::DuplexStream;
    const NAME: &'static str = "duplex";
    const ID: &'static str = "duplex";

    async fn setup() -> io::Result<Self> {
        Ok(Duplex)
    }

    async fn pair(&self) -> io::Result<(Self::S, Self::S)> {
        Ok(tokio::io::duplex(DUPLEX_BUF))
    }
}

/// 64-byte ping-pong: the client writes 64 bytes, the server echoes them,
/// the client reads them back. One iteration is one round trip.
pub struct PingPong<T: Transport> {
    client: Option<T::S>,
    _server: JoinHandle<()>,
}

impl<T: Transport> PingPong<T> {
    /// Connects and starts the echo server task.
    pub async fn new(t: &T) -> io::Result<Self> {
        let (client, mut server) = t.pair().await?;
        let server = tokio::spawn(async move {
            let mut buf = [0u8; PING];
            // Ends when the client goes away (EOF or reset).
            while server.read_exact(&mut buf).await.is_ok() {
                if server.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
        Ok(PingPong {
            client: Some(client),
            _server: server,
        })
    }

    /// `n` round trips with the client in a task of its own (so on a
    /// multi-thread runtime it runs on a worker); the time they took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let client = self.client.take().ok_or_else(poisoned)?;
        let (client, took) = tokio::spawn(round_trips(client, n))
            .await
            .map_err(join_err)??;
        self.client = Some(client);
        Ok(took)
    }

    /// `n` round trips with the client in the caller's future: under
    /// `block_on`, the way a `#[tokio::test]` body or criterion's
    /// `to_async` runs it (this reproduces ANCHORS.md's real-socket figures).
    /// Every reply then wakes `block_on` itself, through the runtime's
    /// driver, which costs every transport the same fixed amount.
    pub async fn run_in_place(&mut self, n: u64) -> io::Result<Duration> {
        let client = self.client.take().ok_or_else(poisoned)?;
        let (client, took) = round_trips(client, n).await?;
        self.client = Some(client);
        Ok(took)
    }
}

/// The client's side of [`PingPong`]: `n` round trips, timed.
async fn round_trips<S>(mut client: S, n: u64) -> io::Result<(S, Duration)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = [7u8; PING];
    let t0 = Instant::now();
    for _ in 0..n {
        client.write_all(&buf).await?;
        client.read_exact(&mut buf).await?;
    }
    Ok((client, t0.elapsed()))
}

fn poisoned() -> io::Error {
    io::Error::other("an earlier run failed; the connection is gone")
}

/// Bulk transfer: the writer writes `n` chunks of [`CHUNK`] bytes, the reader
/// (another task) reads them with a [`CHUNK`]-byte buffer. One iteration is
/// one chunk; the time runs until the reader has all of them.
pub struct Bulk<T: Transport> {
    ends: Option<Ends<T::S>>,
}

/// A connection's two ends and its reader's buffer, kept from run to run.
type Ends<S> = (S, S, Vec<u8>);

/// What every writer writes: one static chunk, so that the writers' side
/// allocates nothing (the readers' buffers are the connections' own).
static DATA: [u8; CHUNK] = [0x5a; CHUNK];

impl<T: Transport> Bulk<T> {
    /// Connects.
    pub async fn new(t: &T) -> io::Result<Self> {
        let (w, r) = t.pair().await?;
        Ok(Bulk {
            ends: Some((w, r, vec![0u8; CHUNK])),
        })
    }

    /// Moves `n` chunks; the time it took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let ends = self.ends.take().ok_or_else(poisoned)?;
        let t0 = Instant::now();
        let ends = transfer(ends, n).await?;
        let took = t0.elapsed();
        self.ends = Some(ends);
        Ok(took)
    }
}

/// Writes `n` chunks on `w` in one task, reads them from `r` in another.
async fn transfer<S>((mut w, mut r, mut buf): Ends<S>, n: u64) -> io::Result<Ends<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let total = n * CHUNK as u64;
    let reader = tokio::spawn(async move {
        let mut got = 0u64;
        while got < total {
            let want = (total - got).min(CHUNK as u64) as usize;
            let k = r.read(&mut buf[..want]).await?;
            if k == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("bulk: EOF after {got} of {total} bytes"),
                ));
            }
            got += k as u64;
        }
        io::Result::Ok((r, buf))
    });
    let writer = tokio::spawn(async move {
        for _ in 0..n {
            w.write_all(&DATA).await?;
        }
        io::Result::Ok(w)
    });
    let w = writer.await.map_err(join_err)??;
    let (r, buf) = reader.await.map_err(join_err)??;
    Ok((w, r, buf))
}

/// Connect + accept + close, one after the other. One iteration is one
/// connection's whole life.
pub struct ConnectClose<T: Listening> {
    t: std::sync::Arc<T>,
}

impl<T: Listening> ConnectClose<T> {
    /// Takes the transport (its listener) over.
    pub fn new(t: T) -> Self {
        ConnectClose {
            t: std::sync::Arc::new(t),
        }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.t
    }

    /// `n` connections opened and closed; the time it took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let t = self.t.clone();
        spawn_in(self.t.ns(), async move {
            let t0 = Instant::now();
            for _ in 0..n {
                t.connect_accept_close().await?;
            }
            io::Result::Ok(t0.elapsed())
        })
        .await
        .map_err(join_err)?
    }
}

/// A hyper executor that spawns into a lonet namespace when there is one.
#[derive(Clone)]
pub struct Exec(pub Option<Netns>);

impl<F> hyper::rt::Executor<F> for Exec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        spawn_in(self.0.clone(), fut);
    }
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}

/// hyper HTTP/1.1 with keep-alive: one connection, requests one after the
/// other (`GET /`, a 12-byte body back, read to the end). One iteration is
/// one request.
pub struct Http1 {
    sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
    ns: Option<Netns>,
}

impl Http1 {
    /// Connects, starts the server connection and the client connection tasks.
    pub async fn new<T: Transport>(t: &T) -> io::Result<Self> {
        let (c, s) = t.pair().await?;
        spawn_in(t.ns(), async move {
            // Ends with an error or Ok when the client goes away.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), service_fn(hello))
                .await;
        });
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(c))
            .await
            .map_err(hyper_err)?;
        spawn_in(t.ns(), async move {
            let _ = conn.await;
        });
        Ok(Http1 {
            sender: Some(sender),
            ns: t.ns(),
        })
    }

    /// `n` requests; the time they took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let mut sender = self.sender.take().ok_or_else(poisoned)?;
        let (sender, took) = spawn_in(self.ns.clone(), async move {
            let t0 = Instant::now();
            for _ in 0..n {
                sender.ready().await.map_err(hyper_err)?;
                let req = Request::builder()
                    .uri("/")
                    .header(hyper::header::HOST, "bench")
                    .body(Empty::<Bytes>::new())
                    .map_err(hyper_err)?;
                let resp = sender.send_request(req).await.map_err(hyper_err)?;
                let body = resp.into_body().collect().await.map_err(hyper_err)?;
                if body.to_bytes().len() != BODY.len() {
                    return Err(io::Error::other("http1: short body"));
                }
            }
            io::Result::Ok((sender, t0.elapsed()))
        })
        .await
        .map_err(join_err)??;
        self.sender = Some(sender);
        Ok(took)
    }
}

/// hyper HTTP/2: one connection, [`H2_STREAMS`] tasks each sending requests
/// one after the other, so that many streams are open at once. One iteration
/// is one request.
pub struct Http2 {
    sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    ns: Option<Netns>,
}

impl Http2 {
    /// Connects, starts the server connection and the client connection tasks.
    pub async fn new<T: Transport>(t: &T) -> io::Result<Self> {
        let (c, s) = t.pair().await?;
        let exec = Exec(t.ns());
        let server_exec = exec.clone();
        spawn_in(t.ns(), async move {
            let _ = hyper::server::conn::http2::Builder::new(server_exec)
                .serve_connection(TokioIo::new(s), service_fn(hello))
                .await;
        });
        let (sender, conn) = hyper::client::conn::http2::handshake(exec, TokioIo::new(c))
            .await
            .map_err(hyper_err)?;
        spawn_in(t.ns(), async move {
            let _ = conn.await;
        });
        Ok(Http2 { sender, ns: t.ns() })
    }

    /// At least `n` requests over [`H2_STREAMS`] concurrent streams (rounded
    /// up to a multiple of it); the time, scaled to exactly `n` requests.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let per_stream = n.div_ceil(H2_STREAMS).max(1);
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(H2_STREAMS as usize);
        for _ in 0..H2_STREAMS {
            let mut sender = self.sender.clone();
            tasks.push(spawn_in(self.ns.clone(), async move {
                for _ in 0..per_stream {
                    sender.ready().await.map_err(hyper_err)?;
                    let req = Request::builder()
                        .uri("http://bench/")
                        .body(Empty::<Bytes>::new())
                        .map_err(hyper_err)?;
                    let resp = sender.send_request(req).await.map_err(hyper_err)?;
                    let body = resp.into_body().collect().await.map_err(hyper_err)?;
                    if body.to_bytes().len() != BODY.len() {
                        return Err(io::Error::other("http2: short body"));
                    }
                }
                io::Result::Ok(())
            }));
        }
        for t in tasks {
            t.await.map_err(join_err)??;
        }
        let took = t0.elapsed();
        let done = per_stream * H2_STREAMS;
        Ok(took.mul_f64(n as f64 / done as f64))
    }
}

/// Many connections moving data at once: on each, a writer task writes `n`
/// chunks of [`CHUNK`] bytes while a reader task reads them. One iteration is
/// one chunk on every connection; the time runs until the last reader is done.
pub struct Many<T: Transport> {
    pairs: Vec<Ends<T::S>>,
}

impl<T: Transport> Many<T> {
    /// Opens `conns` connections, one after the other.
    pub async fn new(t: &T, conns: usize) -> io::Result<Self> {
        let mut pairs = Vec::with_capacity(conns);
        for _ in 0..conns {
            // Errors unchanged: `raw_os_error` tells EMFILE (`ulimit -n`).
            let p = t.pair().await?;
            pairs.push((p.0, p.1, vec![0u8; CHUNK]));
        }
        Ok(Many { pairs })
    }

    /// `n` chunks on every connection, all at once; the time it took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let pairs = std::mem::take(&mut self.pairs);
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(pairs.len());
        for ends in pairs {
            tasks.push(tokio::spawn(transfer(ends, n)));
        }
        let mut back = Vec::with_capacity(tasks.len());
        for t in tasks {
            back.push(t.await.map_err(join_err)??);
        }
        let took = t0.elapsed();
        self.pairs = back;
        Ok(took)
    }
}

/// A current-thread runtime with I/O and timers.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio current-thread runtime")
}

/// A multi-thread runtime with 2 workers.
pub fn multi_thread_2() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio multi-thread runtime")
}
