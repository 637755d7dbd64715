//! A thousand connections open at once in one namespace.

use crate::common::*;
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNS: usize = 1000;

#[tokio::test]
async fn a_thousand_concurrent_connections_each_echo_their_own_message_and_free_everything() {
    // Linux: each connection is its own 4-tuple with its own queues; 1000 of them coexist
    // (28232 ephemeral ports, accept backlog 1024), and once all are closed no socket or
    // buffer remains (/proc/net/sockstat: TCP alloc 0, mem 0).
    let ns = Netns::new();
    bounded_for(
        "1000 connections",
        Duration::from_secs(120),
        ns.clone().scope(run(ns.clone())),
    )
    .await;
}

fn message(i: usize) -> Vec<u8> {
    let mut m = format!("connection {i:04} says ").into_bytes();
    let mut tail = vec![0u8; i % 300];
    fill_pattern(i as u64, 0, &mut tail);
    m.extend_from_slice(&tail);
    m
}

async fn run(ns: Netns) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");

    // Echo server: one task per accepted connection, alive until the client closes.
    let accept_ns = ns.clone();
    let server = tokio::spawn(ns.clone().scope(async move {
        let mut conns = Vec::new();
        for _ in 0..CONNS {
            let (mut s, _) = listener.accept().await.expect("accept");
            conns.push(tokio::spawn(accept_ns.clone().scope(async move {
                let (mut r, mut w) = s.split();
                tokio::io::copy(&mut r, &mut w).await.expect("echo copy");
            })));
        }
        // The listener is dropped here; the echo tasks keep their sockets.
        conns
    }));

    let mut clients = Vec::new();
    for i in 0..CONNS {
        clients.push(tokio::spawn(ns.clone().scope(async move {
            let mut s = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {i}: {e}"))?;
            let msg = message(i);
            s.write_all(&msg)
                .await
                .map_err(|e| format!("write {i}: {e}"))?;
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back)
                .await
                .map_err(|e| format!("read {i}: {e}"))?;
            if back != msg {
                return Err(format!("connection {i}: echo differs from the message"));
            }
            Ok::<_, String>(s)
        })));
    }

    // Keep every client open until all have their echo: 1000 connections at once.
    let mut open = Vec::new();
    let mut failures = Vec::new();
    for c in futures::future::join_all(clients).await {
        match c.expect("client task") {
            Ok(s) => open.push(s),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} connections failed, first ones: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert_eq!(open.len(), CONNS);
    let echo_tasks = server.await.expect("server task");

    // Both ends of every connection are live sockets (the listener is gone).
    let s = ns.sockstat();
    assert_eq!(
        (s.inuse as usize, s.alloc as usize),
        (2 * CONNS, 2 * CONNS),
        "(inuse, alloc) with every connection open: {s}"
    );

    drop(open);
    for t in echo_tasks {
        t.await.expect("echo task");
    }
    wait_all_freed(&ns).await;
}
