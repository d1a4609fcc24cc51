//! CLUSTER and VACUUM FULL on `lsm` tables (`relation_copy_for_cluster`):
//! every row version not yet dead to all snapshots is copied into the new
//! relation — straight into its runs, as a bulk load ([`super::bulk`]) —,
//! keeping xmin/xmax, in the order heap's rewrite uses:
//!
//! * CLUSTER with a btree index the planner would rather sort by: the
//!   versions are sorted by the index's keys (a tuplesort, spilling to disk
//!   past `maintenance_work_mem`);
//! * CLUSTER with another index (or when an index scan is cheaper): in the
//!   order the index returns TIDs under SnapshotAny;
//! * VACUUM FULL: in rowid order.
//!
//! So a scan of the new table returns the rows in the clustering order, as
//! on heap. Values stored out of line are stored again in the new TOAST
//! table, as heap's rewrite does. Versions stay unfrozen, so the freeze
//! cutoffs are not advanced past the old table's. The caller holds ACCESS
//! EXCLUSIVE on the old table.

use crate::pg::relation::Rel;
use super::manifest;
use super::storage;
use super::version_data;
use crate::pg::buffer::Locked;
use crate::pg::htup;
use crate::pg::index_scan;
use crate::pg::page;
use crate::pg::tuplesort::ClusterSort;
use pgrx::pg_sys;

/// Picks the versions to copy and counts what it sees, like heap's rewrite.
struct Picker {
    old: Rel,
    oldest_xmin: pg_sys::TransactionId,
    live: f64,
    dead: f64,
    recently_dead: f64,
}

impl Picker {
    /// A palloc'd copy of version `t` (on `buf`, share-locked), unless it is
    /// dead to every snapshot.
    fn pick(
        &mut self,
        buf: pg_sys::Buffer,
        t: &mut pg_sys::HeapTupleData,
    ) -> Option<pg_sys::HeapTuple> {
        // SAFETY: share-locked page; HTSV may set hint bits.
        let status = unsafe { pg_sys::HeapTupleSatisfiesVacuum(t, self.oldest_xmin, buf) };
        match status {
            pg_sys::HTSV_Result::HEAPTUPLE_DEAD => {
                self.dead += 1.0;
                return None;
            }
            pg_sys::HTSV_Result::HEAPTUPLE_RECENTLY_DEAD => self.recently_dead += 1.0,
            _ => self.live += 1.0,
        }
        // Compressed pages materialize a palloc'd tuple; others are copied.
        let copy = version_data::palloc_full(self.old, buf, t).unwrap_or_else(|| {
            // SAFETY: `t` points into the locked page.
            unsafe { pg_sys::heap_copytuple(t) }
        });
        // Every copy is its own root in the new table, whose indexes are
        // built from scratch (update chains are flattened).
        // SAFETY: a palloc'd copy owned here.
        let h = unsafe { (*copy).t_data };
        htup::set_infomask2(
            h,
            htup::infomask2(h) & !(pg_sys::HEAP_ONLY_TUPLE | pg_sys::HEAP_HOT_UPDATED),
        );
        Some(copy)
    }

    /// The versions to copy from data page `block`, if it is one of `live`'s,
    /// among those `wanted` accepts.
    fn pick_page(
        &mut self,
        live: &manifest::Live,
        block: pg_sys::BlockNumber,
        wanted: &impl Fn(&pg_sys::HeapTupleData) -> bool,
    ) -> Vec<pg_sys::HeapTuple> {
        let locked = Locked::share(self.old, block);
        let (buf, p) = (locked.buffer(), locked.page());
        let mut out = Vec::new();
        if live.data_page_kind(self.old, block, p).is_some() {
            for item in 1..=page::max_offset(p) {
                if let Some(mut t) = storage::version_at(self.old, p, item).filter(wanted) {
                    out.extend(self.pick(buf, &mut t));
                }
            }
        }
        out
    }

    /// The version `tid` names: None if there is none, else the copy (None
    /// if it is dead to every snapshot).
    fn pick_tid(&mut self, tid: pg_sys::ItemPointerData) -> Option<Option<pg_sys::HeapTuple>> {
        let buf = storage::pin_tid(self.old, tid)?;
        let _locked = Locked::share_pinned(buf);
        storage::find_on_page(self.old, buf, tid).map(|loc| {
            let mut t = loc.heap_tuple(self.old);
            self.pick(buf, &mut t)
        })
    }
}

