//! A backend's copy of each table's manifest, so that finding the page of a
//! TID reads that page and not the metapage, directory, run root, bloom
//! filter and fence leaf first (five buffer accesses per point lookup in a
//! run, three in L0, most of an index fetch's cost beside the data page).
//!
//! What is kept per table (keyed by OID and relfilenumber): the metapage's
//! LSN and buffer, its header, run list and directory slots; the entries of
//! the L0 directory pages read so far; the root fences of each run and the
//! fence leaves read so far.
//!
//! Validity. Every manifest change is a WAL-logged write of the metapage
//! (L0 page allocation, flush and merge switches, pending pruning), so an
//! unchanged metapage LSN means an unchanged manifest — and so does an
//! unchanged [`meta_epoch`] counter of the file, which every such write
//! bumps: [`Trust::Validate`] loads that counter, and only when it moved
//! (or there is none to trust: recovery, no preloading) pins the metapage
//! (through `ReadRecentBuffer`: no buffer-mapping lookup) and compares its
//! LSN, read without the content lock (see [`check`]; the lock only to read
//! a changed page). The pages below the
//! metapage that the copy also caches change with it or not at all: L0
//! directory pages only grow while L0's first block and the slot's block
//! stay, run roots and leaves are written once — except by VACUUM's file
//! packing ([`super::shrink`]), which holds ACCESS EXCLUSIVE and sends a
//! relcache invalidation that drops the table's entry in every backend
//! before anyone can lock the table again.
//!
//! MVCC readers need less: [`Trust::Snapshot`] skips the metapage when the
//! copy was validated under a snapshot with the same token
//! ([`crate::pg::xact::snapshot_token`]: no transaction with an xid
//! finished since, same command). A switch since then (flushes and merges keep the pages they
//! free as they were while a snapshot that old exists) left the old pages
//! right for that snapshot: the data changes that only the new pages hold
//! were made by transactions it cannot see. A lookup the copy cannot answer
//! (a page allocated after it was made) validates and tries again; so does
//! a caller that finds the page does not hold the TID.
//!
//! Relations whose changes are not WAL-logged (temporary, unlogged, or new
//! in this transaction under `wal_level = minimal`) keep no LSN: they are
//! looked up without the cache.

use crate::pg::page::Page;
use crate::pg::snapshot::Snap;
use crate::pg::relation::Rel;
use super::format::{self, MetaHeader, PageKind, RunDesc};
use super::manifest;
use super::page_image;
use super::page_id::{self, META_BLOCK};
use crate::pg::{buffer, meta_epoch, page, rel, wal, xact};
use pgrx::pg_sys;
use std::cell::RefCell;

/// How much a lookup may rely on the copy.
#[derive(Clone, Copy)]
pub enum Trust {
    /// Check the metapage's LSN first.
    Validate,
    /// Skip the check when the copy was checked under a snapshot with the
    /// same token (an MVCC snapshot; else as Validate).
    Snapshot(Snap),
}

/// Tables a backend keeps copies for; more clears them all.
const MAX_TABLES: usize = 64;
/// Fence leaves a table's copy keeps (8 KB each at most).
const MAX_LEAVES: usize = 256;

struct RunIndex {
    desc: RunDesc,
    /// The root's fences: `(first rowid, leaf block)`.
    root: Vec<(u64, u32)>,
    /// The fences of the leaves read so far, by their place in `root`:
    /// `(first rowid, data block)`.
    leaves: Vec<Option<Vec<(u64, u32)>>>,
}

/// The entries read from an L0 directory page.
struct DirPage {
    block: u32,
    entries: Vec<u32>,
}

struct Entry {
    relid: pg_sys::Oid,
    file: (u32, u32, u32),
    lsn: pg_sys::XLogRecPtr,
    recent: pg_sys::Buffer,
    /// The file's [`meta_epoch`] counter, read before the metapage was
    /// last seen to have `lsn` (None: none to trust).
    epoch: Option<u64>,
    /// Token of the snapshot the last check ran under (None: none, or not
    /// an MVCC one).
    token: Option<xact::SnapshotToken>,
    header: MetaHeader,
    runs: Vec<RunDesc>,
    /// A bulk load's open run (see `format::OpenRun`), read live.
    open: Option<format::OpenRun>,
    dir: Vec<u32>,
    scan_pages: u64,
    /// The lowest virtual block an insert may append to
    /// ([`manifest::l0_append_floor`]).
    floor: u32,
    /// The relation's block count, read while the metapage had `lsn` (None:
    /// not yet; a changed metapage makes a new entry): see [`sizes`].
    physical: Option<pg_sys::BlockNumber>,
    /// The directory pages read so far, by slot.
    l0: Vec<Option<DirPage>>,
    run_index: Vec<RunIndex>,
    leaves: usize,
}

