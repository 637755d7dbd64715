//! Address arguments and resolution, as `tokio::net::ToSocketAddrs`.
//!
//! `localhost` (and any `*.localhost` name, RFC 6761) resolves to 127.0.0.1
//! then ::1 without DNS; other names go to the OS resolver
//! (`tokio::net::lookup_host`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Types that `bind` and `connect` accept: the same set as
/// `tokio::net::ToSocketAddrs` (this trait is sealed, as tokio's is).
pub trait ToSocketAddrs: sealed::ToSocketAddrsPriv {}

pub(crate) mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// How an argument resolves.
    #[derive(Debug)]
    pub enum Resolve {
        /// Addresses known without a lookup.
        Ready(io::Result<Vec<SocketAddr>>),
        /// A host name and port to resolve.
        Lookup(String, u16),
    }

    /// The sealed part of [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait ToSocketAddrsPriv {
        /// Parses the argument.
        fn to_resolve(&self) -> Resolve;
    }
}

use sealed::{Resolve, ToSocketAddrsPriv};

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Whether `host` is a `localhost` name (RFC 6761 §6.3).
fn is_localhost(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// Resolves an argument to its addresses, in order.
pub(crate) async fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    match addr.to_resolve() {
        Resolve::Ready(r) => r,
        Resolve::Lookup(host, port) => lookup(host, port).await,
    }
}

/// Tries `f` on each address `addr` resolves to, in order: the first success,
/// or the last error, as tokio's `bind` and `connect` do.
pub(crate) async fn each_addr<A, T, F, Fut>(addr: A, mut f: F) -> io::Result<T>
where
    A: ToSocketAddrs,
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last_err = None;
    for addr in resolve(addr).await? {
        match f(addr).await {
            Ok(v) => return Ok(v),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| invalid("could not resolve to any address")))
}

async fn lookup(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    if is_localhost(&host) {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]);
    }
    Ok(tokio::net::lookup_host((host.as_str(), port))
        .await?
        .collect())
}

/// Resolves `host` to its addresses, as `tokio::net::lookup_host`, except that
/// `localhost` names resolve to 127.0.0.1 and ::1 without asking the OS.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let addrs: Vec<_> = lonet_transport::net::lookup_host("localhost:80").await?.collect();
/// assert_eq!(addrs[0], "127.0.0.1:80".parse().unwrap());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// `InvalidInput` for an argument that is not an address or `host:port`; the
/// OS resolver's error for a name it cannot resolve.
pub async fn lookup_host<T: ToSocketAddrs>(
    host: T,
) -> io::Result<impl Iterator<Item = SocketAddr>> {
    Ok(resolve(host).await?.into_iter())
}

fn parse_str(s: &str) -> Resolve {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Resolve::Ready(Ok(vec![addr]));
    }
    match s.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port) => Resolve::Lookup(host.to_string(), port),
            Err(_) => Resolve::Ready(Err(invalid("invalid port value"))),
        },
        None => Resolve::Ready(Err(invalid("invalid socket address"))),
    }
}

fn host_port(host: &str, port: u16) -> Resolve {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Resolve::Ready(Ok(vec![SocketAddr::new(ip, port)]));
    }
    Resolve::Lookup(host.to_string(), port)
}

macro_rules! ready_impl {
    ($($t:ty => |$s:ident| $e:expr;)*) => {$(
        impl ToSocketAddrs for $t {}
        impl ToSocketAddrsPriv for $t {
            fn to_resolve(&self) -> Resolve {
                let $s = self;
                Resolve::Ready(Ok(vec![$e]))
            }
        }
    )*};
}

ready_impl! {
    SocketAddr => |s| *s;
    SocketAddrV4 => |s| SocketAddr::V4(*s);
    SocketAddrV6 => |s| SocketAddr::V6(*s);
    (IpAddr, u16) => |s| SocketAddr::new(s.0, s.1);
    (Ipv4Addr, u16) => |s| SocketAddr::new(IpAddr::V4(s.0), s.1);
    (Ipv6Addr, u16) => |s| SocketAddr::new(IpAddr::V6(s.0), s.1);
}

impl ToSocketAddrs for &[SocketAddr] {}
impl ToSocketAddrsPriv for &[SocketAddr] {
    fn to_resolve(&self) -> Resolve {
        Resolve::Ready(Ok(self.to_vec()))
    }
}

impl ToSocketAddrs for str {}
impl ToSocketAddrsPriv for str {
    fn to_resolve(&self) -> Resolve {
        parse_str(self)
    }
}

impl ToSocketAddrs for String {}
impl ToSocketAddrsPriv for String {
    fn to_resolve(&self) -> Resolve {
        parse_str(self)
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl ToSocketAddrsPriv for (&str, u16) {
    fn to_resolve(&self) -> Resolve {
        host_port(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {}
impl ToSocketAddrsPriv for (String, u16) {
    fn to_resolve(&self) -> Resolve {
        host_port(&self.0, self.1)
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrsPriv + ?Sized> ToSocketAddrsPriv for &T {
    fn to_resolve(&self) -> Resolve {
        (**self).to_resolve()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_resolves_without_dns_v4_first() {
        let a = resolve("localhost:8080").await.unwrap();
        assert_eq!(a[0], "127.0.0.1:8080".parse().unwrap());
        assert_eq!(a[1], "[::1]:8080".parse().unwrap());
        let b = resolve(("LOCALHOST", 1)).await.unwrap();
        assert_eq!(b[0].port(), 1);
    }

    #[tokio::test]
    async fn bad_strings_are_invalid_input() {
        for s in ["nonsense", "127.0.0.1:notaport", "127.0.0.1:70000"] {
            let e = resolve(s).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{s}");
        }
    }
}
