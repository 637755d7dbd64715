//! Memory: bytes held per idle connection, and the peak held while a writer
//! faces a reader that never reads.
//!
//! Bytes are counted by [`Counting`], a global allocator around the system
//! one that counts only between [`count_start`] and [`count_stop`]. It counts
//! nothing unless the program installs it (the `compare` binary does:
//! `#[global_allocator] static GLOBAL: Counting = Counting;`). It sees
//! lonet's buffers, which are ordinary heap memory, but not the kernel's
//! socket buffers.

use crate::bulk::CHUNK;
use crate::{spawn_in, Transport};
use lonet::stats::Sockstat;
use lonet::Netns;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

// While COUNTING is on, LIVE is the bytes allocated minus the bytes freed
// since it was reset, and PEAK the highest LIVE seen.
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

#[inline]
fn count(delta: i64) {
    if COUNTING.load(Relaxed) {
        let now = LIVE.fetch_add(delta, Relaxed) + delta;
        PEAK.fetch_max(now, Relaxed);
    }
}

/// A counting global allocator around [`System`]: install it with
/// `#[global_allocator]` to have [`count_start`] and [`count_stop`] count.
pub struct Counting;

// The only unsafe code of the harness: a global allocator cannot be written
// without it.
// SAFETY: every method forwards to `System` with the caller's own arguments,
// unchanged, so `System`'s guarantees are ours; the bookkeeping around it
// only touches atomics and never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), which
        // is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`,
        // with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`, and `new_size` is
        // valid for it, as the caller guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Starts counting from zero (only with [`Counting`] installed).
pub fn count_start() {
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
}

/// Stops counting: (bytes still held, peak bytes held) since [`count_start`].
pub fn count_stop() -> (i64, i64) {
    COUNTING.store(false, Relaxed);
    (LIVE.load(Relaxed), PEAK.load(Relaxed))
}

/// What [`idle`] measured.
pub struct Idle {
    /// Connections opened (and held, idle) while counting.
    pub connections: usize,
    /// Bytes they held, both ends together.
    pub held: i64,
    /// lonet's sockstat with the connections open (lonet only).
    pub sockstat: Option<Sockstat>,
}

impl Idle {
    /// Bytes held per connection, both ends.
    pub fn per_connection(&self) -> f64 {
        self.held as f64 / self.connections as f64
    }
}

/// Bytes held by `n` idle connections, counted by the allocator across
/// opening them; also lonet's sockstat with them open.
pub async fn idle<T: Transport>(n: usize) -> io::Result<Idle> {
    let t = T::setup().await?;
    // Warm the path (lazily built tables, the runtime's own buffers), then
    // count only what the `n` connections add.
    drop(t.pair().await?);
    let mut pairs = Vec::with_capacity(n);
    tokio::time::sleep(Duration::from_millis(50)).await;
    count_start();
    let opened = open(&t, n, &mut pairs).await;
    let (held, _) = count_stop();
    opened?;
    let sockstat = t.ns().map(|ns| ns.sockstat());
    drop(pairs);
    Ok(Idle {
        connections: n,
        held,
        sockstat,
    })
}

async fn open<T: Transport>(t: &T, n: usize, pairs: &mut Vec<(T::S, T::S)>) -> io::Result<()> {
    for _ in 0..n {
        pairs.push(t.pair().await?);
    }
    Ok(())
}

/// The most a writer facing a stalled reader is allowed to write.
pub const STALL_CAP: u64 = 256 << 20;

/// What [`stall`] measured.
pub struct Stall {
    /// Peak bytes held, counted by the allocator.
    pub alloc_peak: f64,
    /// Peak of lonet's sockstat `mem` (lonet only).
    pub sockstat_peak: Option<f64>,
    /// Bytes the writer got accepted.
    pub accepted: u64,
    /// Whether the writer was held back (else it reached [`STALL_CAP`]).
    pub blocked: bool,
}

