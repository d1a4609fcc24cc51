//! Full transaction ids, the "no snapshot can be older" test, and hot
//! standby recovery conflicts for `lsm` page recycling.
//!
//! When `lsm` drops row versions or reuses pages that older snapshots might
//! still read, a hot standby must cancel (or wait for) its queries with such
//! snapshots, as it does for heap pruning and btree page reuse. GenericXLog
//! records carry no conflict horizon, so `log_conflict` writes the record
//! nbtree writes before it reuses a deleted page (`XLOG_BTREE_REUSE_PAGE`):
//! its replay does nothing but resolve the snapshot conflict for the
//! relation's database; it touches no page.

use crate::pg::relation::Rel;
use pgrx::pg_sys;

/// The next full transaction id.
pub fn next_full_xid() -> u64 {
    // SAFETY: reads shared transam state under its lock.
    unsafe { pg_sys::ReadNextFullTransactionId() }.value
}

/// The full form of `xid`, a normal xid of the recent past (within 2^31 of
/// the next one).
pub fn full_xid_of(xid: pg_sys::TransactionId) -> u64 {
    let next = next_full_xid();
    let (epoch, next32) = (next >> 32, next as u32);
    let x = xid.into_inner();
    let epoch = if x > next32 {
        epoch.saturating_sub(1)
    } else {
        epoch
    };
    (epoch << 32) | x as u64
}

/// Whether every snapshot of every backend is newer than `fxid`.
pub fn no_snapshot_older_than(rel: Rel, fxid: u64) -> bool {
    // SAFETY: horizon check for an open relation.
    unsafe {
        pg_sys::GlobalVisCheckRemovableFullXid(rel.raw(), pg_sys::FullTransactionId { value: fxid })
    }
}

const XLOG_BTREE_REUSE_PAGE: u8 = 0xD0;

/// Makes hot standbys resolve conflicts with snapshots that may still see
/// what existed before `horizon_fxid` (a no-op unless the WAL carries
/// standby information and the relation is WAL-logged).
pub fn log_conflict(rel: Rel, horizon_fxid: u64) {
    // SAFETY: open relation; reads a server global.
    let (wal_level, persistence) =
        unsafe { (pg_sys::wal_level, rel.form().relpersistence as u8) };
    if wal_level < pg_sys::WalLevel::WAL_LEVEL_REPLICA as i32
        || persistence != pg_sys::RELPERSISTENCE_PERMANENT
    {
        return;
    }
    // xl_btree_reuse_page: locator (spc, db, rel), block, horizon (+ isCatalogRel on PG16+)
    let mut rec = [0u8; 25];
    let (spc, db, num) = crate::pg::rel::file_locator(rel);
    rec[0..4].copy_from_slice(&spc.to_le_bytes());
    rec[4..8].copy_from_slice(&db.to_le_bytes());
    rec[8..12].copy_from_slice(&num.to_le_bytes());
    rec[12..16].copy_from_slice(&pg_sys::InvalidBlockNumber.to_le_bytes());
    rec[16..24].copy_from_slice(&horizon_fxid.to_le_bytes());
    #[cfg(feature = "pg15")]
    let len = 24;
    #[cfg(not(feature = "pg15"))]
    let len = 25; // isCatalogRel = false
                  // SAFETY: a complete record of plain data; XLogInsert copies it.
    unsafe {
        pg_sys::XLogBeginInsert();
        pg_sys::XLogRegisterData(rec.as_mut_ptr() as _, len);
        pg_sys::XLogInsert(pg_sys::RmgrIds::RM_BTREE_ID as u8, XLOG_BTREE_REUSE_PAGE);
    }
}
