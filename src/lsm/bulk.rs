//! Bulk loads straight into runs: COPY (`multi_insert`), and CREATE TABLE
//! AS / SELECT INTO / materialized view refresh / table rewrites (inserts
//! with a bulk-insert state into storage created in this transaction) write
//! their rows into new, sorted and compressed runs instead of L0 pages, so
//! the next VACUUM has nothing to flush: each row is written (and
//! WAL-logged, as full images of compressed pages) once.
//!
//! INSERT ... SELECT joins in after its first 1000 rows (which go to L0);
//! its load ends when its command does — before this transaction next
//! reads or changes the table, or commits.
//!
//! Which loads: batches large enough to be worth a run (COPY's full
//! buffer, or any insert into storage no other session can see yet).
//! The rows get their TIDs as they arrive and reach pages as each page
//! fills; the load's runs are listed in the manifest when it finishes
//! (`finish_bulk_insert`, or at the latest before the transaction commits).
//! Until then no other session could see the rows anyway (their inserting
//! transaction is running); statements of this one see them once the
//! loading statement is over, as on heap.
//!
//! Tables whose rows are reached by TID while the statement runs — indexes
//! (each batch's index entries are made right after it, and unique and
//! exclusion checks, `ON CONFLICT` and btree's deletion passes of this and
//! other sessions follow them) or triggers — take only COPY's batches
//! ([`Reach::EachBatch`]): the chunk's run is *published* as the metapage's
//! open run (format version 11), and at the end of every batch its rows are
//! on data pages its fence index reaches (the last page ends there, as full
//! as the batch makes it; packed in the backend). Lookups by TID find them
//! there like rows of a listed run — a snapshot sees them by their xmin as
//! always. A load that aborts or crashes leaves its open run; the next
//! VACUUM frees its pages and removes its rows' index entries. Row-at-a-time
//! inserts into such tables (INSERT ... SELECT) and tables with BRIN
//! indexes (which read TID block ranges up to the file's size) go to L0.
//! Other writes go to L0 as before.
//!
//! How, in chunks of reserved virtual blocks:
//!
//! 1. The load takes SHARE UPDATE EXCLUSIVE without waiting (when VACUUM or
//!    a flush holds it, the load goes to L0) and keeps it to the end of its
//!    transaction, like any lock: no flush or merge runs meanwhile, DML and
//!    readers do. (VACUUM and ANALYZE of the table wait for the loading
//!    transaction; autovacuum skips the table until it ends.)
//! 2. A chunk starts when L0 is empty (L0 pages there are flushed first;
//!    if others keep inserting, the load goes to L0): one metapage record
//!    reserves run ids (`writing_from`, as a flush does) and `k` virtual
//!    blocks, moving L0's start past them. Their rowids are then above every
//!    run and below L0, which is exactly where the chunk's runs go.
//! 3. Rows are packed by a [`RunWriter`] into RUN_DATA pages (compressed
//!    when that pays), one full-page GenericXLog record each, unreachable
//!    until step 4 — unless the chunk publishes its run: then its root is
//!    written and a second metapage record names it as the open run, and
//!    each batch ends with its leaves (and root) updated in place.
//! 4. One metapage record lists the chunk's runs (and clears the open run).
//!    A chunk ends there when its virtual blocks are used up or a run's
//!    fence index is full (a published one: before the next batch could
//!    overfill it); chunks grow (256 virtual blocks, doubling up to 65,536).
//!
//! Crash or abort before step 4 leaves reserved rowids that nothing uses and
//! pages no manifest reaches (free, like an interrupted flush's) — or an
//! abandoned open run, which VACUUM clears; after it, runs whose rows carry
//! an aborted xid, which compaction drops. Standbys replay the same records.

use crate::pg::relation::Rel;
use super::flush;
use super::format::{Meta, OpenRun, MAX_RUNS, ROWS_PER_VBLOCK};
use super::manifest;
use super::policy;
use super::run_writer::{self, Readers, RunWriter, SwitchLock};
use crate::pg::rel;
use crate::pg::xact::{self, XactEnd};
use pgrx::pg_sys;
use std::cell::RefCell;

