//! tonic servers over the modeled loopback (feature `tonic`).
//!
//! Clients need nothing here: [`crate::hyper::Connector`] goes into
//! `Endpoint::connect_with_connector`.

use crate::net::TcpStream;
use ::tonic::transport::server::{Connected, TcpConnectInfo};

/// Lets tonic's `Server::serve_with_incoming` take lonet connections (for
/// example a [`TcpListenerStream`](crate::stream::TcpListenerStream)). The
/// connect info is tonic's own `TcpConnectInfo`, so handlers see the client's
/// address in `Request::remote_addr()` and the server's in
/// `Request::local_addr()`, as over tokio's `TcpStream`.
impl Connected for TcpStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local_addr().ok(),
            remote_addr: self.peer_addr().ok(),
        }
    }
}
