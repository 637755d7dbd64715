use crate::common::{bounded, wait_until};
use crate::helpers::{check_bulk, check_half_close, check_reset, echo_once};
use lonet::bridge::{Exposed, NetnsBridgeExt};
use lonet::net::{Path, TcpListener, TcpStream};
use lonet::stats::TcpState;
use lonet::Netns;
use std::io::{self, Read, Write};
use std::time::Duration;

/// A namespace with a model listener on 127.0.0.1:8080, exposed on the machine's loopback.
async fn setup() -> (Netns, TcpListener, Exposed) {
    let ns = Netns::new();
    let listener = ns
        .clone()
        .scope(TcpListener::bind("127.0.0.1:8080"))
        .await
        .unwrap();
    let exposed = ns.expose("127.0.0.1:8080".parse().unwrap()).unwrap();
    (ns, listener, exposed)
}

/// A client of the machine (a real socket) connected through `exposed`, and the model's end.
async fn pair(listener: &TcpListener, exposed: &Exposed) -> (TcpStream, TcpStream) {
    let client = std::net::TcpStream::connect(exposed.os_addr()).unwrap();
    client.set_nonblocking(true).unwrap();
    let client = TcpStream::from_std(client).unwrap();
    let (server, _) = bounded("accept", listener.accept()).await.unwrap();
    (client, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_std_client_reaches_the_model_and_the_model_leg_is_an_ordinary_socket() {
    let (ns, listener, exposed) = setup().await;
    assert!(exposed.os_addr().ip().is_loopback());
    assert_ne!(exposed.os_addr().port(), 0);
    assert_eq!(exposed.model_addr(), "127.0.0.1:8080".parse().unwrap());

    // A blocking std client on its own thread.
    let os = exposed.os_addr();
    let client = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut s = std::net::TcpStream::connect(os)?;
        s.write_all(b"hello")?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut back = Vec::new();
        s.read_to_end(&mut back)?;
        Ok(back)
    });
    let (mut server, peer) = bounded("accept", listener.accept()).await.unwrap();
    assert_eq!(server.path(), Path::Model);
    assert!(peer.ip().is_loopback());

    // ss: the relay's leg is a connection of the model, from an ephemeral port to 8080
    // (in FIN-WAIT-2 once the client's FIN was passed on).
    let table = ns.sockets();
    assert!(
        table.iter().any(|s| s.state != TcpState::Listen
            && s.peer == exposed.model_addr()
            && s.local == peer),
        "the relay's model leg is listed:\n{table}"
    );

    let back = echo_once(&mut server, b"hello").await.unwrap();
    assert_eq!(back, b"hello");
    drop(server);
    let got = client.join().unwrap().unwrap();
    assert_eq!(got, b"hello");
    // The model counted the model leg.
    assert!(ns.tcp_stats().active_opens >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_crosses_expose_both_ways() {
    let (_ns, listener, exposed) = setup().await;
    let (client, server) = pair(&listener, &exposed).await;
    check_half_close(client, server).await;
    let (client, server) = pair(&listener, &exposed).await;
    check_half_close(server, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_crosses_expose_as_a_reset_both_ways() {
    let (_ns, listener, exposed) = setup().await;
    let (client, server) = pair(&listener, &exposed).await;
    check_reset(client, server).await;
    let (client, server) = pair(&listener, &exposed).await;
    check_reset(server, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_each_way_through_expose_byte_for_byte() {
    let (_ns, listener, exposed) = setup().await;
    let (client, server) = pair(&listener, &exposed).await;
    check_bulk(client, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_refuses_resets_the_machine_client() {
    let ns = Netns::new();
    ns.set_fallthrough(false);
    let exposed = ns.expose("127.0.0.1:8081".parse().unwrap()).unwrap();
    let client = std::net::TcpStream::connect(exposed.os_addr()).unwrap();
    client.set_nonblocking(true).unwrap();
    let mut client = TcpStream::from_std(client).unwrap();
    let mut buf = [0; 8];
    let r = bounded("read", tokio::io::AsyncReadExt::read(&mut client, &mut buf)).await;
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    assert!(ns.tcp_stats().attempt_fails >= 1, "{}", ns.tcp_stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_guard_closes_the_listener_and_resets_its_connections() {
    let (ns, listener, exposed) = setup().await;
    let (mut client, server) = pair(&listener, &exposed).await;
    let os = exposed.os_addr();
    drop(exposed);
    // The connection in flight is reset on both sides.
    let mut buf = [0; 8];
    let r = bounded("read", tokio::io::AsyncReadExt::read(&mut client, &mut buf)).await;
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    let mut server = server;
    let r = bounded("read", tokio::io::AsyncReadExt::read(&mut server, &mut buf)).await;
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    // The machine's listener is gone.
    wait_until("the exposed port closed", Duration::from_secs(10), || {
        match std::net::TcpStream::connect(os) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // No relay socket is left in the namespace: only the model's listener.
    drop(server);
    wait_until("relay sockets gone", Duration::from_secs(10), || {
        let t = ns.sockets();
        let left = t.iter().filter(|s| s.state != TcpState::Listen).count();
        if left == 0 {
            Ok(())
        } else {
            Err(format!("\n{t}"))
        }
    })
    .await;
}

#[tokio::test]
async fn expose_checks_its_addresses() {
    let ns = Netns::new();
    let e = ns
        .expose_on(
            "127.0.0.1:80".parse().unwrap(),
            "0.0.0.0:0".parse().unwrap(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = ns.expose("192.0.2.1:80".parse().unwrap()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    // A port of the user's choice on the machine.
    let free = crate::helpers::closed_os_port();
    let exposed = ns.expose_on("127.0.0.1:80".parse().unwrap(), free).unwrap();
    assert_eq!(exposed.os_addr(), free);
    // IPv6 model addresses are exposed on ::1.
    let v6 = ns.expose("[::1]:80".parse().unwrap());
    if let Ok(v6) = v6 {
        assert_eq!(v6.os_addr().ip(), std::net::Ipv6Addr::LOCALHOST);
    }
}

#[test]
fn expose_outside_a_runtime_is_an_error_not_a_panic() {
    let ns = Netns::new();
    let e = ns.expose("127.0.0.1:80".parse().unwrap()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Other);
}
