//! The redis crate's async client (`MultiplexedConnection::new` takes any tokio
//! `AsyncRead + AsyncWrite` stream, so a `lonet::net::TcpStream` goes in as it is) talks to
//! a real redis-server on the machine's 127.0.0.1.
//!
//! The server: the port in `LONET_REDIS_PORT` (`.ci/run` starts one); else a redis-server
//! this test starts itself when one is installed; else the test prints SKIPPED, or fails
//! when `LONET_REQUIRE_REDIS=1`.

use crate::common::{bounded, wait_until_blocking};
use lonet::bridge::NetnsBridgeExt;
use lonet::fault::{Fault, Match};
use lonet::net::{Path, TcpStream};
use lonet::Netns;
use redis::aio::MultiplexedConnection;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server this test started: killed when dropped.
struct OwnServer(Child);

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server to use, and the process to stop afterwards if the test started it.
fn redis_server() -> Option<(SocketAddr, Option<OwnServer>)> {
    if let Ok(port) = std::env::var("LONET_REDIS_PORT") {
        let port: u16 = port.parse().expect("LONET_REDIS_PORT is a port number");
        return Some((SocketAddr::from(([127, 0, 0, 1], port)), None));
    }
    let port = crate::helpers::closed_os_port().port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => OwnServer(c),
        Err(e) => {
            if std::env::var("LONET_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("LONET_REQUIRE_REDIS=1 but redis-server could not be started: {e}");
            }
            eprintln!(
                "\n*** SKIPPED: redis tests (no LONET_REDIS_PORT, and no redis-server: {e}) ***\n"
            );
            return None;
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until_blocking("redis-server listening", Duration::from_secs(20), || {
        std::net::TcpStream::connect(addr)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    Some((addr, Some(child)))
}

async fn client(stream: TcpStream) -> MultiplexedConnection {
    let (conn, driver) = MultiplexedConnection::new(&redis::RedisConnectionInfo::default(), stream)
        .await
        .expect("redis handshake");
    tokio::spawn(driver);
    conn
}

async fn ping(conn: &mut MultiplexedConnection) -> String {
    redis::cmd("PING").query_async(conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_redis_through_forward_and_fallthrough() {
    let Some((server, _own)) = redis_server() else {
        return;
    };
    bounded("redis through the bridges", async {
        let ns = Netns::new();
        let key = format!("lonet-bridge-{}", std::process::id());

        // Through `forward`: the model's 127.0.0.1:6379 is the real server.
        let _fwd = ns
            .forward("127.0.0.1:6379".parse().unwrap(), server)
            .unwrap();
        let stream = ns
            .clone()
            .scope(TcpStream::connect("127.0.0.1:6379"))
            .await
            .unwrap();
        assert_eq!(stream.path(), Path::Model);
        let mut conn = client(stream).await;
        assert_eq!(ping(&mut conn).await, "PONG");
        let () = redis::cmd("SET")
            .arg(&key)
            .arg("through the model")
            .query_async(&mut conn)
            .await
            .unwrap();
        let got: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(got, "through the model");

        // A delay fault on the model leg, measured on a PING.
        let delay = ns
            .add_fault(
                Match::port(6379),
                Fault::new().delay(Duration::from_millis(20)),
            )
            .unwrap();
        let t = Instant::now();
        assert_eq!(ping(&mut conn).await, "PONG");
        let rtt = t.elapsed();
        assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
        assert!(rtt < Duration::from_secs(5), "{rtt:?}");
        assert!(delay.stats().matched >= 2);
        drop(delay);

        // Through fallthrough: the real server's own port, which nothing in the model holds.
        let stream = ns.clone().scope(TcpStream::connect(server)).await.unwrap();
        assert_eq!(stream.path(), Path::Os);
        let mut conn = client(stream).await;
        assert_eq!(ping(&mut conn).await, "PONG");
        let got: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(got, "through the model");
        let () = redis::cmd("DEL")
            .arg(&key)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .unwrap();
    })
    .await;
}
