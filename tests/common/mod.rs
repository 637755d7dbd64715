//! Helpers shared by lonet's integration tests.
//!
//! - [`bounded`]: every test body runs inside `tokio::time::timeout`, so a regression fails
//!   instead of hanging.
//! - [`Res`] / [`Trace`]: what a scenario observed, step by step, in a form that can be compared
//!   between the kernel's loopback and lonet and against the expected Linux value.
//! - [`fill_pattern`] / [`PatternCheck`]: position-dependent byte patterns, so a lost, duplicated
//!   or reordered byte is found and reported with its offset.
//! - [`three_stacks!`] / [`differential!`]: one scenario over the kernel's loopback, over
//!   lonet's model and over lonet's kernel switch, each checked against Linux's value.
//! - [`wait_until`]: bounded polling for state another thread (lonet's ksoftirqd) moves
//!   forward; it yields, it never sleeps.
#![allow(dead_code, unused_macros, unused_imports)]

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

/// Upper bound on one test body. Generous: the debug build of lonet is much slower than release.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Runs `fut` under [`LIMIT`], panicking with `what` if it does not finish.
pub async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    bounded_for(what, LIMIT, fut).await
}

/// Runs `fut` under `limit`, panicking with `what` if it does not finish.
pub async fn bounded_for<F: Future>(what: &str, limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not finish within {limit:?}"),
    }
}

/// Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h; x86_64 and aarch64).
/// Spelled out here because the integration tests have no `libc` dev-dependency.
pub mod errno {
    pub const EAGAIN: i32 = 11;
    pub const EINVAL: i32 = 22;
    pub const EPIPE: i32 = 32;
    pub const EADDRINUSE: i32 = 98;
    pub const EADDRNOTAVAIL: i32 = 99;
    pub const ENETUNREACH: i32 = 101;
    pub const ECONNRESET: i32 = 104;
    pub const ENOTCONN: i32 = 107;
    pub const ECONNREFUSED: i32 = 111;
}

/// One observed outcome: the `Debug` text of a success, or the error's kind and errno.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Res {
    Ok(String),
    Err(io::ErrorKind, Option<i32>),
}

