//! Buffer-manager helpers, a locked-buffer guard and a GenericXLog guard.
//!
//! [`PageWrite`] follows pgvectorscale's rule: a WAL-logged page change is
//! applied only when `commit()` is called explicitly; dropping the guard (early
//! return, panic, ERROR unwinding through Rust) aborts it and leaves the page as
//! it was. [`Locked`] is ParadeDB's `Buffer` idea: a pinned buffer whose
//! content lock it holds, unlocked and unpinned when it is dropped — at the
//! end of its scope, on an early return, or while an ERROR unwinds through
//! Rust — so callers write no release of their own.

use crate::pg::page::Page;
use crate::pg::relation::Rel;
use super::locator;
use pgrx::pg_sys;

pub const INVALID_BLOCK: pg_sys::BlockNumber = pg_sys::InvalidBlockNumber;

/// Bytes of shared buffers (`shared_buffers`; set before libraries are preloaded).
pub fn shared_buffers_bytes() -> usize {
    // SAFETY: a plain integer the postmaster sets from the configuration.
    (unsafe { pg_sys::NBuffers }).max(0) as usize * pg_sys::BLCKSZ as usize
}

/// Number of blocks in the main fork.
pub fn nblocks(rel: Rel) -> pg_sys::BlockNumber {
    // SAFETY: `rel` is an open relation; the function raises on I/O error.
    // (smgrnblocks itself: RelationGetNumberOfBlocks would call back into
    // the table AM's relation_size for the same answer)
    unsafe {
        pg_sys::smgrnblocks(
            pg_sys::RelationGetSmgr(rel.raw()),
            pg_sys::ForkNumber::MAIN_FORKNUM,
        )
    }
}

/// The relation's insertion target block (`RelationGetTargetBlock`): kept in
/// the smgr entry, so Postgres resets it when the relation is truncated, in
/// this backend and (through the smgr invalidation) in every other one.
pub fn target_block(rel: Rel) -> pg_sys::BlockNumber {
    // SAFETY: RelationGetSmgr opens the smgr entry if needed; it stays valid
    // for the duration of this call.
    unsafe { (*pg_sys::RelationGetSmgr(rel.raw())).smgr_targblock }
}

/// `RelationSetTargetBlock`.
pub fn set_target_block(rel: Rel, blkno: pg_sys::BlockNumber) {
    // SAFETY: as above; the field is a plain hint owned by this backend.
    unsafe { (*pg_sys::RelationGetSmgr(rel.raw())).smgr_targblock = blkno };
}

/// Pins block `blkno` of the main fork (no lock). The buffer that held the
/// block when this backend last read it is tried first
/// ([`recent::lookup`]): a chain walk or a point lookup reads the same few
/// pages over and over, and `ReadRecentBuffer` skips the buffer mapping
/// table's lookup and partition lock, most of a hit's cost.
pub fn read(rel: Rel, blkno: pg_sys::BlockNumber) -> pg_sys::Buffer {
    let locator = locator::of(rel);
    let recent = recent::lookup(&locator, blkno).unwrap_or(0);
    read_trying(rel, &locator, blkno, recent)
}

/// Pins block `blkno` through `recent` when that buffer still holds it
/// (`ReadRecentBuffer`; 0: no candidate), else through the buffer mapping
/// table, remembering the buffer for the next [`read`].
fn read_trying(
    rel: Rel,
    locator: &locator::Locator,
    blkno: pg_sys::BlockNumber,
    recent: pg_sys::Buffer,
) -> pg_sys::Buffer {
    let pinned = recent != 0 && {
        // SAFETY: open relation; the function pins `recent` only if it still
        // holds this block, else returns false with nothing pinned.
        unsafe { pg_sys::ReadRecentBuffer(*locator, pg_sys::ForkNumber::MAIN_FORKNUM, blkno, recent) }
    };
    if pinned {
        count_hit(rel);
        return recent;
    }
    // SAFETY: no strategy.
    let buf = unsafe { read_with(rel, blkno, std::ptr::null_mut()) };
    recent::remember(locator, blkno, buf);
    buf
}

/// The relation's buffer statistics (`pg_statio_*_tables`) for a hit found
/// without `ReadBufferExtended`, which counts its own: its
/// `pgstat_count_buffer_read` and `pgstat_count_buffer_hit`.
fn count_hit(rel: Rel) {
    // SAFETY: an open relation; its pgstat entry, when associated, lives as
    // long as the relation is open and belongs to this backend.
    unsafe {
        let info = rel.data().pgstat_info;
        if !info.is_null() {
            #[cfg(feature = "pg15")]
            {
                (*info).t_counts.t_blocks_fetched += 1;
                (*info).t_counts.t_blocks_hit += 1;
            }
            #[cfg(not(feature = "pg15"))]
            {
                (*info).counts.blocks_fetched += 1;
                (*info).counts.blocks_hit += 1;
            }
        }
    }
}