/// A COPY batch this large starts a bulk load (COPY hands over its buffer
/// when it holds 1000 rows or 64 kB).
const MIN_BATCH_ROWS: usize = 1000;
const MIN_BATCH_BYTES: usize = 60_000;
/// Virtual blocks of the first chunk, and of the largest.
const FIRST_CHUNK_VBLOCKS: u32 = 256;
const MAX_CHUNK_VBLOCKS: u32 = 65_536;
/// Run ids reserved at a chunk's start (the writer reserves more as needed).
const RUN_IDS: u32 = 4;
/// Tries for EXCLUSIVE when L0 must be flushed before a chunk.
const FLUSH_LOCK_TRIES: u32 = 20;
const FLUSH_LOCK_SLEEP_US: i64 = 10_000;

/// How rows reach [`take`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// COPY's `multi_insert`, with the batch's total tuple bytes.
    Batch { bytes: usize },
    /// `tuple_insert` with a bulk-insert state.
    BulkState,
    /// `tuple_insert` without one (INSERT ... SELECT), by command `cid`.
    Single { cid: pg_sys::CommandId },
}

/// Single-row inserts of one command into one table before the rest of
/// the command's rows go to a bulk load.
const MIN_SINGLE_ROWS: u64 = 1000;

thread_local! {
    /// `(relid, cid, rows)` of the single-row inserts of the current command.
    static SINGLES: std::cell::Cell<(pg_sys::Oid, pg_sys::CommandId, u64)> =
        const { std::cell::Cell::new((pg_sys::InvalidOid, 0, 0)) };
}

/// When a load's rows become reachable by TID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// When the load ends (its runs are listed): nothing needs them before.
    AtEnd,
    /// As each batch ends: the table's indexes get entries for the batch's
    /// rows, and unique checks and other sessions follow them by TID. The
    /// chunk's run is published as the metapage's open run.
    EachBatch,
}

/// The rowids and writer of the current chunk.
struct Chunk {
    writer: RunWriter,
    /// The run published in the metapage's open-run slot (`Reach::EachBatch`).
    open_run: Option<u32>,
    next_rowid: u64,
    end_rowid: u64,
    /// Number of runs listed when the chunk started.
    runs_before: usize,
    /// First run of this load's stretch at the young end of the runs (the
    /// chunks since the load began or since it last flushed L0): listed,
    /// they all get the level the policy gives a load of their size.
    stretch_from: usize,
    rows: u64,
    bytes: u64,
}

// one per load in progress: the open chunk stays inline
#[allow(clippy::large_enum_variant)]
enum State {
    /// Rows go to L0 until the load finishes.
    Declined,
    /// SHARE UPDATE EXCLUSIVE is held; `chunk` is the open chunk, `stretch`
    /// the first run of the load's listed chunks (see `Chunk::stretch_from`).
    Loading { chunk: Option<Chunk>, next_vblocks: u32, stretch: Option<usize> },
}

struct Load {
    relid: pg_sys::Oid,
    reach: Reach,
    subxact: pg_sys::SubTransactionId,
    /// The command of an INSERT ... SELECT load (which ends with it).
    cid: Option<pg_sys::CommandId>,
    state: State,
}

thread_local! {
    static LOADS: RefCell<Vec<Load>> = const { RefCell::new(Vec::new()) };
}

