//! tonic on lonet: a gRPC greeter with a unary and a server-streaming method.
//!
//! Run it with `cargo run --example tonic_greeter --features tonic`.
//!
//! The server is `Server::builder().serve_with_incoming_shutdown(TcpListenerStream::new(..))`
//! over a `lonet::net::TcpListener`; the client is a `Channel` from
//! `Endpoint::connect_with_connector(lonet::hyper::Connector)`. The service code is generated
//! from `proto/greeter.proto` and checked in as `proto/greeter.rs` (no protoc at build time).

#[path = "../proto/greeter.rs"]
mod greeter;

use futures::{Stream, StreamExt};
use greeter::greeter_client::GreeterClient;
use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest, HelloStreamRequest};
use lonet::hyper::Connector;
use lonet::net::TcpListener;
use lonet::stream::TcpListenerStream;
use lonet::Netns;
use std::pin::Pin;
use tokio::sync::oneshot;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Default)]
struct MyGreeter;

#[tonic::async_trait]
impl Greeter for MyGreeter {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        // lonet's `Connected` impl fills in tonic's TcpConnectInfo.
        let remote_addr = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let name = req.into_inner().name;
        println!("server: SayHello({name:?}) from {remote_addr}");
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
        println!("server: SayHelloStream({name:?}, {count}) from {remote_addr}");
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

async fn run(ns: Netns) -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:50051").await?;
    println!("server: listening on {}", listener.local_addr()?);
    // tonic sets TCP_NODELAY on the connections of its own listener; do the same here.
    let incoming = TcpListenerStream::new(listener).inspect(|conn| {
        if let Ok(stream) = conn {
            let _ = stream.set_nodelay(true);
        }
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        ns.scope(
            Server::builder()
                .add_service(GreeterServer::new(MyGreeter))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stopped.await;
                }),
        ),
    );

    // Connector::new() captures this namespace; tonic's channel connects from its own task.
    let mut connector = Connector::new();
    connector.set_nodelay(true); // tonic's Endpoint default
    let channel = Endpoint::from_static("http://127.0.0.1:50051")
        .connect_with_connector(connector)
        .await?;
    let mut client = GreeterClient::new(channel);

    let reply = client
        .say_hello(HelloRequest {
            name: "lonet".into(),
        })
        .await?
        .into_inner();
    println!(
        "client: {} (server saw us as {})",
        reply.message, reply.remote_addr
    );

    let mut stream = client
        .say_hello_stream(HelloStreamRequest {
            name: "stream".into(),
            count: 5,
        })
        .await?
        .into_inner();
    while let Some(reply) = stream.message().await? {
        println!("client: [{}] {}", reply.index, reply.message);
    }

    let _ = stop.send(());
    server.await??;
    println!("server: shut down gracefully");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let ns = Netns::new();
    ns.clone().scope(run(ns.clone())).await?;
    println!("\n$ ip -s link show lo\n{}", ns.lo_stats());
    println!("$ netstat -s\n{}", ns.tcp_stats());
    Ok(())
}
