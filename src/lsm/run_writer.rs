//! Writing runs: the shared machinery of L0 flushes and run merges.
//!
//! [`survivors`] copies out the row versions of one source page that some
//! snapshot may still see (`HeapTupleSatisfiesVacuum` against the caller's
//! removal horizon); [`RunWriter`] packs versions, in rowid order, into new
//! RUN_DATA pages and writes each run's fence index and bloom filter
//! ([`super::bloom`]), one full-page
//! GenericXLog record per page into free or new blocks; [`reserve_run_ids`]
//! makes the run ids a writer may use durable before any page is written,
//! and [`switch`] installs the result in the metapage with one WAL record.
//! Until that switch the new pages are unreachable (free), so a crash at any
//! point leaves the old manifest or the new one, never a mix.

use crate::pg::page::Page;
use crate::pg::relation::Rel;
use super::bloom::{self, RowidLog};
use super::chain;
use super::compact_page;
use super::format::{
    self, Meta, PageKind, RunDesc, FENCE_ENTRIES, MAX_RUN_DATA_PAGES,
};
use super::manifest;
use super::pack_thread::Packer;
use super::page_image::{self, PageImage};
use super::run_packer::{PackedPage, RunPacker};
use super::storage::{self, META_BLOCK};
use super::wal_record::{self, Headers};
use crate::pg::buffer::{Locked, PageWrite};
use crate::pg::htup;
use crate::pg::page;
use crate::pg::wal::PageChange;
use pgrx::pg_sys;
use std::collections::{HashMap, HashSet};

/// The header bytes stamps change (all but `t_hoff`).
const STAMPED_SIZE: usize = wal_record::HEADER_FIELDS;

/// Writes run pages: data pages as they fill, then the fence index.
pub struct RunWriter {
    rel: Rel,
    meta: Meta,
    taken: HashSet<pg_sys::BlockNumber>,
    next_run_id: u32,
    /// None once finished.
    packer: Option<Packer>,
    current: RunDesc,
    fences: Vec<(u64, u32)>,
    done: Vec<RunDesc>,
    level: u16,
    /// Pages written (data and index), for the write-amplification counters.
    pub pages_written: u64,
    /// Runs alongside DML (see [`manifest::allocate_block_now`]).
    alongside_dml: bool,
    /// `(first rowid, block)` of every data page written, in rowid order.
    data_pages: Vec<(u64, pg_sys::BlockNumber)>,
    /// Rowids added and not yet in a closed run (for its bloom filter).
    rowids: RowidLog,
    bloom_bits_per_key: u32,
    /// The end of the run ids reserved for this writer, when it extends its
    /// reservation itself as it goes (a bulk load; see [`Self::reserving`]).
    reserved_until: Option<u32>,
    /// The first run id reserved for this writer (its `writing_from` mark).
    reserved_from: u32,
    /// The current run's fence index as published so far (a bulk load
    /// whose rows must be reachable by TID as each batch ends).
    publish: Option<Published>,
}

/// The fence index of a run published as it is written: its root and
/// leaves stay where they are and take the new data pages at each
/// [`RunWriter::sync`]; the run, once closed, keeps them.
struct Published {
    root: pg_sys::BlockNumber,
    /// `(first rowid, block)` of each leaf written.
    leaves: Vec<(u64, pg_sys::BlockNumber)>,
    /// Fences of the current run already in its leaves.
    in_leaves: usize,
}

/// What a [`RunWriter`] wrote.
pub struct Written {
    pub runs: Vec<RunDesc>,
    /// The run id after the last one written.
    pub next_run_id: u32,
    /// `(first rowid, block)` of every data page, in rowid order.
    pub data_pages: Vec<(u64, pg_sys::BlockNumber)>,
    /// Every block written (data and index pages).
    pub blocks: Vec<pg_sys::BlockNumber>,
}

impl RunWriter {
    pub fn new(rel: Rel, meta: &Meta, level: u16) -> RunWriter {
        RunWriter::with_packer(rel, meta, level, true)
    }

