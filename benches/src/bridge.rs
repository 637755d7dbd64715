//! The bridges under load: [`Exposed`], a transport whose client end is a
//! real socket of the machine reaching a listener of the model through
//! `lonet::bridge::NetnsBridgeExt::expose` (a kernel leg, the relay, a model
//! leg), and [`wrk`], a second process (`wrk`, when installed) against an
//! HTTP service of the model exposed on the machine's loopback.

use crate::{spawn_in, Listening, Transport};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lonet::bridge::NetnsBridgeExt;
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// lonet's listener on 127.0.0.1, reached from the machine through `expose`:
/// the client end is a kernel socket connected to the exposed port, the
/// server end the connection of the model the relay opened.
pub struct Exposed {
    /// The namespace of the listener and of the relay's model legs.
    pub ns: Netns,
    listener: TcpListener,
    exposed: lonet::bridge::Exposed,
}

impl Exposed {
    /// A kernel socket connected to the exposed port.
    async fn connect(&self) -> io::Result<TcpStream> {
        let s = tokio::net::TcpStream::connect(self.exposed.os_addr()).await?;
        TcpStream::from_std(s.into_std()?)
    }
}

impl Transport for Exposed {
    type S = TcpStream;
    const NAME: &'static str = "lonet via expose";
    const ID: &'static str = "lonet_expose";

    async fn setup() -> io::Result<Self> {
        let ns = Netns::new();
        let listener = ns.clone().scope(TcpListener::bind("127.0.0.1:0")).await?;
        let exposed = ns.expose(listener.local_addr()?)?;
        Ok(Exposed {
            ns,
            listener,
            exposed,
        })
    }

    async fn pair(&self) -> io::Result<(Self::S, Self::S)> {
        let (c, a) = tokio::join!(self.connect(), self.listener.accept());
        let (c, (a, _)) = (c?, a?);
        c.set_nodelay(true)?;
        a.set_nodelay(true)?;
        Ok((c, a))
    }

    fn ns(&self) -> Option<Netns> {
        Some(self.ns.clone())
    }
}

impl Listening for Exposed {
    async fn connect_accept_close(&self) -> io::Result<()> {
        let (c, a) = tokio::join!(self.connect(), self.listener.accept());
        drop(c?);
        drop(a?);
        Ok(())
    }
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(crate::BODY))))
}

/// Serves HTTP/1.1 `hello` on every connection `listener` accepts, in `ns`.
fn serve(ns: Option<Netns>, listener: TcpListener) {
    spawn_in(ns.clone(), async move {
        while let Ok((s, _)) = listener.accept().await {
            spawn_in(ns.clone(), async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service_fn(hello))
                    .await;
            });
        }
    });
}

/// Runs `wrk -t1 -c{conns} -d{secs}s` against `addr`: its requests per
/// second, or `None` when wrk is not installed.
async fn run_wrk(addr: SocketAddr, conns: usize, dur: Duration) -> io::Result<Option<f64>> {
    let out = tokio::process::Command::new("wrk")
        .arg("-t1")
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", dur.as_secs().max(1)))
        .arg(format!("http://{addr}/"))
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(io::Error::other(format!("wrk failed: {text}")));
    }
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("errors:"))
    {
        return Err(io::Error::other(format!("wrk saw errors: {line}")));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("no Requests/sec in wrk's output: {text}")))
}

/// `wrk` (another process) against a hyper HTTP/1.1 service (the server
/// axum runs underneath) listening in a namespace and exposed on the
/// machine's loopback: requests per second, or `None` without wrk.
pub async fn wrk(conns: usize, dur: Duration) -> io::Result<Option<f64>> {
    let ns = Netns::new();
    let listener = ns.clone().scope(TcpListener::bind("127.0.0.1:0")).await?;
    let exposed = ns.expose(listener.local_addr()?)?;
    serve(Some(ns), listener);
    run_wrk(exposed.os_addr(), conns, dur).await
}

/// The same `wrk` against the same service on a kernel listener on
/// 127.0.0.1: the reference for [`wrk`].
pub async fn wrk_kernel(conns: usize, dur: Duration) -> io::Result<Option<f64>> {
    let std = std::net::TcpListener::bind("127.0.0.1:0")?;
    std.set_nonblocking(true)?;
    let addr = std.local_addr()?;
    serve(None, TcpListener::from_std(std)?);
    run_wrk(addr, conns, dur).await
}
