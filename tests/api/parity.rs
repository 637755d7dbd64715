//! API parity between lonet and tokio 1.x.
//!
//! `parity!` below is expanded twice with the same body: once over
//! `tokio::net` + tokio-stream's `TcpListenerStream` (module `tokio_net`),
//! once over `lonet::net` + `lonet::stream::TcpListenerStream` (module
//! `lonet_net`). Every method lonet shares with tokio is bound to a fn pointer
//! of tokio's exact signature, or (for `async fn`s, whose futures have no
//! nameable type) called through its path with typed arguments inside an
//! `async fn` that is compiled but never run, with its output assigned to a
//! typed variable. A drift on either side — a method renamed or removed, a
//! receiver changed from `&self` to `&mut self`, an argument or return type
//! changed, a trait impl dropped — fails to compile one of the two expansions.
//!
//! What the expansions check, item by item:
//! - `ToSocketAddrs`: the types that implement it, and that `bind`, `connect`
//!   and `lookup_host` take any `A: ToSocketAddrs`;
//! - `lookup_host`;
//! - `TcpListener`: `bind`, `accept`, `poll_accept`, `local_addr`, `ttl`,
//!   `set_ttl`, `Debug`;
//! - `TcpStream`: `connect`, the addresses, `peek`/`poll_peek`, readiness
//!   (`ready`, `readable`, `writable`, `poll_read_ready`, `poll_write_ready`),
//!   the `try_*` reads and writes, the socket options (`nodelay`, `linger`,
//!   `set_zero_linger`, `quickack`, `ttl`, `take_error`), `split`,
//!   `into_split`, `Debug`, `AsyncRead`, `AsyncWrite`;
//! - `TcpSocket`: `new_v4`, `new_v6`, `reuseaddr`, `nodelay`, `linger` (each
//!   with its setter), `set_zero_linger`, `reuseport`, `tos_v4` (and the
//!   deprecated `tos`), `tclass_v6`, `device` (each with its setter;
//!   `bind_device`), `send_buffer_size`, `recv_buffer_size`, `keepalive`
//!   (each with its setter), `bind`, `local_addr`, `connect`, `listen`,
//!   `Debug`;
//! - `tcp::ReadHalf` / `tcp::WriteHalf` and `tcp::OwnedReadHalf` /
//!   `tcp::OwnedWriteHalf`: their methods, `reunite`, `forget`, `Debug`,
//!   `AsyncRead` / `AsyncWrite`, `AsRef<TcpStream>`;
//! - `tcp::ReuniteError`: an `Error`, with the two halves as public fields;
//! - `TcpListenerStream`: `new`, `into_inner`, `Stream`, `AsRef` / `AsMut`
//!   of the listener, `Debug`.
//!
//! tokio-stream is not a direct dev-dependency; its `TcpListenerStream` is
//! reached through tonic's public re-export `tonic::codegen::tokio_stream`
//! (tonic's `server` feature enables tokio-stream's `net`).
//!
//! Four `#[tokio::test]`s are also expanded for both: an echo through
//! generic `AsyncRead`/`AsyncWrite` halves; the socket options, peek, try_*,
//! readiness and reunite behaving alike; `TcpListenerStream`, `poll_accept`
//! and `lookup_host`; and a `TcpSocket` that binds, then listens or connects.
//!
//! - `UdpSocket`: every method of tokio's but `try_io`/`async_io`, `Debug`,
//!   `TryFrom<std::net::UdpSocket>`, and an exchange behaving alike.
//!
//! Not checked here: what only one side has. tokio's other sockets
//! (the Unix ones), its file-descriptor conversions (`AsRawFd`,
//! `AsFd`), `try_io` / `async_io`; lonet's own additions, such as `TcpStream::path` and `TcpListener::paths`, which
//! `tests/model`'s routing tests check. The `std` conversions (`from_std`,
//! `into_std`, `TryFrom`, `TcpSocket::from_std_stream`) are checked against
//! tokio's signatures in `std_conversions.rs`, beside this file.

#![allow(dead_code, clippy::type_complexity)]

use bytes::BytesMut;
use futures::Stream;
use std::error::Error;
use std::fmt::{Debug, Display};
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf, Ready};

// ===== trait-bound helpers, shared by both expansions =====

fn debug<T: Debug + ?Sized>() {}
fn async_read<T: AsyncRead>() {}
fn async_write<T: AsyncWrite>() {}
fn as_ref<T: AsRef<U>, U>() {}
fn as_mut<T: AsMut<U>, U>() {}
fn error<T: Error + Display + Debug + Send + Sync + 'static>() {}
fn stream<S: Stream<Item = T>, T>() {}
fn iterator<I: Iterator<Item = SocketAddr>>(_: &I) {}

/// `f()`'s future resolves to `T`.
fn returns<T, F: Future<Output = T>>(_: impl FnOnce() -> F) {}

/// Bounded so a regression fails instead of hanging.
async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("did not finish within 20s")
}

/// Copies everything `r` yields to `w`, then shuts `w` down.
async fn echo<R, W>(mut r: R, mut w: W) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let n = tokio::io::copy(&mut r, &mut w).await?;
    w.shutdown().await?;
    Ok(n)
}

