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
/// The (request, startup) pairs registered by [`install`].
static mut USERS: [Option<(fn(), fn())>; 4] = [None; 4];

unsafe extern "C-unwind" fn on_request() {
    // SAFETY: set in `install`, before the postmaster calls hooks; the
    // previous hook is Postgres's or another library's, called first.
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            prev();
        }
        // (a copy of the table: no reference to the static)
        let users = USERS;
        for (request, _) in users.into_iter().flatten() {
            request();
        }
    }
}

unsafe extern "C-unwind" fn on_startup() {
    // SAFETY: as above.
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            prev();
        }
        let users = USERS;
        for (_, startup) in users.into_iter().flatten() {
            startup();
        }
    }
}

/// Adds `request` to `shmem_request_hook` (ask with [`request`]) and
/// `startup` to `shmem_startup_hook` (make with [`init_struct`]). Call
/// from `_PG_init` while preloading, once per shared structure (four at
/// most).
pub fn install(request: fn(), startup: fn()) {
    // SAFETY: _PG_init runs single-threaded in the postmaster before any
    // hook is called; the previous hooks are kept and called first.
    unsafe {
        let mut users = USERS;
        if users.iter().all(Option::is_none) {
            PREV_REQUEST = pg_sys::shmem_request_hook;
            pg_sys::shmem_request_hook = Some(on_request);
            PREV_STARTUP = pg_sys::shmem_startup_hook;
            pg_sys::shmem_startup_hook = Some(on_startup);
        }
        let free = users.iter_mut().find(|u| u.is_none()).expect("at most four shared structures");
        *free = Some((request, startup));
        USERS = users;
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

/// Asks for `bytes` of shared memory without locks (from the request hook).
pub fn request_space(bytes: usize) {
    // SAFETY: called from shmem_request_hook, where it is allowed.
    unsafe { pg_sys::RequestAddinShmemSpace(bytes) };
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

/// [`init_struct`] zeroed when it was just made (not when a backend
/// attaches): for tables whose zeroed entries are empty.
pub fn init_zeroed(name: &'static CStr, bytes: usize) -> *mut u8 {
    let (base, found) = init_struct(name, bytes);
    if !found {
        // SAFETY: the region was just allocated for us, `bytes` long.
        unsafe { std::ptr::write_bytes(base, 0, bytes) };
    }
    base
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
    ///
    /// # Safety
    /// `first` points at an array of initialised LWLocks with more than `i` entries
    /// that lives as long as shared memory.
    pub unsafe fn acquire(first: *mut pg_sys::LWLockPadded, i: usize, exclusive: bool) -> LockGuard {
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