/// Which buffer held a block when this backend last read it: a small
/// direct-mapped table (a hint only — `ReadRecentBuffer` checks the buffer
/// still holds the block, so a stale or colliding entry costs a miss).
mod recent {
    use crate::pg::locator::{self, Locator};
    use pgrx::pg_sys;
    use std::cell::UnsafeCell;

    const SLOTS: usize = 16384;

    #[derive(Clone, Copy)]
    struct Slot {
        rel: u32,
        db: u32,
        block: u32,
        buf: pg_sys::Buffer,
    }

    struct Table(UnsafeCell<[Slot; SLOTS]>);
    // SAFETY: a backend runs Postgres code on one thread only; the worker
    // threads Strata starts (index builds, run packing) never read buffers.
    unsafe impl Sync for Table {}

    static TABLE: Table = Table(UnsafeCell::new([Slot { rel: 0, db: 0, block: 0, buf: 0 }; SLOTS]));

    fn key(l: &Locator) -> (u32, u32) {
        let (_, db, rel) = locator::parts(l);
        (rel, db)
    }

    fn slot(rel: u32, block: u32) -> usize {
        (rel.wrapping_mul(0x9E37_79B9) ^ block.wrapping_mul(0x85EB_CA6B)) as usize % SLOTS
    }

    pub fn lookup(l: &Locator, block: u32) -> Option<pg_sys::Buffer> {
        let (rel, db) = key(l);
        // SAFETY: single-threaded access (see `Table`); no reference is kept.
        let s = unsafe { (*TABLE.0.get())[slot(rel, block)] };
        (s.buf != 0 && s.rel == rel && s.db == db && s.block == block).then_some(s.buf)
    }

    pub fn remember(l: &Locator, block: u32, buf: pg_sys::Buffer) {
        let (rel, db) = key(l);
        // SAFETY: as in `lookup`.
        unsafe { (*TABLE.0.get())[slot(rel, block)] = Slot { rel, db, block, buf } };
    }
}

/// Pins block `blkno` of the main fork (no lock), trying first the buffer
/// that held it last (`recent`, 0: none) — `ReadRecentBuffer`, which skips
/// the buffer mapping lookup when the page is still there.
pub fn read_recent(
    rel: Rel,
    blkno: pg_sys::BlockNumber,
    recent: pg_sys::Buffer,
) -> pg_sys::Buffer {
    read_trying(rel, &locator::of(rel), blkno, recent)
}

/// Pins block `blkno` using a buffer access strategy (may be null).
///
/// # Safety
/// `strategy` is null or a valid buffer access strategy.
pub unsafe fn read_with(
    rel: Rel,
    blkno: pg_sys::BlockNumber,
    strategy: pg_sys::BufferAccessStrategy,
) -> pg_sys::Buffer {
    // SAFETY: `rel` is open and `blkno` below its size (callers check); errors
    // are raised by Postgres.
    unsafe {
        pg_sys::ReadBufferExtended(
            rel.raw(),
            pg_sys::ForkNumber::MAIN_FORKNUM,
            blkno,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            strategy,
        )
    }
}

pub fn lock_share(buf: pg_sys::Buffer) {
    // SAFETY: `buf` is pinned by the caller.
    unsafe { pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32) }
}

pub fn lock_exclusive(buf: pg_sys::Buffer) {
    // SAFETY: `buf` is pinned by the caller.
    unsafe { pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32) }
}

/// Takes the exclusive content lock only if nobody holds the buffer locked.
pub fn try_lock_exclusive(buf: pg_sys::Buffer) -> bool {
    // SAFETY: `buf` is pinned by the caller.
    unsafe { pg_sys::ConditionalLockBuffer(buf) }
}

/// Takes the exclusive content lock only if nobody else even pins the
/// buffer (a cleanup lock, as heap pruning takes), without waiting.
pub fn try_lock_cleanup(buf: pg_sys::Buffer) -> bool {
    // SAFETY: `buf` is pinned by the caller.
    unsafe { pg_sys::ConditionalLockBufferForCleanup(buf) }
}

pub fn unlock(buf: pg_sys::Buffer) {
    // SAFETY: `buf` is pinned and locked by the caller.
    unsafe { pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32) }
}

