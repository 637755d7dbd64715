//! A QUIC echo over lonet's UDP: a quinn server and client in one process,
//! talking through the modeled loopback.
//!
//! The server's certificate is self-signed, made at run time (rcgen), and
//! the client trusts exactly it. The client opens a bidirectional stream,
//! sends a message, reads the echo back and closes; the server ends when the
//! client has closed. Then the namespace's UDP counters (`netstat -s`), its
//! sockets (`ss -tuan`) and `/proc/net/sockstat` are printed, and the run
//! ends by itself.
//!
//! ```sh
//! cargo run --release --example quic_echo --features quinn
//! ```

use lonet::Netns;
use quinn::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use std::error::Error;
use std::sync::Arc;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let ns = Netns::new();
    ns.clone().scope(run()).await?;
    println!("\n$ netstat -s (Udp, Icmp)\n{}", ns.udp_stats());
    Ok(())
}

async fn run() -> Result<(), BoxError> {
    // A certificate for "localhost", made now.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());

    let server_config = quinn::ServerConfig::with_single_cert(vec![cert.clone()], key.into())?;
    let server = lonet::quinn::server(server_config, "127.0.0.1:4433").await?;
    let server_addr = server.local_addr()?;
    println!("server listening on {server_addr} (UDP, in the model)");

    let mut roots = quinn::rustls::RootCertStore::empty();
    roots.add(cert)?;
    let client_config = quinn::ClientConfig::with_root_certificates(Arc::new(roots))?;
    let mut client = lonet::quinn::client("127.0.0.1:0").await?;
    client.set_default_client_config(client_config);

    // The server: one connection, one stream, echoed; then wait for the
    // client to close.
    let serving = tokio::spawn(Netns::current().scope(async move {
        let incoming = server.accept().await.ok_or("the endpoint closed")?;
        let conn = incoming.await?;
        let (mut send, mut recv) = conn.accept_bi().await?;
        let data = recv.read_to_end(1 << 20).await?;
        send.write_all(&data).await?;
        send.finish()?;
        conn.closed().await;
        server.wait_idle().await;
        Ok::<_, BoxError>(())
    }));

    let conn = client.connect(server_addr, "localhost")?.await?;
    println!(
        "connected: {} -> {}",
        client.local_addr()?,
        conn.remote_address()
    );
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(b"hello over QUIC, through the modeled lo")
        .await?;
    send.finish()?;
    let echoed = recv.read_to_end(1 << 20).await?;
    println!("echoed: {}", String::from_utf8_lossy(&echoed));

    let ns = Netns::current();
    println!("\n$ ss -tuan\n{}", ns.sockets());
    println!("\n$ cat /proc/net/sockstat\n{}", ns.sockstat());
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    serving.await??;
    Ok(())
}
