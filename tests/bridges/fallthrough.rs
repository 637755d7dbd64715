use crate::common::bounded;
use crate::helpers::{closed_os_port, echo_once, std_echo_server};
use lonet::net::{Path, TcpListener, TcpSocket, TcpStream};
use lonet::Netns;
use std::io;

const ECONNREFUSED: i32 = 111;

#[tokio::test]
async fn a_lonet_client_reaches_a_std_server_on_the_machine() {
    let server = std_echo_server();
    let ns = Netns::new();
    assert!(ns.fallthrough(), "on by default");
    let mut s = bounded("connect", ns.clone().scope(TcpStream::connect(server)))
        .await
        .unwrap();
    assert_eq!(s.path(), Path::Os);
    assert_eq!(s.peer_addr().unwrap(), server);
    let back = bounded("echo", echo_once(&mut s, b"through the machine"))
        .await
        .unwrap();
    assert_eq!(back, b"through the machine");
    // The model answered the SYN with RST first, and counted it.
    let stats = ns.tcp_stats();
    assert_eq!(stats.attempt_fails, 1, "{stats}");
    assert!(stats.out_rsts >= 1, "{stats}");
}

#[tokio::test]
async fn a_v4_mapped_address_falls_through_as_its_ipv4_one_does() {
    // ::ffff:127.0.0.1 is 127.0.0.1 reached from an IPv6 socket: loopback, so a
    // connect the model refuses goes on to the machine's kernel.
    let server = std_echo_server();
    let std::net::IpAddr::V4(v4) = server.ip() else {
        panic!("the echo server is on IPv4: {server}")
    };
    let mapped = std::net::SocketAddr::new(v4.to_ipv6_mapped().into(), server.port());
    let ns = Netns::new();
    let mut s = bounded("connect", ns.clone().scope(TcpStream::connect(mapped)))
        .await
        .unwrap();
    assert_eq!(s.path(), Path::Os);
    assert_eq!(
        s.peer_addr().unwrap(),
        mapped,
        "the kernel's names, v4-mapped"
    );
    let back = bounded("echo", echo_once(&mut s, b"mapped")).await.unwrap();
    assert_eq!(back, b"mapped");
}

#[tokio::test]
async fn an_unbound_tcp_socket_falls_through_too() {
    let server = std_echo_server();
    let ns = Netns::new();
    let connect = async { TcpSocket::new_v4()?.connect(server).await };
    let mut s = bounded("connect", ns.clone().scope(connect)).await.unwrap();
    assert_eq!(s.path(), Path::Os);
    let back = bounded("echo", echo_once(&mut s, b"socket")).await.unwrap();
    assert_eq!(back, b"socket");
    // Refused on both sides: the model's ECONNREFUSED.
    let closed = closed_os_port();
    let connect = async { TcpSocket::new_v4()?.connect(closed).await };
    let e = ns.clone().scope(connect).await.unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ECONNREFUSED));
    // A socket bound in the model has its address there: no fallthrough.
    let bound = async {
        let sock = TcpSocket::new_v4()?;
        sock.bind("127.0.0.1:0".parse().unwrap())?;
        sock.connect(server).await
    };
    let e = ns.clone().scope(bound).await.unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ECONNREFUSED));
}

#[tokio::test]
async fn a_listener_of_the_model_comes_first() {
    let server = std_echo_server();
    let ns = Netns::new();
    let listener = ns.clone().scope(TcpListener::bind(server)).await.unwrap();
    let s = ns.clone().scope(TcpStream::connect(server)).await.unwrap();
    assert_eq!(s.path(), Path::Model);
    drop(listener);
}

#[tokio::test]
async fn refused_on_both_sides_is_still_econnrefused() {
    let closed = closed_os_port();
    let ns = Netns::new();
    let e = ns
        .clone()
        .scope(TcpStream::connect(closed))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(e.raw_os_error(), Some(ECONNREFUSED));
}

#[tokio::test]
async fn strict_isolation_when_turned_off() {
    let server = std_echo_server();
    let ns = Netns::new();
    ns.set_fallthrough(false);
    assert!(!ns.fallthrough());
    let e = ns
        .clone()
        .scope(TcpStream::connect(server))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(e.raw_os_error(), Some(ECONNREFUSED));
}

#[tokio::test]
async fn an_added_address_never_falls_through() {
    let server = std_echo_server();
    let ns = Netns::new();
    let added: std::net::IpAddr = "10.254.0.1".parse().unwrap();
    ns.add_local_addr(added).unwrap();
    let target = std::net::SocketAddr::new(added, server.port());
    let e = ns
        .clone()
        .scope(TcpStream::connect(target))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn the_kernel_switch_is_unchanged() {
    let server = std_echo_server();
    let ns = Netns::new();
    ns.set_kernel_loopback(true);
    let s = ns.clone().scope(TcpStream::connect(server)).await.unwrap();
    assert_eq!(s.path(), Path::Os);
    assert_eq!(ns.tcp_stats().attempt_fails, 0, "the model was not asked");
}