pub fn release(buf: pg_sys::Buffer) {
    // SAFETY: `buf` is pinned by the caller.
    unsafe { pg_sys::ReleaseBuffer(buf) }
}

/// Marks a pinned, exclusively locked buffer dirty without WAL (tests that
/// damage a page on purpose).
pub fn mark_dirty_unlogged(buf: pg_sys::Buffer) {
    // SAFETY: `buf` is pinned and exclusively locked by the caller.
    unsafe { pg_sys::MarkBufferDirty(buf) }
}

pub fn unlock_release(buf: pg_sys::Buffer) {
    // SAFETY: `buf` is pinned and locked by the caller.
    unsafe { pg_sys::UnlockReleaseBuffer(buf) }
}

/// A pinned buffer whose content lock (share or exclusive) this guard
/// holds; dropping it unlocks and unpins the buffer. A protocol that must
/// let go of the lock for a while and keep the pin (to wait for another
/// transaction, or to write elsewhere first) calls [`Locked::unlock`] and
/// [`Locked::relock`] or [`Locked::while_unlocked`]: the guard knows whether it
/// holds the lock, so an ERROR raised in between (a lock timeout, a
/// deadlock) unwinds through a drop that only unpins.
pub struct Locked {
    buf: pg_sys::Buffer,
    /// The lock's mode (taken again by [`Locked::relock`]).
    mode: LockMode,
    /// Whether the lock is held now (false: pinned only).
    locked: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LockMode {
    Share,
    Exclusive,
}

impl Locked {
    fn held(buf: pg_sys::Buffer, mode: LockMode) -> Locked {
        Locked { buf, mode, locked: true }
    }

    /// Block `blkno` of `rel`'s main fork, pinned and share-locked.
    pub fn share(rel: Rel, blkno: pg_sys::BlockNumber) -> Locked {
        let buf = read(rel, blkno);
        lock_share(buf);
        Locked::held(buf, LockMode::Share)
    }

    /// Block `blkno` of `rel`'s main fork, pinned and exclusively locked.
    pub fn exclusive(rel: Rel, blkno: pg_sys::BlockNumber) -> Locked {
        let buf = read(rel, blkno);
        lock_exclusive(buf);
        Locked::held(buf, LockMode::Exclusive)
    }

    /// Takes over `buf`, which the caller has pinned and locked
    /// exclusively (a new or allocated page).
    pub fn adopt(buf: pg_sys::Buffer) -> Locked {
        Locked::held(buf, LockMode::Exclusive)
    }

    /// Takes over `buf`, which the caller has pinned, and share-locks it.
    pub fn share_pinned(buf: pg_sys::Buffer) -> Locked {
        lock_share(buf);
        Locked::held(buf, LockMode::Share)
    }

    /// Takes over `buf`, which the caller has pinned, and locks it
    /// exclusively.
    pub fn exclusive_pinned(buf: pg_sys::Buffer) -> Locked {
        lock_exclusive(buf);
        Locked::held(buf, LockMode::Exclusive)
    }

    /// The buffer, for calls that take one (it stays pinned for as long as
    /// this guard lives, and locked unless [`Locked::unlock`]ed).
    pub fn buffer(&self) -> pg_sys::Buffer {
        self.buf
    }

    pub fn page(&self) -> Page {
        page(self.buf)
    }

    pub fn block(&self) -> pg_sys::BlockNumber {
        block_number(self.buf)
    }

    /// Lets go of the content lock and keeps the pin (the page stays in
    /// memory; its contents may change until [`Locked::relock`]).
    pub fn unlock(&mut self) {
        assert!(self.locked, "unlock of a buffer not locked");
        unlock(self.buf);
        self.locked = false;
    }

    /// Takes the content lock again, in the mode it was held.
    pub fn relock(&mut self) {
        assert!(!self.locked, "relock of a buffer still locked");
        match self.mode {
            LockMode::Share => lock_share(self.buf),
            LockMode::Exclusive => lock_exclusive(self.buf),
        }
        self.locked = true;
    }

    /// Runs `f` with the content lock let go (the pin kept), then locks
    /// again in the same mode.
    pub fn while_unlocked<T>(&mut self, f: impl FnOnce() -> T) -> T {
        self.unlock();
        let out = f();
        self.relock();
        out
    }

