//! The modeled CPU of a thread (include/linux/smp.h's
//! `smp_processor_id`): threads are numbered as they first touch the
//! datapath and folded onto a namespace's CPUs, so "the CPU" of a socket
//! call is the worker thread that makes it.

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;

crate::sync::thread_local! {
    static THREAD_CPU: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_THREAD_CPU: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The modeled CPU of this thread: threads are numbered as they first touch
/// the datapath and folded onto the namespace's CPUs (without RPS a packet is
/// queued on the sender's CPU; "the CPU" here is the current worker thread).
#[inline]
pub(crate) fn this_cpu(ncpu: usize) -> usize {
    let id = THREAD_CPU.with(|c| {
        let v = c.get();
        if v != usize::MAX {
            v
        } else {
            let v = NEXT_THREAD_CPU.fetch_add(1, Relaxed);
            c.set(v);
            v
        }
    });
    // Threads are few: no division in the usual case.
    if id < ncpu {
        id
    } else {
        id % ncpu
    }
}
