//! The three bridges between a namespace and the machine's 127.0.0.1:
//!
//! 1. expose: a service of the model, reached by a plain `std::net` client (any client of
//!    the machine would do: curl, reqwest, another process);
//! 2. forward: a real server on the machine's 127.0.0.1, reached through a port of the
//!    model, with a 20 ms delay fault in front of it;
//! 3. fallthrough: a lonet connect that nothing in the model answers reaches the real server
//!    directly; with fallthrough off, it is refused.
//!
//! `cargo run --release --example bridge` (ends by itself).

use lonet::bridge::NetnsBridgeExt;
use lonet::fault::{Fault, Match};
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A real echo server on the machine's 127.0.0.1 (threads, std sockets): what a database
/// or a sidecar started by a test harness would be.
fn machine_echo_server() -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Duration> {
    let t = Instant::now();
    s.write_all(msg).await?;
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).await?;
    assert_eq!(back, msg);
    Ok(t.elapsed())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let ns = Netns::new();

    // 1. expose: an echo service of the model on 127.0.0.1:8080, seen from the machine.
    let listener = ns
        .clone()
        .scope(TcpListener::bind("127.0.0.1:8080"))
        .await?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let exposed = ns.expose("127.0.0.1:8080".parse().expect("an address"))?;
    let os_addr = exposed.os_addr();
    let reply = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(os_addr)?;
        s.write_all(b"hello from std::net")?;
        let mut buf = [0; 19];
        s.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })
    .await??;
    println!("expose:      machine {os_addr} -> model 127.0.0.1:8080: echoed {reply:?}");

    // 2. forward: the model's 127.0.0.1:6000 is a real server on the machine.
    let real = machine_echo_server()?;
    let _forward = ns.forward("127.0.0.1:6000".parse().expect("an address"), real)?;
    let mut s = ns
        .clone()
        .scope(TcpStream::connect("127.0.0.1:6000"))
        .await?;
    s.set_nodelay(true)?;
    let fast = round_trip(&mut s, b"ping").await?;
    let delay = ns.add_fault(
        Match::port(6000),
        Fault::new().delay(Duration::from_millis(20)),
    )?;
    let slow = round_trip(&mut s, b"ping").await?;
    drop(delay);
    println!(
        "forward:     model 127.0.0.1:6000 -> machine {real}: round trip {fast:?}, {slow:?} with a 20 ms delay fault"
    );

    // 3. fallthrough: the real server's own port, which nothing in the model holds.
    let s = ns.clone().scope(TcpStream::connect(real)).await?;
    println!(
        "fallthrough: model connect to {real} took path {:?}",
        s.path()
    );
    ns.set_fallthrough(false);
    let refused = ns.clone().scope(TcpStream::connect(real)).await;
    println!(
        "fallthrough off: {}",
        refused
            .err()
            .map_or("connected?".to_string(), |e| e.to_string())
    );

    println!("\n{}", ns.tcp_stats());
    println!("{}", ns.sockets());
    Ok(())
}