thread_local! {
    /// A few tables per backend: a list is quicker than hashing. Boxed: a
    /// lookup moves its entry out and back (`take`, `keep`), one pointer.
    #[allow(clippy::vec_box)]
    static TABLES: RefCell<Vec<Box<Entry>>> = const { RefCell::new(Vec::new()) };
}

fn forget(relid: Option<pg_sys::Oid>) {
    TABLES.with(|t| match relid {
        Some(id) => t.borrow_mut().retain(|e| e.relid != id),
        None => t.borrow_mut().clear(),
    });
}

/// Takes the table's entry out of the list (put back by [`keep`]), so that
/// nothing is borrowed while Postgres is called.
fn take(relid: pg_sys::Oid) -> Option<Box<Entry>> {
    TABLES.with(|t| {
        let mut t = t.borrow_mut();
        let i = t.iter().position(|e| e.relid == relid)?;
        Some(t.swap_remove(i))
    })
}

fn keep(e: Box<Entry>) {
    TABLES.with(|t| {
        let mut t = t.borrow_mut();
        if t.len() >= MAX_TABLES {
            t.clear();
        }
        t.push(e);
    });
}

/// Drops this backend's copy of `rel` and makes every other backend drop
/// theirs (the message is sent at once; their next lock on the table
/// processes it first). For changes that move pages below the metapage
/// without changing it, or truncate the file.
pub fn invalidate(rel: Rel) {
    forget(Some(rel::oid(rel)));
    // at once: the packing releases its lock before its transaction commits
    // (a commit-time message would let a backend that locks the table in
    // between trust its copy, and read moved or truncated blocks)
    rel::invalidate_relcache_now(rel);
    rel::invalidate_relcache(rel);
}

/// Checks the copy against the metapage: first its file's [`meta_epoch`]
/// counter (unchanged since the copy was last checked: the metapage is
/// too, and nothing is pinned); else pins the metapage and compares its
/// LSN with the copy's; when it changed, share-locks it and refreshes `e`
/// (or makes it). An unchanged LSN is read without the lock
/// ([`page::lsn_unlocked`]): the copy is then the manifest as of the last
/// change completed before the pin — what a share lock taken a moment
/// earlier would have shown (a change under way is not waited for; every
/// lookup tolerates a manifest that changes right after it looked). Saves
/// the lock and unlock on the one buffer every backend's lookups share.
fn check(r: Rel, e: Option<Box<Entry>>) -> Box<Entry> {
    // read before the page: a change after this read bumps it again
    let epoch = meta_epoch::current(r);
    let e = match e {
        Some(e) if epoch.is_some() && e.epoch == epoch => return e,
        e => e,
    };
    let recent = e.as_ref().map_or(0, |e| e.recent);
    let buf = buffer::read_recent(r, META_BLOCK, recent);
    let e = match e {
        Some(mut e) if e.lsn == page::lsn_unlocked(buffer::page(buf)) => {
            e.recent = buf;
            e.epoch = epoch;
            buffer::release(buf);
            return e;
        }
        e => e,
    };
    let meta = buffer::Locked::share_pinned(buf);
    let p = meta.page();
    let lsn = page::lsn(p);
    let fresh = match e {
        Some(mut e) if e.lsn == lsn => {
            e.recent = buf;
            Ok(e)
        }
        old => decode(r, p, lsn, buf, old),
    };
    drop(meta);
    let mut fresh = fresh.unwrap_or_else(|what| manifest::corrupted(r, what));
    fresh.epoch = epoch;
    fresh
}

