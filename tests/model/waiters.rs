//! Several tasks waiting on one socket are all woken, as on a real socket.

use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn two_tasks_waiting_for_readable_are_both_woken() {
    // Linux: every task blocked in poll/epoll on a socket is woken by sk_data_ready.
    let ns = Netns::new();
    let body = ns.clone().scope(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        // An accepted stream starts readable, as tokio's does: a WouldBlock clears that,
        // so the waiters below really wait for the data.
        let e = s.try_read(&mut [0; 8]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        let s = Arc::new(s);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.readable().await })
            })
            .collect();
        // Let both tasks register before the data arrives.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "woken before any data"
        );
        c.write_all(b"wake").await.unwrap();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
    });
    tokio::time::timeout(Duration::from_secs(10), body)
        .await
        .expect("a waiter was never woken");
}