/// The stalled reader: a writer writes [`CHUNK`]-byte chunks as fast as it
/// can on a connection whose reader never reads, for at most 5 s and until
/// it has not moved for 100 ms.
pub async fn stall<T: Transport>() -> io::Result<Stall> {
    let t = T::setup().await?;
    let (mut w, r) = t.pair().await?;
    let ns: Option<Netns> = t.ns();
    let written = Arc::new(AtomicU64::new(0));
    let chunk = vec![0xa5u8; CHUNK];
    tokio::time::sleep(Duration::from_millis(50)).await;
    count_start();
    let counter = written.clone();
    let writer = spawn_in(ns.clone(), async move {
        while counter.load(Relaxed) < STALL_CAP {
            let k = w.write(&chunk).await?;
            counter.fetch_add(k as u64, Relaxed);
        }
        io::Result::Ok(w)
    });
    let mut sock_peak = 0u64;
    let mut last = 0u64;
    let mut still = 0;
    let mut blocked = false;
    // At most 5 s; stop once the writer has not moved for 100 ms.
    for _ in 0..5_000 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if let Some(ns) = &ns {
            sock_peak = sock_peak.max(ns.sockstat().mem);
        }
        let now = written.load(Relaxed);
        if writer.is_finished() {
            break;
        }
        if now == last {
            still += 1;
            if still >= 100 {
                blocked = true;
                break;
            }
        } else {
            still = 0;
            last = now;
        }
    }
    let (_, peak) = count_stop();
    writer.abort();
    let _ = writer.await;
    drop(r);
    Ok(Stall {
        alloc_peak: peak as f64,
        sockstat_peak: ns.map(|_| sock_peak as f64),
        accepted: written.load(Relaxed),
        blocked,
    })
}

/// The send buffer of [`tiny_stall`]: its namespace's `tcp_wmem[2]`, which
/// the send buffer's autotuning reaches on loopback (it would grow to about
/// 2.6 MiB with the default cap of 4 MiB).
pub const TINY_SNDBUF: usize = 1 << 20;

/// What [`tiny_stall`] measured.
pub struct TinyStall {
    /// Peak bytes held, counted by the allocator.
    pub alloc_peak: f64,
    /// Peak of lonet's sockstat `mem`.
    pub sockstat_peak: f64,
    /// The writer's send buffer ([`TINY_SNDBUF`]).
    pub sndbuf: usize,
    /// Bytes the writer got accepted.
    pub accepted: u64,
}

impl TinyStall {
    /// Peak bytes held per byte of send buffer.
    pub fn ratio(&self) -> f64 {
        self.alloc_peak / self.sndbuf as f64
    }
}

/// A writer of 1-byte writes facing a reader that never reads (lonet only):
/// writes until `WouldBlock` and no write space for 100 ms. On Linux each
/// tiny write joins the send queue's last skb, so the queue holds about one
/// byte per byte written, bounded by the send buffer.
pub async fn tiny_stall() -> io::Result<TinyStall> {
    let ns = Netns::new();
    ns.set_sysctl(|s| s.tcp_wmem[2] = TINY_SNDBUF)?;
    ns.clone()
        .scope(async move {
            let l = lonet::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?;
            let (c, a) = tokio::join!(lonet::net::TcpStream::connect(addr), l.accept());
            let c = c?;
            let (r, _) = a?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            count_start();
            let mut accepted = 0u64;
            let mut sock_peak = 0u64;
            let out = loop {
                match c.try_write(&[0xa5]) {
                    Ok(n) => accepted += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        sock_peak = sock_peak.max(ns.sockstat().mem);
                        match tokio::time::timeout(Duration::from_millis(100), c.writable()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => break Err(e),
                            Err(_) => break Ok(()),
                        }
                    }
                    Err(e) => break Err(e),
                }
                if accepted >= STALL_CAP {
                    break Err(io::Error::other("the writer was never held back"));
                }
            };
            let (_, peak) = count_stop();
            out?;
            drop((c, r));
            Ok(TinyStall {
                alloc_peak: peak as f64,
                sockstat_peak: sock_peak as f64,
                sndbuf: TINY_SNDBUF,
                accepted,
            })
        })
        .await
}