/// A copy of the locked metapage `p`, keeping what `old` read below it that
/// is still right.
fn decode(
    r: Rel,
    p: Page,
    lsn: pg_sys::XLogRecPtr,
    buf: pg_sys::Buffer,
    old: Option<Box<Entry>>,
) -> Result<Box<Entry>, String> {
    if page_id::page_kind(r, META_BLOCK, p) != Some(PageKind::Meta) {
        return Err("block 0 is not an lsm metapage".into());
    }
    let bytes = page::bytes(p);
    let header = MetaHeader::decode(bytes).map_err(|e| format!("invalid metapage: {e}"))?;
    let runs: Vec<RunDesc> = (0..header.nruns as usize)
        .map(|i| format::run_at(bytes, i))
        .collect();
    let slots = (header.next_vblock - header.l0_first_vblock) as usize;
    let dir: Vec<u32> = (0..slots.div_ceil(format::DIR_ENTRIES))
        .map(|s| format::dir_slot_block(bytes, s))
        .collect();
    let mut e = Box::new(Entry {
        relid: rel::oid(r),
        file: rel::file_locator(r),
        lsn,
        recent: buf,
        epoch: None,
        token: None,
        scan_pages: format::scan_pages(bytes, &header),
        physical: None,
        floor: header.l0_first_vblock.max(format::u32_at(bytes, format::META_SEAL_AT)),
        header,
        runs,
        open: format::open_run(bytes),
        dir,
        l0: Vec::new(),
        run_index: Vec::new(),
        leaves: 0,
    });
    if let Some(old) = old.filter(|o| o.file == e.file) {
        if old.header.l0_first_vblock == e.header.l0_first_vblock {
            e.l0 = old.l0;
            for (slot, d) in e.l0.iter_mut().enumerate() {
                if d.as_ref()
                    .is_some_and(|d| e.dir.get(slot) != Some(&d.block))
                {
                    *d = None;
                }
            }
        }
        e.run_index = old.run_index;
        e.run_index.retain(|ri| e.runs.contains(&ri.desc));
        e.leaves = e
            .run_index
            .iter()
            .map(|ri| ri.leaves.iter().flatten().count())
            .sum();
    }
    Ok(e)
}

/// Where the copy says `rowid` (virtual block `v`) lives: Ok(Some((block,
/// in a run))),
/// Ok(None) when the manifest has no such rowid, Err(()) when the copy
/// cannot tell (a page it has not seen).
fn lookup(r: Rel, e: &mut Entry, v: u32, rowid: u64) -> Result<Option<(u32, bool)>, ()> {
    if let Some((slot, entry)) = e.header.dir_position(v) {
        let cached =
            e.l0.get(slot)
                .and_then(|d| d.as_ref()?.entries.get(entry).copied());
        if let Some(b) = cached {
            return Ok(Some((b, false)));
        }
        let block = e.dir[slot];
        let entries = manifest::read_page(r, block, page_image::dir_entries);
        let found = entries.get(entry).copied();
        if e.l0.len() <= slot {
            e.l0.resize_with(slot + 1, || None);
        }
        e.l0[slot] = Some(DirPage { block, entries });
        return found.map(|b| Some((b, false))).ok_or(());
    }
    if v >= e.header.next_vblock {
        return Err(());
    }
    let Some(run) = e
        .runs
        .iter()
        .find(|r| r.first_rowid <= rowid && rowid <= r.last_rowid)
        .copied()
    else {
        // a bulk load's open run grows as it is read: not kept in the copy
        return Ok(e
            .open
            .filter(|o| o.holds(rowid))
            .and_then(|o| manifest::locate_open(r, &o, rowid))
            .map(|b| (b, true)));
    };
    if e.leaves >= MAX_LEAVES {
        for ri in &mut e.run_index {
            ri.leaves.iter_mut().for_each(|l| *l = None);
        }
        e.leaves = 0;
    }
    let at = match e
        .run_index
        .iter()
        .position(|ri| ri.desc.run_id == run.run_id)
    {
        Some(at) => at,
        None => {
            let root = manifest::read_page(r, run.root, page_image::fences);
            e.run_index.push(RunIndex {
                desc: run,
                leaves: (0..root.len()).map(|_| None).collect(),
                root,
            });
            e.run_index.len() - 1
        }
    };
    let ri = &mut e.run_index[at];
    let Some(i) = page_image::fence_for(&ri.root, rowid) else {
        return Ok(None);
    };
    if ri.leaves[i].is_none() {
        ri.leaves[i] = Some(manifest::read_page(r, ri.root[i].1, page_image::fences));
        e.leaves += 1;
    }
    let data = ri.leaves[i].as_ref().expect("read above");
    Ok(page_image::fence_for(data, rowid).map(|j| (data[j].1, true)))
}