/// What a scenario saw, in order: `(step, outcome)`.
pub type Trace = Vec<(&'static str, Res)>;

/// Records a result with its value (`Debug`) or its error kind and errno.
pub fn res<T: Debug>(r: &io::Result<T>) -> Res {
    match r {
        Ok(v) => Res::Ok(format!("{v:?}")),
        Err(e) => Res::Err(e.kind(), e.raw_os_error()),
    }
}

/// Records whether a result succeeded (its value is not comparable, e.g. a socket).
pub fn done<T>(r: &io::Result<T>) -> Res {
    match r {
        Ok(_) => Res::Ok("done".to_string()),
        Err(e) => Res::Err(e.kind(), e.raw_os_error()),
    }
}

/// Records a result's error kind only. For `WouldBlock`, tokio answers from its cached
/// readiness without a syscall (no errno) or from the syscall (`EAGAIN`): only the kind is
/// the contract.
pub fn kind_only<T: Debug>(r: &io::Result<T>) -> Res {
    match r {
        Ok(v) => Res::Ok(format!("{v:?}")),
        Err(e) => Res::Err(e.kind(), None),
    }
}

/// The expected success value (compared through `Debug`, like [`res`]).
pub fn ok<T: Debug>(v: T) -> Res {
    Res::Ok(format!("{v:?}"))
}

/// The expected success without a value (like [`done`]).
pub fn ok_done() -> Res {
    Res::Ok("done".to_string())
}

/// The expected error: kind and Linux errno.
pub fn err(kind: io::ErrorKind, errno: i32) -> Res {
    Res::Err(kind, Some(errno))
}

/// The expected error, kind only (see [`kind_only`]).
pub fn err_kind(kind: io::ErrorKind) -> Res {
    Res::Err(kind, None)
}

/// Compares a scenario's observations: first the kernel's against the expected Linux value
/// (a mismatch there means the test's expectation is wrong), then lonet's against Linux.
pub fn check_same<T: PartialEq + Debug>(scenario: &str, linux: &T, kernel: &T, lonet: &T) {
    assert_eq!(
        kernel, linux,
        "{scenario}: the kernel's loopback did not behave as the test expects (the expectation is wrong)"
    );
    assert_eq!(
        lonet, linux,
        "{scenario}: lonet differs from the kernel's loopback"
    );
}

/// What came back for one echoed message.
#[derive(Debug, PartialEq, Eq)]
pub struct Echoed {
    pub size: usize,
    pub received: usize,
    /// Offset of the first wrong byte, if any.
    pub first_mismatch: Option<u64>,
}

impl Echoed {
    /// An echo that came back whole.
    pub fn intact(size: usize) -> Self {
        Echoed {
            size,
            received: size,
            first_mismatch: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Byte patterns

/// splitmix64: a tiny, good-enough mixer (Steele, Lea, Flood 2014).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with bytes `offset..offset + buf.len()` of stream `seed`.
/// Byte `i` is byte `i % 8` of `splitmix64(seed << 40 ^ i / 8)`: it depends on its position,
/// so no shift, loss, duplication or reordering goes unnoticed, and streams with different
/// seeds differ.
pub fn fill_pattern(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    // Unaligned head.
    while i < buf.len() && pos % 8 != 0 {
        buf[i] = splitmix64((seed << 40) ^ (pos / 8)).to_le_bytes()[(pos % 8) as usize];
        i += 1;
        pos += 1;
    }
    // Aligned words.
    let mut chunks = buf[i..].chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&splitmix64((seed << 40) ^ (pos / 8)).to_le_bytes());
        pos += 8;
    }
    // Tail.
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let word = splitmix64((seed << 40) ^ (pos / 8)).to_le_bytes();
        let n = tail.len();
        tail.copy_from_slice(&word[..n]);
    }
}

/// The first `len` bytes of stream `seed`.
pub fn pattern_vec(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_pattern(seed, 0, &mut v);
    v
}

/// Offset of the first byte of `got` that is not byte `offset + i` of stream `seed`.
pub fn first_mismatch(seed: u64, offset: u64, got: &[u8]) -> Option<u64> {
    let mut expected = vec![0; got.len()];
    fill_pattern(seed, offset, &mut expected);
    got.iter()
        .zip(&expected)
        .position(|(a, b)| a != b)
        .map(|i| offset + i as u64)
}

/// Checks a stream piece by piece as it is read.
pub struct PatternCheck {
    seed: u64,
    offset: u64,
    scratch: Vec<u8>,
}

impl PatternCheck {
    pub fn new(seed: u64) -> Self {
        PatternCheck {
            seed,
            offset: 0,
            scratch: Vec::new(),
        }
    }

    /// Bytes checked so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Checks the next piece of the stream; on a mismatch says at which stream offset.
    pub fn check(&mut self, got: &[u8]) -> Result<(), String> {
        self.scratch.resize(got.len(), 0);
        fill_pattern(self.seed, self.offset, &mut self.scratch);
        if got != &self.scratch[..] {
            let i = got
                .iter()
                .zip(&self.scratch)
                .position(|(a, b)| a != b)
                .unwrap();
            return Err(format!(
                "stream {}: byte {} is {:#04x}, expected {:#04x}",
                self.seed,
                self.offset + i as u64,
                got[i],
                self.scratch[i]
            ));
        }
        self.offset += got.len() as u64;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting for another thread without sleeping

/// Polls `probe` until it returns `Ok`, yielding to tokio and to the OS scheduler between
/// tries (lonet's helper thread may need this core), for at most `deadline` of real time.
/// `Err(text)` describes the state last seen; it is in the panic message.
pub async fn wait_until<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if start.elapsed() > deadline {
            panic!("{what}: still not the case after {deadline:?}; last seen: {last}");
        }
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
}

/// Blocking twin of [`wait_until`] for code outside any runtime.
pub fn wait_until_blocking<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if start.elapsed() > deadline {
            panic!("{what}: still not the case after {deadline:?}; last seen: {last}");
        }
        std::thread::yield_now();
    }
}

/// Waits until the namespace holds no socket and no buffered byte
/// (`/proc/net/sockstat`: `alloc 0 ... mem 0`).
pub async fn wait_all_freed(ns: &lonet::Netns) {
    wait_until(
        "every socket and buffer freed",
        Duration::from_secs(10),
        || {
            let s = ns.sockstat();
            if s.alloc == 0 && s.mem == 0 {
                Ok(())
            } else {
                Err(format!("alloc {} mem {} ({s})", s.alloc, s.mem))
            }
        },
    )
    .await
}

