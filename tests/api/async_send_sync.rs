//! `Send`, `Sync` and `Unpin` of lonet's public types and of the futures its
//! async methods return, in the style of tokio's `tests/async_send_sync.rs`
//! (same helpers, same macros).
//!
//! Everything here is a static assertion inside a `const _: fn() = || { .. }`
//! closure: compiled, never run, no future polled. `!Send` / `!Sync` /
//! `!Unpin` are asserted with tokio's ambiguity trick (`AmbiguousIf*`): the
//! method call is ambiguous, so fails to compile, exactly when the type *does*
//! implement the trait.
//!
//! The `tokio::net` / `lonet::net` assertions are one macro expanded over both
//! crates, with tokio's own expectations (tokio's tests assert the same lines
//! for `tokio::net`), so the expectations are verified against tokio and then
//! required of lonet. `TcpListenerStream` is checked against tokio-stream's
//! (reached through tonic's re-export `tonic::codegen::tokio_stream`).
//! `Netns`, the counters, `Socket` and `Scope` have no tokio counterpart.

#![allow(clippy::type_complexity, clippy::diverging_sub_expression)]

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

// The names of these structs behaves better when sorted.
// Send: Yes, Sync: Yes
#[derive(Clone)]
#[allow(unused)]
struct YY {}

// Send: Yes, Sync: No
#[derive(Clone)]
#[allow(unused)]
struct YN {
    _value: Cell<u8>,
}

// Send: No, Sync: No
#[derive(Clone)]
#[allow(unused)]
struct NN {
    _value: Rc<u8>,
}

#[allow(dead_code)]
type BoxFutureSync<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + Sync>>;
#[allow(dead_code)]
type BoxFutureSend<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
#[allow(dead_code)]
type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T>>>;

/// A future like an `async` block's: `!Unpin`; `Send`/`Sync` as `T` is.
#[allow(dead_code)]
struct AsyncBlock<T>(T, std::marker::PhantomPinned);

impl<T> std::future::Future for AsyncBlock<T> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

#[allow(dead_code)]
fn require_send<T: Send>(_t: &T) {}
#[allow(dead_code)]
fn require_sync<T: Sync>(_t: &T) {}
#[allow(dead_code)]
fn require_unpin<T: Unpin>(_t: &T) {}

#[allow(dead_code)]
struct Invalid;

