//! The four transports: something that hands out connected pairs of byte
//! streams ([`Transport`]), and for lonet and kernel TCP also opens and
//! closes connections through a listener ([`Listening`]).

use lonet::Netns;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

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