    /// A writer packing on a thread of its own (`threaded`, where the
    /// settings and cores allow) or in the backend.
    fn with_packer(rel: Rel, meta: &Meta, level: u16, threaded: bool) -> RunWriter {
        let id = meta.header.next_run_id;
        RunWriter {
            rel,
            meta: meta.clone(),
            taken: HashSet::new(),
            next_run_id: id + 1,
            packer: Some(packer(id, rel, threaded)),
            current: new_run(id, level),
            fences: Vec::new(),
            done: Vec::new(),
            level,
            pages_written: 0,
            alongside_dml: false,
            data_pages: Vec::new(),
            rowids: RowidLog::default(),
            bloom_bits_per_key: super::gucs::bloom_bits_per_key(),
            reserved_until: None,
            reserved_from: id,
            publish: None,
        }
    }

    /// A writer for a bulk load (alongside DML, reserving `reserve` run ids
    /// at a time, as [`Self::reserving`]) that publishes its run as it is
    /// written: its (empty) root is written now and returned, for the
    /// metapage's open-run slot; [`Self::sync`] then puts every row added
    /// so far on pages its fence index reaches. It packs in the backend:
    /// each batch waits for its pages (measured: a COPY into an indexed
    /// table ran a third slower handing each batch to a thread and waiting
    /// for it). The run must not outgrow one fence index ([`Self::room_for`]).
    pub fn publishing(
        rel: Rel,
        meta: &Meta,
        level: u16,
        reserve: u32,
    ) -> (RunWriter, pg_sys::BlockNumber) {
        let mut w = RunWriter::with_packer(rel, meta, level, false)
            .alongside_dml()
            .reserving(reserve);
        let id = w.current.run_id;
        let root = w.write(&page_image::fence_page(id, format::INDEX_ROOT, &[]));
        w.publish = Some(Published {
            root,
            leaves: Vec::new(),
            in_leaves: 0,
        });
        (w, root)
    }

    /// Whether `rows` more versions (a page each at most) fit in the
    /// current run's fence index.
    pub fn room_for(&self, rows: usize) -> bool {
        self.fences.len() + rows + 1 < MAX_RUN_DATA_PAGES
    }

    /// Puts every version added so far on a data page (the last one as
    /// full as they make it) and the pages into the published fence index:
    /// data pages first, then the leaves, then the root, so that a reader
    /// going down the index always finds what it names.
    pub fn sync(&mut self) {
        let Some(Packer::Inline(packer)) = self.packer.as_mut() else {
            unreachable!("a published run packs in the backend")
        };
        for page in packer.flush() {
            self.write_data_page(page);
        }
        self.publish_fences();
    }

    /// Writes the fences not yet in the published leaves (rewriting the
    /// last leaf, adding new ones) and, when leaves were added, the root.
    fn publish_fences(&mut self) {
        let Some(mut p) = self.publish.take() else {
            return;
        };
        let id = self.current.run_id;
        let mut new_leaf = false;
        while p.in_leaves < self.fences.len() {
            let leaf = p.in_leaves / FENCE_ENTRIES;
            let end = ((leaf + 1) * FENCE_ENTRIES).min(self.fences.len());
            let entries = &self.fences[leaf * FENCE_ENTRIES..end];
            let first = entries[0].0;
            let image = page_image::fence_page(id, format::INDEX_LEAF, entries);
            match p.leaves.get(leaf) {
                Some(&(_, block)) => self.rewrite(block, &image),
                None => {
                    let block = self.write(&image);
                    p.leaves.push((first, block));
                    new_leaf = true;
                }
            }
            p.in_leaves = end;
        }
        if new_leaf {
            self.rewrite(p.root, &page_image::fence_page(id, format::INDEX_ROOT, &p.leaves));
        }
        self.publish = Some(p);
    }

    /// Replaces the page at `block` (one this writer wrote) with `image`,
    /// logging only what changed.
    fn rewrite(&mut self, block: pg_sys::BlockNumber, image: &PageImage) {
        let buf = Locked::exclusive(self.rel, block);
        let mut w = PageWrite::start(self.rel);
        let p = w.register(buf.buffer(), false);
        page::copy_image(p, image.bytes());
        w.commit();
        drop(buf);
        self.pages_written += 1;
    }

    /// A writer whose run ids `reserved.next_run_id .. + n` were reserved by
    /// [`reserve_run_ids`] and which reserves more itself (keeping the
    /// `writing_from` mark at its first id) when it runs out: a bulk load,
    /// whose size is not known in advance.
    pub fn reserving(mut self, n: u32) -> Self {
        self.reserved_until = Some(self.reserved_from + n);
        self
    }