    /// Hands the pinned, locked buffer to the caller, who releases it.
    pub fn into_buffer(self) -> pg_sys::Buffer {
        debug_assert!(self.locked, "into_buffer of a buffer not locked");
        let buf = self.buf;
        std::mem::forget(self);
        buf
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if self.locked {
            unlock_release(self.buf);
        } else {
            release(self.buf);
        }
    }
}

pub fn page(buf: pg_sys::Buffer) -> Page {
    // SAFETY: `buf` is pinned by the caller, so its page stays in memory
    // (writes through it are the caller's to lock for).
    unsafe { Page::from_raw(pg_sys::BufferGetPage(buf)) }
}

/// `BufferGetBlockNumber`, read from the buffer descriptor as bufmgr.c
/// does (hot paths ask it for every version they touch; this saves the
/// guarded FFI call).
pub fn block_number(buf: pg_sys::Buffer) -> pg_sys::BlockNumber {
    // SAFETY: `buf` is pinned by the caller, so its descriptor's tag is
    // stable; shared buffers are 1-based into BufferDescriptors, local ones
    // -1-based into LocalBufferDescriptors (both set up at backend start).
    unsafe {
        if buf < 0 {
            (*pg_sys::LocalBufferDescriptors.add((-buf - 1) as usize))
                .tag
                .blockNum
        } else {
            (*pg_sys::BufferDescriptors.add((buf - 1) as usize))
                .bufferdesc
                .tag
                .blockNum
        }
    }
}

/// Adds block 0 to an empty fork `fork` (an index's metapage, also in the
/// init fork of an unlogged index) and returns it locked exclusively.
pub fn extend_fork_locked(rel: Rel, fork: pg_sys::ForkNumber::Type) -> Locked {
    // SAFETY: P_NEW extension of a fork nobody else uses yet (the index is
    // being built); the buffer comes back pinned, then locked.
    let buf = unsafe {
        let b = pg_sys::ReadBufferExtended(
            rel.raw(),
            fork,
            INVALID_BLOCK,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        );
        pg_sys::LockBuffer(b, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        b
    };
    Locked::adopt(buf)
}

/// Adds a new block to the main fork and returns it pinned and exclusively
/// locked. The page contents are zeroes until the caller initialises them.
pub fn extend_locked(rel: Rel) -> pg_sys::Buffer {
    #[cfg(feature = "pg15")]
    {
        // SAFETY: the relation extension lock serialises P_NEW extensions.
        // RBM_ZERO_AND_LOCK locks the new buffer before it becomes valid
        // (as heap's hio.c does): with a plain read and a lock after it, a
        // backend that saw the new block could read and lock the zeroed
        // page first ("block 0 is not an lsm metapage" under concurrent
        // first inserts).
        unsafe {
            pg_sys::LockRelationForExtension(rel.raw(), pg_sys::ExclusiveLock as i32);
            let buf = pg_sys::ReadBufferExtended(
                rel.raw(),
                pg_sys::ForkNumber::MAIN_FORKNUM,
                INVALID_BLOCK,
                pg_sys::ReadBufferMode::RBM_ZERO_AND_LOCK,
                std::ptr::null_mut(),
            );
            pg_sys::UnlockRelationForExtension(rel.raw(), pg_sys::ExclusiveLock as i32);
            buf
        }
    }
    #[cfg(not(feature = "pg15"))]
    {
        let bmr = pg_sys::BufferManagerRelation {
            rel: rel.raw(),
            smgr: std::ptr::null_mut(),
            relpersistence: 0,
        };
        // SAFETY: ExtendBufferedRel takes the extension lock itself; with
        // EB_LOCK_FIRST the new buffer comes back exclusively locked.
        unsafe {
            pg_sys::ExtendBufferedRel(
                bmr,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                std::ptr::null_mut(),
                pg_sys::ExtendBufferedFlags::EB_LOCK_FIRST,
            )
        }
    }
}

/// A GenericXLog record under construction. Pages returned by [`register`]
/// are working copies; they reach the buffers only on [`commit`].
///
/// [`register`]: PageWrite::register
/// [`commit`]: PageWrite::commit
/// A change of block 0 also bumps its file's [`meta_epoch`](super::meta_epoch).
pub struct PageWrite {
    state: *mut pg_sys::GenericXLogState,
    rel: Rel,
    block0: bool,
}

impl PageWrite {
    pub fn start(rel: Rel) -> PageWrite {
        PageWrite {
            // SAFETY: `rel` is open; GenericXLogStart only allocates state.
            state: unsafe { pg_sys::GenericXLogStart(rel.raw()) },
            rel,
            block0: false,
        }
    }

    /// Registers an exclusively locked buffer; `full_image` for new pages.
    pub fn register(&mut self, buf: pg_sys::Buffer, full_image: bool) -> Page {
        let flags = if full_image {
            pg_sys::GENERIC_XLOG_FULL_IMAGE as i32
        } else {
            0
        };
        self.block0 |= block_number(buf) == 0;
        // SAFETY: the caller holds an exclusive lock on `buf`; at most
        // MAX_GENERIC_XLOG_PAGES buffers are registered by our callers; the
        // working copy lives until the record is finished or abandoned.
        unsafe { Page::from_raw(pg_sys::GenericXLogRegisterBuffer(self.state, buf, flags)) }
    }

    /// Applies the changes to the buffers and writes the WAL record.
    pub fn commit(mut self) {
        let state = std::mem::replace(&mut self.state, std::ptr::null_mut());
        // SAFETY: `state` came from GenericXLogStart and was not finished yet.
        unsafe { pg_sys::GenericXLogFinish(state) };
        if self.block0 {
            // (the caller still holds block 0's exclusive lock)
            super::meta_epoch::bump(self.rel);
        }
    }
}

impl Drop for PageWrite {
    fn drop(&mut self) {
        if !self.state.is_null() {
            // SAFETY: an unfinished state; abort discards the working copies.
            unsafe { pg_sys::GenericXLogAbort(self.state) };
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::{read, try_lock_cleanup, try_lock_exclusive, unlock_release, Locked};
    use crate::pg::relation::Rel;
    use pgrx::prelude::*;

    /// A new heap table `name` with one row, opened (closed by the caller).
    fn one_row_table(name: &str) -> Rel {
        Spi::run(&format!("CREATE TABLE {name} (i int); INSERT INTO {name} VALUES (1)")).unwrap();
        let oid = Spi::get_one::<pg_sys::Oid>(&format!("SELECT '{name}'::regclass::oid"))
            .unwrap()
            .unwrap();
        // SAFETY: an existing table; the caller closes it.
        unsafe { Rel::from_raw(pg_sys::relation_open(oid, pg_sys::AccessShareLock as i32)) }
    }

    /// An ERROR raised while a guard holds a buffer locked unwinds through
    /// the guard: the buffer is unlocked and unpinned before the error
    /// reaches PostgreSQL, so the backend can lock it again at once.
    #[pg_test]
    fn an_error_releases_the_locked_buffer() {
        let rel = one_row_table("locked_guard");
        let caught = PgTryBuilder::new(|| -> bool {
            let _held = Locked::exclusive(rel, 0);
            pgrx::error!("raised while block 0 is locked")
        })
        .catch_others(|_| true)
        .execute();
        assert!(caught);
        // a lock this backend still held would make the conditional lock fail
        let buf = read(rel, 0);
        assert!(try_lock_exclusive(buf));
        unlock_release(buf);
        // SAFETY: opened above.
        unsafe { pg_sys::relation_close(rel.raw(), pg_sys::AccessShareLock as i32) };
    }

    /// An ERROR raised while the guard has let go of the lock (a wait in
    /// the row-lock protocol) unwinds through a drop that only unpins: the
    /// error that reaches PostgreSQL is the one raised (not "lock is not
    /// held"), and no pin is left (a cleanup lock needs the only pin).
    #[pg_test]
    fn an_error_while_unlocked_only_unpins() {
        let rel = one_row_table("unlocked_guard");
        let message = PgTryBuilder::new(|| -> String {
            let mut page = Locked::exclusive(rel, 0);
            page.while_unlocked(|| -> () { pgrx::error!("raised while block 0 is unlocked") });
            "no error: locked again".to_string()
        })
        .catch_others(|e| match e {
            pg_sys::panic::CaughtError::PostgresError(r) | pg_sys::panic::CaughtError::ErrorReport(r) => {
                r.message().to_string()
            }
            _ => "another error".to_string(),
        })
        .execute();
        assert_eq!(message, "raised while block 0 is unlocked");
        let buf = read(rel, 0);
        assert!(try_lock_cleanup(buf), "a pin was left behind");
        unlock_release(buf);
        // and the lock/unlock cycle of a guard that lives on
        let mut page = Locked::share(rel, 0);
        let seen = page.while_unlocked(|| 7);
        assert_eq!(seen, 7);
        drop(page);
        let buf = read(rel, 0);
        assert!(try_lock_cleanup(buf), "a pin was left behind");
        unlock_release(buf);
        // SAFETY: opened above.
        unsafe { pg_sys::relation_close(rel.raw(), pg_sys::AccessShareLock as i32) };
    }
}
