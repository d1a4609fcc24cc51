//! Writing the pages a build appends to a new relation, in block order.
//!
//! On PostgreSQL 16 and later through `bulk_write.c` (what nbtree's sorted
//! build uses): pages go to the storage manager directly, not through shared
//! buffers — no buffer mapping, extension lock or GenericXLog copy per page
//! — and are WAL-logged as full images several to a record when the
//! relation needs WAL; the relation is fsync'd (or registered for the next
//! checkpoint) when the writer finishes. The caller must be the only user
//! of the relation and must not touch the blocks it writes through the
//! buffer manager before [`BulkPages::finish`] (pages written before the
//! writer starts, such as a metapage, stay as they are). On PostgreSQL 15
//! each page is a new buffer with a full-page GenericXLog record, as before.
//!
//! Pages are composed in a block-sized, I/O-aligned buffer the writer hands
//! out ([`BulkPages::page`]), then written whole.

use pgrx::pg_sys;

#[cfg(not(feature = "pg15"))]
mod ffi {
    use pgrx::pg_sys;

    /// storage/bulk_write.h (not bound by pgrx): opaque writer state.
    #[repr(C)]
    pub struct BulkWriteState {
        _private: [u8; 0],
    }

    extern "C-unwind" {
        pub fn smgr_bulk_start_rel(rel: pg_sys::Relation, forknum: pg_sys::ForkNumber::Type) -> *mut BulkWriteState;
        pub fn smgr_bulk_get_buf(state: *mut BulkWriteState) -> *mut u8;
        pub fn smgr_bulk_write(state: *mut BulkWriteState, blocknum: pg_sys::BlockNumber, buf: *mut u8, page_std: bool);
        pub fn smgr_bulk_finish(state: *mut BulkWriteState);
    }
}

/// A writer of new pages at the end of a relation's main fork.
pub struct BulkPages {
    rel: pg_sys::Relation,
    #[cfg(not(feature = "pg15"))]
    state: *mut ffi::BulkWriteState,
    /// The page being composed (bulk_write's buffer, or palloc'd on PG15).
    page: *mut u8,
    /// The next block to write.
    next: pg_sys::BlockNumber,
}

impl BulkPages {
    /// Starts writing at the relation's current end.
    pub fn start(rel: pg_sys::Relation) -> BulkPages {
        let next = super::buffer::nblocks(rel);
        #[cfg(not(feature = "pg15"))]
        {
            // SAFETY: an open relation this backend is building; the state
            // lives in the current memory context.
            let state = unsafe {
                pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::smgr_bulk_start_rel(rel, pg_sys::ForkNumber::MAIN_FORKNUM))
            };
            BulkPages {
                rel,
                state,
                page: std::ptr::null_mut(),
                next,
            }
        }
        #[cfg(feature = "pg15")]
        {
            BulkPages {
                rel,
                page: std::ptr::null_mut(),
                next,
            }
        }
    }

    /// The block the next [`BulkPages::write`] fills.
    pub fn next_block(&self) -> pg_sys::BlockNumber {
        self.next
    }

    /// A zeroed, block-sized page to compose the next block in (the same
    /// one until it is written).
    pub fn page(&mut self) -> pg_sys::Page {
        if self.page.is_null() {
            #[cfg(not(feature = "pg15"))]
            {
                // SAFETY: a live writer state; the buffer is BLCKSZ bytes,
                // I/O aligned, owned by the writer until written.
                self.page = unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::smgr_bulk_get_buf(self.state)) };
            }
            #[cfg(feature = "pg15")]
            {
                // SAFETY: palloc of one block in the current context.
                self.page = unsafe { pg_sys::palloc(pg_sys::BLCKSZ as usize) } as *mut u8;
            }
            // SAFETY: BLCKSZ writable bytes.
            unsafe { std::ptr::write_bytes(self.page, 0, pg_sys::BLCKSZ as usize) };
        }
        self.page as pg_sys::Page
    }

    /// Writes the composed page (standard layout: its hole is left out of
    /// the WAL) as the next block.
    pub fn write(&mut self) {
        let page = self.page();
        self.page = std::ptr::null_mut();
        #[cfg(not(feature = "pg15"))]
        {
            // SAFETY: the writer's own buffer, given back to it; blocks are
            // written in order past the relation's size at the start.
            unsafe {
                pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::smgr_bulk_write(self.state, self.next, page as *mut u8, true))
            };
        }
        #[cfg(feature = "pg15")]
        {
            let buf = super::buffer::extend_locked(self.rel);
            assert_eq!(super::buffer::block_number(buf), self.next, "bulk pages out of step");
            let mut w = super::buffer::PageWrite::start(self.rel);
            let target = w.register(buf, true);
            // SAFETY: both are BLCKSZ bytes; the target is the locked new
            // buffer's working copy.
            unsafe {
                std::ptr::copy_nonoverlapping(page as *const u8, target as *mut u8, pg_sys::BLCKSZ as usize);
                pg_sys::pfree(page as *mut std::ffi::c_void);
            }
            w.commit();
            super::buffer::unlock_release(buf);
        }
        self.next += 1;
    }

    /// Makes the written pages durable (WAL-logged or synced) and readable
    /// through the buffer manager.
    pub fn finish(self) {
        #[cfg(not(feature = "pg15"))]
        // SAFETY: a live writer state, finished once (self is consumed).
        unsafe {
            pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::smgr_bulk_finish(self.state))
        };
        let _ = self.rel;
    }
}
