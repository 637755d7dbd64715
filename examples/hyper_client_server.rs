//! hyper on lonet: a hyper-util server and client talking over the modeled loopback.
//!
//! Run it with `cargo run --example hyper_client_server --features hyper`.
//!
//! The server is hyper-util's `auto::Builder` (HTTP/1 and HTTP/2 on one port) serving
//! `lonet::net::TcpStream`s wrapped in `TokioIo`, exactly as it serves tokio's. The clients are
//! hyper-util's legacy `Client` over `lonet::hyper::Connector`, once over HTTP/1.1 and once over
//! HTTP/2. At the end the server shuts down gracefully and the namespace's counters show what
//! crossed `lo`.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use lonet::hyper::{ConnectInfo, Connector};
use lonet::net::TcpListener;
use lonet::Netns;
use std::convert::Infallible;
use tokio::sync::oneshot;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `/` says hello, `/echo` sends the body back, anything else is 404.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let version = req.version();
    let res = match req.uri().path() {
        "/" => Response::new(Full::from(format!("hello over {version:?}\n"))),
        "/echo" => match req.into_body().collect().await {
            Ok(body) => Response::new(Full::new(body.to_bytes())),
            Err(e) => Response::builder()
                .status(400)
                .body(Full::from(format!("bad body: {e}")))
                .unwrap_or_default(),
        },
        _ => Response::builder()
            .status(404)
            .body(Full::from("not found\n"))
            .unwrap_or_default(),
    };
    Ok(res)
}

/// Accepts until `stop` fires, then shuts every connection down gracefully.
async fn server(listener: TcpListener, mut stop: oneshot::Receiver<()>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        eprintln!("server: accept error: {e}");
                        continue;
                    }
                };
                println!("server: accepted {peer}");
                let _ = stream.set_nodelay(true);
                let conn = builder.serve_connection(TokioIo::new(stream), service_fn(handle));
                let conn = graceful.watch(conn.into_owned());
                // The connection task only uses a socket that already exists: no scope needed.
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        eprintln!("server: connection error: {e:?}");
                    }
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    println!("server: all connections closed");
}

async fn run(ns: Netns) -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:8080").await?;
    println!("server: listening on http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel();
    let server = tokio::spawn(ns.clone().scope(server(listener, stopped)));

    let mut clients = Vec::new();
    for http2 in [false, true] {
        // Connector::new() captures this namespace: the client's pool tasks connect in it too.
        let mut connector = Connector::new();
        connector.set_nodelay(true);
        let client: Client<Connector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build(connector);

        let res = client.get("http://localhost:8080/".parse()?).await?;
        let info = res.extensions().get::<ConnectInfo>().copied();
        let body = res.into_body().collect().await?.to_bytes();
        if let Some(info) = info {
            println!(
                "client: {} -> {}: {}",
                info.local_addr,
                info.remote_addr,
                String::from_utf8_lossy(&body).trim_end()
            );
        }

        let payload = Bytes::from(vec![b'x'; 100_000]);
        let req = Request::post("http://localhost:8080/echo").body(Full::new(payload.clone()))?;
        let echoed = client
            .request(req)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        assert_eq!(echoed, payload);
        println!("client: echoed {} bytes", echoed.len());

        let res = client.get("http://localhost:8080/missing".parse()?).await?;
        println!("client: GET /missing -> {}", res.status());
        clients.push(client);
    }

    // Server first: it closes its idle connections (HTTP/2: GOAWAY), then the clients go.
    let _ = stop.send(());
    server.await?;
    drop(clients);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let ns = Netns::new();
    ns.clone().scope(run(ns.clone())).await?;

    println!("\n$ ip -s link show lo");
    println!("{}", ns.lo_stats());
    println!("$ netstat -s");
    println!("{}", ns.tcp_stats());
    Ok(())
}
