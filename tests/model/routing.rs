//! One type for every address: the model for local addresses, the OS for the
//! rest, wildcard listeners on both, the kernel switch, namespaces for tests
//! and extra local addresses.
//!
//! Real sockets in these tests only ever reach 127.0.0.1.

use lonet::net::{Path, TcpListener, TcpStream};
use lonet::Netns;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("did not finish within 30 s")
}

async fn echo_once(l: TcpListener) -> (SocketAddr, Path) {
    let (mut s, peer) = l.accept().await.unwrap();
    let mut buf = [0; 4];
    s.read_exact(&mut buf).await.unwrap();
    s.write_all(&buf).await.unwrap();
    (peer, s.path())
}

#[tokio::test]
async fn parallel_namespaces_can_all_bind_127_0_0_1_8080() {
    // Linux: each network namespace has its own port space.
    bounded(async {
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let ns = Netns::new();
            tasks.push(tokio::spawn(ns.clone().scope(async move {
                let l = TcpListener::bind("127.0.0.1:8080").await.unwrap();
                let server = tokio::spawn(Netns::current().scope(echo_once(l)));
                let mut c = TcpStream::connect("127.0.0.1:8080").await.unwrap();
                assert_eq!(c.path(), Path::Model);
                c.write_all(&[i; 4]).await.unwrap();
                let mut buf = [0; 4];
                c.read_exact(&mut buf).await.unwrap();
                assert_eq!(buf, [i; 4]);
                server.await.unwrap();
                Netns::current().tcp_stats().active_opens
            })));
        }
        for t in tasks {
            assert_eq!(
                t.await.unwrap(),
                1,
                "each namespace saw only its own connection"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn entering_a_namespace_keeps_spawned_tasks_in_it() {
    // Under #[tokio::test] every task runs on the test's thread: the entered
    // namespace is theirs too.
    let ns = Netns::new();
    let _guard = ns.enter();
    bounded(async {
        let l = TcpListener::bind("127.0.0.1:8080").await.unwrap();
        let server = tokio::spawn(echo_once(l));
        let client = tokio::spawn(async {
            let mut c = TcpStream::connect("127.0.0.1:8080").await.unwrap();
            c.write_all(b"ping").await.unwrap();
            let mut buf = [0; 4];
            c.read_exact(&mut buf).await.unwrap();
            buf
        });
        assert_eq!(&client.await.unwrap(), b"ping");
        server.await.unwrap();
    })
    .await;
    assert_eq!(ns.tcp_stats().active_opens, 1);
    assert_eq!(ns.tcp_stats().passive_opens, 1);
    assert_ne!(Netns::init(), ns);
}

#[tokio::test]
async fn a_wildcard_listener_accepts_in_process_and_real_clients() {
    // Linux: a 0.0.0.0 listener gets connections to any local address. In
    // lonet its model half takes in-process clients, its OS half real ones.
    bounded(Netns::new().scope(async {
        let l = TcpListener::bind("0.0.0.0:0").await.unwrap();
        assert_eq!(l.paths(), (true, true));
        let port = l.local_addr().unwrap().port();
        // In-process.
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert_eq!(c.path(), Path::Model);
        c.write_all(b"lo!!").await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        assert_eq!(s.path(), Path::Model);
        let mut buf = [0; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"lo!!");
        // A real client, through the kernel, to 127.0.0.1 only.
        let real = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.write_all(b"os!!").unwrap();
            let mut buf = [0; 4];
            c.read_exact(&mut buf).unwrap();
            buf
        });
        let (mut s, peer) = l.accept().await.unwrap();
        assert_eq!(s.path(), Path::Os);
        assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 1]));
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"os!!");
        s.write_all(b"back").await.unwrap();
        assert_eq!(&real.await.unwrap(), b"back");
    }))
    .await;
}

#[tokio::test]
async fn a_loopback_listener_opens_no_os_socket() {
    // lonet: 127.x and ::1 listeners live in the model only.
    bounded(Netns::new().scope(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(l.paths(), (true, false));
        let port = l.local_addr().unwrap().port();
        // Nothing listens on that port in the kernel.
        let os = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert_eq!(
            os.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    }))
    .await;
}