    /// The relation, again: a writer kept across calls (a bulk load) gets
    /// the caller's open relation each time.
    pub fn set_rel(&mut self, rel: Rel) {
        self.rel = rel;
    }

    /// Runs closed so far (each one's fence index is full).
    pub fn runs_closed(&self) -> usize {
        self.done.len()
    }

    /// A writer for a merge that runs alongside DML: its page allocations
    /// check the manifest as it is at each allocation.
    pub fn alongside_dml(mut self) -> Self {
        self.alongside_dml = true;
        self
    }

    /// Writes a finished page image into a fresh block (full-page WAL).
    fn write(&mut self, image: &PageImage) -> pg_sys::BlockNumber {
        let buf = Locked::adopt(if self.alongside_dml {
            manifest::allocate_block_now(self.rel, &self.taken)
        } else {
            manifest::allocate_block(self.rel, &self.meta, &self.taken)
        });
        let block = buf.block();
        self.taken.insert(block);
        self.pages_written += 1;
        write_image(self.rel, buf, image);
        block
    }

    pub fn add(&mut self, rowid: u64, tuple: &[u8]) {
        if self.bloom_bits_per_key > 0 {
            self.rowids.push(rowid);
        }
        let added = self.packer.as_mut().expect("an unfinished writer").add(rowid, tuple);
        for page in added.unwrap_or_else(|e| crate::pg::error::raise(&e)) {
            self.write_data_page(page);
        }
    }

    /// Writes a full data page into the current run; a run whose fence
    /// index is full is closed and the versions still pending go to the next.
    fn write_data_page(&mut self, mut page: PackedPage) {
        // (a packer ahead on its thread tagged it with the run open then)
        page.image.set_owner(self.current.run_id);
        let block = self.write(&page.image);
        self.fences.push((page.first_rowid, block));
        self.data_pages.push((page.first_rowid, block));
        let run = &mut self.current;
        if run.versions == 0 {
            run.first_rowid = page.first_rowid;
        }
        run.last_rowid = page.last_rowid;
        run.versions += page.versions;
        run.tuple_bytes += page.tuple_bytes;
        if self.fences.len() == MAX_RUN_DATA_PAGES {
            // a published run ends before it fills (`room_for`): the next
            // run's pages would not be published
            assert!(self.publish.is_none(), "a published run outgrew its fence index");
            self.close_run();
        }
    }

    /// Writes the fence index (and bloom filter) of the current run and
    /// starts the next one.
    fn close_run(&mut self) {
        let id = self.current.run_id;
        self.publish_fences();
        let published = self.publish.take();
        let fences = std::mem::take(&mut self.fences);
        let mut leaves = Vec::new();
        match &published {
            Some(p) => leaves.clone_from(&p.leaves),
            None => {
                for chunk in fences.chunks(FENCE_ENTRIES) {
                    let leaf = page_image::fence_page(id, format::INDEX_LEAF, chunk);
                    leaves.push((chunk[0].0, self.write(&leaf)));
                }
            }
        }
        let root = match self.write_filter(leaves.len()) {
            Some(trailer) => Some(page_image::root_page_with_filter(id, &leaves, &trailer)),
            None => published.is_none().then(|| page_image::fence_page(id, format::INDEX_ROOT, &leaves)),
        };
        // a published root already lists its leaves; it is rewritten only
        // to name a filter
        self.current.root = match (&published, root) {
            (Some(p), Some(root)) => {
                self.rewrite(p.root, &root);
                p.root
            }
            (Some(p), None) => p.root,
            (None, root) => self.write(&root.expect("built above")),
        };
        self.current.data_pages = fences.len() as u32;
        self.done.push(self.current);
        self.current = new_run(self.next_run_id, self.level);
        self.next_run_id += 1;
        if let Some(until) = self.reserved_until {
            if self.next_run_id >= until {
                const MORE: u32 = 4;
                let from = self.reserved_from;
                switch(self.rel, None, |m| {
                    m.writing_from = from;
                    m.header.next_run_id = m.header.next_run_id.max(until) + MORE;
                });
                self.reserved_until = Some(until + MORE);
            }
        }
    }