/// Appends version `t` to the new table (storing its out-of-line values
/// again); frees what it allocated, not `t`.
fn write(new: Rel, t: pg_sys::HeapTuple) {
    // SAFETY: `t` is a formed tuple; `new` is open.
    let stored = unsafe {
        if htup::has_external((*t).t_data) || (*t).t_len as usize > htup::TOAST_TUPLE_THRESHOLD {
            htup::heap_toast_insert_or_update(new.raw(), t, std::ptr::null_mut(), 0)
        } else {
            t
        }
    };
    // the new table is this transaction's and has no indexes yet: its
    // versions go straight into runs, like a bulk load's
    if super::bulk::take(new, &[stored], super::bulk::Entry::BulkState) == 0 {
        // SAFETY: the formed (maybe toasted) copy made above, ours to write.
        storage::append(new, unsafe { &mut *stored }, true, storage::RowInsert::No);
    }
    if stored != t {
        // SAFETY: the toaster's palloc'd copy, owned here.
        unsafe { pg_sys::heap_freetuple(stored) };
    }
}

/// Whether `index` is a btree (what CLUSTER's tuplesort can order by).
fn is_btree(index: Rel) -> bool {
    index.form().relam == pg_sys::BTREE_AM_OID
}

/// What the copy counted, as heap's rewrite reports it.
pub struct Copied {
    pub live: f64,
    pub dead: f64,
    pub recently_dead: f64,
}

/// `relation_copy_for_cluster`: copies `old`'s versions into `new` in the
/// order of `index` (if any; sorted when `use_sort`).
pub fn copy_for_cluster(
    old: Rel,
    new: Rel,
    index: Option<Rel>,
    use_sort: bool,
    oldest_xmin: pg_sys::TransactionId,
) -> Copied {
    let mut picker = Picker {
        old,
        oldest_xmin,
        live: 0.0,
        dead: 0.0,
        recently_dead: 0.0,
    };
    let copy_and_free = |t: pg_sys::HeapTuple| {
        write(new, t);
        // SAFETY: palloc'd by the picker, owned here.
        unsafe { pg_sys::heap_freetuple(t) };
    };
    // heap sorts only when told to and only by a btree (what tuplesort can do)
    let sort_index = index.filter(|&i| use_sort && is_btree(i));
    // Copied in index order first: the rowids the index led to.
    let mut seen = Vec::new();
    if let (Some(index), None) = (index, sort_index) {
        index_scan::each_tid(old, index, |tid| {
            pgrx::check_for_interrupts!();
            if let Some(picked) = picker.pick_tid(tid) {
                seen.push(storage::rowid_of(&tid));
                if let Some(t) = picked {
                    copy_and_free(t);
                }
            }
        });
        seen.sort_unstable();
        seen.dedup();
    }
    // Then every version in rowid order (into the sort, when sorting), but
    // those the index led to; after an index-ordered copy that is only what
    // the index does not list (none are expected).
    let mut sort = sort_index.map(|index| ClusterSort::begin(old, index));
    let unseen =
        |t: &pg_sys::HeapTupleData| seen.binary_search(&storage::rowid_of(&t.t_self)).is_err();
    let (live, blocks) = manifest::scan_order(old, 0, u64::MAX);
    for block in blocks {
        pgrx::check_for_interrupts!();
        for t in picker.pick_page(&live, block, &unseen) {
            match sort.as_mut() {
                Some(s) => {
                    // SAFETY: a valid tuple the scan just returned.
                    unsafe { s.put(t) };
                    // SAFETY: the sort keeps its own copy.
                    unsafe { pg_sys::heap_freetuple(t) };
                }
                None => copy_and_free(t),
            }
        }
    }
    if let Some(s) = sort {
        s.drain(|t| {
            pgrx::check_for_interrupts!();
            write(new, t);
        });
    }
    super::bulk::finish(new);
    Copied {
        live: picker.live,
        dead: picker.dead,
        recently_dead: picker.recently_dead,
    }
}
