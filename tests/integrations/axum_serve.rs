//! `axum::serve` over a `lonet::net::TcpListener` (its `axum::serve::Listener` impl), called
//! through hyper-util's client and `lonet::hyper::Connector`.
//!
//! As over the kernel's loopback: routes and extractors see the same requests, the client's
//! address reaches `ConnectInfo`, and `with_graceful_shutdown` closes the listener at once but
//! lets the request in flight finish.

use crate::common::bounded;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use axum::{Json, Router};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lonet::hyper::{ConnectInfo as ClientConnectInfo, Connector};
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use serde::{Deserialize, Serialize};
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// tokio::spawn in the current namespace (spawned tasks do not inherit it).
fn spawn<F>(f: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(Netns::current().scope(f))
}

#[derive(Debug, Serialize, Deserialize)]
struct User {
    id: u32,
    name: String,
}

#[derive(Deserialize)]
struct Search {
    q: String,
}

/// Hooks for holding a request in flight.
#[derive(Default)]
struct Hooks {
    started: Notify,
    release: Notify,
}

fn app(hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move {
                Json(User {
                    id,
                    name: format!("user-{id}"),
                })
            }),
        )
        .route(
            "/users",
            post(|Json(user): Json<User>| async move { (StatusCode::CREATED, Json(user)) }),
        )
        .route(
            "/search",
            get(|Query(s): Query<Search>| async move { format!("searched {}", s.q) }),
        )
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/wait",
            get(|State(hooks): State<Arc<Hooks>>| async move {
                hooks.started.notify_one();
                hooks.release.notified().await;
                "done"
            }),
        )
        .with_state(hooks)
}

type HttpClient = Client<Connector, Full<Bytes>>;

fn client(h2: bool) -> HttpClient {
    let mut connector = Connector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build(connector)
}

async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
    let res = client.request(req).await.expect("request");
    let status = res.status();
    (
        status,
        res.into_body().collect().await.expect("body").to_bytes(),
    )
}

async fn get_path(client: &HttpClient, addr: SocketAddr, path: &str) -> (StatusCode, Bytes) {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .expect("request");
    send(client, req).await
}

/// `axum::serve` on a fresh listener at `addr`, in a task; returns the bound address.
async fn serve(addr: &str, hooks: Arc<Hooks>) -> (SocketAddr, JoinHandle<io::Result<()>>) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let local = axum::serve::Listener::local_addr(&listener).expect("local_addr");
    // TCP_NODELAY on accepted connections, as tonic sets it: with Nagle on both ends HTTP/2's
    // small frames wait for delayed ACKs (40 ms each), over lonet as over the kernel.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let task = spawn(async move { axum::serve(listener, app(hooks)).await });
    (local, task)
}

async fn in_netns<F: Future>(what: &str, f: F) -> F::Output {
    bounded(what, Netns::new().scope(f)).await
}

#[tokio::test]
async fn path_extraction_routes_users_by_id() {
    in_netns("routing", async {
        let (addr, server) = serve("127.0.0.1:3000", Arc::default()).await;
        let client = client(false);

        let (status, body) = get_path(&client, addr, "/users/42").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], br#"{"id":42,"name":"user-42"}"#);

        // axum's own answers for a bad path parameter and an unknown route.
        assert_eq!(
            get_path(&client, addr, "/users/abc").await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            get_path(&client, addr, "/nope").await.0,
            StatusCode::NOT_FOUND
        );

        let (status, body) = get_path(&client, addr, "/search?q=lo%20net").await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, &b"searched lo net"[..])
        );

        let req = Request::post(format!("http://{addr}/users"))
            .header("content-type", "application/json")
            .body(Full::from(r#"{"id":7,"name":"seven"}"#))
            .unwrap();
        let (status, body) = send(&client, req).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(&body[..], br#"{"id":7,"name":"seven"}"#);
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn two_hundred_requests_over_http1_and_http2() {
    in_netns("200 requests", async {
        let (addr, server) = serve("127.0.0.1:0", Arc::default()).await;
        for h2 in [false, true] {
            let client = client(h2);
            for i in 0..200u32 {
                let (status, body) = get_path(&client, addr, &format!("/users/{i}")).await;
                assert_eq!(status, StatusCode::OK);
                let expected = format!(r#"{{"id":{i},"name":"user-{i}"}}"#);
                assert_eq!(&body[..], expected.as_bytes(), "h2 {h2}");
                let payload: Bytes = (0..(i as usize * 331) % 50_000)
                    .map(|j| (j % 253) as u8)
                    .collect();
                let req = Request::post(format!("http://{addr}/echo"))
                    .body(Full::new(payload.clone()))
                    .unwrap();
                assert_eq!(
                    send(&client, req).await,
                    (StatusCode::OK, payload),
                    "h2 {h2} request {i}"
                );
            }
        }
        // Every request came through lo: the counters saw them.
        let lo = Netns::current().lo_stats();
        assert_eq!(lo.rx_packets, lo.tx_packets);
        assert!(lo.rx_bytes > 200 * 2 * 100, "{lo}");
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn connect_info_sees_the_clients_address() {
    in_netns("connect info", async {
        let listener = TcpListener::bind("127.0.0.5:80").await.unwrap();
        // axum's `Connected` impl for a plain listener exists only for tokio's; the tapped one
        // is generic over `Listener`.
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let app = app(Arc::default()).into_make_service_with_connect_info::<SocketAddr>();
        let server = spawn(async move { axum::serve(listener, app).await });

        let res = client(false)
            .get("http://127.0.0.5/peer".parse().unwrap())
            .await
            .expect("request");
        let client_end = res
            .extensions()
            .get::<ClientConnectInfo>()
            .expect("client connect info")
            .local_addr;
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(std::str::from_utf8(&body).unwrap(), client_end.to_string());
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn with_graceful_shutdown_lets_the_request_in_flight_finish() {
    for h2 in [false, true] {
        in_netns("graceful shutdown", async {
            let hooks = Arc::new(Hooks::default());
            let listener = TcpListener::bind("127.0.0.1:3000").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            let server = spawn(
                axum::serve(listener, app(hooks.clone()))
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .into_future(),
            );
            let client = client(h2);
            let in_flight = spawn({
                let client = client.clone();
                async move { get_path(&client, addr, "/wait").await }
            });
            hooks.started.notified().await;
            stop.send(()).unwrap();
            // axum drops the listener once it sees the signal: new connects are refused.
            loop {
                match TcpStream::connect(addr).await {
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    Ok(_) | Err(_) => tokio::task::yield_now().await,
                }
            }
            assert!(
                !server.is_finished(),
                "the request in flight holds the server"
            );
            hooks.release.notify_one();
            assert_eq!(
                in_flight.await.unwrap(),
                (StatusCode::OK, Bytes::from_static(b"done")),
                "h2 {h2}"
            );
            server
                .await
                .unwrap()
                .expect("serve returns Ok after a graceful shutdown");
        })
        .await;
    }
}

#[tokio::test]
async fn listener_trait_accepts_and_reports_the_address() {
    in_netns("Listener::accept", async {
        let mut listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = axum::serve::Listener::accept(&mut listener).await;
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(stream.peer_addr().unwrap(), peer);
    })
    .await;
}
