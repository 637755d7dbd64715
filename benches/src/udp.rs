//! UDP and QUIC: 64-byte datagram ping-pong ([`UdpPingPong`]), 1,200-byte
//! datagram throughput ([`UdpStream`]) and QUIC bulk over quinn
//! ([`QuicBulk`]), each over lonet's UDP and over the kernel's (a Unix
//! datagram pair beside them where it makes sense).

use crate::{join_err, poisoned};
use lonet::Netns;
use quinn::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Bytes in one UDP ping or pong.
pub const UDP_PING: usize = 64;
/// Bytes in one datagram of the throughput workload (QUIC's usual size).
pub const DGRAM: usize = 1200;
/// Datagrams per acknowledgement in [`UdpStream`].
pub const BURST: u64 = 16;
/// Bursts in flight in [`UdpStream`]: 64 datagrams of 1,200 bytes, each
/// charged 2,304 bytes of truesize, fit the receiver's default 212,992-byte
/// buffer, so nothing is dropped and nothing needs retransmitting.
pub const WINDOW: u64 = 4;
/// Bytes per write in [`QuicBulk`].
pub const QUIC_CHUNK: usize = 64 * 1024;

/// A connected datagram socket: `send` and `recv`, as tokio's have them.
pub trait Datagram: Send + Sync + 'static {
    /// Sends one datagram to the connected peer.
    fn send(&self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Receives one datagram.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
}

macro_rules! datagram {
    ($t:ty) => {
        impl Datagram for $t {
            fn send(&self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send {
                <$t>::send(self, buf)
            }
            fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
                <$t>::recv(self, buf)
            }
        }
    };
}
datagram!(lonet::net::UdpSocket);
datagram!(tokio::net::UdpSocket);
datagram!(tokio::net::UnixDatagram);

/// Something that hands out a connected pair of datagram sockets.
pub trait DgramTransport: Sized + Send + Sync + 'static {
    /// One end.
    type S: Datagram;
    /// The transport's name in tables and messages.
    const NAME: &'static str;
    /// Its criterion bench id.
    const ID: &'static str;
    /// A connected pair, and lonet's namespace if it is lonet.
    fn pair() -> impl Future<Output = io::Result<(Option<Netns>, Self::S, Self::S)>> + Send;
}

/// lonet's UDP on 127.0.0.1, in a namespace of its own.
pub struct LonetUdp;
/// The kernel's UDP on 127.0.0.1, through `tokio::net::UdpSocket`.
pub struct KernelUdp;
/// A Unix datagram socket pair (`socketpair(AF_UNIX, SOCK_DGRAM)`).
pub struct UnixDgram;

impl DgramTransport for LonetUdp {
    type S = lonet::net::UdpSocket;
    const NAME: &'static str = "lonet";
    const ID: &'static str = "lonet";

    async fn pair() -> io::Result<(Option<Netns>, Self::S, Self::S)> {
        let ns = Netns::new();
        let (a, b) = ns
            .clone()
            .scope(async {
                let a = lonet::net::UdpSocket::bind("127.0.0.1:0").await?;
                let b = lonet::net::UdpSocket::bind("127.0.0.1:0").await?;
                a.connect(b.local_addr()?).await?;
                b.connect(a.local_addr()?).await?;
                Ok::<_, io::Error>((a, b))
            })
            .await?;
        Ok((Some(ns), a, b))
    }
}

impl DgramTransport for KernelUdp {
    type S = tokio::net::UdpSocket;
    const NAME: &'static str = "kernel UDP";
    const ID: &'static str = "kernel_udp";

    async fn pair() -> io::Result<(Option<Netns>, Self::S, Self::S)> {
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        a.connect(b.local_addr()?).await?;
        b.connect(a.local_addr()?).await?;
        Ok((None, a, b))
    }
}

impl DgramTransport for UnixDgram {
    type S = tokio::net::UnixDatagram;
    const NAME: &'static str = "Unix datagram";
    const ID: &'static str = "unix_dgram";