/// Runs `f` on the table's copy, checked as `trust` asks; None when the
/// relation cannot be cached (not WAL-logged). The relation must have
/// blocks (as for [`manifest::with_header`]).
fn with_entry<T>(
    r: Rel,
    trust: Trust,
    mut f: impl FnMut(Rel, &mut Entry) -> Result<T, ()>,
) -> Option<T> {
    if !wal::relation_needs_wal(r) {
        return None;
    }
    let token = match trust {
        Trust::Validate => None,
        Trust::Snapshot(s) => xact::snapshot_token(s),
    };
    let file = rel::file_locator(r);
    let mut e = take(rel::oid(r)).filter(|e| e.file == file);
    let trusted = token.is_some() && e.as_ref().is_some_and(|e| e.token == token);
    if !trusted {
        let mut checked = check(r, e.take());
        checked.token = token;
        e = Some(checked);
    }
    let mut e = e.expect("made above");
    let mut out = f(r, &mut e);
    if out.is_err() && trusted {
        e = check(r, Some(e));
        e.token = token;
        out = f(r, &mut e);
    }
    keep(e);
    out.ok()
}

/// The physical block holding row version `tid`, if the manifest has it
/// ([`manifest::locate`] through the copy; a run's bloom filter is not
/// consulted: a caller reading a data page for a rowid it lacks finds
/// nothing there).
pub fn locate(
    r: Rel,
    tid: &pg_sys::ItemPointerData,
    trust: Trust,
) -> Option<pg_sys::BlockNumber> {
    locate_page(r, tid, trust).map(|(block, _)| block)
}

/// [`locate`], and whether the block is a run's (not L0's; true when the
/// relation has no copy and the manifest was asked directly).
pub fn locate_page(
    r: Rel,
    tid: &pg_sys::ItemPointerData,
    trust: Trust,
) -> Option<(pg_sys::BlockNumber, bool)> {
    let (v, rowid) = manifest::tid_place(tid)?;
    match with_entry(r, trust, |r, e| lookup(r, e, v, rowid)) {
        Some(found) => found,
        None => manifest::locate(r, tid).map(|b| (b, true)),
    }
}

/// [`manifest::l0_append_floor`] through the copy, checked: the floor
/// rises only under EXCLUSIVE, which an inserting caller's lock excludes,
/// so no change to it can be under way while the copy is checked.
pub fn append_floor(r: Rel) -> Option<u32> {
    with_entry(r, Trust::Validate, |_, e| Ok(e.floor)).or_else(|| manifest::l0_append_floor(r))
}

/// The relation's block count and the pages a sequential scan reads
/// ([`manifest::scan_pages`]), for the planner's estimate, through the copy
/// under the active snapshot's trust. The block count is kept with the copy
/// and read again when the metapage changes: pages join the file and the
/// manifest together (L0 pages, runs' switches), so it is as fresh as the
/// copy's page count — a run still being written is counted once it is
/// listed. (An `lseek` fewer per planned query: on pgbench's small tables a
/// sixth of the planner's time.)
pub fn sizes(r: Rel) -> (pg_sys::BlockNumber, u64) {
    let trust = Trust::Snapshot(xact::active_snapshot());
    if let Some(known) = trusted_sizes(r, trust) {
        return known;
    }
    // a table the backend has no copy of may have no metapage yet
    let mut physical = None;
    if !has_entry(r) {
        match buffer::nblocks(r) {
            0 => return (0, 0),
            n => physical = Some(n),
        }
    }
    with_entry(r, trust, |r, e| {
        let p = *e.physical.get_or_insert_with(|| physical.unwrap_or_else(|| buffer::nblocks(r)));
        Ok((p, e.scan_pages))
    })
    .unwrap_or_else(|| (physical.unwrap_or_else(|| buffer::nblocks(r)), manifest::scan_pages(r)))
}

/// Whether the backend has a copy for the file `r` uses now.
fn has_entry(r: Rel) -> bool {
    let (file, relid) = (rel::file_locator(r), rel::oid(r));
    TABLES.with(|t| t.borrow().iter().any(|e| e.relid == relid && e.file == file))
}

/// Drops the backend's copy for `r` (its file was truncated in place).
pub fn forget_relation(r: Rel) {
    forget(Some(rel::oid(r)));
}

/// [`sizes`] from a copy trusted under `trust` that knows the block count.
fn trusted_sizes(r: Rel, trust: Trust) -> Option<(pg_sys::BlockNumber, u64)> {
    let Trust::Snapshot(s) = trust else {
        return None;
    };
    let token = xact::snapshot_token(s)?;
    let file = rel::file_locator(r);
    let relid = rel::oid(r);
    TABLES.with(|t| {
        let t = t.borrow();
        let e = t.iter().find(|e| e.relid == relid)?;
        (e.file == file && e.token == Some(token))
            .then_some(e.physical.map(|p| (p, e.scan_pages)))
            .flatten()
    })
}

/// Registers the relcache hook that drops copies (once per backend).
pub fn init() {
    rel::on_relcache_invalidation(forget);
}