/// Waits (bounded) until nothing holds the namespace any more: its memory is returned and its
/// ksoftirqd thread, which holds it only while it works, is gone from it.
pub fn wait_freed(weak: &lonet::WeakNetns) {
    wait_until_blocking(
        "the namespace is freed",
        Duration::from_secs(10),
        || match weak.upgrade() {
            None => Ok(()),
            Some(ns) => Err(format!("still alive: {} {}", ns.sockstat(), ns.sockets())),
        },
    );
}

// ---------------------------------------------------------------------------------------------
// One scenario over three stacks

/// `tokio::spawn` that keeps the current namespace (spawned tasks do not inherit it).
pub fn spawn_here<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(lonet::Netns::current().scope(f))
}

/// Declares the three stacks a differential test runs its scenarios over, as modules: `os`
/// (`tokio::net` on the kernel's loopback), `lo` (`lonet::net`, a fresh namespace per
/// scenario) and `kswitch` (`lonet::net` with the namespace's kernel switch on: every socket a
/// real one). Each module has the common helpers, its stack's `TcpListener`, `TcpSocket` and
/// `TcpStream`, `STACK` (its name in messages), `within` (runs a scenario where it must run)
/// and `spawn` (a task that keeps the scenario's namespace), then the tokens given: the
/// scenario functions, usually one macro call that defines them.
macro_rules! three_stacks {
    ($($body:tt)*) => {
        /// The kernel's loopback through `tokio::net`.
        #[allow(dead_code, unused_imports)]
        mod os {
            pub use crate::common::*;
            pub use std::future::Future;
            pub use tokio::net::{TcpListener, TcpSocket, TcpStream};

            pub const STACK: &str = "kernel";

            /// Runs a scenario (nothing to set up: the process's own network namespace).
            pub async fn within<F: Future>(f: F) -> F::Output {
                f.await
            }

            pub use tokio::spawn;

            $($body)*
        }

        /// lonet's model through `lonet::net`, each scenario in a fresh namespace.
        #[allow(dead_code, unused_imports)]
        mod lo {
            pub use crate::common::*;
            pub use lonet::net::{TcpListener, TcpSocket, TcpStream};
            pub use std::future::Future;

            pub const STACK: &str = "lonet";

            /// Runs a scenario in a fresh namespace, so parallel tests share no ports or state.
            pub async fn within<F: Future>(f: F) -> F::Output {
                lonet::Netns::new().scope(f).await
            }

            pub use crate::common::spawn_here as spawn;

            $($body)*
        }

        /// `lonet::net` with the namespace's kernel switch on: the same program, every socket a
        /// real OS socket (how users measure lonet against the kernel without changing code).
        #[allow(dead_code, unused_imports)]
        mod kswitch {
            pub use crate::common::*;
            pub use lonet::net::{TcpListener, TcpSocket, TcpStream};
            pub use std::future::Future;

            pub const STACK: &str = "lonet (kernel switch)";

            pub async fn within<F: Future>(f: F) -> F::Output {
                let ns = lonet::Netns::new();
                ns.set_kernel_loopback(true);
                ns.scope(f).await
            }

            pub use crate::common::spawn_here as spawn;

            $($body)*
        }
    };
}
pub(crate) use three_stacks;

/// Runs the scenario `path::to::function(args)` of [`three_stacks!`]'s modules over the three
/// stacks, and checks the kernel's observations against `linux` and lonet's two against both.
macro_rules! differential {
    ($($path:ident)::+ ( $($arg:expr),* ) => $linux:expr) => {{
        let name = stringify!($($path)::+);
        let linux = $linux;
        let kernel = $crate::common::bounded(
            &format!("kernel: {name}"),
            os::within(os::$($path)::+($($arg),*)),
        )
        .await;
        let lonet = $crate::common::bounded(
            &format!("lonet: {name}"),
            lo::within(lo::$($path)::+($($arg),*)),
        )
        .await;
        $crate::common::check_same(name, &linux, &kernel, &lonet);
        let switched = $crate::common::bounded(
            &format!("lonet (kernel switch): {name}"),
            kswitch::within(kswitch::$($path)::+($($arg),*)),
        )
        .await;
        $crate::common::check_same(name, &linux, &kernel, &switched);
    }};
}
pub(crate) use differential;
