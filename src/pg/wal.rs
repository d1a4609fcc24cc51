//! WAL plumbing for Strata's own resource manager: registering it, writing
//! its records, and the redo side's access to a record.
//!
//! A custom resource manager (`RegisterCustomRmgr`, PG15+) can only be
//! registered while `shared_preload_libraries` is processed, and a server
//! whose WAL holds its records cannot recover without it. So the choice is
//! made once per server: with `strata` preloaded, [`PageChange`] writes the
//! caller's compact record (a few dozen bytes, no page copy or delta); loaded
//! by `CREATE EXTENSION` alone, the same change goes out as a GenericXLog
//! record, which any server can replay.
//!
//! Either way a change is made on working copies of the registered pages and
//! reaches the buffers only on `commit`, inside a critical section together
//! with its WAL record; dropping an uncommitted change (early return, ERROR
//! unwinding) leaves the pages as they were. The hottest changes (one row
//! appended, one header stamped) instead change the buffer in place, as
//! heap does, inside the critical section from [`PageChange::in_place`] to
//! `commit`: they must not fail in between (an ERROR there is a PANIC).
//!
//! An index build writes its relation's pages without a record each
//! ([`build_unlogged`]) and logs every page once at its end
//! (`log_newpage_range`, as nbtree's and pgvector's builds do): nobody else
//! reads or changes an index while it is built, and a build that does not
//! finish leaves a relation its transaction never made visible.

use crate::pg::relation::Rel;
use super::buffer::PageWrite;
use super::page;
use pgrx::pg_sys;
use std::sync::atomic::{AtomicBool, Ordering};

static REGISTERED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The relation whose build this backend is running (see
    /// [`build_unlogged`]): its changes write no WAL records.
    static BUILDING: std::cell::Cell<Option<pg_sys::Oid>> = const { std::cell::Cell::new(None) };
}

/// Runs `build`, which fills the new relation `rel` (no other backend can
/// read or change it until the transaction commits), with every
/// [`PageChange`] to `rel` made without a WAL record; then, when `rel`
/// needs WAL, logs every page of its main fork as a full image. Saves a
/// record (and a page copy with its delta) per change: most of the cost of
/// the rows a build inserts one by one past `maintenance_work_mem`.
pub fn build_unlogged<T>(rel: Rel, build: impl FnOnce() -> T) -> T {
    struct Reset(Option<pg_sys::Oid>);
    impl Drop for Reset {
        fn drop(&mut self) {
            BUILDING.with(|b| b.set(self.0));
        }
    }
    let out = {
        let _reset = Reset(BUILDING.with(|b| b.replace(Some(super::rel::oid(rel)))));
        build()
    };
    if relation_needs_wal(rel) {
        let blocks = super::buffer::nblocks(rel);
        // SAFETY: `rel` is open and locked by the caller's build; every
        // block below `blocks` exists.
        unsafe { pg_sys::log_newpage_range(rel.raw(), pg_sys::ForkNumber::MAIN_FORKNUM, 0, blocks, true) };
    }
    out
}

/// A record's working copy of a page, as a page.
fn working_copy(copy: &[u64]) -> page::Page {
    // SAFETY: a BLCKSZ copy the record owns until it is done; read only.
    unsafe { page::Page::from_raw(copy.as_ptr() as pg_sys::Page) }
}

/// WAL-logs blocks `0..blocks` of fork `fork` of `rel` as full pages (an
/// unlogged index's init fork, which must survive a crash).
pub fn log_full_pages(rel: Rel, fork: pg_sys::ForkNumber::Type, blocks: pg_sys::BlockNumber) {
    // SAFETY: `rel` is open and locked by the caller; its blocks below
    // `blocks` exist in `fork`.
    unsafe { pg_sys::log_newpage_range(rel.raw(), fork, 0, blocks, true) };
}

/// Whether `rel`'s changes are logged record by record: it needs WAL and
/// is not being built by [`build_unlogged`].
fn logs_changes(rel: Rel) -> bool {
    relation_needs_wal(rel) && BUILDING.with(|b| b.get()).is_none_or(|built| built != super::rel::oid(rel))
}

/// A resource manager, as the code that owns its records sees it: safe
/// functions over a [`Redo`]. This module owns the C callbacks PostgreSQL
/// calls (`rm_redo`, `rm_desc`, `rm_identify`, `rm_mask`; see `RmgrData` in
/// `xlog_internal.h`) and hands each record or page to these.
pub trait ResourceManager {
    const ID: u8;
    const NAME: &'static std::ffi::CStr;
    /// Logical decoding of the records (`rm_decode`), if any carry rows.
    const DECODE: Option<unsafe extern "C-unwind" fn(*mut pg_sys::LogicalDecodingContext, *mut pg_sys::XLogRecordBuffer)> =
        None;
    /// Replays one record (raising [`Self::broken`] for one it cannot).
    fn redo(r: &Redo);
    /// The record described for `pg_waldump` and `pg_walinspect`.
    fn describe(r: &Redo) -> String;
    /// The name of record kind `kind` (`info` without the generic bits).
    fn name_of(kind: u8) -> Option<&'static std::ffi::CStr>;
    /// Masks what may differ between a replayed page and the primary's
    /// (`wal_consistency_checking`).
    fn mask(page: &mut [u8]);

