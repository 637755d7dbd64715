//! An axum service in a namespace, reached from clients of the machine that know nothing of
//! lonet (reqwest, a blocking `std::net` client) through `expose`, with a fault on the model
//! leg measured on the wall clock.

use crate::common::bounded;
use axum::routing::get;
use axum::Router;
use lonet::bridge::{Exposed, NetnsBridgeExt};
use lonet::fault::{Fault, Match};
use lonet::net::TcpListener;
use lonet::Netns;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// An axum service on the model's 127.0.0.1:8080, exposed on the machine's loopback.
async fn service() -> (Netns, Exposed) {
    let ns = Netns::new();
    let listener = ns
        .clone()
        .scope(TcpListener::bind("127.0.0.1:8080"))
        .await
        .unwrap();
    let app = Router::new().route("/", get(|| async { "hello from the model" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let exposed = ns.expose("127.0.0.1:8080".parse().unwrap()).unwrap();
    (ns, exposed)
}

/// One GET with a blocking std client, on a thread of its own.
fn std_get(addr: SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

const DELAY: Duration = Duration::from_millis(20);

fn check_rtt(rtt: Duration) {
    // The request and the response each cross the model's lo once, each delayed.
    assert!(rtt >= 2 * DELAY, "{rtt:?}");
    assert!(rtt < Duration::from_secs(5), "{rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_reaches_an_axum_service_of_the_model() {
    let (ns, exposed) = service().await;
    bounded("reqwest through expose", async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://{}/", exposed.os_addr());
        let body = http.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "hello from the model");

        let fault = ns
            .add_fault(Match::port(8080), Fault::new().delay(DELAY))
            .unwrap();
        let t = Instant::now();
        let resp = http.get(&url).send().await.unwrap();
        assert!(resp.status().is_success());
        assert_eq!(resp.text().await.unwrap(), "hello from the model");
        check_rtt(t.elapsed());
        assert!(fault.stats().matched >= 2, "{:?}", fault.stats());
    })
    .await;
    assert!(ns.tcp_stats().passive_opens >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_std_client_reaches_an_axum_service_of_the_model() {
    let (ns, exposed) = service().await;
    let addr = exposed.os_addr();
    bounded("std through expose", async {
        let text = tokio::task::spawn_blocking(move || std_get(addr))
            .await
            .unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.ends_with("hello from the model"), "{text}");

        let _fault = ns
            .add_fault(Match::port(8080), Fault::new().delay(DELAY))
            .unwrap();
        let t = Instant::now();
        let text = tokio::task::spawn_blocking(move || std_get(addr))
            .await
            .unwrap();
        // Connect, request, response and close all cross the delayed model leg.
        check_rtt(t.elapsed());
        assert!(text.ends_with("hello from the model"), "{text}");
    })
    .await;
}
