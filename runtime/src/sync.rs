//! Taking the model's locks: the one helper every module uses.
//!
//! A lock is poisoned when a thread panicked while holding it. The model's
//! state under a lock stays consistent at every point a panic could come
//! from (a user's waker, a capture writer), and a panic in one task must not
//! take every later socket call of the namespace down with it, so a
//! poisoned lock is taken as it is, as the kernel's spinlocks know no
//! poisoning.

//!
//! The model's locks, condition variable, atomics, thread-locals and its one
//! thread come from here, not from `std` directly: the model check
//! (`RUSTFLAGS="--cfg shuttle" cargo test -p lonet-runtime --lib shuttle`)
//! swaps them for shuttle's, whose scheduler then explores how the sending
//! thread, the softirq, the reader and `ksoftirqd` interleave.

#[cfg(all(test, shuttle))]
pub(crate) use shuttle::sync::{
    Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
pub(crate) use std::sync::{Arc, OnceLock, PoisonError, Weak};
#[cfg(not(all(test, shuttle)))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Atomics: `std`'s, or shuttle's under the model check.
pub(crate) mod atomic {
    #[cfg(all(test, shuttle))]
    pub(crate) use shuttle::sync::atomic::*;
    #[cfg(not(all(test, shuttle)))]
    pub(crate) use std::sync::atomic::*;
}

/// Threads: `std`'s, or shuttle's under the model check.
pub(crate) mod thread {
    #[cfg(all(test, shuttle))]
    pub(crate) use shuttle::thread::Builder;
    pub(crate) use std::thread::panicking;
    #[cfg(not(all(test, shuttle)))]
    pub(crate) use std::thread::Builder;
}

#[cfg(all(test, shuttle))]
pub(crate) use shuttle::thread_local;
/// `thread_local!`: `std`'s, or shuttle's under the model check (shuttle's
/// threads share one OS thread).
#[cfg(not(all(test, shuttle)))]
pub(crate) use std::thread_local;

/// Locks `m`, poisoned or not.
#[inline]
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `l`, poisoned or not.
#[inline]
pub(crate) fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `l`, poisoned or not.
#[inline]
pub(crate) fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// The value of a mutex held exclusively (no locking needed), poisoned or
/// not.
#[inline]
pub(crate) fn get_mut<T: ?Sized>(m: &mut Mutex<T>) -> &mut T {
    m.get_mut().unwrap_or_else(PoisonError::into_inner)
}
