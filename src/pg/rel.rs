//! Relation and server facts used by inspection functions: privileges, xid
//! horizons, attribute counts, and copying a page out of a buffer.

use super::buffer;
use super::page::BLCKSZ;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::relation::Rel;


/// Raises 42501 unless the current user may SELECT from `rel`.
pub fn require_select(rel: Rel) {
    // SAFETY: open relation; GetUserId is always valid inside a transaction.
    let ok = unsafe {
        pg_sys::pg_class_aclcheck(rel.data().rd_id, pg_sys::GetUserId(), pg_sys::ACL_SELECT as _)
    } == pg_sys::AclResult::ACLCHECK_OK;
    if !ok {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied for table {}",
                relname(rel)
            )
        );
    }
}

/// `ReadNextTransactionId()`.
pub fn next_xid() -> pg_sys::TransactionId {
    // SAFETY: reads shared transam state under its own lock.
    let full = unsafe { pg_sys::ReadNextFullTransactionId() };
    pg_sys::TransactionId::from((full.value & 0xFFFF_FFFF) as u32)
}

/// `relfrozenxid` of an open relation.
pub fn frozen_xid(rel: Rel) -> pg_sys::TransactionId {
    rel.form().relfrozenxid
}

/// Number of attributes of the relation's tuple descriptor.
pub fn natts(rel: Rel) -> u16 {
    // SAFETY: open relation with a valid rd_att.
    unsafe { (*rel.data().rd_att).natts as u16 }
}

/// Storage layout of every attribute (dropped ones included), in order:
/// `(attlen, attalign in bytes, attbyval)`.
pub fn attr_layouts(rel: Rel) -> Vec<(i16, u8, bool)> {
    // SAFETY: an open relation's tuple descriptor.
    unsafe { desc_layouts(rel.tupdesc()) }
}

/// [`attr_layouts`] of a tuple descriptor (a slot's: during ALTER COLUMN
/// TYPE's rewrite the old rows follow the old descriptor, not the
/// relation's).
///
/// # Safety
/// `desc` is a valid tuple descriptor.
pub unsafe fn desc_layouts(desc: pg_sys::TupleDesc) -> Vec<(i16, u8, bool)> {
    // SAFETY: a valid tuple descriptor that outlives this call.
    let desc = unsafe { pgrx::PgTupleDesc::from_pg_unchecked(desc) };
    desc.iter()
        .map(|a| (a.attlen, align_bytes(a.attalign) as u8, a.attbyval))
        .collect()
}

/// A column's `attalign` (`'c'`, `'s'`, `'i'`, `'d'`) in bytes.
pub fn align_bytes(attalign: std::ffi::c_char) -> usize {
    match attalign as u8 {
        b's' => 2,
        b'i' => 4,
        b'd' => 8,
        _ => 1,
    }
}

/// Takes a heavyweight lock on the relation until the end of the transaction.
pub fn lock(rel: Rel, mode: u32) {
    // SAFETY: open relation; LockRelation waits or raises on deadlock.
    unsafe { pg_sys::LockRelation(rel.raw(), mode as pg_sys::LOCKMODE) }
}

/// Releases one hold of `mode` on `rel` taken with [`lock`] (or a
/// conditional lock) in this transaction.
pub fn unlock(rel: Rel, mode: u32) {
    // SAFETY: open relation; the caller took this lock and nothing it does
    // afterwards depends on it.
    unsafe { pg_sys::UnlockRelation(rel.raw(), mode as pg_sys::LOCKMODE) }
}

/// Reads every block of the main fork in order with a bulk-read strategy,
/// handing a private copy of each page to `f` (taken under a share lock).
pub fn for_each_page_copy(rel: Rel, mut f: impl FnMut(pg_sys::BlockNumber, &[u8])) {
    // SAFETY: a strategy is plain backend-local memory.
    let strategy =
        unsafe { pg_sys::GetAccessStrategy(pg_sys::BufferAccessStrategyType::BAS_BULKREAD) };
    let mut copy = vec![0u8; BLCKSZ];
    let nblocks = buffer::nblocks(rel);
    for blkno in 0..nblocks {
        check_for_interrupts!();
        // SAFETY: the caller's strategy (or null).
        let buf = unsafe { buffer::read_with(rel, blkno, strategy) };
        buffer::lock_share(buf);
        // SAFETY: a pinned, share-locked page is BLCKSZ readable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(buffer::page(buf).ptr(), copy.as_mut_ptr(), BLCKSZ)
        };
        buffer::unlock_release(buf);
        f(blkno, &copy);
    }
    // SAFETY: allocated above, no buffer uses it any more.
    unsafe { pg_sys::FreeAccessStrategy(strategy) };
}