    /// Builds the current run's bloom filter from the rowids logged up to
    /// its last one, writes its pages and returns the root trailer naming
    /// them (None: filters off, or no room in the root).
    fn write_filter(&mut self, leaves: usize) -> Option<Vec<u8>> {
        let rowids = self.rowids.take_through(self.current.last_rowid);
        // a run holding every rowid of its range (a bulk load's) has none
        // to reject: a filter would only cost lookups a page read
        let run = &self.current;
        if run.last_rowid - run.first_rowid + 1 == run.versions {
            return None;
        }
        let max_pages = page_image::filter_pages_fitting(leaves);
        let (npages, k) = bloom::geometry(rowids.len(), self.bloom_bits_per_key, max_pages)?;
        let mut filter = bloom::Filter::new(npages, k);
        rowids.iter().for_each(|r| filter.add(r));
        let id = self.current.run_id;
        let blocks: Vec<u32> = std::mem::take(&mut filter.pages)
            .iter()
            .map(|body| self.write(&page_image::bloom_page(id, body)))
            .collect();
        Some(bloom::encode_trailer(k, &blocks))
    }

    pub fn finish(mut self) -> Written {
        let packer = self.packer.take().expect("an unfinished writer");
        for page in packer.finish().unwrap_or_else(|e| crate::pg::error::raise(&e)) {
            self.write_data_page(page);
        }
        if !self.fences.is_empty() {
            self.close_run();
        }
        Written {
            runs: self.done,
            // `current` is the unused next run
            next_run_id: self.current.run_id,
            data_pages: self.data_pages,
            blocks: self.taken.into_iter().collect(),
        }
    }
}

/// A packer for run `id` of `rel` as the settings ask (codec, layout, on
/// a thread of its own when `threaded` and the machine has a second core).
fn packer(id: u32, rel: Rel, threaded: bool) -> Packer {
    let p = RunPacker::with_layout(
        id,
        super::gucs::compression(),
        super::gucs::compact_pages(),
    );
    let p = if super::gucs::columnar() {
        p.with_columns(super::version_data::columns(rel))
            .with_sections(super::gucs::sectioned_pages())
            .with_dictionaries(super::gucs::dictionary_pages())
            .with_zstd_sections(super::gucs::zstd_sections())
    } else {
        p
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Packer::new(p, threaded && super::gucs::pack_thread() && cores > 1)
        .unwrap_or_else(|e| crate::pg::error::raise(&e))
}

/// Overwrites the locked page `buf` with `image` (full-page WAL image) and
/// releases it.
pub fn write_image(rel: Rel, buf: Locked, image: &PageImage) {
    let mut w = PageWrite::start(rel);
    let p = w.register(buf.buffer(), true);
    page::copy_image(p, image.bytes());
    w.commit();
}

/// A new run's descriptor: its id and level, nothing written yet.
fn new_run(run_id: u32, level: u16) -> RunDesc {
    RunDesc {
        run_id,
        level,
        ..Default::default()
    }
}

/// What [`copy_survivors`] wrote and copied.
pub struct Copied {
    pub written: Written,
    /// Bytes of row versions copied.
    pub bytes: u64,
    /// Row versions copied.
    pub versions: u64,
    /// Each source page and its LSN when it was read (for
    /// [`refresh_headers`]).
    pub copied_at: Vec<(pg_sys::BlockNumber, u64)>,
}

/// Copies the versions of pages `sources` that survive `horizon` (see
/// [`survivors`]; the rowids they drop go to `dropped`) into new runs of
/// `level`, written alongside DML: what a flush and a merge both do.
///
/// Run ids are reserved durably before any run page is written: pages of a
/// flush or merge that a crash interrupts keep ids no later run will ever
/// get, so they can never be mistaken for a listed run's pages.
pub fn copy_survivors(
    rel: Rel,
    sources: Vec<pg_sys::BlockNumber>,
    level: u16,
    horizon: pg_sys::TransactionId,
    chains_swept: bool,
    dropped: &mut Vec<u64>,
) -> Copied {
    let reserve = (2 * sources.len()).div_ceil(MAX_RUN_DATA_PAGES).max(1) as u32;
    let mut writer = RunWriter::new(rel, &reserve_run_ids(rel, reserve), level).alongside_dml();
    let (mut bytes, mut versions) = (0u64, 0u64);
    let mut copied_at = Vec::with_capacity(sources.len());
    for block in sources {
        pgrx::check_for_interrupts!();
        crate::pg::vacuum::delay_point();
        let (kept, lsn) = survivors(rel, block, horizon, chains_swept, dropped);
        for (rowid, tuple) in kept {
            writer.add(rowid, &tuple);
            bytes += tuple.len() as u64;
            versions += 1;
        }
        copied_at.push((block, lsn));
    }
    Copied { written: writer.finish(), bytes, versions, copied_at }
}

/// The row versions of one source page that survive, copied out (rowid,
/// tuple bytes), and the rowids the indexes must drop; also the page's LSN
/// when it was read.
///
/// Update chains (see `chain`): a redirect survives as its header alone; a
/// dead root still marked HOT-updated (no sweep has shortened its chain)
/// survives whole. A dead heap-only version is dropped when it never was on a chain's live path (its
/// inserter aborted) or when `chains_swept` — VACUUM's sweep redirected
/// every root past its dead members, by this same `horizon` — else kept.
pub fn survivors(
    rel: Rel,
    block: pg_sys::BlockNumber,
    horizon: pg_sys::TransactionId,
    chains_swept: bool,
    dropped: &mut Vec<u64>,
) -> (Vec<(u64, Vec<u8>)>, u64) {
    let locked = Locked::share(rel, block);
    let (buf, p) = (locked.buffer(), locked.page());
    let mut out = Vec::new();
    let view = storage::PageView::of(rel, p);
    for item in 1..=page::max_offset(p) {
        let Some(mut t) = view.as_ref().and_then(|v| v.version(item)) else {
            continue;
        };
        let rowid = storage::rowid_of(&t.t_self);
        // SAFETY: share-locked page; HTSV may set hint bits, which the copy keeps.
        let status = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, horizon, buf) };
        if status == pg_sys::HTSV_Result::HEAPTUPLE_DEAD {
            let h = t.t_data;
            if chain::is_redirect(h) {
                out.push((rowid, chain::redirect_bytes(h)));
                continue;
            }
            let kept = if chain::is_heap_only(h) {
                let aborted = htup::infomask(h)
                    & (pg_sys::HEAP_XMIN_COMMITTED | pg_sys::HEAP_XMIN_INVALID)
                    == pg_sys::HEAP_XMIN_INVALID;
                !(chains_swept || aborted)
            } else {
                chain::is_hot_updated(h)
            };
            if !kept {
                // (a heap-only version has no index entries to remove; it
                // is listed all the same, counted and in the standby
                // conflict horizon like every dropped version)
                dropped.push(rowid);
                continue;
            }
        }
        let bytes = super::version_data::full_bytes(rel, buf, &t).unwrap_or_else(|| {
            // SAFETY: t_data points at t_len bytes on the pinned page.
            unsafe { std::slice::from_raw_parts(t.t_data as *const u8, t.t_len as usize) }.to_vec()
        });
        out.push((rowid, bytes));
    }
    (out, page_lsn(p))
}

