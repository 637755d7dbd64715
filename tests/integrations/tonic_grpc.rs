//! tonic over lonet: a gRPC server on `serve_with_incoming(TcpListenerStream)` (lonet's
//! `server::Connected` for `TcpStream`), a channel on `Endpoint::connect_with_connector`
//! (`lonet::hyper::Connector`).
//!
//! As over the kernel's loopback: unary and server-streaming calls, one HTTP/2 connection per
//! channel, the client's address in `Request::remote_addr()`, and a graceful shutdown that lets
//! the call in flight finish.

#[path = "../../proto/greeter.rs"]
mod greeter;

use crate::common::bounded;
use futures::{Stream, StreamExt};
use greeter::greeter_client::GreeterClient;
use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest, HelloStreamRequest};
use http::Uri;
use lonet::hyper::Connector;
use lonet::net::{TcpListener, TcpStream};
use lonet::stream::TcpListenerStream;
use lonet::Netns;
use std::error::Error as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tower::ServiceExt;

/// tokio::spawn in the current namespace (spawned tasks do not inherit it).
fn spawn<F>(f: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(Netns::current().scope(f))
}

/// The greeter; a call named "wait" holds until released.
#[derive(Default)]
struct Svc {
    started: Notify,
    release: Notify,
}

#[tonic::async_trait]
impl Greeter for Arc<Svc> {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let remote_addr = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let name = req.into_inner().name;
        if name == "wait" {
            self.started.notify_one();
            self.release.notified().await;
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello, {name}!"),
            remote_addr,
            index: 0,
        }))
    }

    type SayHelloStreamStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

    async fn say_hello_stream(
        &self,
        req: Request<HelloStreamRequest>,
    ) -> Result<Response<Self::SayHelloStreamStream>, Status> {
        let remote_addr = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let HelloStreamRequest { name, count } = req.into_inner();
        let replies = futures::stream::iter((0..count).map(move |index| {
            Ok(HelloReply {
                message: format!("Hello #{index}, {name}!"),
                remote_addr: remote_addr.clone(),
                index,
            })
        }));
        Ok(Response::new(Box::pin(replies)))
    }
}