/// Raises 42501 unless the current user owns `rel` (as VACUUM requires).
pub fn require_owner(rel: Rel) {
    // SAFETY: open relation; catalog lookups inside a transaction.
    let owner = unsafe {
        #[cfg(feature = "pg15")]
        {
            pg_sys::pg_class_ownercheck(rel.data().rd_id, pg_sys::GetUserId())
        }
        #[cfg(not(feature = "pg15"))]
        {
            pg_sys::object_ownercheck(
                pg_sys::RelationRelationId,
                rel.data().rd_id,
                pg_sys::GetUserId(),
            )
        }
    };
    if !owner {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "must be owner of table {}",
                relname(rel)
            )
        );
    }
}

/// Raises 55006 when this session still uses the relation (an open cursor
/// or an outer query), like TRUNCATE and VACUUM FULL do.
pub fn check_not_in_use(rel: Rel, what: &str) {
    let what = std::ffi::CString::new(what).expect("no NUL in a command name");
    // SAFETY: open relation; raises ERROR when in use.
    unsafe { pg_sys::CheckTableNotInUse(rel.raw(), what.as_ptr()) }
}

/// Raises 42501 unless the current user may SELECT from the table an index
/// belongs to.
pub fn require_select_on_index(index: Rel) {
    // SAFETY: an open index has rd_index with its table's OID.
    let table = unsafe { (*index.data().rd_index).indrelid };
    // SAFETY: catalog privilege check.
    let ok =
        unsafe { pg_sys::pg_class_aclcheck(table, pg_sys::GetUserId(), pg_sys::ACL_SELECT as _) }
            == pg_sys::AclResult::ACLCHECK_OK;
    if !ok {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied for index {}",
                relname(index)
            )
        );
    }
}

/// Whether the relation has an index of access method `am`.
pub fn has_index_of_am(rel: Rel, am: pg_sys::Oid) -> bool {
    index_oids(rel).into_iter().any(|oid| {
        // SAFETY: each index's relcache entry is opened and closed again.
        unsafe {
            let index = pg_sys::RelationIdGetRelation(oid);
            !index.is_null() && {
                let found = (*(*index).rd_rel).relam == am;
                pg_sys::RelationClose(index);
                found
            }
        }
    })
}

/// `RelationUsesLocalBuffers`: a temporary table (its pages live in the
/// backend's own buffers; parallel workers cannot read them).
pub fn uses_local_buffers(rel: Rel) -> bool {
    rel.form().relpersistence == pg_sys::RELPERSISTENCE_TEMP as std::ffi::c_char
}

/// The OIDs of the relation's indexes (`RelationGetIndexList`).
pub fn index_oids(rel: Rel) -> Vec<pg_sys::Oid> {
    // SAFETY: open relation; RelationGetIndexList returns a copy we free.
    unsafe {
        let list = pg_sys::RelationGetIndexList(rel.raw());
        if list.is_null() {
            return Vec::new();
        }
        let oids = (0..(*list).length as usize).map(|i| (*(*list).elements.add(i)).oid_value).collect();
        pg_sys::list_free(list);
        oids
    }
}

/// Takes a heavyweight lock on the relation if that needs no waiting.
pub fn try_lock(rel: Rel, mode: u32) -> bool {
    // SAFETY: open relation; returns false instead of waiting.
    unsafe { pg_sys::ConditionalLockRelation(rel.raw(), mode as pg_sys::LOCKMODE) }
}

/// [`try_lock`] up to `tries` times, sleeping `sleep_us` between tries and
/// never queueing (as heap's end-of-vacuum truncation does).
pub fn try_lock_retrying(rel: Rel, mode: u32, tries: u32, sleep_us: i64) -> bool {
    for _ in 0..tries {
        if try_lock(rel, mode) {
            return true;
        }
        check_for_interrupts!();
        // SAFETY: plain sleep.
        unsafe { pg_sys::pg_usleep(sleep_us) };
    }
    false
}

