//! Index datums of a row version: the executor scaffolding (an EState, a
//! per-tuple expression context, the prepared partial-index predicate) to
//! evaluate an index's expressions and predicate on a version held in a
//! slot, as heap's build and validate scans and the executor's index
//! inserts do (`FormIndexDatum`).

use crate::pg::relation::Rel;
use crate::pg::error_catch;
use crate::pg::tuple_slot::Slot;
use pgrx::pg_sys;

pub struct IndexDatums {
    info: *mut pg_sys::IndexInfo,
    estate: *mut pg_sys::EState,
    econtext: *mut pg_sys::ExprContext,
    /// Where the version to form datums from is stored.
    pub slot: Slot,
    /// Whether `slot` was made here (and is dropped by `finish`).
    own_slot: bool,
    predicate: *mut pg_sys::ExprState,
    pub values: [pg_sys::Datum; pg_sys::INDEX_MAX_KEYS as usize],
    pub isnull: [bool; pg_sys::INDEX_MAX_KEYS as usize],
}

impl IndexDatums {
    /// Scaffolding with a slot of its own for `table`'s versions.
    pub fn new(table: Rel, info: *mut pg_sys::IndexInfo) -> IndexDatums {
        // SAFETY: open relation; a slot of the table's own kind.
        let slot = unsafe { Slot::from_raw(pg_sys::table_slot_create(table.raw(), std::ptr::null_mut())) };
        Self::with_slot(info, slot, true)
    }

    /// Scaffolding over the caller's `slot`, which must hold a row of the
    /// index's table whenever [`form`](Self::form) runs.
    pub fn over(info: *mut pg_sys::IndexInfo, slot: Slot) -> IndexDatums {
        Self::with_slot(info, slot, false)
    }

    fn with_slot(info: *mut pg_sys::IndexInfo, slot: Slot, own_slot: bool) -> IndexDatums {
        // SAFETY: standard executor scaffolding for FormIndexDatum, as in heap.
        unsafe {
            let estate = pg_sys::CreateExecutorState();
            let econtext = pg_sys::MakePerTupleExprContext(estate);
            (*econtext).ecxt_scantuple = slot.raw();
            let predicate = pg_sys::ExecPrepareQual((*info).ii_Predicate, estate);
            IndexDatums {
                info,
                estate,
                econtext,
                slot,
                own_slot,
                predicate,
                values: [pg_sys::Datum::from(0usize); pg_sys::INDEX_MAX_KEYS as usize],
                isnull: [false; pg_sys::INDEX_MAX_KEYS as usize],
            }
        }
    }

    /// Forms the index datums of the version in `self.slot`; false when a
    /// partial index's predicate rejects it.
    pub fn form(&mut self) -> bool {
        // SAFETY: scaffolding from `with_slot`; the slot holds a version.
        unsafe {
            pg_sys::MemoryContextReset((*self.econtext).ecxt_per_tuple_memory);
            // (an error in an index expression or predicate keeps its
            // CONTEXT: see pg::error_catch)
            if !self.predicate.is_null() && !error_catch::exec_qual(self.predicate, self.econtext) {
                return false;
            }
            error_catch::form_index_datum(
                self.info,
                self.slot.raw(),
                self.estate,
                self.values.as_mut_ptr(),
                self.isnull.as_mut_ptr(),
            );
        }
        true
    }

    pub fn finish(self) {
        // SAFETY: tear down what `with_slot` created; the expression states
        // pointed into the estate.
        unsafe {
            if self.own_slot {
                pg_sys::ExecDropSingleTupleTableSlot(self.slot.raw());
            }
            pg_sys::FreeExecutorState(self.estate);
            (*self.info).ii_ExpressionsState = std::ptr::null_mut();
            (*self.info).ii_PredicateState = std::ptr::null_mut();
        }
    }
}