/// Whether a load into `rel` by `entry` with `n` rows may go to runs, and
/// when its rows must be reachable by TID.
fn eligible(rel: Rel, entry: Entry, n: usize) -> Option<Reach> {
    if !super::gucs::bulk_load() {
        return None;
    }
    let batch = |n: usize, bytes: usize| n >= MIN_BATCH_ROWS || bytes >= MIN_BATCH_BYTES;
    if rel::rows_named_by_tid(rel) {
        // only COPY's batches: a row at a time would publish a page per
        // row; and not with BRIN, which reads TID block ranges up to the
        // file's size (reserved virtual blocks would have to exist)
        return match entry {
            Entry::Batch { bytes } if batch(n, bytes) && !manifest::keeps_dense(rel) => {
                Some(Reach::EachBatch)
            }
            _ => None,
        };
    }
    let go = match entry {
        Entry::Batch { bytes } => batch(n, bytes),
        Entry::BulkState => rel::storage_is_new(rel),
        Entry::Single { cid } => {
            // counted per command of this transaction (the count is reset
            // when the transaction ends: command ids start over)
            xact::on_xact_end(at_xact_end);
            let relid = rel::oid(rel);
            let (r, c, rows) = SINGLES.with(|s| s.get());
            let rows = if (r, c) == (relid, cid) { rows + n as u64 } else { n as u64 };
            SINGLES.with(|s| s.set((relid, cid, rows)));
            rows > MIN_SINGLE_ROWS
        }
    };
    go.then_some(Reach::AtEnd)
}

/// Stores a prefix of `tuples` (prepared versions: xmin, cid, TOAST done)
/// in the bulk load of `rel`, setting each one's `t_self` and `t_ctid`;
/// returns how many it took (the caller appends the rest to L0).
pub fn take(rel: Rel, tuples: &[pg_sys::HeapTuple], entry: Entry) -> usize {
    if tuples.is_empty() {
        return 0;
    }
    let relid = rel::oid(rel);
    let cid = match entry {
        Entry::Single { cid } => Some(cid),
        _ => None,
    };
    let open = LOADS.with(|l| l.borrow().iter().find(|load| load.relid == relid).map(|load| load.cid));
    // an INSERT ... SELECT load ends with its command
    let ended = open.is_some_and(|c| c.is_some() && c != cid);
    if ended {
        finish(rel);
    }
    if open.is_none() || ended {
        let Some(reach) = eligible(rel, entry, tuples.len()) else {
            return 0;
        };
        xact::on_xact_end(at_xact_end);
        let state = if rel::try_lock(rel, pg_sys::ShareUpdateExclusiveLock) {
            State::Loading {
                chunk: None,
                next_vblocks: FIRST_CHUNK_VBLOCKS,
                stretch: None,
            }
        } else {
            State::Declined
        };
        LOADS.with(|l| {
            l.borrow_mut().push(Load {
                relid,
                reach,
                subxact: xact::current_subxact(),
                cid,
                state,
            })
        });
    }
    LOADS.with(|l| {
        let mut loads = l.borrow_mut();
        let load = loads
            .iter_mut()
            .find(|load| load.relid == relid)
            .expect("load registered above");
        let taken = add_rows(rel, load.reach, &mut load.state, tuples);
        if let State::Loading { chunk: Some(c), .. } = &mut load.state {
            if load.reach == Reach::EachBatch {
                // every row of the batch on a page its open run reaches,
                // before the caller inserts index entries for them
                c.writer.sync();
            }
        }
        taken
    })
}

/// Adds rows to the open chunk, starting and ending chunks as needed.
fn add_rows(
    rel: Rel,
    reach: Reach,
    state: &mut State,
    tuples: &[pg_sys::HeapTuple],
) -> usize {
    let mut taken = 0;
    while taken < tuples.len() {
        let State::Loading {
            chunk,
            next_vblocks,
            stretch,
        } = state
        else {
            return taken;
        };
        let rest = tuples.len() - taken;
        let full = chunk.as_ref().is_some_and(|c| {
            c.next_rowid == c.end_rowid
                || c.writer.runs_closed() > 0
                || (c.open_run.is_some() && !c.writer.room_for(rest))
        });
        if full {
            *stretch = Some(end_chunk(rel, chunk.take().expect("checked")));
        }
        if chunk.is_none() {
            match start_chunk(rel, reach, *next_vblocks, *stretch) {
                Some(c) => {
                    *chunk = Some(c);
                    *next_vblocks = (*next_vblocks * 2).min(MAX_CHUNK_VBLOCKS);
                }
                None => {
                    // others keep L0 busy, or the runs list is full: the
                    // rest of this load goes to L0
                    *state = State::Declined;
                    return taken;
                }
            }
        }
        let c = chunk.as_mut().expect("started above");
        c.writer.set_rel(rel);
        while taken < tuples.len() && c.next_rowid < c.end_rowid && c.writer.runs_closed() == 0 {
            let t = tuples[taken];
            let rowid = c.next_rowid;
            let (v, o) = super::format::tid_of_rowid(rowid);
            let tid = crate::pg::htup::make_tid(v, o);
            // SAFETY: a formed heap tuple the caller owns; its data is
            // t_len readable bytes.
            let bytes = unsafe {
                crate::pg::htup::set_ctid((*t).t_data, tid);
                (*t).t_self = tid;
                std::slice::from_raw_parts((*t).t_data as *const u8, (*t).t_len as usize)
            };
            super::storage::check_tuple_len(bytes.len());
            c.writer.add(rowid, bytes);
            c.next_rowid += 1;
            c.rows += 1;
            c.bytes += bytes.len() as u64;
            taken += 1;
        }
    }
    taken
}

