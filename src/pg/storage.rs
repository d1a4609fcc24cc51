//! A relation's files: creating new storage, copying it to a new file
//! (ALTER TABLE … SET TABLESPACE), truncating it — the storage manager
//! calls heap's `heapam_handler.c` makes, in one place for the table
//! access methods that need them.

use crate::pg::htup;
use crate::pg::locator::Locator;
use crate::pg::relation::Rel;
use pgrx::pg_sys;

fn is_unlogged(persistence: std::ffi::c_char) -> bool {
    persistence == pg_sys::RELPERSISTENCE_UNLOGGED as std::ffi::c_char
}

/// Creates the main fork of a new relation file `locator` (and, unlogged,
/// its empty init fork, WAL-logged so that it survives a crash), as heap's
/// `relation_set_new_filelocator` does. The storage is dropped if the
/// transaction aborts.
pub fn create(locator: &Locator, persistence: std::ffi::c_char) {
    // SAFETY: PostgreSQL asks for a new relfilenumber of a relation it holds
    // locked; the smgr handle is opened and closed here.
    unsafe {
        let srel = pg_sys::RelationCreateStorage(*locator, persistence, true);
        if is_unlogged(persistence) {
            pg_sys::smgrcreate(srel, pg_sys::ForkNumber::INIT_FORKNUM, false);
            htup::log_smgrcreate(
                locator as *const Locator as *const std::ffi::c_void,
                pg_sys::ForkNumber::INIT_FORKNUM,
            );
        }
        pg_sys::smgrclose(srel);
    }
}

/// Copies every fork of `rel` to new storage `locator` and schedules the
/// old files for removal at commit (heap's `relation_copy_data`).
pub fn copy_to(rel: Rel, locator: &Locator) {
    let pers = rel.form().relpersistence;
    // SAFETY: PostgreSQL holds ACCESS EXCLUSIVE on `rel`; the smgr handles
    // are the relation's own and one opened (and closed) here.
    unsafe {
        pg_sys::FlushRelationBuffers(rel.raw());
        let dst = pg_sys::RelationCreateStorage(*locator, pers, true);
        let src = pg_sys::RelationGetSmgr(rel.raw());
        pg_sys::RelationCopyStorage(src, dst, pg_sys::ForkNumber::MAIN_FORKNUM, pers);
        for fork in [
            pg_sys::ForkNumber::FSM_FORKNUM,
            pg_sys::ForkNumber::VISIBILITYMAP_FORKNUM,
            pg_sys::ForkNumber::INIT_FORKNUM,
        ] {
            if pg_sys::smgrexists(pg_sys::RelationGetSmgr(rel.raw()), fork) {
                pg_sys::smgrcreate(dst, fork, false);
                let permanent = pers == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char;
                if permanent || is_unlogged(pers) && fork == pg_sys::ForkNumber::INIT_FORKNUM {
                    htup::log_smgrcreate(locator as *const Locator as *const std::ffi::c_void, fork);
                }
                pg_sys::RelationCopyStorage(pg_sys::RelationGetSmgr(rel.raw()), dst, fork, pers);
            }
        }
        pg_sys::RelationDropStorage(rel.raw());
        pg_sys::smgrclose(dst);
    }
}

/// Cuts `rel`'s main fork to `nblocks` blocks (WAL-logged; the buffers past
/// it are dropped). The caller holds ACCESS EXCLUSIVE and uses no block at
/// or past `nblocks`.
pub fn truncate(rel: Rel, nblocks: pg_sys::BlockNumber) {
    // SAFETY: as the caller guarantees above.
    unsafe { pg_sys::RelationTruncate(rel.raw(), nblocks) };
}

/// The relation's exclusive extension lock, released when dropped.
pub struct ExtensionLock(Rel);

impl ExtensionLock {
    pub fn exclusive(rel: Rel) -> ExtensionLock {
        // SAFETY: an open relation; the lock is released by Drop (or by the
        // abort's lock cleanup when an ERROR unwinds past it first).
        unsafe { pg_sys::LockRelationForExtension(rel.raw(), pg_sys::ExclusiveLock as i32) };
        ExtensionLock(rel)
    }
}

impl Drop for ExtensionLock {
    fn drop(&mut self) {
        // SAFETY: taken in `exclusive`.
        unsafe { pg_sys::UnlockRelationForExtension(self.0.raw(), pg_sys::ExclusiveLock as i32) };
    }
}