/// Writes `msg`, shuts the write side down, reads to EOF; gives the halves back.
async fn roundtrip<R, W>(mut r: R, mut w: W, msg: &[u8]) -> io::Result<(Vec<u8>, R, W)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    w.write_all(msg).await?;
    w.flush().await?;
    w.shutdown().await?;
    let mut got = Vec::new();
    r.read_to_end(&mut got).await?;
    Ok((got, r, w))
}

macro_rules! parity {
    (mod $m:ident, net = $($net:ident)::+, stream = $($stream:ident)::+ $(,)?) => {
        mod $m {
            use super::*;
            use $($net)::+::tcp::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
            use $($net)::+::{lookup_host, TcpListener, TcpSocket, TcpStream, ToSocketAddrs, UdpSocket};
            use $($stream)::+::TcpListenerStream;

            // ===== ToSocketAddrs =====

            fn to_socket_addrs() {
                fn is<T: ToSocketAddrs + ?Sized>() {}
                is::<SocketAddr>();
                is::<SocketAddrV4>();
                is::<SocketAddrV6>();
                is::<(IpAddr, u16)>();
                is::<(Ipv4Addr, u16)>();
                is::<(Ipv6Addr, u16)>();
                is::<&[SocketAddr]>();
                is::<str>();
                is::<String>();
                is::<(&str, u16)>();
                is::<(String, u16)>();
                // `impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T`
                is::<&str>();
                is::<&String>();
                is::<&SocketAddr>();
                is::<&(IpAddr, u16)>();
                is::<&&[SocketAddr]>();
            }

            /// `bind`/`connect`/`lookup_host` take any `A: ToSocketAddrs`, no more.
            fn generic_addr<A: ToSocketAddrs + Clone>(a: A) {
                returns::<io::Result<TcpListener>, _>(|| TcpListener::bind(a.clone()));
                returns::<io::Result<TcpStream>, _>(|| TcpStream::connect(a.clone()));
                returns::<io::Result<_>, _>(|| lookup_host(a));
            }

            // ===== TcpListener =====

            fn listener() {
                let _: fn(&TcpListener, &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> =
                    TcpListener::poll_accept;
                let _: fn(&TcpListener) -> io::Result<SocketAddr> = TcpListener::local_addr;
                let _: fn(&TcpListener) -> io::Result<u32> = TcpListener::ttl;
                let _: fn(&TcpListener, u32) -> io::Result<()> = TcpListener::set_ttl;
                debug::<TcpListener>();
            }

            async fn listener_async(l: &TcpListener, ip: IpAddr, addrs: &[SocketAddr]) {
                let _: io::Result<TcpListener> = TcpListener::bind("127.0.0.1:0").await;
                let _: io::Result<TcpListener> = TcpListener::bind(String::from("127.0.0.1:0")).await;
                let _: io::Result<TcpListener> = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await;
                let _: io::Result<TcpListener> = TcpListener::bind(("127.0.0.1", 0u16)).await;
                let _: io::Result<TcpListener> = TcpListener::bind((ip, 0u16)).await;
                let _: io::Result<TcpListener> = TcpListener::bind(addrs).await;
                let _: io::Result<(TcpStream, SocketAddr)> = TcpListener::accept(l).await;
            }

            // ===== TcpStream =====

            fn stream_sync() {
                let _: fn(&TcpStream) -> io::Result<SocketAddr> = TcpStream::local_addr;
                let _: fn(&TcpStream) -> io::Result<SocketAddr> = TcpStream::peer_addr;
                let _: fn(&TcpStream, &mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<usize>> =
                    TcpStream::poll_peek;
                let _: fn(&TcpStream, &mut Context<'_>) -> Poll<io::Result<()>> = TcpStream::poll_read_ready;
                let _: fn(&TcpStream, &mut [u8]) -> io::Result<usize> = TcpStream::try_read;
                let _: fn(&TcpStream, &mut [IoSliceMut<'_>]) -> io::Result<usize> = TcpStream::try_read_vectored;
                let _: fn(&TcpStream, &mut Vec<u8>) -> io::Result<usize> = TcpStream::try_read_buf::<Vec<u8>>;
                let _: fn(&TcpStream, &mut BytesMut) -> io::Result<usize> = TcpStream::try_read_buf::<BytesMut>;
                let _: fn(&TcpStream, &mut Context<'_>) -> Poll<io::Result<()>> = TcpStream::poll_write_ready;
                let _: fn(&TcpStream, &[u8]) -> io::Result<usize> = TcpStream::try_write;
                let _: fn(&TcpStream, &[IoSlice<'_>]) -> io::Result<usize> = TcpStream::try_write_vectored;
                let _: fn(&TcpStream) -> io::Result<bool> = TcpStream::nodelay;
                let _: fn(&TcpStream) -> io::Result<()> = TcpStream::set_zero_linger;
                let _: fn(&TcpStream) -> io::Result<Option<io::Error>> = TcpStream::take_error;
                let _: fn(&TcpStream) -> io::Result<bool> = TcpStream::quickack;
                let _: fn(&TcpStream, bool) -> io::Result<()> = TcpStream::set_quickack;
                let _: fn(&TcpStream, bool) -> io::Result<()> = TcpStream::set_nodelay;
                let _: fn(&TcpStream) -> io::Result<Option<Duration>> = TcpStream::linger;
                #[allow(deprecated)] // tokio deprecates `set_linger` (since 1.49)
                let _: fn(&TcpStream, Option<Duration>) -> io::Result<()> = TcpStream::set_linger;
                let _: fn(&TcpStream) -> io::Result<u32> = TcpStream::ttl;
                let _: fn(&TcpStream, u32) -> io::Result<()> = TcpStream::set_ttl;
                let _: fn(&mut TcpStream) -> (ReadHalf<'_>, WriteHalf<'_>) = TcpStream::split;
                let _: fn(TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) = TcpStream::into_split;
                debug::<TcpStream>();
                async_read::<TcpStream>();
                async_write::<TcpStream>();
            }

            /// `try_read_buf` takes any `B: bytes::BufMut`.
            fn try_read_buf_generic<B: bytes::BufMut>(s: &TcpStream, b: &mut B) -> io::Result<usize> {
                TcpStream::try_read_buf(s, b)
            }

            async fn stream_async(s: &TcpStream, buf: &mut [u8], ip: IpAddr, addrs: &[SocketAddr]) {
                let _: io::Result<TcpStream> = TcpStream::connect("127.0.0.1:1").await;
                let _: io::Result<TcpStream> = TcpStream::connect(String::from("127.0.0.1:1")).await;
                let _: io::Result<TcpStream> = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], 1))).await;
                let _: io::Result<TcpStream> = TcpStream::connect(("127.0.0.1", 1u16)).await;
                let _: io::Result<TcpStream> = TcpStream::connect((ip, 1u16)).await;
                let _: io::Result<TcpStream> = TcpStream::connect(addrs).await;
                let _: io::Result<usize> = TcpStream::peek(s, buf).await;
                let _: io::Result<Ready> = TcpStream::ready(s, Interest::READABLE | Interest::WRITABLE).await;
                let _: io::Result<()> = TcpStream::readable(s).await;
                let _: io::Result<()> = TcpStream::writable(s).await;
            }

            // ===== TcpSocket =====

            fn socket() {
                let _: fn() -> io::Result<TcpSocket> = TcpSocket::new_v4;
                let _: fn() -> io::Result<TcpSocket> = TcpSocket::new_v6;
                let _: fn(&TcpSocket, bool) -> io::Result<()> = TcpSocket::set_reuseaddr;
                let _: fn(&TcpSocket) -> io::Result<bool> = TcpSocket::reuseaddr;
                let _: fn(&TcpSocket, bool) -> io::Result<()> = TcpSocket::set_nodelay;
                let _: fn(&TcpSocket) -> io::Result<bool> = TcpSocket::nodelay;
                #[allow(deprecated)] // tokio deprecates `set_linger` (since 1.49)
                let _: fn(&TcpSocket, Option<Duration>) -> io::Result<()> = TcpSocket::set_linger;
                let _: fn(&TcpSocket) -> io::Result<Option<Duration>> = TcpSocket::linger;
                // The port tables' and the address layer's options.
                let _: fn(&TcpSocket) -> io::Result<()> = TcpSocket::set_zero_linger;
                let _: fn(&TcpSocket, bool) -> io::Result<()> = TcpSocket::set_reuseport;
                let _: fn(&TcpSocket) -> io::Result<bool> = TcpSocket::reuseport;
                let _: fn(&TcpSocket, u32) -> io::Result<()> = TcpSocket::set_tos_v4;
                let _: fn(&TcpSocket) -> io::Result<u32> = TcpSocket::tos_v4;
                #[allow(deprecated)] // tokio deprecates `set_tos` / `tos` for the `_v4` names
                let _: fn(&TcpSocket, u32) -> io::Result<()> = TcpSocket::set_tos;
                #[allow(deprecated)]
                let _: fn(&TcpSocket) -> io::Result<u32> = TcpSocket::tos;
                let _: fn(&TcpSocket, u32) -> io::Result<()> = TcpSocket::set_tclass_v6;
                let _: fn(&TcpSocket) -> io::Result<u32> = TcpSocket::tclass_v6;
                let _: for<'a> fn(&TcpSocket, Option<&'a [u8]>) -> io::Result<()> =
                    TcpSocket::bind_device;
                let _: fn(&TcpSocket) -> io::Result<Option<Vec<u8>>> = TcpSocket::device;
                let _: fn(&TcpSocket, u32) -> io::Result<()> = TcpSocket::set_send_buffer_size;
                let _: fn(&TcpSocket) -> io::Result<u32> = TcpSocket::send_buffer_size;
                let _: fn(&TcpSocket, u32) -> io::Result<()> = TcpSocket::set_recv_buffer_size;
                let _: fn(&TcpSocket) -> io::Result<u32> = TcpSocket::recv_buffer_size;
                let _: fn(&TcpSocket, bool) -> io::Result<()> = TcpSocket::set_keepalive;
                let _: fn(&TcpSocket) -> io::Result<bool> = TcpSocket::keepalive;
                let _: fn(&TcpSocket, SocketAddr) -> io::Result<()> = TcpSocket::bind;
                let _: fn(&TcpSocket) -> io::Result<SocketAddr> = TcpSocket::local_addr;
                let _: fn(&TcpSocket) -> io::Result<Option<io::Error>> = TcpSocket::take_error;
                let _: fn(TcpSocket, u32) -> io::Result<TcpListener> = TcpSocket::listen;
                debug::<TcpSocket>();
            }

            async fn socket_async(s: TcpSocket, addr: SocketAddr) {
                let _: io::Result<TcpStream> = TcpSocket::connect(s, addr).await;
            }

            // ===== borrowed halves =====

            fn read_half<'a>(_: &ReadHalf<'a>) {
                let _: fn(&mut ReadHalf<'a>, &mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<usize>> =
                    ReadHalf::poll_peek;
                let _: fn(&ReadHalf<'a>, &mut [u8]) -> io::Result<usize> = ReadHalf::try_read;
                let _: fn(&ReadHalf<'a>, &mut [IoSliceMut<'_>]) -> io::Result<usize> = ReadHalf::try_read_vectored;
                let _: fn(&ReadHalf<'a>, &mut Vec<u8>) -> io::Result<usize> = ReadHalf::try_read_buf::<Vec<u8>>;
                let _: fn(&ReadHalf<'a>) -> io::Result<SocketAddr> = ReadHalf::peer_addr;
                let _: fn(&ReadHalf<'a>) -> io::Result<SocketAddr> = ReadHalf::local_addr;
                debug::<ReadHalf<'_>>();
                async_read::<ReadHalf<'_>>();
                as_ref::<ReadHalf<'_>, TcpStream>();
            }

            fn write_half<'a>(_: &WriteHalf<'a>) {
                let _: fn(&WriteHalf<'a>, &[u8]) -> io::Result<usize> = WriteHalf::try_write;
                let _: fn(&WriteHalf<'a>, &[IoSlice<'_>]) -> io::Result<usize> = WriteHalf::try_write_vectored;
                let _: fn(&WriteHalf<'a>) -> io::Result<SocketAddr> = WriteHalf::peer_addr;
                let _: fn(&WriteHalf<'a>) -> io::Result<SocketAddr> = WriteHalf::local_addr;
                debug::<WriteHalf<'_>>();
                async_write::<WriteHalf<'_>>();
                as_ref::<WriteHalf<'_>, TcpStream>();
            }

            fn try_read_buf_read_half<B: bytes::BufMut>(h: &ReadHalf<'_>, b: &mut B) -> io::Result<usize> {
                ReadHalf::try_read_buf(h, b)
            }

            async fn borrowed_async(r: &mut ReadHalf<'_>, w: &WriteHalf<'_>, buf: &mut [u8]) {
                let _: io::Result<usize> = ReadHalf::peek(r, buf).await;
                let _: io::Result<Ready> = ReadHalf::ready(r, Interest::READABLE).await;
                let _: io::Result<()> = ReadHalf::readable(r).await;
                let _: io::Result<Ready> = WriteHalf::ready(w, Interest::WRITABLE).await;
                let _: io::Result<()> = WriteHalf::writable(w).await;
            }

            // ===== owned halves =====

            fn owned_read_half() {
                let _: fn(OwnedReadHalf, OwnedWriteHalf) -> Result<TcpStream, ReuniteError> = OwnedReadHalf::reunite;
                let _: fn(&mut OwnedReadHalf, &mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<usize>> =
                    OwnedReadHalf::poll_peek;
                let _: fn(&OwnedReadHalf, &mut [u8]) -> io::Result<usize> = OwnedReadHalf::try_read;
                let _: fn(&OwnedReadHalf, &mut [IoSliceMut<'_>]) -> io::Result<usize> =
                    OwnedReadHalf::try_read_vectored;
                let _: fn(&OwnedReadHalf, &mut Vec<u8>) -> io::Result<usize> = OwnedReadHalf::try_read_buf::<Vec<u8>>;
                let _: fn(&OwnedReadHalf) -> io::Result<SocketAddr> = OwnedReadHalf::peer_addr;
                let _: fn(&OwnedReadHalf) -> io::Result<SocketAddr> = OwnedReadHalf::local_addr;
                debug::<OwnedReadHalf>();
                async_read::<OwnedReadHalf>();
                as_ref::<OwnedReadHalf, TcpStream>();
            }

            fn owned_write_half() {
                let _: fn(OwnedWriteHalf, OwnedReadHalf) -> Result<TcpStream, ReuniteError> = OwnedWriteHalf::reunite;
                let _: fn(OwnedWriteHalf) = OwnedWriteHalf::forget;
                let _: fn(&OwnedWriteHalf, &[u8]) -> io::Result<usize> = OwnedWriteHalf::try_write;
                let _: fn(&OwnedWriteHalf, &[IoSlice<'_>]) -> io::Result<usize> = OwnedWriteHalf::try_write_vectored;
                let _: fn(&OwnedWriteHalf) -> io::Result<SocketAddr> = OwnedWriteHalf::peer_addr;
                let _: fn(&OwnedWriteHalf) -> io::Result<SocketAddr> = OwnedWriteHalf::local_addr;
                debug::<OwnedWriteHalf>();
                async_write::<OwnedWriteHalf>();
                as_ref::<OwnedWriteHalf, TcpStream>();
            }

            fn try_read_buf_owned<B: bytes::BufMut>(h: &OwnedReadHalf, b: &mut B) -> io::Result<usize> {
                OwnedReadHalf::try_read_buf(h, b)
            }

            async fn owned_async(r: &mut OwnedReadHalf, w: &OwnedWriteHalf, buf: &mut [u8]) {
                let _: io::Result<usize> = OwnedReadHalf::peek(r, buf).await;
                let _: io::Result<Ready> = OwnedReadHalf::ready(r, Interest::READABLE).await;
                let _: io::Result<()> = OwnedReadHalf::readable(r).await;
                let _: io::Result<Ready> = OwnedWriteHalf::ready(w, Interest::WRITABLE).await;
                let _: io::Result<()> = OwnedWriteHalf::writable(w).await;
            }

            // ===== ReuniteError =====

            fn reunite_error(e: ReuniteError) -> Box<dyn Error + Send + Sync> {
                error::<ReuniteError>();
                // Public tuple fields: the two halves, read then write.
                let ReuniteError(r, w) = e;
                let r: OwnedReadHalf = r;
                let w: OwnedWriteHalf = w;
                let e = ReuniteError(r, w);
                let _: &OwnedReadHalf = &e.0;
                let _: &OwnedWriteHalf = &e.1;
                Box::new(e)
            }

            // ===== lookup_host =====

            async fn lookup_host_async(ip: IpAddr) {
                let it = lookup_host("localhost:80").await.unwrap();
                iterator(&it);
                let _: Vec<SocketAddr> = it.collect();
                let _: Vec<SocketAddr> = lookup_host(String::from("localhost:80")).await.unwrap().collect();
                let _: Vec<SocketAddr> = lookup_host(("localhost", 80)).await.unwrap().collect();
                let _: Vec<SocketAddr> = lookup_host((ip, 80)).await.unwrap().collect();
                let _: Vec<SocketAddr> = lookup_host(SocketAddr::from((ip, 80))).await.unwrap().collect();
            }

            // ===== TcpListenerStream =====

            fn listener_stream() {
                let _: fn(TcpListener) -> TcpListenerStream = TcpListenerStream::new;
                let _: fn(TcpListenerStream) -> TcpListener = TcpListenerStream::into_inner;
                stream::<TcpListenerStream, io::Result<TcpStream>>();
                as_ref::<TcpListenerStream, TcpListener>();
                as_mut::<TcpListenerStream, TcpListener>();
                debug::<TcpListenerStream>();
            }

            // ===== runtime: the same code over both =====

            async fn pair() -> (TcpStream, TcpStream) {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
                let client = client.unwrap();
                let (server, peer) = accepted.unwrap();
                assert_eq!(peer, client.local_addr().unwrap());
                assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
                assert_eq!(client.peer_addr().unwrap(), addr);
                (client, server)
            }

            #[tokio::test]
            async fn echo_through_halves() {
                bounded(async {
                    let (client, mut server) = pair().await;
                    let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
                    // Server: borrowed halves; client: owned halves.
                    let srv = async {
                        let (r, w) = server.split();
                        echo(r, w).await.unwrap()
                    };
                    let cli = async {
                        let (r, w) = client.into_split();
                        roundtrip(r, w, &msg).await.unwrap()
                    };
                    let (n, (got, r, w)) = tokio::join!(srv, cli);
                    assert_eq!(n, msg.len() as u64);
                    assert_eq!(got, msg);
                    // Shut down halves reunite into the stream they came from.
                    let local = w.local_addr().unwrap();
                    let client = r.reunite(w).unwrap();
                    assert_eq!(client.local_addr().unwrap(), local);
                })
                .await;
            }

            #[tokio::test]
            async fn same_behavior() {
                bounded(async {
                    let (mut client, server) = pair().await;

                    // Socket options.
                    client.set_nodelay(true).unwrap();
                    assert!(client.nodelay().unwrap());
                    client.set_nodelay(false).unwrap();
                    assert!(!client.nodelay().unwrap());
                    client.set_ttl(100).unwrap();
                    assert_eq!(client.ttl().unwrap(), 100);
                    assert_eq!(client.linger().unwrap(), None);
                    #[allow(deprecated)]
                    client.set_linger(Some(Duration::from_secs(1))).unwrap();
                    assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(1)));
                    #[allow(deprecated)]
                    client.set_linger(None).unwrap();
                    assert_eq!(client.linger().unwrap(), None);

                    // Nothing queued: try_* would block.
                    let mut buf = [0u8; 16];
                    assert_eq!(server.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
                    let mut v = Vec::with_capacity(16);
                    assert_eq!(server.try_read_buf(&mut v).unwrap_err().kind(), io::ErrorKind::WouldBlock);

                    // Writable at once; write without waiting.
                    client.writable().await.unwrap();
                    let r = client.ready(Interest::WRITABLE).await.unwrap();
                    assert!(r.is_writable());
                    poll_fn(|cx| client.poll_write_ready(cx)).await.unwrap();
                    assert_eq!(client.try_write(b"hello").unwrap(), 5);

                    // Peek leaves the bytes for the read.
                    server.readable().await.unwrap();
                    poll_fn(|cx| server.poll_read_ready(cx)).await.unwrap();
                    let r = server.ready(Interest::READABLE).await.unwrap();
                    assert!(r.is_readable());
                    let n = server.peek(&mut buf).await.unwrap();
                    assert_eq!(&buf[..n], &b"hello"[..n]);
                    let mut rb = ReadBuf::new(&mut buf);
                    let n = poll_fn(|cx| server.poll_peek(cx, &mut rb)).await.unwrap();
                    assert_eq!(rb.filled(), &b"hello"[..n]);
                    let mut got = Vec::new();
                    while got.len() < 5 {
                        server.readable().await.unwrap();
                        match server.try_read_buf(&mut got) {
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    assert_eq!(got, b"hello");

                    // Vectored both ways.
                    let n = client
                        .try_write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
                        .unwrap();
                    assert_eq!(n, 4);
                    let (mut a, mut b) = ([0u8; 1], [0u8; 8]);
                    let mut total = 0;
                    let mut all = Vec::new();
                    while total < 4 {
                        server.readable().await.unwrap();
                        let mut bufs = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)];
                        match server.try_read_vectored(&mut bufs) {
                            Ok(n) => {
                                let mut flat = a.to_vec();
                                flat.extend_from_slice(&b);
                                all.extend_from_slice(&flat[..n]);
                                total += n;
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    assert_eq!(all, b"abcd");

                    // Borrowed halves: peek, try_write.
                    let (mut r, w) = client.split();
                    assert_eq!(r.local_addr().unwrap(), w.local_addr().unwrap());
                    assert_eq!(r.peer_addr().unwrap(), w.peer_addr().unwrap());
                    assert_eq!(server.try_write(b"xy").unwrap(), 2);
                    let n = r.peek(&mut buf).await.unwrap();
                    assert_eq!(&buf[..n], &b"xy"[..n]);
                    let mut two = [0u8; 2];
                    r.read_exact(&mut two).await.unwrap();
                    assert_eq!(&two, b"xy");
                    w.writable().await.unwrap();
                    assert_eq!(w.try_write(b"z").unwrap(), 1);
                    let mut one = [0u8; 1];
                    let mut server = server;
                    server.read_exact(&mut one).await.unwrap();
                    assert_eq!(&one, b"z");

                    // Halves of different streams do not reunite; the error
                    // gives both back.
                    let (client2, server2) = pair().await;
                    let (r1, w1) = client.into_split();
                    let (r2, w2) = client2.into_split();
                    let (l1, l2) = (r1.local_addr().unwrap(), w2.local_addr().unwrap());
                    let err = r1.reunite(w2).unwrap_err();
                    assert!(!err.to_string().is_empty());
                    let ReuniteError(r1, w2) = err;
                    assert_eq!(r1.local_addr().unwrap(), l1);
                    assert_eq!(w2.local_addr().unwrap(), l2);
                    let err = w1.reunite(r2).unwrap_err();
                    let (r2, w1) = (err.0, err.1);
                    let client = w1.reunite(r1).unwrap();
                    assert_eq!(client.local_addr().unwrap(), l1);
                    // `forget` drops the write half without shutting the write
                    // side down: the peer sees no EOF while the read half lives.
                    w2.forget();
                    tokio::task::yield_now().await;
                    assert_eq!(server2.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
                    let mut r2 = r2;
                    assert_eq!(r2.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
                    let peeked = poll_fn(|cx| {
                        let mut rb = ReadBuf::new(&mut buf);
                        Poll::Ready(r2.poll_peek(cx, &mut rb).map(|r| r.map(|_| rb.filled().to_vec())))
                    })
                    .await;
                    assert!(peeked.is_pending(), "nothing to peek: {peeked:?}");
                    drop(client);
                })
                .await;
            }

            #[tokio::test]
            async fn listener_stream_and_lookup() {
                bounded(async {
                    let listener = TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0)).await.unwrap();
                    listener.set_ttl(77).unwrap();
                    assert_eq!(listener.ttl().unwrap(), 77);
                    let addr = listener.local_addr().unwrap();
                    let mut incoming = TcpListenerStream::new(listener);
                    assert_eq!(incoming.as_ref().local_addr().unwrap(), addr);
                    assert_eq!(incoming.as_mut().local_addr().unwrap(), addr);
                    let client = TcpStream::connect(&[addr][..]).await.unwrap();
                    let accepted = poll_fn(|cx| Pin::new(&mut incoming).poll_next(cx)).await;
                    let accepted = accepted.expect("the stream does not end").unwrap();
                    assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
                    let listener = incoming.into_inner();
                    let client2 = TcpStream::connect(("127.0.0.1", addr.port())).await.unwrap();
                    let (_, peer) = poll_fn(|cx| listener.poll_accept(cx)).await.unwrap();
                    assert_eq!(peer, client2.local_addr().unwrap());

                    let v: Vec<SocketAddr> = lookup_host(addr).await.unwrap().collect();
                    assert_eq!(v, vec![addr]);
                    let v: Vec<SocketAddr> = lookup_host("localhost:80").await.unwrap().collect();
                    assert!(v.contains(&"127.0.0.1:80".parse().unwrap()), "{v:?}");
                    let e = lookup_host("127.0.0.1:notaport").await.err().expect("an error");
                    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
                })
                .await;
            }

            #[tokio::test]
            async fn socket_binds_then_listens_or_connects() {
                bounded(async {
                    // Options set before bind/listen/connect read back, and carry over.
                    let ls = TcpSocket::new_v4().unwrap();
                    ls.set_reuseaddr(true).unwrap();
                    assert!(ls.reuseaddr().unwrap());
                    ls.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
                    let addr = ls.local_addr().unwrap();
                    assert_eq!(addr.ip(), IpAddr::from(Ipv4Addr::LOCALHOST));
                    assert_ne!(addr.port(), 0, "bind to port 0 picks one");
                    let listener = ls.listen(16).unwrap();
                    assert_eq!(listener.local_addr().unwrap(), addr);

                    let cs = TcpSocket::new_v4().unwrap();
                    assert!(!cs.nodelay().unwrap());
                    cs.set_nodelay(true).unwrap();
                    assert!(cs.nodelay().unwrap());
                    let (client, accepted) = tokio::join!(cs.connect(addr), listener.accept());
                    let client = client.unwrap();
                    let (server, peer) = accepted.unwrap();
                    assert_eq!(peer, client.local_addr().unwrap());
                    assert_eq!(client.peer_addr().unwrap(), addr);
                    assert_eq!(server.peer_addr().unwrap(), peer);
                    assert!(client.nodelay().unwrap(), "TCP_NODELAY set before connect stays");

                    // SO_LINGER on a socket that never connects.
                    let s = TcpSocket::new_v4().unwrap();
                    assert_eq!(s.linger().unwrap(), None);
                    #[allow(deprecated)]
                    s.set_linger(Some(Duration::from_secs(1))).unwrap();
                    assert_eq!(s.linger().unwrap(), Some(Duration::from_secs(1)));

                    // IPv6.
                    let s6 = TcpSocket::new_v6().unwrap();
                    s6.bind(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))).unwrap();
                    let a6 = s6.local_addr().unwrap();
                    assert_eq!(a6.ip(), IpAddr::from(Ipv6Addr::LOCALHOST));
                    let l6 = s6.listen(4).unwrap();
                    let c6 = TcpStream::connect(a6).await.unwrap();
                    let (_, p6) = l6.accept().await.unwrap();
                    assert_eq!(p6, c6.local_addr().unwrap());
                })
                .await;
            }

            // ===== UdpSocket =====

            fn udp_sync() {
                let _: fn(std::net::UdpSocket) -> io::Result<UdpSocket> = UdpSocket::from_std;
                let _: fn(UdpSocket) -> io::Result<std::net::UdpSocket> = UdpSocket::into_std;
                let _: fn(&UdpSocket) -> io::Result<SocketAddr> = UdpSocket::local_addr;
                let _: fn(&UdpSocket) -> io::Result<SocketAddr> = UdpSocket::peer_addr;
                let _: fn(&UdpSocket, &mut Context<'_>) -> Poll<io::Result<()>> = UdpSocket::poll_send_ready;
                let _: fn(&UdpSocket, &mut Context<'_>, &[u8]) -> Poll<io::Result<usize>> = UdpSocket::poll_send;
                let _: fn(&UdpSocket, &[u8]) -> io::Result<usize> = UdpSocket::try_send;
                let _: fn(&UdpSocket, &mut Context<'_>) -> Poll<io::Result<()>> = UdpSocket::poll_recv_ready;
                let _: fn(&UdpSocket, &mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<()>> = UdpSocket::poll_recv;
                let _: fn(&UdpSocket, &mut [u8]) -> io::Result<usize> = UdpSocket::try_recv;
                let _: fn(&UdpSocket, &mut Vec<u8>) -> io::Result<usize> = UdpSocket::try_recv_buf::<Vec<u8>>;
                let _: fn(&UdpSocket, &mut BytesMut) -> io::Result<(usize, SocketAddr)> =
                    UdpSocket::try_recv_buf_from::<BytesMut>;
                let _: fn(&UdpSocket, &mut Context<'_>, &[u8], SocketAddr) -> Poll<io::Result<usize>> =
                    UdpSocket::poll_send_to;
                let _: fn(&UdpSocket, &[u8], SocketAddr) -> io::Result<usize> = UdpSocket::try_send_to;
                let _: fn(&UdpSocket, &mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<SocketAddr>> =
                    UdpSocket::poll_recv_from;
                let _: fn(&UdpSocket, &mut [u8]) -> io::Result<(usize, SocketAddr)> = UdpSocket::try_recv_from;
                let _: fn(&UdpSocket, &mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<()>> = UdpSocket::poll_peek;
                let _: fn(&UdpSocket, &mut [u8]) -> io::Result<usize> = UdpSocket::try_peek;
                let _: fn(&UdpSocket, &mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<SocketAddr>> =
                    UdpSocket::poll_peek_from;
                let _: fn(&UdpSocket, &mut [u8]) -> io::Result<(usize, SocketAddr)> = UdpSocket::try_peek_from;
                let _: fn(&UdpSocket, &mut Context<'_>) -> Poll<io::Result<SocketAddr>> = UdpSocket::poll_peek_sender;
                let _: fn(&UdpSocket) -> io::Result<SocketAddr> = UdpSocket::try_peek_sender;
                let _: fn(&UdpSocket) -> io::Result<bool> = UdpSocket::broadcast;
                let _: fn(&UdpSocket, bool) -> io::Result<()> = UdpSocket::set_broadcast;
                let _: fn(&UdpSocket) -> io::Result<bool> = UdpSocket::multicast_loop_v4;
                let _: fn(&UdpSocket, bool) -> io::Result<()> = UdpSocket::set_multicast_loop_v4;
                let _: fn(&UdpSocket) -> io::Result<u32> = UdpSocket::multicast_ttl_v4;
                let _: fn(&UdpSocket, u32) -> io::Result<()> = UdpSocket::set_multicast_ttl_v4;
                let _: fn(&UdpSocket) -> io::Result<bool> = UdpSocket::multicast_loop_v6;
                let _: fn(&UdpSocket, bool) -> io::Result<()> = UdpSocket::set_multicast_loop_v6;
                let _: fn(&UdpSocket) -> io::Result<u32> = UdpSocket::tclass_v6;
                let _: fn(&UdpSocket, u32) -> io::Result<()> = UdpSocket::set_tclass_v6;
                let _: fn(&UdpSocket) -> io::Result<u32> = UdpSocket::ttl;
                let _: fn(&UdpSocket, u32) -> io::Result<()> = UdpSocket::set_ttl;
                let _: fn(&UdpSocket) -> io::Result<u32> = UdpSocket::tos_v4;
                let _: fn(&UdpSocket, u32) -> io::Result<()> = UdpSocket::set_tos_v4;
                #[allow(deprecated)]
                let _: fn(&UdpSocket) -> io::Result<u32> = UdpSocket::tos;
                #[allow(deprecated)]
                let _: fn(&UdpSocket, u32) -> io::Result<()> = UdpSocket::set_tos;
                let _: fn(&UdpSocket) -> io::Result<Option<Vec<u8>>> = UdpSocket::device;
                let _: fn(&UdpSocket, Option<&[u8]>) -> io::Result<()> = UdpSocket::bind_device;
                let _: fn(&UdpSocket, Ipv4Addr, Ipv4Addr) -> io::Result<()> = UdpSocket::join_multicast_v4;
                let _: fn(&UdpSocket, &Ipv6Addr, u32) -> io::Result<()> = UdpSocket::join_multicast_v6;
                let _: fn(&UdpSocket, Ipv4Addr, Ipv4Addr) -> io::Result<()> = UdpSocket::leave_multicast_v4;
                let _: fn(&UdpSocket, &Ipv6Addr, u32) -> io::Result<()> = UdpSocket::leave_multicast_v6;
                let _: fn(&UdpSocket) -> io::Result<Option<io::Error>> = UdpSocket::take_error;
                debug::<UdpSocket>();
                fn try_from<T: TryFrom<std::net::UdpSocket, Error = io::Error>>() {}
                try_from::<UdpSocket>();
            }

            /// Compiled, never run: the async methods' arguments and outputs.
            async fn udp_async<A: ToSocketAddrs + Clone>(s: &UdpSocket, a: A, buf: &mut [u8], v: &mut Vec<u8>) {
                let _: io::Result<UdpSocket> = UdpSocket::bind(a.clone()).await;
                let _: io::Result<UdpSocket> = UdpSocket::bind("127.0.0.1:0").await;
                let _: io::Result<()> = s.connect(a.clone()).await;
                let _: io::Result<Ready> = s.ready(Interest::READABLE).await;
                let _: io::Result<()> = s.writable().await;
                let _: io::Result<()> = s.readable().await;
                let _: io::Result<usize> = s.send(b"x").await;
                let _: io::Result<usize> = s.recv(buf).await;
                let _: io::Result<usize> = s.recv_buf(v).await;
                let _: io::Result<(usize, SocketAddr)> = s.recv_buf_from(v).await;
                let _: io::Result<usize> = s.send_to(b"x", a).await;
                let _: io::Result<(usize, SocketAddr)> = s.recv_from(buf).await;
                let _: io::Result<usize> = s.peek(buf).await;
                let _: io::Result<(usize, SocketAddr)> = s.peek_from(buf).await;
                let _: io::Result<SocketAddr> = s.peek_sender().await;
            }

            #[tokio::test]
            async fn udp_exchange_behaves_alike() {
                bounded(async {
                    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
                    a.connect(ba).await.unwrap();
                    assert_eq!(a.peer_addr().unwrap(), ba);
                    assert_eq!(a.send(b"hello").await.unwrap(), 5);
                    b.readable().await.unwrap();
                    assert_eq!(b.try_peek_sender().unwrap(), aa);
                    let mut buf = [0u8; 16];
                    assert_eq!(b.try_peek(&mut buf).unwrap(), 5);
                    assert_eq!(b.try_recv_from(&mut buf).unwrap(), (5, aa));
                    assert_eq!(b.try_recv(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
                    assert_eq!(b.try_send_to(b"back", aa).unwrap(), 4);
                    let mut rb = ReadBuf::new(&mut buf);
                    let from = poll_fn(|cx| a.poll_recv_from(cx, &mut rb)).await.unwrap();
                    assert_eq!((rb.filled(), from), (&b"back"[..], ba));
                    assert_eq!(a.ttl().unwrap(), 64);
                    a.set_ttl(7).unwrap();
                    assert_eq!(a.ttl().unwrap(), 7);
                    assert!(!a.broadcast().unwrap());
                    assert!(a.take_error().unwrap().is_none());
                    let ready = a.ready(Interest::WRITABLE).await.unwrap();
                    assert!(ready.is_writable());
                })
                .await;
            }
        }
    };
}

parity!(
    mod tokio_net,
    net = tokio::net,
    stream = tonic::codegen::tokio_stream::wrappers,
);

parity!(
    mod lonet_net,
    net = lonet::net,
    stream = lonet::stream,
);
