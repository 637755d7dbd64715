//! hyper over a transport: HTTP/1.1 keep-alive and HTTP/2 with concurrent
//! streams, requests per second.

use crate::{join_err, poisoned, spawn_in, Transport};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lonet::Netns;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

/// Concurrent HTTP/2 streams on the one connection.
pub const H2_STREAMS: u64 = 100;
/// The response body of the hyper workloads.
pub const BODY: &[u8] = b"hello, world";

fn hyper_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("hyper: {e}"))
}

/// A hyper executor that spawns into a lonet namespace when there is one.
#[derive(Clone)]
pub struct Exec(pub Option<Netns>);

impl<F> hyper::rt::Executor<F> for Exec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        spawn_in(self.0.clone(), fut);
    }
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}

/// hyper HTTP/1.1 with keep-alive: one connection, requests one after the
/// other (`GET /`, a 12-byte body back, read to the end). One iteration is
/// one request.
pub struct Http1 {
    sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
    ns: Option<Netns>,
}

impl Http1 {
    /// Connects, starts the server connection and the client connection tasks.
    pub async fn new<T: Transport>(t: &T) -> io::Result<Self> {
        let (c, s) = t.pair().await?;
        spawn_in(t.ns(), async move {
            // Ends with an error or Ok when the client goes away.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), service_fn(hello))
                .await;
        });
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(c))
            .await
            .map_err(hyper_err)?;
        spawn_in(t.ns(), async move {
            let _ = conn.await;
        });
        Ok(Http1 {
            sender: Some(sender),
            ns: t.ns(),
        })
    }

    /// `n` requests; the time they took.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let mut sender = self.sender.take().ok_or_else(poisoned)?;
        let (sender, took) = spawn_in(self.ns.clone(), async move {
            let t0 = Instant::now();
            for _ in 0..n {
                sender.ready().await.map_err(hyper_err)?;
                let req = Request::builder()
                    .uri("/")
                    .header(hyper::header::HOST, "bench")
                    .body(Empty::<Bytes>::new())
                    .map_err(hyper_err)?;
                let resp = sender.send_request(req).await.map_err(hyper_err)?;
                let body = resp.into_body().collect().await.map_err(hyper_err)?;
                if body.to_bytes().len() != BODY.len() {
                    return Err(io::Error::other("http1: short body"));
                }
            }
            io::Result::Ok((sender, t0.elapsed()))
        })
        .await
        .map_err(join_err)??;
        self.sender = Some(sender);
        Ok(took)
    }
}

/// hyper HTTP/2: one connection, [`H2_STREAMS`] tasks each sending requests
/// one after the other, so that many streams are open at once. One iteration
/// is one request.
pub struct Http2 {
    sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    ns: Option<Netns>,
}

impl Http2 {
    /// Connects, starts the server connection and the client connection tasks.
    pub async fn new<T: Transport>(t: &T) -> io::Result<Self> {
        let (c, s) = t.pair().await?;
        let exec = Exec(t.ns());
        let server_exec = exec.clone();
        spawn_in(t.ns(), async move {
            let _ = hyper::server::conn::http2::Builder::new(server_exec)
                .serve_connection(TokioIo::new(s), service_fn(hello))
                .await;
        });
        let (sender, conn) = hyper::client::conn::http2::handshake(exec, TokioIo::new(c))
            .await
            .map_err(hyper_err)?;
        spawn_in(t.ns(), async move {
            let _ = conn.await;
        });
        Ok(Http2 { sender, ns: t.ns() })
    }

    /// At least `n` requests over [`H2_STREAMS`] concurrent streams (rounded
    /// up to a multiple of it); the time, scaled to exactly `n` requests.
    pub async fn run(&mut self, n: u64) -> io::Result<Duration> {
        let per_stream = n.div_ceil(H2_STREAMS).max(1);
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(H2_STREAMS as usize);
        for _ in 0..H2_STREAMS {
            let mut sender = self.sender.clone();
            tasks.push(spawn_in(self.ns.clone(), async move {
                for _ in 0..per_stream {
                    sender.ready().await.map_err(hyper_err)?;
                    let req = Request::builder()
                        .uri("http://bench/")
                        .body(Empty::<Bytes>::new())
                        .map_err(hyper_err)?;
                    let resp = sender.send_request(req).await.map_err(hyper_err)?;
                    let body = resp.into_body().collect().await.map_err(hyper_err)?;
                    if body.to_bytes().len() != BODY.len() {
                        return Err(io::Error::other("http2: short body"));
                    }
                }
                io::Result::Ok(())
            }));
        }
        for t in tasks {
            t.await.map_err(join_err)??;
        }
        let took = t0.elapsed();
        let done = per_stream * H2_STREAMS;
        Ok(took.mul_f64(n as f64 / done as f64))
    }
}