/// A page's `pd_lsn` as one number (for equality tests only).
pub fn page_lsn(p: Page) -> u64 {
    format::u64_at(page::bytes(p), 0)
}

/// Advances `next_run_id` by `n` in one WAL record; returns the manifest
/// as it was before (its `next_run_id` is the first reserved id). The
/// reserved ids are marked as being written (`writing_from`), so that their
/// pages count as in use until the switch that lists them (which clears the
/// mark) — concurrent L0 allocations must not take them. A crash leaves the
/// mark; the next reservation or switch replaces it and the pages become free.
pub fn reserve_run_ids(rel: Rel, n: u32) -> Meta {
    switch(rel, None, |m| {
        m.writing_from = m.header.next_run_id;
        m.header.next_run_id = m
            .header
            .next_run_id
            .checked_add(n)
            .expect("run ids exhausted")
    })
}

/// Installs a new manifest in one WAL record on the metapage: `change` gets
/// the current manifest and edits it (the caller holds at least EXCLUSIVE,
/// so only this backend changes runs and L0's range). Pending entries no
/// snapshot needs any more are dropped on the way. `conflict`: when the
/// change drops row versions, the full xid below which they were dead; hot
/// standbys resolve conflicts with older snapshots before they replay the
/// switch. Returns the manifest as it was before.
pub fn switch(
    rel: Rel,
    conflict: Option<u64>,
    change: impl FnOnce(&mut Meta),
) -> Meta {
    if let Some(horizon) = conflict {
        crate::pg::standby::log_conflict(rel, horizon);
    }
    let meta_buf = Locked::exclusive(rel, META_BLOCK);
    let mut w = PageWrite::start(rel);
    let mp = w.register(meta_buf.buffer(), false);
    let before = Meta::decode(page::bytes(mp)).expect("metapage decoded before");
    let mut next = before.clone();
    manifest::prune_pending(rel, &mut next);
    // a switch lists what was written (or was abandoned): nothing is in flight
    next.writing_from = 0;
    change(&mut next);
    next.encode(page::bytes_mut(mp));
    page::set_lower(mp, format::META_END);
    w.commit();
    drop(meta_buf);
    before
}

