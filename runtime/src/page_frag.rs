//! Recycled payload buffers for large writes: the model's stand-in for the
//! page fragments a socket fills at `sendmsg` time (`sk_page_frag_refill`,
//! net/core/sock.c; mm/page_frag_cache.c). `tcp_sendmsg`'s copy
//! (tcp/syscalls.rs) takes a buffer from the namespace's [`BufPool`] and
//! wraps it in a [`PooledBuf`] owned by the `Bytes` chunks that share it;
//! the buffer comes back when the last chunk (send queue, segment, receive
//! queue) is dropped.

use crate::sync::lock;
use crate::sync::Arc;

/// Size of a pooled payload buffer: a 64 KiB write is one buffer.
pub(crate) const POOL_BUF: usize = 64 * 1024;
/// Buffers a namespace keeps for reuse (4 MiB).
pub(crate) const POOL_MAX: usize = 64;

/// Recycled payload buffers for large writes (the kernel's per-socket page
/// fragments play this part).
#[derive(Default)]
pub(crate) struct BufPool {
    free: crate::sync::Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    pub(crate) fn get(&self) -> Vec<u8> {
        lock(&self.free)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(POOL_BUF))
    }

    fn put(&self, mut buf: Vec<u8>) {
        if buf.capacity() != POOL_BUF {
            return;
        }
        buf.clear();
        let mut free = lock(&self.free);
        if free.len() < POOL_MAX {
            free.push(buf);
        }
    }
}

/// A pooled buffer owned by the `Bytes` chunks that share it; it goes back to
/// the pool when the last of them (send queue, segment, receive queue) is
/// dropped.
pub(crate) struct PooledBuf {
    buf: Vec<u8>,
    pool: Arc<BufPool>,
}

impl PooledBuf {
    /// `buf` (from `pool.get()`, then filled), to go back to `pool`.
    pub(crate) fn new(buf: Vec<u8>, pool: Arc<BufPool>) -> PooledBuf {
        PooledBuf { buf, pool }
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buf));
    }
}
