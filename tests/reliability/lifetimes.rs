//! Teardown: a namespace dropped with everything live (connections with data in flight,
//! orphans in FIN_WAIT, TIME_WAIT entries, a fault holding packets, a capture) is freed; a
//! runtime dropped in the middle of transfers leaves its peers seeing what Linux shows when a
//! process dies. (Namespaces created and dropped in a loop: tests/namespace_loop.rs, a binary of
//! its own, since it measures the process's memory.)

use crate::common::*;
use lonet::capture::CaptureOptions;
use lonet::fault::{Fault, Match};
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::io::ErrorKind;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn namespace_dropped_with_everything_live() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let weak = rt.block_on(async {
        let ns = Netns::new();
        let weak = ns.downgrade();
        let capture = ns.capture_to_memory(CaptureOptions::new());
        ns.clone()
            .scope(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let mut open = Vec::new();
                for _ in 0..3 {
                    let (c, s) = tokio::join!(TcpStream::connect(addr), listener.accept());
                    open.push((c.unwrap(), s.unwrap().0));
                }
                // TIME_WAIT: the client closes first, the server reads the EOF and closes.
                let (c, mut s) = open.pop().unwrap();
                drop(c);
                assert_eq!(s.read(&mut [0; 8]).await.unwrap(), 0);
                drop(s);
                // An orphan in FIN_WAIT2: the client closes, the server keeps its end open.
                let (c, s_close_wait) = open.pop().unwrap();
                drop(c);
                // Data in flight and unread, through a fault that holds packets back.
                let (mut c, s_live) = open.pop().unwrap();
                let fault = ns
                    .add_fault(Match::all(), Fault::new().delay(Duration::from_millis(30)))
                    .unwrap();
                c.write_all(&pattern_vec(7, 200_000)).await.unwrap();
                let held = wait_until("the fault holds packets", Duration::from_secs(10), || {
                    let q = ns.qdisc();
                    let backlog: u64 = q.netem.iter().map(|n| n.stats.backlog_packets).sum();
                    if backlog > 0 {
                        Ok(backlog)
                    } else {
                        Err(q.to_string())
                    }
                })
                .await;
                let s = ns.sockstat();
                assert!(s.tw >= 1 && s.orphan >= 1 && s.mem > 0, "{s}");
                assert!(held > 0 && capture.packets() > 0);
                drop((listener, c, s_close_wait, s_live, fault, capture));
            })
            .await;
        weak
    });
    drop(rt);
    wait_freed(&weak);
}

/// Packets held for a long time by a fault do not keep a namespace nobody can reach any
/// more: once the rule is lifted, the orphans' retransmissions get through and finish their
/// close, and with its last handle and socket gone the namespace is freed with the packets
/// still held (as Linux frees a network namespace once nothing holds it).
#[test]
fn namespace_dropped_with_long_timers() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let weak = rt.block_on(async {
        let ns = Netns::new();
        let weak = ns.downgrade();
        ns.clone()
            .scope(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let (c, s) = tokio::join!(TcpStream::connect(addr), listener.accept());
                let (mut c, s) = (c.unwrap(), s.unwrap().0);
                // Data held for 30 s by netem, then the sender closes: an orphan with a
                // retransmission timer and a netem deadline far away.
                let slow = ns
                    .add_fault(Match::all(), Fault::new().delay(Duration::from_secs(30)))
                    .unwrap();
                c.write_all(&[1; 1000]).await.unwrap();
                drop((c, s, listener));
                wait_until("packets held", Duration::from_secs(10), || {
                    let q = ns.qdisc();
                    let held: u64 = q.netem.iter().map(|n| n.stats.backlog_packets).sum();
                    if held > 0 {
                        Ok(())
                    } else {
                        Err(q.to_string())
                    }
                })
                .await;
                // The packets stay queued after the rule is lifted.
                drop(slow);
            })
            .await;
        weak
    });
    drop(rt);
    wait_freed(&weak);
}

/// What a peer of the dead runtime saw.
#[derive(Debug)]
enum Seen {
    /// Read to the end: this many pattern bytes, then EOF.
    Eof(u64),
    /// Its writes ended with this error.
    WriteErr(ErrorKind),
}

