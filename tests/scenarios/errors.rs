// Errors on connect and bind.

/// connect() to a loopback port nobody listens on.
pub async fn connect_without_listener() -> Trace {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("local_addr").port()
        // dropped here: nobody listens on `port` any more
    };
    vec![(
        "connect",
        done(&TcpStream::connect(("127.0.0.1", port)).await),
    )]
}

/// bind() to the address of a live listener.
pub async fn bind_in_use() -> Trace {
    let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = first.local_addr().expect("local_addr");
    let second = TcpListener::bind(addr).await;
    vec![("bind the same address again", done(&second))]
}

/// bind() to an address no interface has (TEST-NET-1; bind only, no traffic).
pub async fn bind_non_local() -> Trace {
    vec![(
        "bind 192.0.2.1:0",
        done(&TcpListener::bind("192.0.2.1:0").await),
    )]
}