/// A running gRPC server.
struct GrpcServer {
    addr: SocketAddr,
    svc: Arc<Svc>,
    accepted: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl GrpcServer {
    async fn start(addr: &str) -> GrpcServer {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let svc = Arc::new(Svc::default());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        // Server::tcp_nodelay applies to tonic's own listener only; set it here, as tonic does.
        let incoming = TcpListenerStream::new(listener).inspect(move |conn| {
            if let Ok(stream) = conn {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nodelay(true);
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = spawn(
            Server::builder()
                .add_service(GreeterServer::new(svc.clone()))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stopped.await;
                }),
        );
        GrpcServer {
            addr,
            svc,
            accepted,
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .expect("server task")
            .expect("server result");
    }
}

/// tonic's `Endpoint` default is TCP_NODELAY on; the connector's (like hyper-util's) is off.
fn connector() -> Connector {
    let mut connector = Connector::new();
    connector.set_nodelay(true);
    connector
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_with_connector(connector())
        .await
        .expect("connect")
}

async fn in_netns<F: Future>(what: &str, f: F) -> F::Output {
    bounded(what, Netns::new().scope(f)).await
}

#[tokio::test]
async fn unary_and_server_streaming_calls_work() {
    in_netns("unary + streaming", async {
        let server = GrpcServer::start("127.0.0.1:50051").await;
        let mut client = GreeterClient::new(channel(server.addr).await);

        let reply = client
            .say_hello(HelloRequest {
                name: "lonet".into(),
            })
            .await
            .expect("unary")
            .into_inner();
        assert_eq!(reply.message, "Hello, lonet!");

        let mut stream = client
            .say_hello_stream(HelloStreamRequest {
                name: "stream".into(),
                count: 100,
            })
            .await
            .expect("streaming")
            .into_inner();
        let mut n = 0;
        while let Some(reply) = stream.message().await.expect("stream item") {
            assert_eq!(reply.index, n);
            assert_eq!(reply.message, format!("Hello #{n}, stream!"));
            n += 1;
        }
        assert_eq!(n, 100);
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn handler_sees_the_clients_address_as_remote_addr() {
    in_netns("remote_addr", async {
        let server = GrpcServer::start("127.0.0.7:50051").await;
        // Record the local address of every connection the channel opens.
        let seen = Arc::new(Mutex::new(Vec::<SocketAddr>::new()));
        let recording = {
            let seen = seen.clone();
            let connector = connector();
            tower::service_fn(move |uri: Uri| {
                let (seen, connector) = (seen.clone(), connector.clone());
                async move {
                    let conn = connector.oneshot(uri).await?;
                    seen.lock().unwrap().push(conn.get_ref().local_addr()?);
                    Ok::<_, io::Error>(conn)
                }
            })
        };
        let channel = Endpoint::from_static("http://127.0.0.7:50051")
            .connect_with_connector(recording)
            .await
            .expect("connect");
        let mut client = GreeterClient::new(channel);
        let reply = client
            .say_hello(HelloRequest { name: "me".into() })
            .await
            .expect("unary")
            .into_inner();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(reply.remote_addr, seen[0].to_string());
        // Linux picks the source from the local route 127.0.0.0/8's `src 127.0.0.1`.
        assert_eq!(seen[0].ip().to_string(), "127.0.0.1");

        let mut stream = client
            .say_hello_stream(HelloStreamRequest {
                name: "me".into(),
                count: 1,
            })
            .await
            .expect("streaming")
            .into_inner();
        let first = stream.message().await.unwrap().expect("one reply");
        assert_eq!(first.remote_addr, seen[0].to_string());
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn two_hundred_concurrent_calls_share_one_http2_connection() {
    in_netns("200 calls", async {
        let server = GrpcServer::start("127.0.0.1:0").await;
        let client = GreeterClient::new(channel(server.addr).await);
        let mut calls = Vec::new();
        for i in 0..200 {
            let mut client = client.clone();
            calls.push(spawn(async move {
                let name = format!("caller {i} {}", "x".repeat(i * 50));
                let reply = client
                    .say_hello(HelloRequest { name: name.clone() })
                    .await
                    .expect("unary")
                    .into_inner();
                assert_eq!(reply.message, format!("Hello, {name}!"));
            }));
        }
        for c in calls {
            c.await.expect("call task");
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_with_connection_refused() {
    in_netns("refused", async {
        let err = Endpoint::from_static("http://127.0.0.1:50051")
            .connect_with_connector(connector())
            .await
            .expect_err("nothing listens");
        let mut source = err.source();
        let mut refused = false;
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                refused = io.kind() == io::ErrorKind::ConnectionRefused;
            }
            source = e.source();
        }
        assert!(refused, "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn serve_with_incoming_shutdown_lets_the_call_in_flight_finish() {
    in_netns("graceful shutdown", async {
        let server = GrpcServer::start("127.0.0.1:50051").await;
        let addr = server.addr;
        let svc = server.svc.clone();
        let mut client = GreeterClient::new(channel(addr).await);
        let in_flight = spawn(async move {
            client
                .say_hello(HelloRequest {
                    name: "wait".into(),
                })
                .await
                .map(|r| r.into_inner().message)
        });
        svc.started.notified().await;
        let shutdown = spawn(server.shutdown());
        // tonic drops the incoming stream (and so the listener) once the signal fires.
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                Ok(_) | Err(_) => tokio::task::yield_now().await,
            }
        }
        assert!(
            !shutdown.is_finished(),
            "the call in flight holds the server"
        );
        svc.release.notify_one();
        assert_eq!(
            in_flight.await.unwrap().expect("call in flight"),
            "Hello, wait!"
        );
        shutdown.await.expect("graceful shutdown finished");
    })
    .await;
}