#[test]
fn runtime_dropped_mid_transfer() {
    let ns = Netns::new();
    let weak = ns.downgrade();
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let survivor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listener = survivor
        .block_on(ns.clone().scope(TcpListener::bind("127.0.0.1:0")))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    const N: usize = 8;
    // On the doomed runtime: even connections write without end, odd ones never read.
    for i in 0..N {
        let ns = ns.clone();
        doomed.spawn(async move {
            let mut sock = ns.scope(TcpStream::connect(addr)).await.unwrap();
            sock.write_all(&[i as u8]).await.unwrap();
            if i % 2 == 0 {
                let mut off = 0u64;
                let mut buf = vec![0; 16 * 1024];
                loop {
                    fill_pattern(i as u64, off, &mut buf);
                    if sock.write_all(&buf).await.is_err() {
                        return;
                    }
                    off += buf.len() as u64;
                }
            } else {
                std::future::pending::<()>().await;
            }
        });
    }
    let peers = survivor.block_on(async {
        let mut peers = Vec::new();
        for _ in 0..N {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut id = [0];
            s.read_exact(&mut id).await.unwrap();
            peers.push((id[0] as usize, s));
        }
        // Traffic is flowing both ways: the survivor has read some and written some.
        for (i, s) in &mut peers {
            if *i % 2 == 0 {
                let mut buf = vec![0; 4096];
                s.read_exact(&mut buf).await.unwrap();
            } else {
                s.write_all(&[1; 4096]).await.unwrap();
            }
        }
        peers
    });
    drop(doomed); // the process dies: its sockets are closed
    let seen = survivor.block_on(async {
        let mut seen = Vec::new();
        for (i, mut s) in peers {
            let r = bounded("a peer of the dead runtime", async {
                if i % 2 == 0 {
                    // Its writer's data then EOF (the dead end had nothing unread: a FIN).
                    let mut check = PatternCheck::new(i as u64);
                    check.check(&pattern_vec(i as u64, 4096)).unwrap();
                    let mut buf = vec![0; 65536];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) => return Seen::Eof(check.offset()),
                            Ok(n) => check.check(&buf[..n]).unwrap(),
                            Err(e) => panic!("peer {i}: read: {e}"),
                        }
                    }
                } else {
                    // The dead end had unread data: a reset, so writes fail.
                    loop {
                        if let Err(e) = s.write_all(&[2; 4096]).await {
                            return Seen::WriteErr(e.kind());
                        }
                    }
                }
            })
            .await;
            seen.push(r);
        }
        seen
    });
    for (i, s) in seen.iter().enumerate() {
        match s {
            Seen::Eof(n) => assert!(*n >= 4096, "peer {i}: {s:?}"),
            Seen::WriteErr(k) => assert!(
                matches!(k, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                "peer {i}: {s:?}"
            ),
        }
    }
    drop(listener);
    survivor.block_on(wait_all_freed(&ns));
    let s = ns.sockstat();
    assert_eq!((s.inuse, s.orphan, s.alloc, s.mem), (0, 0, 0, 0), "{s}");
    drop(ns);
    wait_freed(&weak);
}

/// Orphans retransmitting into a partition outlive the namespace's last handle, as on Linux:
/// a socket holds its network namespace until it is freed, so `ip netns del` on a namespace
/// with orphans in FIN_WAIT1 leaves them retransmitting (checked on this machine's 6.18
/// kernel: `/proc/net/sockstat` still counted both orphans a minute after the namespace was
/// deleted). They give up after `tcp_orphan_retries`, and then the namespace and its thread
/// go.
#[test]
fn orphans_outlive_the_last_handle_until_they_give_up() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ns = Netns::new();
    // Three retransmissions: 200 + 400 + 800 ms before the last one gives up.
    ns.set_sysctl(|s| s.tcp_orphan_retries = 3).unwrap();
    let weak = ns.downgrade();
    let cut = rt.block_on(ns.clone().scope(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (c, s) = tokio::join!(
            TcpStream::connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let (mut c, s) = (c.unwrap(), s.unwrap().0);
        let cut = ns.add_fault(Match::all(), Fault::partition()).unwrap();
        c.write_all(&[1; 1000]).await.unwrap();
        drop((c, s, listener)); // two orphans, their data and FINs lost
        cut
    }));
    drop(ns);
    let alive = weak.upgrade().expect("the orphans hold their namespace");
    assert_eq!(alive.sockstat().orphan, 2, "{}", alive.sockets());
    drop(alive);
    wait_freed(&weak);
    drop(cut);
}