/// Starts a chunk of `vblocks` virtual blocks after the load's chunks
/// listed from run `stretch` on; None when L0 cannot be emptied first, the
/// runs list has no room for the chunk's runs, or (publishing) the open-run
/// slot still holds an abandoned load's run, which VACUUM clears.
fn start_chunk(
    rel: Rel,
    reach: Reach,
    vblocks: u32,
    stretch: Option<usize>,
) -> Option<Chunk> {
    manifest::ensure_metapage(rel);
    let mut stretch = stretch;
    if manifest::read(rel)?.l0_pages() > 0 {
        flush_l0(rel);
        stretch = None; // the flush's run follows the load's earlier chunks
    }
    let mut reserved: Option<(u64, u64)> = None;
    let before = run_writer::switch(rel, None, |m| {
        let first = m.header.next_vblock;
        let Some(end) = first
            .checked_add(vblocks)
            .filter(|e| *e < crate::pg::buffer::INVALID_BLOCK)
        else {
            return;
        };
        if m.l0_pages() > 0 || m.runs.len() + 2 > MAX_RUNS {
            return;
        }
        if reach == Reach::EachBatch && m.open.is_some() {
            return;
        }
        m.header.next_vblock = end;
        m.header.l0_first_vblock = end;
        m.writing_from = m.header.next_run_id;
        m.header.next_run_id += RUN_IDS;
        let per = ROWS_PER_VBLOCK as u64;
        reserved = Some((first as u64 * per, end as u64 * per));
    });
    let (next_rowid, end_rowid) = reserved?;
    let (writer, open_run) = match reach {
        Reach::AtEnd => {
            let w = RunWriter::new(rel, &before, 1)
                .alongside_dml()
                .reserving(RUN_IDS);
            (w, None)
        }
        Reach::EachBatch => {
            // its root first, then the slot that names it (the switch
            // clears the writing mark: it is set again)
            let run_id = before.header.next_run_id;
            let (w, root) = RunWriter::publishing(rel, &before, 1, RUN_IDS);
            run_writer::switch(rel, None, |m| {
                m.writing_from = run_id;
                m.open = Some(OpenRun {
                    run_id,
                    root,
                    first_rowid: next_rowid,
                    end_rowid,
                });
            });
            (w, Some(run_id))
        }
    };
    Some(Chunk {
        writer,
        open_run,
        next_rowid,
        end_rowid,
        runs_before: before.runs.len(),
        stretch_from: stretch.unwrap_or(before.runs.len()),
        rows: 0,
        bytes: 0,
    })
}

/// Flushes L0 (as `strata.lsm_flush` would, without shortening update
/// chains), trying for EXCLUSIVE a few times only.
fn flush_l0(rel: Rel) {
    let lock = SwitchLock {
        acquire: &|| {
            rel::try_lock_retrying(rel, pg_sys::ExclusiveLock, FLUSH_LOCK_TRIES, FLUSH_LOCK_SLEEP_US)
        },
        release: &|| rel::unlock(rel, pg_sys::ExclusiveLock),
    };
    flush::flush(rel, None, Readers::Allowed, &lock);
}