    /// The error replay raises for a record it cannot apply.
    fn broken(what: impl std::fmt::Display) -> ! {
        super::error::error(
            pgrx::PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("cannot replay {} WAL record: {what}", Self::NAME.to_string_lossy()),
        )
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn rm_redo<R: ResourceManager>(record: *mut pg_sys::XLogReaderState) {
    // SAFETY: the record recovery hands us.
    R::redo(&unsafe { Redo::of(record) });
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn rm_desc<R: ResourceManager>(out: pg_sys::StringInfo, record: *mut pg_sys::XLogReaderState) {
    // SAFETY: the record being described.
    let text = R::describe(&unsafe { Redo::of(record) });
    let c = std::ffi::CString::new(text.replace('\0', " ")).expect("no NUL left");
    // SAFETY: `out` is the StringInfo the desc callback was given.
    unsafe { pg_sys::appendStringInfoString(out, c.as_ptr()) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn rm_identify<R: ResourceManager>(info: u8) -> *const std::ffi::c_char {
    R::name_of(info & pg_sys::XLR_RMGR_INFO_MASK as u8).map_or(std::ptr::null(), |s| s.as_ptr())
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn rm_mask<R: ResourceManager>(pagedata: *mut std::ffi::c_char, _blkno: pg_sys::BlockNumber) {
    // SAFETY: the rm_mask callback's BLCKSZ page image, ours until we return.
    R::mask(page::bytes_mut(unsafe { page::Page::from_raw(pagedata as pg_sys::Page) }));
}

/// Registers resource manager `R` when the library is being preloaded
/// (otherwise does nothing: changes then go out as GenericXLog records).
pub fn register<R: ResourceManager>() {
    // SAFETY: a plain flag set by the postmaster around preloading.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    let data = Box::leak(Box::new(pg_sys::RmgrData {
        rm_name: R::NAME.as_ptr(),
        rm_redo: Some(rm_redo::<R>),
        rm_desc: Some(rm_desc::<R>),
        rm_identify: Some(rm_identify::<R>),
        rm_startup: None,
        rm_cleanup: None,
        rm_mask: Some(rm_mask::<R>),
        rm_decode: R::DECODE,
    }));
    // SAFETY: called from _PG_init during preloading, as required; the table
    // entry is leaked, so it lives as long as the process. Raises on a
    // conflicting registration of the same id.
    unsafe { pg_sys::RegisterCustomRmgr(R::ID, data) };
    REGISTERED.store(true, Ordering::Relaxed);
}

/// Whether this server writes Strata's own WAL records.
pub fn registered() -> bool {
    REGISTERED.load(Ordering::Relaxed)
}

/// `RelationNeedsWAL`: permanent, and not created in this transaction
/// under `wal_level = minimal`.
pub fn relation_needs_wal(rel: Rel) -> bool {
    // SAFETY: an open relation's rd_rel is readable; the GUC is a plain int.
    let (permanent, replica) = unsafe {
        (
            rel.form().relpersistence == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char,
            pg_sys::wal_level >= pg_sys::WalLevel::WAL_LEVEL_REPLICA as i32,
        )
    };
    permanent && (replica || !super::rel::storage_is_new(rel))
}

/// A record of the custom resource manager: its info bits (the high four)
/// and data for each registered block in registration order (omitted from
/// the WAL when the block gets a full-page image). Page changes carry
/// everything as block data; `main`, when not empty, is main data for
/// logical decoding — the record then keeps its block data under full-page
/// images too (`REGBUF_KEEP_DATA`, as heap's records do at `wal_level =
/// logical`) and names its replication origin.
#[derive(Default)]
pub struct Record {
    pub info: u8,
    pub blocks: Vec<Vec<u8>>,
    pub main: Vec<u8>,
}

struct Page {
    buf: pg_sys::Buffer,
    /// u64s: a page image must be MAXALIGNed like a buffer. None: changed
    /// in place.
    copy: Option<Box<[u64]>>,
    full_image: bool,
}

/// A change to up to four pages: working copies until [`PageChange::commit`].
pub struct PageChange {
    /// Whether the change writes a record ([`logs_changes`], decided once).
    logged: bool,
    generic: Option<PageWrite>,
    pages: Vec<Page>,
}

impl PageChange {
    pub fn start(rel: Rel) -> PageChange {
        let logged = logs_changes(rel);
        let generic = (!registered() && logged).then(|| PageWrite::start(rel));
        PageChange {
            logged,
            generic,
            pages: Vec::new(),
        }
    }

    /// Registers an exclusively locked buffer and returns its working copy;
    /// `full_image` logs the whole page (new pages).
    pub fn register(&mut self, buf: pg_sys::Buffer, full_image: bool) -> page::Page {
        if let Some(w) = &mut self.generic {
            return w.register(buf, full_image);
        }
        // a buffer registered twice gets its first copy, as with GenericXLog
        if let Some(pg) = self.pages.iter_mut().find(|pg| pg.buf == buf) {
            pg.full_image |= full_image;
            if let Some(copy) = &mut pg.copy {
                // SAFETY: the record's working copy, kept until it is done.
                return unsafe { page::Page::from_raw(copy.as_mut_ptr() as pg_sys::Page) };
            }
            return super::buffer::page(buf);
        }
        assert!(self.pages.len() < 4, "at most four pages per WAL record");
        let mut copy = vec![0u64; page::BLCKSZ / 8].into_boxed_slice();
        // SAFETY: the record's working copy (a boxed slice that does not
        // move), kept until the record is done.
        let p = unsafe { page::Page::from_raw(copy.as_mut_ptr() as pg_sys::Page) };
        page::copy_image(p, page::bytes(super::buffer::page(buf)));
        self.pages.push(Page {
            buf,
            copy: Some(copy),
            full_image,
        });
        p
    }

    /// Registers an exclusively locked buffer to be changed in place: from
    /// here to `commit` the backend is in a critical section (any ERROR is
    /// a PANIC), so the caller checks first that its change cannot fail.
    /// With GenericXLog this is [`PageChange::register`].
    pub fn in_place(&mut self, buf: pg_sys::Buffer) -> page::Page {
        if let Some(w) = &mut self.generic {
            return w.register(buf, false);
        }
        assert!(self.pages.len() < 4, "at most four pages per WAL record");
        if self.pages.iter().all(|pg| pg.copy.is_some()) {
            // SAFETY: plain counter; left in commit (or by the PANIC of an
            // ERROR raised inside it).
            unsafe { pg_sys::CritSectionCount += 1 };
        }
        self.pages.push(Page {
            buf,
            copy: None,
            full_image: false,
        });
        super::buffer::page(buf)
    }

    /// Installs the working copies and writes one WAL record: GenericXLog's
    /// delta, or `record()` of resource manager `rmid`.
    pub fn commit(mut self, rmid: u8, record: impl FnOnce() -> Record) {
        if let Some(w) = self.generic.take() {
            w.commit();
            return;
        }
        let rec = self.logged.then(record);
        let in_place = self.pages.iter().any(|pg| pg.copy.is_none());
        // SAFETY: the buffers are exclusively locked by the caller (see
        // register). The critical section turns any error between the page
        // copies and the WAL insert into a PANIC, as heap's changes do; the
        // record was built before it (or, for in-place changes, with Rust's
        // allocator, which does not raise ERRORs). Registered data outlives
        // XLogInsert (owned by `rec`).
        unsafe {
            if !in_place {
                pg_sys::CritSectionCount += 1;
            }
            for pg in &self.pages {
                if let Some(copy) = &pg.copy {
                    page::copy_image(
                        super::buffer::page(pg.buf),
                        page::bytes(working_copy(copy)),
                    );
                }
                pg_sys::MarkBufferDirty(pg.buf);
            }
            if let Some(rec) = &rec {
                pg_sys::XLogBeginInsert();
                let decodable = !rec.main.is_empty();
                if decodable {
                    pg_sys::XLogSetRecordFlags(pg_sys::XLOG_INCLUDE_ORIGIN as u8);
                    pg_sys::XLogRegisterData(rec.main.as_ptr() as _, rec.main.len() as _);
                }
                for (i, pg) in self.pages.iter().enumerate() {
                    let mut flags = pg_sys::REGBUF_STANDARD as u8;
                    if pg.full_image {
                        flags |= pg_sys::REGBUF_FORCE_IMAGE as u8;
                    }
                    if decodable {
                        flags |= pg_sys::REGBUF_KEEP_DATA as u8;
                    }
                    pg_sys::XLogRegisterBuffer(i as u8, pg.buf, flags);
                    if let Some(data) = rec.blocks.get(i).filter(|d| !d.is_empty()) {
                        pg_sys::XLogRegisterBufData(i as u8, data.as_ptr() as _, data.len() as _);
                    }
                }
                let lsn = pg_sys::XLogInsert(rmid, rec.info);
                for pg in &self.pages {
                    page::set_lsn(super::buffer::page(pg.buf), lsn);
                }
            }
            pg_sys::CritSectionCount -= 1;
        }
        self.pages.clear();
    }
}

impl PageChange {
    /// [`PageChange::commit`] with a record of type `info` whose data for
    /// each page is `delta(page before, working copy)` — nothing for a page
    /// logged as a full image.
    pub fn commit_delta(self, rmid: u8, info: u8, delta: impl Fn(&[u8], &[u8]) -> Vec<u8>) {
        if self.generic.is_some() || !self.logged {
            return self.commit(rmid, || Record { info, ..Record::default() });
        }
        let blocks = self
            .pages
            .iter()
            .map(|pg| match &pg.copy {
                Some(copy) if !pg.full_image => delta(
                    page::bytes(super::buffer::page(pg.buf)),
                    page::bytes(working_copy(copy)),
                ),
                _ => Vec::new(),
            })
            .collect();
        self.commit(rmid, move || Record {
            info,
            blocks,
            ..Record::default()
        })
    }
}

impl Drop for PageChange {
    fn drop(&mut self) {
        if self.pages.iter().any(|pg| pg.copy.is_none()) {
            // a buffer may have been changed without its WAL record
            pgrx::ereport!(
                pgrx::PgLogLevel::PANIC,
                pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "an in-place page change was abandoned"
            );
        }
    }
}

/// A record being replayed.
pub struct Redo {
    record: *mut pg_sys::XLogReaderState,
}

impl Redo {
    /// # Safety
    /// `record` is the reader state a redo or desc callback was given.
    pub unsafe fn of(record: *mut pg_sys::XLogReaderState) -> Redo {
        Redo { record }
    }

    /// The record's rmgr-specific info bits.
    pub fn info(&self) -> u8 {
        // SAFETY: a decoded record is attached to the reader during callbacks.
        unsafe { (*(*self.record).record).header.xl_info & pg_sys::XLR_RMGR_INFO_MASK as u8 }
    }

    /// The xid the record was written by (`XLogRecGetXid`).
    pub fn xid(&self) -> u32 {
        // SAFETY: as above.
        unsafe { (*(*self.record).record).header.xl_xid }.into_inner()
    }

    /// The record's main data.
    pub fn main_data(&self) -> &[u8] {
        // SAFETY: as above; main_data_len bytes owned by the decoded record.
        unsafe {
            let r = &*(*self.record).record;
            if r.main_data.is_null() {
                return &[];
            }
            std::slice::from_raw_parts(r.main_data as *const u8, r.main_data_len as usize)
        }
    }

    /// Whether block `id` was registered.
    pub fn has_block(&self, id: u8) -> bool {
        // SAFETY: as above.
        unsafe {
            let r = &*(*self.record).record;
            id as i32 <= r.max_block_id && (*r.blocks.as_ptr().add(id as usize)).in_use
        }
    }

    /// Block `id`'s data (empty when it came with a full-page image).
    pub fn block_data(&self, id: u8) -> &[u8] {
        let mut len: pg_sys::Size = 0;
        // SAFETY: as above; returns NULL when the block has no data.
        let p = unsafe { pg_sys::XLogRecGetBlockData(self.record, id, &mut len) };
        if p.is_null() {
            return &[];
        }
        // SAFETY: `len` bytes at `p`, owned by the decoded record.
        unsafe { std::slice::from_raw_parts(p as *const u8, len) }
    }

    /// Block number of registered block `id`.
    pub fn block_number(&self, id: u8) -> pg_sys::BlockNumber {
        let mut blkno: pg_sys::BlockNumber = 0;
        // SAFETY: the locator and fork outputs are optional (NULL).
        unsafe {
            pg_sys::XLogRecGetBlockTag(
                self.record,
                id,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut blkno,
            )
        };
        blkno
    }

    /// Replays block `id`: restores its full-page image, or when the page is
    /// older than the record, hands its bytes to `apply` and stamps the LSN.
    pub fn block(&self, id: u8, apply: impl FnOnce(&mut [u8])) {
        let mut buf: pg_sys::Buffer = pg_sys::InvalidBuffer as pg_sys::Buffer;
        // SAFETY: as above; the buffer comes back exclusively locked (or
        // invalid when the relation was dropped later in the WAL).
        let action = unsafe { pg_sys::XLogReadBufferForRedo(self.record, id, &mut buf) };
        if action == pg_sys::XLogRedoAction::BLK_NEEDS_REDO {
            let p = super::buffer::page(buf);
            apply(page::bytes_mut(p));
            // SAFETY: the locked buffer whose page was just changed.
            unsafe {
                page::set_lsn(p, (*self.record).EndRecPtr);
                pg_sys::MarkBufferDirty(buf);
            }
        }
        if buf != pg_sys::InvalidBuffer as pg_sys::Buffer {
            super::buffer::unlock_release(buf);
        }
    }
}
