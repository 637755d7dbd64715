//! Conversions from and to `std::net` sockets, as tokio has them.
//!
//! A `std` socket is a kernel socket, so `from_std` and `TryFrom` give a
//! lonet socket on the OS path, whatever its address; `into_std` hands out
//! the kernel socket of an OS-path one, and says `Unsupported` for one of the
//! model (which has none).
//!
//! The signatures are checked against tokio's at compile time, for both
//! crates, by binding each function to a fn pointer of tokio's type.

use crate::common::*;
use lonet::net::{Path, TcpListener, TcpSocket, TcpStream};
use lonet::Netns;
use std::io::{self, Read, Write};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// tokio's signatures, bound for `$net` (tokio::net, then lonet::net).
macro_rules! signatures {
    (mod $m:ident, net = $($net:ident)::+) => {
        #[allow(dead_code, clippy::type_complexity)]
        mod $m {
            use std::io;
            use $($net)::+::{TcpListener, TcpSocket, TcpStream};

            fn try_from<T: TryFrom<S, Error = io::Error>, S>() {}

            pub fn check() {
                let _: fn(std::net::TcpStream) -> io::Result<TcpStream> = TcpStream::from_std;
                let _: fn(TcpStream) -> io::Result<std::net::TcpStream> = TcpStream::into_std;
                let _: fn(std::net::TcpListener) -> io::Result<TcpListener> =
                    TcpListener::from_std;
                let _: fn(TcpListener) -> io::Result<std::net::TcpListener> =
                    TcpListener::into_std;
                let _: fn(std::net::TcpStream) -> TcpSocket = TcpSocket::from_std_stream;
                try_from::<TcpStream, std::net::TcpStream>();
                try_from::<TcpListener, std::net::TcpListener>();
            }
        }
    };
}

signatures!(mod tokio_net, net = tokio::net);
signatures!(mod lonet_net, net = lonet::net);

#[test]
fn signatures_are_tokios() {
    tokio_net::check();
    lonet_net::check();
}

/// A std listener and a std stream on 127.0.0.1, wrapped with `from_std` and
/// `TryFrom` inside a namespace (without the kernel switch): both take the OS
/// path, accept works, and bytes move both ways.
#[tokio::test]
async fn from_std_listener_and_stream_take_the_os_path_and_move_data() {
    let ns = Netns::new();
    let body = ns.scope(async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local_addr");
        let listener = TcpListener::from_std(std_listener).expect("from_std");
        assert_eq!(listener.paths(), (false, true));
        assert_eq!(listener.local_addr().expect("local_addr"), addr);

        // The kernel completes the handshake into the listener's backlog.
        let std_client = std::net::TcpStream::connect(addr).expect("std connect");
        std_client.set_nonblocking(true).expect("nonblocking");
        let mut client = TcpStream::try_from(std_client).expect("try_from");
        assert_eq!(client.path(), Path::Os);
        assert!(client.socket().is_none());

        let (mut server, peer) = listener.accept().await.expect("accept");
        assert_eq!(server.path(), Path::Os);
        assert_eq!(peer, client.local_addr().expect("local_addr"));

        client.write_all(b"from std").await.expect("write_all");
        let mut buf = [0u8; 8];
        server.read_exact(&mut buf).await.expect("read_exact");
        assert_eq!(&buf, b"from std");
        server.write_all(b"back").await.expect("write_all");
        let mut back = [0u8; 4];
        client.read_exact(&mut back).await.expect("read_exact");
        assert_eq!(&back, b"back");

        // TryFrom for the listener too.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let listener = TcpListener::try_from(std_listener).expect("try_from");
        assert_eq!(listener.paths(), (false, true));
    });
    bounded("from_std", body).await;
}

/// `into_std` of an OS-path stream (kernel switch on) gives a working std
/// stream, non-blocking as tokio leaves it; the listener converts too.
#[tokio::test]
async fn into_std_of_os_path_sockets_gives_working_std_sockets() {
    let ns = Netns::new();
    ns.set_kernel_loopback(true);
    let body = ns.scope(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(client.path(), Path::Os);
        let (mut server, _) = listener.accept().await.expect("accept");

        let mut std_client = client.into_std().expect("into_std");
        // tokio leaves it non-blocking: nothing to read yet.
        let mut buf = [0u8; 16];
        let e = std_client.read(&mut buf).expect_err("nothing queued");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        std_client.set_nonblocking(false).expect("blocking");
        std_client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        std_client.write_all(b"through std").expect("std write");
        let mut got = [0u8; 11];
        server.read_exact(&mut got).await.expect("read_exact");
        assert_eq!(&got, b"through std");
        server.write_all(b"reply").await.expect("write_all");
        let mut reply = [0u8; 5];
        std_client.read_exact(&mut reply).expect("std read");
        assert_eq!(&reply, b"reply");

        let std_listener = listener.into_std().expect("listener into_std");
        assert_eq!(std_listener.local_addr().expect("local_addr"), addr);
    });
    bounded("into_std", body).await;
}

/// `into_std` on the model's sockets: `Unsupported`, with a message.
#[tokio::test]
async fn into_std_of_model_sockets_is_unsupported() {
    let ns = Netns::new();
    let body = ns.scope(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(client.path(), Path::Model);
        let (server, _) = listener.accept().await.expect("accept");

        let e = client
            .into_std()
            .expect_err("a model stream has no OS socket");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("model"), "{e}");
        let e = server
            .into_std()
            .expect_err("a model stream has no OS socket");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        let e = listener
            .into_std()
            .expect_err("a model listener has no OS socket");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    });
    bounded("into_std on the model", body).await;
}

/// `TcpSocket::from_std_stream` wraps the kernel socket: its address is the
/// std socket's.
#[tokio::test]
async fn tcp_socket_from_std_stream_is_the_kernel_socket() {
    let ns = Netns::new();
    let body = ns.scope(async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let std_stream = std::net::TcpStream::connect(std_listener.local_addr().expect("addr"))
            .expect("std connect");
        std_stream.set_nonblocking(true).expect("nonblocking");
        let local = std_stream.local_addr().expect("local_addr");
        let socket = TcpSocket::from_std_stream(std_stream);
        assert_eq!(socket.local_addr().expect("local_addr"), local);
    });
    bounded("from_std_stream", body).await;
}