/// Writes the chunk's last pages and lists its runs, giving the load's
/// stretch of runs the level a load of its size takes
/// ([`policy::ingest_level`]: below level 1, where it fits, unless a
/// level-1 run comes before it). Returns where the stretch starts.
fn end_chunk(rel: Rel, mut chunk: Chunk) -> usize {
    chunk.writer.set_rel(rel);
    let written = chunk.writer.finish();
    let (rows, bytes) = (chunk.rows, chunk.bytes);
    let from = chunk.stretch_from;
    let policy = super::gucs::policy();
    run_writer::switch(rel, None, |m: &mut Meta| {
        // SHARE UPDATE EXCLUSIVE is held: no flush or merge changed the runs
        assert_eq!(m.runs.len(), chunk.runs_before, "runs changed during a bulk load");
        m.runs.extend(written.runs);
        // listed now: the open run's readers find it among the runs
        if m.open.is_some_and(|o| Some(o.run_id) == chunk.open_run) {
            m.open = None;
        }
        assert!(m.runs.len() <= MAX_RUNS, "bulk load overflows the runs list");
        let stats = super::compact::run_stats(m, &Default::default(), &|_| false);
        let level = policy::ingest_level(&stats, from, &policy);
        m.runs[from..].iter_mut().for_each(|r| r.level = level);
        m.header.next_run_id = m.header.next_run_id.max(written.next_run_id);
        m.stats.flushed_bytes += bytes;
        m.stats.flushed_versions += rows;
    });
    from
}

/// `finish_bulk_insert`: lists the load's last runs and ends it.
pub fn finish(rel: Rel) {
    let relid = rel::oid(rel);
    let load = LOADS.with(|l| {
        let mut loads = l.borrow_mut();
        let i = loads.iter().position(|load| load.relid == relid)?;
        Some(loads.swap_remove(i))
    });
    let Some(load) = load else {
        return;
    };
    if let State::Loading { chunk: Some(c), .. } = load.state {
        end_chunk(rel, c);
    }
}

/// Ends the load into `rel` before anything reads or changes its rows
/// (an INSERT ... SELECT load stays open until then).
pub fn finish_open(rel: Rel) {
    let relid = rel::oid(rel);
    if LOADS.with(|l| l.borrow().iter().any(|load| load.relid == relid)) {
        finish(rel);
    }
}

/// [`finish_open`] before a fetch by TID: a load whose rows are reachable
/// by TID as each batch ends (its unique checks fetch by TID mid-load)
/// stays open.
pub fn finish_before_fetch(rel: Rel) {
    let relid = rel::oid(rel);
    let unreachable = LOADS.with(|l| {
        l.borrow()
            .iter()
            .any(|load| load.relid == relid && load.reach == Reach::AtEnd)
    });
    if unreachable {
        finish(rel);
    }
}

/// Drops the load into `rel` without listing its runs: its storage is
/// being replaced (TRUNCATE, a rewrite), and its rows go with it.
pub fn forget(rel: Rel) {
    let relid = rel::oid(rel);
    LOADS.with(|l| l.borrow_mut().retain(|load| load.relid != relid));
}

/// Loads nobody finished are finished before the commit; aborted ones are
/// dropped (their pages are unreachable; locks go with the transaction).
fn at_xact_end(end: XactEnd) {
    if matches!(end, XactEnd::PreCommit | XactEnd::Abort) {
        SINGLES.with(|s| s.set((pg_sys::InvalidOid, 0, 0)));
    }
    match end {
        XactEnd::PreCommit => {
            let relids: Vec<pg_sys::Oid> =
                LOADS.with(|l| l.borrow().iter().map(|load| load.relid).collect());
            for relid in relids {
                // a table dropped since has no rows to list
                match rel::try_open_locked(relid) {
                    Some(r) => {
                        finish(r);
                        rel::close(r);
                    }
                    None => LOADS.with(|l| l.borrow_mut().retain(|load| load.relid != relid)),
                }
            }
        }
        XactEnd::Abort => LOADS.with(|l| l.borrow_mut().clear()),
        XactEnd::SubAbort(sub) => {
            LOADS.with(|l| l.borrow_mut().retain(|load| load.subxact != sub))
        }
    }
}