    async fn pair() -> io::Result<(Option<Netns>, Self::S, Self::S)> {
        let (a, b) = tokio::net::UnixDatagram::pair()?;
        Ok((None, a, b))
    }
}

/// 64-byte datagram ping-pong on a connected pair: one iteration is one
/// round trip.
pub struct UdpPingPong<T: DgramTransport> {
    /// lonet's namespace, if lonet.
    pub ns: Option<Netns>,
    client: Option<T::S>,
    _server: JoinHandle<()>,
}

impl<T: DgramTransport> UdpPingPong<T> {
    /// Binds the pair and starts the echo task.
    pub async fn new() -> io::Result<Self> {
        let (ns, client, server) = T::pair().await?;
        let server = tokio::spawn(async move {
            let mut buf = [0u8; UDP_PING];
            while let Ok(n) = server.recv(&mut buf).await {
                if server.send(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        Ok(UdpPingPong {
            ns,
            client: Some(client),
            _server: server,
        })
    }

    /// `n` round trips with the client in a task of its own.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let client = self.client.take().ok_or_else(poisoned)?;
        let (client, took) = tokio::spawn(async move {
            let mut buf = [7u8; UDP_PING];
            let t0 = Instant::now();
            for _ in 0..n {
                client.send(&buf).await?;
                client.recv(&mut buf).await?;
            }
            Ok::<_, io::Error>((client, t0.elapsed()))
        })
        .await
        .map_err(join_err)??;
        self.client = Some(client);
        Ok(took)
    }
}

/// 1,200-byte datagrams one way, acknowledged every [`BURST`] with at most
/// [`WINDOW`] bursts unacknowledged (so the receiver's buffer never
/// overflows): delivered throughput.
pub struct UdpStream<T: DgramTransport> {
    /// lonet's namespace, if lonet.
    pub ns: Option<Netns>,
    sender: Option<T::S>,
    _receiver: JoinHandle<()>,
}

impl<T: DgramTransport> UdpStream<T> {
    /// Binds the pair and starts the receiving task.
    pub async fn new() -> io::Result<Self> {
        let (ns, sender, receiver) = T::pair().await?;
        let receiver = tokio::spawn(async move {
            let mut buf = [0u8; DGRAM];
            let mut got = 0u64;
            while receiver.recv(&mut buf).await.is_ok() {
                got += 1;
                if got % BURST == 0 && receiver.send(b"a").await.is_err() {
                    break;
                }
            }
        });
        Ok(UdpStream {
            ns,
            sender: Some(sender),
            _receiver: receiver,
        })
    }

    /// At least `n` datagrams (whole bursts) sent and acknowledged; the
    /// time they took and how many were sent.
    pub async fn run(&mut self, n: u64) -> io::Result<(Duration, u64)> {
        let sender = self.sender.take().ok_or_else(poisoned)?;
        let bursts = n.div_ceil(BURST).max(1);
        let (sender, took) = tokio::spawn(async move {
            let data = [5u8; DGRAM];
            let mut ack = [0u8; 8];
            let mut in_flight = 0;
            let t0 = Instant::now();
            for _ in 0..bursts {
                if in_flight == WINDOW {
                    sender.recv(&mut ack).await?;
                    in_flight -= 1;
                }
                for _ in 0..BURST {
                    sender.send(&data).await?;
                }
                in_flight += 1;
            }
            while in_flight > 0 {
                sender.recv(&mut ack).await?;
                in_flight -= 1;
            }
            Ok::<_, io::Error>((sender, t0.elapsed()))
        })
        .await
        .map_err(join_err)??;
        self.sender = Some(sender);
        Ok((took, bursts * BURST))
    }
}

/// Where the QUIC endpoints' UDP runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuicOver {
    /// lonet's UDP (`lonet::quinn`), in a namespace of its own.
    Lonet,
    /// The kernel's UDP, with quinn's own tokio runtime and sockets.
    Kernel,
}

impl QuicOver {
    /// The name in tables and messages.
    pub fn name(self) -> &'static str {
        match self {
            QuicOver::Lonet => "lonet",
            QuicOver::Kernel => "kernel UDP",
        }
    }

    /// The criterion bench id.
    pub fn id(self) -> &'static str {
        match self {
            QuicOver::Lonet => "lonet",
            QuicOver::Kernel => "kernel_udp",
        }
    }
}

