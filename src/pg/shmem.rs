//! Shared memory and named LWLocks for an extension loaded by
//! `shared_preload_libraries`: asking for them (`shmem_request_hook`),
//! making them (`shmem_startup_hook`) and holding a lock (`LockGuard`,
//! released on drop, also when an ERROR unwinds Rust frames; an ERROR
//! raised in C while a lock is held is cleaned up by the transaction abort,
//! which releases every LWLock).

use pgrx::pg_sys;
use std::ffi::CStr;

/// Whether the library is being loaded by `shared_preload_libraries`
/// (the only time shared memory can be asked for).
pub fn preloading() -> bool {
    // SAFETY: a plain flag set by the postmaster around preloading.
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;
static mut REQUEST: Option<fn()> = None;
static mut STARTUP: Option<fn()> = None;

/// Calls the hook that was installed before ours, then ours.
///
/// # Safety
/// Only from the hooks below, after `install` set both statics.
unsafe fn chain(prev: pg_sys::shmem_request_hook_type, ours: Option<fn()>) {
    if let Some(prev) = prev {
        // SAFETY: a hook Postgres or another library installed, called
        // where Postgres would call it.
        unsafe { prev() };
    }
    if let Some(f) = ours {
        f();
    }
}

unsafe extern "C-unwind" fn on_request() {
    // SAFETY: set once in `install`, before the postmaster calls hooks.
    unsafe { chain(PREV_REQUEST, REQUEST) }
}

unsafe extern "C-unwind" fn on_startup() {
    // SAFETY: as above.
    unsafe { chain(PREV_STARTUP, STARTUP) }
}

/// Chains `request` into `shmem_request_hook` (ask with [`request`]) and
/// `startup` into `shmem_startup_hook` (make with [`init_struct`]). Call
/// once, from `_PG_init` while preloading.
pub fn install(request: fn(), startup: fn()) {
    // SAFETY: _PG_init runs single-threaded in the postmaster before any
    // hook is called; the previous hooks are kept and called first.
    unsafe {
        REQUEST = Some(request);
        STARTUP = Some(startup);
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(on_request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(on_startup);
    }
}

/// Asks for `bytes` of shared memory and a tranche of `locks` LWLocks
/// named `tranche` (from the request hook).
pub fn request(bytes: usize, tranche: &'static CStr, locks: i32) {
    // SAFETY: called from shmem_request_hook, where both are allowed.
    unsafe {
        pg_sys::RequestAddinShmemSpace(bytes);
        pg_sys::RequestNamedLWLockTranche(tranche.as_ptr(), locks);
    }
}

/// The shared memory named `name` (`bytes` long) and whether it existed
/// already (made by the postmaster; a backend of an EXEC_BACKEND build
/// attaches), under `AddinShmemInitLock` as the docs ask.
pub fn init_struct(name: &'static CStr, bytes: usize) -> (*mut u8, bool) {
    let mut found = false;
    // SAFETY: called from shmem_startup_hook; AddinShmemInitLock is
    // MainLWLockArray[21] (lwlocklist.h), as pgrx's own shmem code uses.
    unsafe {
        let lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let p = pg_sys::ShmemInitStruct(name.as_ptr(), bytes, &mut found);
        pg_sys::LWLockRelease(lock);
        (p as *mut u8, found)
    }
}

/// The first lock of the tranche `tranche` (asked for by [`request`]).
pub fn named_locks(tranche: &'static CStr) -> *mut pg_sys::LWLockPadded {
    // SAFETY: the tranche was requested while preloading; raises if not.
    unsafe { pg_sys::GetNamedLWLockTranche(tranche.as_ptr()) }
}

/// An LWLock held in shared or exclusive mode, released on drop.
pub struct LockGuard(*mut pg_sys::LWLock);

impl LockGuard {
    /// Lock `i` of the tranche starting at `first`.
    pub fn acquire(first: *mut pg_sys::LWLockPadded, i: usize, exclusive: bool) -> LockGuard {
        let mode = if exclusive { pg_sys::LWLockMode::LW_EXCLUSIVE } else { pg_sys::LWLockMode::LW_SHARED };
        // SAFETY: `first` is a tranche of more than `i` locks in shared
        // memory (the caller's); LWLockAcquire waits, it does not raise.
        unsafe {
            let lock = &raw mut (*first.add(i)).lock;
            pg_sys::LWLockAcquire(lock, mode);
            LockGuard(lock)
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // SAFETY: acquired in `acquire` and released only here (an ERROR
        // raised in C becomes a Rust panic that runs this drop on its way
        // out; the abort's LWLockReleaseAll then finds it released).
        unsafe { pg_sys::LWLockRelease(self.0) };
    }
}