#[tokio::test]
async fn the_kernel_switch_sends_everything_through_os_sockets() {
    // The same code, every socket a real one; the model's counters stay at 0.
    let ns = Netns::new();
    ns.set_kernel_loopback(true);
    bounded(ns.clone().scope(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(l.paths(), (false, true));
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(echo_once(l));
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert_eq!(c.path(), Path::Os);
        c.write_all(b"kern").await.unwrap();
        let mut buf = [0; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"kern");
        let (_, path) = server.await.unwrap();
        assert_eq!(path, Path::Os);
        // Split halves work over an OS socket too.
        let (mut r, mut w) = c.into_split();
        w.shutdown().await.unwrap();
        assert_eq!(r.read(&mut buf).await.unwrap(), 0);
    }))
    .await;
    assert_eq!(ns.lo_stats().tx_packets, 0);
}

#[tokio::test]
async fn three_services_on_their_own_addresses_see_distinct_peers() {
    // Linux: `ip addr add 10.0.0.N/32 dev lo` makes each address local; a
    // connection to it goes through lo with the address as its source.
    let ns = Netns::new();
    for n in 1..=3u8 {
        ns.add_local_addr(IpAddr::from([10, 0, 0, n])).unwrap();
    }
    bounded(ns.clone().scope(async {
        let mut servers = Vec::new();
        for n in 1..=3u8 {
            let l = TcpListener::bind((IpAddr::from([10, 0, 0, n]), 80))
                .await
                .unwrap();
            assert_eq!(l.paths(), (true, false), "no OS socket for 10.0.0.{n}");
            servers.push(tokio::spawn(Netns::current().scope(echo_once(l))));
        }
        for n in 1..=3u8 {
            let mut c = TcpStream::connect((IpAddr::from([10, 0, 0, n]), 80))
                .await
                .unwrap();
            assert_eq!(c.path(), Path::Model);
            assert_eq!(
                c.peer_addr().unwrap(),
                SocketAddr::from(([10, 0, 0, n], 80))
            );
            // The route's preferred source is the address itself.
            assert_eq!(c.local_addr().unwrap().ip(), IpAddr::from([10, 0, 0, n]));
            c.write_all(&[n; 4]).await.unwrap();
            let mut buf = [0; 4];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, [n; 4]);
        }
        for s in servers {
            s.await.unwrap();
        }
    }))
    .await;
    // A service that binds its outgoing socket to its own address is seen
    // from it by the service it calls (bind before connect, as on Linux).
    bounded(ns.clone().scope(async {
        let b = TcpListener::bind("10.0.0.2:81").await.unwrap();
        let c_l = TcpListener::bind("10.0.0.3:81").await.unwrap();
        for (from, to) in [
            ([10, 0, 0, 1], &b),
            ([10, 0, 0, 3], &b),
            ([10, 0, 0, 2], &c_l),
        ] {
            let sock = lonet::net::TcpSocket::new_v4().unwrap();
            sock.bind(SocketAddr::from((from, 0))).unwrap();
            let c = sock.connect(to.local_addr().unwrap()).await.unwrap();
            let (_s, peer) = to.accept().await.unwrap();
            assert_eq!(peer.ip(), IpAddr::from(from));
            assert_eq!(c.local_addr().unwrap().ip(), IpAddr::from(from));
        }
    }))
    .await;
    // A namespace without the address does not own it.
    let e = Netns::new()
        .scope(TcpListener::bind("10.0.0.1:80"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrNotAvailable);
}

#[tokio::test]
async fn a_name_with_several_addresses_is_tried_in_order() {
    // tokio: each resolved address is tried in turn; the first that connects wins.
    // `localhost` resolves to 127.0.0.1 then ::1: nothing on 127.0.0.1, a listener on ::1.
    bounded(Netns::new().scope(async {
        let l = TcpListener::bind("[::1]:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect(("localhost", port)).await.unwrap();
        assert_eq!(
            c.peer_addr().unwrap(),
            SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port))
        );
        // With nothing anywhere, the last error is returned.
        drop(l);
        let e = TcpStream::connect(("localhost", port)).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }))
    .await;
}

#[tokio::test]
async fn invalid_addresses_are_invalid_input() {
    let e = TcpStream::connect("not an address").await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = TcpListener::bind("127.0.0.1:99999").await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}