/// Whether rows written to `rel` must be reachable by TID before the
/// statement ends: it has (or had, until VACUUM clears the flag) indexes,
/// whose entries and unique checks name each row, or triggers, which fetch
/// rows by TID.
pub fn rows_named_by_tid(rel: Rel) -> bool {
    rel.form().relhasindex || rel.form().relhastriggers
}

/// Whether the relation's current storage was created in this transaction
/// (CREATE TABLE AS, a rewrite, TRUNCATE): no other session can read it yet.
pub fn storage_is_new(rel: Rel) -> bool {
    #[cfg(feature = "pg15")]
    let first = rel.data().rd_firstRelfilenodeSubid;
    #[cfg(not(feature = "pg15"))]
    let first = rel.data().rd_firstRelfilelocatorSubid;
    rel.data().rd_createSubid != 0 || first != 0
}

/// The relation's file: (tablespace, database, relfilenumber).
pub fn file_locator(rel: Rel) -> (u32, u32, u32) {
    super::locator::parts(&super::locator::of(rel))
}

thread_local! {
    static ON_INVALIDATE: std::cell::Cell<Option<fn(Option<pg_sys::Oid>)>> =
        const { std::cell::Cell::new(None) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if let Some(f) = ON_INVALIDATE.with(|h| h.get()) {
        f((relid != pg_sys::InvalidOid).then_some(relid));
    }
}

/// Has `f` told of every relcache invalidation this backend processes (a
/// relation's OID, or None: all relations); one hook per backend, set once.
pub fn on_relcache_invalidation(f: fn(Option<pg_sys::Oid>)) {
    if ON_INVALIDATE.with(|h| h.replace(Some(f))).is_none() {
        // SAFETY: registers a backend-lifetime callback (once: guarded above).
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0))
        };
    }
}

/// Makes every backend rebuild what it keeps about `rel` (a relcache
/// invalidation, sent when the current transaction commits).
pub fn invalidate_relcache(rel: Rel) {
    // SAFETY: open relation, inside a transaction.
    unsafe { pg_sys::CacheInvalidateRelcache(rel.raw()) }
}

/// [`invalidate_relcache`] sent to every backend at once instead of at
/// commit: for changes that are in effect before the transaction ends and
/// stay when it aborts (VACUUM's file packing, which releases its lock
/// before committing — a backend locking the table next must not keep
/// what it knew).
pub fn invalidate_relcache_now(rel: Rel) {
    // SAFETY: open relation; the message is plain data that
    // SendSharedInvalidMessages copies into the shared queue.
    unsafe {
        let shared = rel.form().relisshared;
        let mut msg: pg_sys::SharedInvalidationMessage = std::mem::zeroed();
        msg.rc = pg_sys::SharedInvalRelcacheMsg {
            id: pg_sys::SHAREDINVALRELCACHE_ID as i8,
            dbId: if shared { pg_sys::InvalidOid } else { pg_sys::MyDatabaseId },
            relId: rel.data().rd_id,
        };
        pg_sys::SendSharedInvalidMessages(&msg, 1);
    }
}

/// The OID of an open relation.
pub fn oid(rel: Rel) -> pg_sys::Oid {
    rel.data().rd_id
}

/// Opens a relation this transaction already holds a lock on; None when
/// it no longer exists (dropped in this transaction).
pub fn try_open_locked(oid: pg_sys::Oid) -> Option<Rel> {
    // SAFETY: inside a transaction; NoLock because the caller's lock is held.
    // An open relation until [`close`].
    unsafe { Rel::from_nullable(pg_sys::try_relation_open(oid, pg_sys::NoLock as pg_sys::LOCKMODE)) }
}

/// Closes a relation opened with [`try_open_locked`].
pub fn close(rel: Rel) {
    // SAFETY: opened by `open_locked`; locks stay held.
    unsafe { pg_sys::relation_close(rel.raw(), pg_sys::NoLock as pg_sys::LOCKMODE) }
}

/// Name of a relation, for error messages.
pub fn relname(rel: Rel) -> String {
    // SAFETY: an open relation has a valid rd_rel with a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(rel.form().relname.data.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