/// Whether other scans may run during a flush or merge (the caller holds
/// EXCLUSIVE: readers run, and pages the switch frees must stay pending) or
/// not (ACCESS EXCLUSIVE: freed pages are reusable at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readers {
    Allowed,
    Excluded,
}

/// Room for `needed` more pending entries (after dropping those no snapshot
/// needs any more)? Always with readers excluded.
pub fn pending_room(rel: Rel, readers: Readers, needed: usize) -> bool {
    if readers == Readers::Excluded {
        return true;
    }
    let Some(meta) = manifest::read(rel) else {
        return true;
    };
    if meta.pending.len() + needed <= format::MAX_PENDING {
        return true;
    }
    switch(rel, None, |_| {}); // drops the entries no snapshot needs
    manifest::read(rel).is_some_and(|m| m.pending.len() + needed <= format::MAX_PENDING)
}

/// Records what a switch frees as pending when readers may still use it.
pub fn add_pending(meta: &mut Meta, readers: Readers, freed: &[(PageKind, u32, u32)]) {
    if readers == Readers::Excluded {
        return;
    }
    let safe_fxid = crate::pg::standby::next_full_xid();
    for &(kind, lo, hi) in freed {
        meta.pending.push(format::Pending {
            safe_fxid,
            kind,
            lo,
            hi,
        });
    }
    assert!(
        meta.pending.len() <= format::MAX_PENDING,
        "pending entries overflow (room was checked)"
    );
}

/// How a flush or merge that copies alongside DML gets and gives back
/// EXCLUSIVE (for the flush's seal, and for each switch).
pub struct SwitchLock<'a> {
    /// Tries for the lock; false when it could not be had.
    pub acquire: &'a dyn Fn() -> bool,
    pub release: &'a dyn Fn(),
}

/// Whether two fixed headers (less `t_hoff`) differ only in hint bits.
fn same_but_hints(a: &[u8], b: &[u8]) -> bool {
    const HINTS: u16 = (pg_sys::HEAP_XMIN_COMMITTED
        | pg_sys::HEAP_XMIN_INVALID
        | pg_sys::HEAP_XMAX_COMMITTED
        | pg_sys::HEAP_XMAX_INVALID) as u16;
    let mask = |h: &[u8]| format::u16_at(h, 20) & !HINTS;
    a[..20] == b[..20] && a[22..] == b[22..] && mask(a) == mask(b)
}

/// The fixed header (less `t_hoff`, which never changes in place) of
/// version `item` of `page`, whose tuple starts at byte `off`, as the
/// version has it: on a compact page a shared header with the version's own
/// TID in `t_ctid`.
fn stamped_header(page: &[u8], item: usize, off: usize) -> Option<[u8; STAMPED_SIZE]> {
    let mut out = [0u8; STAMPED_SIZE];
    if compact_page::is_compact(page) {
        out.copy_from_slice(&compact_page::header(page, item)?[..STAMPED_SIZE]);
    } else {
        out.copy_from_slice(page.get(off..off + STAMPED_SIZE)?);
    }
    Some(out)
}

