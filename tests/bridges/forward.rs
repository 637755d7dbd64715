use crate::common::{bounded, wait_until};
use crate::helpers::{
    check_bulk, check_half_close, check_reset, closed_os_port, echo_once, std_echo_server, STALL,
};
use lonet::bridge::{Forward, NetnsBridgeExt};
use lonet::fault::{Fault, Match};
use lonet::net::{Path, TcpListener, TcpStream};
use lonet::stats::TcpState;
use lonet::Netns;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const MODEL: &str = "127.0.0.1:7000";

fn model() -> SocketAddr {
    MODEL.parse().unwrap()
}

/// A machine listener (a real socket), forwarded from 127.0.0.1:7000 in a new namespace.
fn setup() -> (Netns, TcpListener, Forward) {
    let os = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    os.set_nonblocking(true).unwrap();
    let os_addr = os.local_addr().unwrap();
    let os = TcpListener::from_std(os).unwrap();
    let ns = Netns::new();
    let fwd = ns.forward(model(), os_addr).unwrap();
    (ns, os, fwd)
}

async fn pair(ns: &Netns, os: &TcpListener) -> (TcpStream, TcpStream) {
    let client = ns.clone().scope(TcpStream::connect(MODEL)).await.unwrap();
    assert_eq!(client.path(), Path::Model);
    let (server, _) = bounded("accept", os.accept()).await.unwrap();
    (client, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lonet_client_reaches_a_std_server_through_forward() {
    let server = std_echo_server();
    let ns = Netns::new();
    let fwd = ns.forward(model(), server).unwrap();
    assert_eq!(fwd.model_addr(), model());
    assert_eq!(fwd.os_target(), server);
    let mut s = ns.clone().scope(TcpStream::connect(MODEL)).await.unwrap();
    assert_eq!(s.path(), Path::Model);
    let back = bounded("echo", echo_once(&mut s, b"forwarded"))
        .await
        .unwrap();
    assert_eq!(back, b"forwarded");
    // ss: the forward's listener, the client and the relay's accepted leg.
    let t = ns.sockets();
    assert!(
        t.iter()
            .any(|s| s.state == TcpState::Listen && s.local == model()),
        "{t}"
    );
    assert!(
        t.iter()
            .filter(|s| s.state == TcpState::Established)
            .count()
            >= 2,
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_on_the_model_leg_stalls_the_real_server_and_heals() {
    let server = std_echo_server();
    let ns = Netns::new();
    let _fwd = ns.forward(model(), server).unwrap();
    let mut s = ns.clone().scope(TcpStream::connect(MODEL)).await.unwrap();
    assert_eq!(echo_once(&mut s, b"before").await.unwrap(), b"before");

    let partition = ns.add_fault(Match::port(7000), Fault::partition()).unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, b"during")
        .await
        .unwrap();
    let mut back = [0; 6];
    let stalled = tokio::time::timeout(STALL, s.read_exact(&mut back)).await;
    assert!(stalled.is_err(), "nothing crosses a partition");
    assert!(partition.stats().dropped >= 1);
    drop(partition);
    // Retransmission delivers it once healed.
    bounded("after the partition healed", s.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(&back, b"during");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_on_the_model_leg_is_measured() {
    let server = std_echo_server();
    let ns = Netns::new();
    let _fwd = ns.forward(model(), server).unwrap();
    let mut s = ns.clone().scope(TcpStream::connect(MODEL)).await.unwrap();
    s.set_nodelay(true).unwrap();
    echo_once(&mut s, b"warm").await.unwrap();
    let _delay = ns
        .add_fault(
            Match::port(7000),
            Fault::new().delay(Duration::from_millis(20)),
        )
        .unwrap();
    let t = Instant::now();
    assert_eq!(echo_once(&mut s, b"slow").await.unwrap(), b"slow");
    let rtt = t.elapsed();
    assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
    assert!(rtt < Duration::from_secs(5), "{rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_crosses_forward_both_ways() {
    let (ns, os, _fwd) = setup();
    let (client, server) = pair(&ns, &os).await;
    check_half_close(client, server).await;
    let (client, server) = pair(&ns, &os).await;
    check_half_close(server, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_crosses_forward_as_a_reset_both_ways() {
    let (ns, os, _fwd) = setup();
    let (client, server) = pair(&ns, &os).await;
    check_reset(client, server).await;
    let (client, server) = pair(&ns, &os).await;
    check_reset(server, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_each_way_through_forward_byte_for_byte() {
    let (ns, os, _fwd) = setup();
    let (client, server) = pair(&ns, &os).await;
    check_bulk(client, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_refuses_resets_the_model_client() {
    let ns = Netns::new();
    let _fwd = ns.forward(model(), closed_os_port()).unwrap();
    // The model's handshake completes before the relay learns the target refuses, so the
    // reset comes after it: connect sees it if it lands before connect's last poll (as a
    // non-blocking connect on Linux reads SO_ERROR, tokio's returns ECONNRESET then),
    // else the first read does.
    match ns.clone().scope(TcpStream::connect(MODEL)).await {
        Ok(mut s) => {
            let mut buf = [0; 8];
            let r = bounded("read", s.read(&mut buf)).await;
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
        }
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_guard_closes_the_model_listener() {
    let (ns, os, fwd) = setup();
    ns.set_fallthrough(false);
    let (mut client, _server) = pair(&ns, &os).await;
    drop(fwd);
    let mut buf = [0; 8];
    let r = bounded("read", client.read(&mut buf)).await;
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    wait_until("the listener closed", Duration::from_secs(10), || {
        let t = ns.sockets();
        if t.iter().any(|s| s.state == TcpState::Listen) {
            Err(format!("\n{t}"))
        } else {
            Ok(())
        }
    })
    .await;
    let e = ns
        .clone()
        .scope(TcpStream::connect(MODEL))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn forward_only_reaches_the_machine_loopback() {
    let ns = Netns::new();
    for target in ["192.0.2.1:80", "0.0.0.0:80", "[2001:db8::1]:80"] {
        let e = ns.forward(model(), target.parse().unwrap()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{target}");
    }
    let e = ns
        .forward(
            "192.0.2.1:80".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let _a = ns
        .forward(model(), "127.0.0.1:80".parse().unwrap())
        .unwrap();
    let e = ns
        .forward(model(), "127.0.0.1:80".parse().unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
}