/// QUIC bulk: one connection (set up once); each run opens a
/// bidirectional stream, writes `n` chunks of [`QUIC_CHUNK`] bytes and
/// finishes it; the server reads to the end and answers one byte.
pub struct QuicBulk {
    /// lonet's namespace, if over lonet.
    pub ns: Option<Netns>,
    conn: quinn::Connection,
    _client: quinn::Endpoint,
    _server: JoinHandle<()>,
}

fn tls_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("TLS setup: {e}"))
}

impl QuicBulk {
    /// Two endpoints over `over`, a self-signed certificate, one connection.
    pub async fn new(over: QuicOver) -> io::Result<Self> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).map_err(tls_err)?;
        let cert: CertificateDer<'static> = certified.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
        let server_config = quinn::ServerConfig::with_single_cert(vec![cert.clone()], key.into())
            .map_err(tls_err)?;
        let mut roots = quinn::rustls::RootCertStore::empty();
        roots.add(cert).map_err(tls_err)?;
        let client_config =
            quinn::ClientConfig::with_root_certificates(Arc::new(roots)).map_err(tls_err)?;
        let ns = (over == QuicOver::Lonet).then(Netns::new);
        let make = async {
            let (server, mut client) = match over {
                QuicOver::Lonet => (
                    lonet::quinn::server(server_config, "127.0.0.1:0").await?,
                    lonet::quinn::client("127.0.0.1:0").await?,
                ),
                QuicOver::Kernel => (
                    quinn::Endpoint::server(
                        server_config,
                        "127.0.0.1:0".parse().map_err(tls_err)?,
                    )?,
                    quinn::Endpoint::client("127.0.0.1:0".parse().map_err(tls_err)?)?,
                ),
            };
            client.set_default_client_config(client_config);
            let addr = server.local_addr()?;
            let serving = tokio::spawn(async move {
                let Some(incoming) = server.accept().await else {
                    return;
                };
                let Ok(conn) = incoming.await else { return };
                let mut buf = vec![0u8; QUIC_CHUNK];
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    while let Ok(Some(_)) = recv.read(&mut buf).await {}
                    if send.write_all(b"k").await.is_err() || send.finish().is_err() {
                        return;
                    }
                }
            });
            let conn = client
                .connect(addr, "localhost")
                .map_err(io::Error::other)?
                .await
                .map_err(io::Error::other)?;
            Ok::<_, io::Error>((conn, client, serving))
        };
        let (conn, client, serving) = match &ns {
            Some(ns) => ns.clone().scope(make).await?,
            None => make.await?,
        };
        Ok(QuicBulk {
            ns,
            conn,
            _client: client,
            _server: serving,
        })
    }

    /// `n` chunks on a fresh stream, read to the end by the server.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let conn = self.conn.clone();
        tokio::spawn(async move {
            let chunk = vec![3u8; QUIC_CHUNK];
            let t0 = Instant::now();
            let (mut send, mut recv) = conn.open_bi().await.map_err(io::Error::other)?;
            for _ in 0..n {
                send.write_all(&chunk).await.map_err(io::Error::other)?;
            }
            send.finish().map_err(io::Error::other)?;
            let ack = recv.read_to_end(16).await.map_err(io::Error::other)?;
            if ack != b"k" {
                return Err(io::Error::other(
                    "the server did not acknowledge the stream",
                ));
            }
            Ok(t0.elapsed())
        })
        .await
        .map_err(join_err)?
    }
}