/// Under EXCLUSIVE, before the switch of a flush or merge that copied
/// alongside DML: copies into the new data pages
/// (`pages`: first rowid and block of each) the headers of the versions on
/// the source pages that changed since the merge read them (`copied_at`:
/// block and LSN then). Returns how many headers it copied.
pub fn refresh_headers(
    rel: Rel,
    copied_at: &[(pg_sys::BlockNumber, u64)],
    pages: &[(u64, pg_sys::BlockNumber)],
) -> u64 {
    // Pages of a permanent relation get a new LSN with
    // every change (each is WAL-logged; VACUUM never runs in the transaction that
    // created the file, when WAL could be skipped); others are all compared.
    let logged = rel.form().relpersistence
        == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char;
    let mut changed: HashMap<pg_sys::BlockNumber, Vec<(u64, [u8; STAMPED_SIZE])>> =
        HashMap::new();
    for &(block, lsn) in copied_at {
        let locked = Locked::share(rel, block);
        let p = locked.page();
        if !logged || page_lsn(p) != lsn {
            for item in 1..=page::max_offset(p) {
                let Some(t) = storage::version_at(rel, p, item) else {
                    continue;
                };
                let rowid = storage::rowid_of(&t.t_self);
                let Some(i) = page_image::fence_for(pages, rowid) else {
                    continue; // dropped (below every new page)
                };
                let bytes = page::bytes(p);
                let Some(header) = stamped_header(bytes, item as usize, t.t_data as usize - p.ptr() as usize)
                else {
                    continue;
                };
                changed.entry(pages[i].1).or_default().push((rowid, header));
            }
        }
    }
    let mut refreshed = 0;
    for (block, headers) in changed {
        let locked = Locked::exclusive(rel, block);
        let buf = locked.buffer();
        // the versions whose header on the new page differs beyond hint
        // bits: (item, header to copy, whether the page shares its header)
        let now = page::bytes(locked.page());
        let todo: Vec<(usize, [u8; STAMPED_SIZE], bool)> = headers
            .iter()
            .filter_map(|(rowid, header)| {
                // dropped versions are not on the new page
                let item = super::run_page::find_run_item(now, *rowid)?;
                let (off, _) = super::run_page::run_item_tuple(now, item)?;
                (!same_but_hints(&stamped_header(now, item, off)?, header))
                    .then(|| (item, *header, compact_page::shares_header(now, off)))
            })
            .collect();
        let mut w = PageChange::start(rel);
        let p = w.register(buf, false);
        // versions that share a header get their own first, in this record
        let sharing: Vec<usize> = todo.iter().filter(|t| t.2).map(|t| t.0).collect();
        let mut rec = Headers::default();
        let payload = storage::detach_in(rel, &mut w, buf, p, &sharing, &mut rec);
        let bytes = page::bytes_mut(p);
        for (item, header, _) in todo {
            let Some((at, _)) = super::run_page::run_item_tuple(bytes, item) else {
                continue;
            };
            bytes[at..at + STAMPED_SIZE].copy_from_slice(&header);
            rec.written_at(bytes, at);
            refreshed += 1;
        }
        if !rec.is_empty() {
            w.commit(wal_record::RMGR_ID, || storage::headers_record(&rec));
        } else {
            drop(w);
        }
        drop(payload);
    }
    refreshed
}

/// Clears the open run a bulk load left when it aborted or crashed (the
/// caller holds SHARE UPDATE EXCLUSIVE, which every load holds to its end:
/// any open run is abandoned) and returns its rowid range, whose index
/// entries the caller removes. Its pages become free: no run lists them,
/// and none holds a rowid any other page will ever hold, so a reader that
/// still follows the old slot into a reused page finds nothing there.
///
/// A load writes each data page before its index names it, so a crash can
/// leave pages the run's index never reached: the whole file is read for
/// pages tagged with the run (this happens once per abandoned load, inside
/// a VACUUM whose sweep reads every page anyway).
pub fn take_abandoned_open_run(rel: Rel) -> Option<std::ops::Range<u64>> {
    let open = manifest::read(rel)?.open?;
    switch(rel, None, |m| {
        if m.is_open(open.run_id) {
            m.open = None;
        }
    });
    // a bulk-read strategy: the whole file passes through a small ring
    let mut blocks = Vec::new();
    crate::pg::rel::for_each_page_copy(rel, |b, p| {
        if is_page_of_run(p, open.run_id) {
            blocks.push(b);
        }
    });
    manifest::record_free(rel, blocks);
    Some(open.first_rowid..open.end_rowid)
}

/// Whether page image `p` belongs to run `run_id` (data, fence index or
/// payload page).
fn is_page_of_run(p: &[u8], run_id: u32) -> bool {
    page_image::tag_of(p).is_some_and(|t| {
        t.vblock == run_id
            && matches!(
                PageKind::from_u16(t.kind),
                Some(PageKind::RunData | PageKind::RunIndex | PageKind::RunPayload)
            )
    })
}