#[allow(unused)]
trait AmbiguousIfSend<A> {
    fn some_item(&self) {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<Invalid> for T {}

#[allow(unused)]
trait AmbiguousIfSync<A> {
    fn some_item(&self) {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
impl<T: ?Sized + Sync> AmbiguousIfSync<Invalid> for T {}

#[allow(unused)]
trait AmbiguousIfUnpin<A> {
    fn some_item(&self) {}
}
impl<T: ?Sized> AmbiguousIfUnpin<()> for T {}
impl<T: ?Sized + Unpin> AmbiguousIfUnpin<Invalid> for T {}

macro_rules! into_todo {
    ($typ:ty) => {{
        let x: $typ = todo!();
        x
    }};
}

macro_rules! async_assert_fn_send {
    (Send & $(!)?Sync & $(!)?Unpin, $value:expr) => {
        require_send(&$value);
    };
    (!Send & $(!)?Sync & $(!)?Unpin, $value:expr) => {
        AmbiguousIfSend::some_item(&$value);
    };
}
macro_rules! async_assert_fn_sync {
    ($(!)?Send & Sync & $(!)?Unpin, $value:expr) => {
        require_sync(&$value);
    };
    ($(!)?Send & !Sync & $(!)?Unpin, $value:expr) => {
        AmbiguousIfSync::some_item(&$value);
    };
}
macro_rules! async_assert_fn_unpin {
    ($(!)?Send & $(!)?Sync & Unpin, $value:expr) => {
        require_unpin(&$value);
    };
    ($(!)?Send & $(!)?Sync & !Unpin, $value:expr) => {
        AmbiguousIfUnpin::some_item(&$value);
    };
}

macro_rules! async_assert_fn {
    ($($f:ident $(< $($generic:ty),* > )? )::+($($arg:ty),*): $($tok:tt)*) => {
        #[allow(unreachable_code)]
        #[allow(unused_variables)]
        const _: fn() = || {
            let f = $($f $(::<$($generic),*>)? )::+( $( into_todo!($arg) ),* );
            async_assert_fn_send!($($tok)*, f);
            async_assert_fn_sync!($($tok)*, f);
            async_assert_fn_unpin!($($tok)*, f);
        };
    };
}
macro_rules! assert_value {
    ($type:ty: $($tok:tt)*) => {
        #[allow(unreachable_code)]
        #[allow(unused_variables)]
        const _: fn() = || {
            let f: $type = todo!();
            async_assert_fn_send!($($tok)*, f);
            async_assert_fn_sync!($($tok)*, f);
            async_assert_fn_unpin!($($tok)*, f);
        };
    };
}

// Sanity check of the helpers themselves.
assert_value!(YY: Send & Sync & Unpin);
assert_value!(YN: Send & !Sync & Unpin);
assert_value!(NN: !Send & !Sync & Unpin);
assert_value!(AsyncBlock<YY>: Send & Sync & !Unpin);
assert_value!(AsyncBlock<YN>: Send & !Sync & !Unpin);
assert_value!(AsyncBlock<NN>: !Send & !Sync & !Unpin);

/// The `tokio::net` lines of tokio's `tests/async_send_sync.rs` (tokio
/// 1.54.1; TCP and UDP), plus the same expectations for the halves' async methods and
/// for `&str` arguments, over `$krate::net`.
macro_rules! net_assertions {
    ($krate:ident, $($stream:ident)::+) => {
        assert_value!($krate::net::TcpListener: Send & Sync & Unpin);
        assert_value!($krate::net::TcpStream: Send & Sync & Unpin);
        assert_value!($krate::net::tcp::OwnedReadHalf: Send & Sync & Unpin);
        assert_value!($krate::net::tcp::OwnedWriteHalf: Send & Sync & Unpin);
        assert_value!($krate::net::tcp::ReadHalf<'_>: Send & Sync & Unpin);
        assert_value!($krate::net::tcp::ReuniteError: Send & Sync & Unpin);
        assert_value!($krate::net::tcp::WriteHalf<'_>: Send & Sync & Unpin);
        assert_value!($($stream)::+::TcpListenerStream: Send & Sync & Unpin);

        async_assert_fn!($krate::net::TcpListener::bind(SocketAddr): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpListener::bind(&str): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpListener::bind(String): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpStream::connect(SocketAddr): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpStream::connect(&str): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpStream::connect((&str, u16)): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpListener::accept(_): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpStream::peek(_, &mut [u8]): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpStream::readable(_): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpStream::ready(_, tokio::io::Interest): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::TcpStream::writable(_): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::lookup_host(SocketAddr): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::lookup_host(&str): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::ReadHalf::peek(_, &mut [u8]): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::ReadHalf::readable(_): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::ReadHalf::ready(_, tokio::io::Interest): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::WriteHalf::writable(_): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::WriteHalf::ready(_, tokio::io::Interest): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::OwnedReadHalf::peek(_, &mut [u8]): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::OwnedReadHalf::readable(_): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::OwnedReadHalf::ready(_, tokio::io::Interest): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::OwnedWriteHalf::writable(_): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::tcp::OwnedWriteHalf::ready(_, tokio::io::Interest): Send & Sync & !Unpin);

        assert_value!($krate::net::UdpSocket: Send & Sync & Unpin);
        async_assert_fn!($krate::net::UdpSocket::bind(SocketAddr): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::UdpSocket::connect(_, SocketAddr): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::UdpSocket::peek_from(_, &mut [u8]): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::UdpSocket::readable(_): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::UdpSocket::ready(_, tokio::io::Interest): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::UdpSocket::recv(_, &mut [u8]): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::UdpSocket::recv_from(_, &mut [u8]): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::UdpSocket::send(_, &[u8]): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::UdpSocket::send_to(_, &[u8], SocketAddr): Send & Sync & !Unpin);
        async_assert_fn!($krate::net::UdpSocket::writable(_): Send & Sync & !Unpin);

        // `io::split` of the stream, as tokio asserts for its own.
        assert_value!(tokio::io::ReadHalf<$krate::net::TcpStream>: Send & Sync & Unpin);
        assert_value!(tokio::io::WriteHalf<$krate::net::TcpStream>: Send & Sync & Unpin);
        assert_value!(tokio::io::BufStream<$krate::net::TcpStream>: Send & Sync & Unpin);
        async_assert_fn!(
            tokio::io::copy_bidirectional(&mut $krate::net::TcpStream, &mut $krate::net::TcpStream): Send & Sync & !Unpin
        );
    };
}

mod tokio_net {
    use super::*;
    net_assertions!(tokio, tonic::codegen::tokio_stream::wrappers);
}

mod lonet_net {
    use super::*;
    net_assertions!(lonet, lonet::stream);
}

/// lonet's own types: no tokio counterpart.
mod lonet_only {
    use super::*;
    use std::future::Future;

    assert_value!(lonet::Netns: Send & Sync & Unpin);
    assert_value!(lonet::Sysctl: Send & Sync & Unpin);
    assert_value!(lonet::stats::LinkStats: Send & Sync & Unpin);
    assert_value!(lonet::stats::SoftnetStats: Send & Sync & Unpin);
    assert_value!(lonet::stats::SoftnetStat: Send & Sync & Unpin);
    assert_value!(lonet::stats::TcpStats: Send & Sync & Unpin);
    assert_value!(lonet::stats::Sockstat: Send & Sync & Unpin);
    assert_value!(lonet::stats::FibEntry: Send & Sync & Unpin);
    assert_value!(lonet::stats::RouteType: Send & Sync & Unpin);
    assert_value!(lonet::stats::TcpState: Send & Sync & Unpin);
    assert_value!(lonet::stats::SocketTable: Send & Sync & Unpin);
    assert_value!(lonet::stats::SockInfo: Send & Sync & Unpin);
    assert_value!(lonet::fault::Fault: Send & Sync & Unpin);
    assert_value!(lonet::fault::Match: Send & Sync & Unpin);
    assert_value!(lonet::fault::FaultGuard: Send & Sync & Unpin);
    assert_value!(lonet::fault::FaultStats: Send & Sync & Unpin);
    assert_value!(lonet::capture::CaptureOptions: Send & Sync & Unpin);
    assert_value!(lonet::WeakNetns: Send & Sync & Unpin);

    // `Netns::scope(fut)` is as Send / Sync / Unpin as `fut`: a future that
    // runs on a multi-thread runtime stays spawnable inside a scope.
    async_assert_fn!(lonet::Netns::scope(_, AsyncBlock<YY>): Send & Sync & !Unpin);
    async_assert_fn!(lonet::Netns::scope(_, AsyncBlock<YN>): Send & !Sync & !Unpin);
    async_assert_fn!(lonet::Netns::scope(_, AsyncBlock<NN>): !Send & !Sync & !Unpin);
    async_assert_fn!(lonet::Netns::scope(_, BoxFutureSync<()>): Send & Sync & Unpin);
    async_assert_fn!(lonet::Netns::scope(_, BoxFutureSend<()>): Send & !Sync & Unpin);
    async_assert_fn!(lonet::Netns::scope(_, BoxFuture<()>): !Send & !Sync & Unpin);
    assert_value!(lonet::Scope<AsyncBlock<YY>>: Send & Sync & !Unpin);

    /// The real thing: `scope` around lonet's own futures is `Send + Sync +
    /// 'static`, so `tokio::spawn` takes it.
    #[allow(dead_code)]
    fn scope_of_lonet_futures_is_spawnable(
        ns: lonet::Netns,
        addr: SocketAddr,
    ) -> impl Future<Output = std::io::Result<()>> + Send + Sync + 'static {
        ns.scope(async move {
            let listener = lonet::net::TcpListener::bind(addr).await?;
            let client = lonet::net::TcpStream::connect(listener.local_addr()?).await?;
            let (server, _) = listener.accept().await?;
            client.writable().await?;
            let mut buf = [0u8; 1];
            server.peek(&mut buf).await?;
            let _: Vec<SocketAddr> = lonet::net::lookup_host("localhost:80").await?.collect();
            Ok(())
        })
    }
}
