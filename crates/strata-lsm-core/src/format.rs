//! On-disk format of `lsm` tables, version 5. Pure: no Postgres calls.
//!
//! Every page is a standard Postgres page (header, line pointers, tuples) with a
//! 16-byte special space tag:
//!
//! ```text
//!  special space (last 16 bytes of every page)
//!  +----------+---------+---------+-----------+-----------+
//!  | magic u32| ver u16 | kind u16| owner u32 | flags u32 |
//!  +----------+---------+---------+-----------+-----------+
//!  magic = 0x4C534D31 ("LSM1"), ver = FORMAT_VERSION
//!  kind  = META | L0 | RUN_DATA | RUN_INDEX | FREE | L0_DIR
//!  owner = L0: its virtual block; RUN_*: its run id; L0_DIR: directory slot
//!  flags = RUN_INDEX: 0 leaf, 1 root, 2 bloom filter (version 4);
//!          RUN_DATA: 1 = compressed (version 3)
//! ```
//!
//! A compressed RUN_DATA page keeps its zstd blob in the special space in
//! front of the tag, so `pd_special` is lower and the tag is always read from
//! the last 16 bytes ([`super::compressed_page`] has its layout).
//!
//! **Block 0, the metapage** (everything below `pd_lower`, so WAL images keep it):
//!
//! ```text
//!  24   MetaHeader { magic, version, next_vblock, l0_first_vblock, next_run_id,
//!                    nruns, flushes u64, compactions u64 }            (40 bytes)
//!  64   runs[MAX_RUNS]: RunDesc, sorted by first_rowid               (48 bytes each)
//!  1600 l0_dir[MAX_DIR_PAGES]: block of each L0 directory page (0 = none)
//!  3648 MetaStats { flushed_bytes, flushed_versions, compacted_bytes,
//!                   compacted_versions, dropped_versions, frozen_versions } (u64 each)
//!  3696 npending u32, writing_from u32 (run ids writing_from.. next_run_id are
//!       being written by a merge that runs alongside DML; 0 = none)
//!  3704 pending[MAX_PENDING]: Pending { safe_fxid u64, kind u16, pad u16, lo u32, hi u32, pad u32 }
//!  6776 l0_seal u32 (a flush copies the L0 pages below this virtual block;
//!       inserts append only at or above it; 0 = no flush), pad u32
//!  6784 open: OpenRun { run_id u32, root u32, first_rowid u64, end_rowid u64 }
//!       (version 11; run_id 0 = none)
//!  6808 = pd_lower
//! ```
//!
//! **Open run** (version 11). A bulk load into a table whose rows must be
//! reachable by TID before its statement ends (it has indexes or triggers)
//! publishes the run it is writing: its id, the block of its root and the
//! rowids reserved for it. The root and leaves are the run's own fence
//! index, kept current as each batch of rows reaches its pages (readers
//! find the batch's rows before its index entries exist); when the load
//! ends, one switch lists the run and clears the slot. A slot left by a
//! load that aborted or crashed is listed as a run (of dead rows, which
//! compaction drops) by the next switch of another backend. Metapages
//! written before version 11 have zeros there (page hole): no open run.
//!
//! **Pending pages.** A flush or merge frees pages that scans which started
//! before it may still read (they hold the old manifest). Each switch records
//! what it freed — an L0 virtual block range, a run id, an L0 directory
//! block — with the next full transaction id at the switch (`safe_fxid`).
//! Such pages are not reused until no snapshot older than that can exist.
//!
//! `MetaStats` (cumulative counters for `strata.lsm_levels`) was added to
//! version 2 without a bump: older metapages have zeros there (the bytes
//! lay above their `pd_lower`, in the page hole), which is what the counters
//! of a table that never flushed hold.
//!
//! **Row identity.** A row version's rowid is `v * 256 + (o - 1)` for the L0
//! page with virtual block `v` it was written to, line pointer `o`; its logical
//! TID is `(v, o)`. Indexes and `t_ctid` chains hold logical TIDs. A version
//! keeps its rowid for life, also when a flush moves it into a run; rowids are
//! never reused. Virtual blocks are handed out in increasing order
//! (`next_vblock`) and are unrelated to physical blocks.
//!
//! **L0** is the append area: the pages with virtual blocks
//! `l0_first_vblock .. next_vblock`. `l0_dir` lists directory pages; directory
//! page `i` holds, as a u32 array after its header, the physical block of
//! virtual block `l0_first_vblock + i * DIR_ENTRIES + j` in entry `j`.
//!
//! **Runs** are immutable sorted copies of row versions made by a flush: all
//! of L0 at once, so runs cover disjoint, increasing rowid ranges and every
//! L0 rowid is above every run rowid. A run has data pages and a two-level
//! fence index:
//!
//! ```text
//!  RUN_DATA item  = rowid u64 | HeapTupleHeader tuple     (items in rowid order)
//!                   compressed: rowid u64 | the 23-byte fixed header; the rest in the blob
//!  RUN_INDEX page = entries { first_rowid u64, block u32, pad u32 } after the header
//!                   root (flags 1): one entry per leaf; leaf (flags 0): one per data page
//!                   bloom (flags 2): filter bits (version 4)
//! ```
//!
//! Since version 4 a run may have a bloom filter over its rowids: its pages
//! are RUN_INDEX pages with flags 2, listed in the root's special space in
//! front of the tag ([`super::bloom`] has the layout). Roots written before
//! have no such space and their runs no filter.
//!
//! Row data in a run is never rewritten; like heap, the xmax/infomask/cmax/ctid
//! of a version are stamped in place when it is deleted, updated or locked.
//!
//! **Free pages.** A page is in use only if the metapage reaches it: an L0
//! page whose virtual block is at least `l0_first_vblock`, a run page whose run
//! id is listed, a directory page listed in `l0_dir`. Everything else (pages
//! of flushed L0, merged runs, an interrupted flush) is free and is reused,
//! found through the free space map and re-checked against the metapage.

/// Page tag magic, "LSM1".
pub const MAGIC: u32 = 0x4C53_4D31;
/// Bumped on any incompatible change of this file's layouts. Version 3 added
/// compressed RUN_DATA pages (tag flag `RUN_COMPRESSED`, see
/// [`super::compressed_page`]); version 2 pages are read as they are (they are
/// never compressed), version 1 is refused. Version 4 added run bloom
/// filters (RUN_INDEX flag `INDEX_BLOOM`, a trailer in the root's special
/// space); earlier roots have no trailer and are read as runs without one.
/// Version 5 added index-stable updates (`chain`): heap-only versions
/// (`HEAP_ONLY_TUPLE`) reached from their chain's root, and header-only
/// redirects (`REDIRECT_FLAG` in `t_infomask2`); pages of earlier versions
/// hold neither and are read as they are.
/// Version 6 added compact compressed run pages (`compact_page`: rowids in a
/// map, headers shared by versions nobody stamped, expansion before a stamp)
/// and RUN_PAYLOAD pages; version 3 compressed pages are read as they are.
/// Version 7 compresses each section of a column-wise payload on its own
/// (blob layout 2, `compressed_page::Sections`) so that a scan decompresses
/// only the columns it reads; layout 1 blobs are read as they are.
/// Version 8 stamps compact pages without rewriting them: a version gets its
/// own header in a free slot (shared pages keep one per eight versions), and
/// when none is left the blob moves to a RUN_PAYLOAD page while the page
/// still shares headers (such pages carry version 8 in their tag); pages of
/// earlier versions are read as they are and evolve the same way.
/// Version 9 lets a column-wise page store a column of few distinct values as
/// a dictionary and a code per row (blob layout 3, `column_dict`); layout 2
/// blobs are read as they are.
/// Version 10 stores a section of an lz4 page with zstd where that makes it
/// at least a quarter smaller (blob layout 4, a flag bit per section);
/// layout 3 blobs are read as they are.
/// Version 11 adds the metapage's open run (a bulk load into a table with
/// indexes publishes the run it writes, see "Open run" above); earlier
/// metapages have none.
pub const FORMAT_VERSION: u16 = 11;
/// Oldest version this build reads.
pub const OLDEST_READABLE_VERSION: u16 = 2;

/// Whether a stored format version can be read.
pub fn version_readable(v: u32) -> bool {
    (OLDEST_READABLE_VERSION as u32..=FORMAT_VERSION as u32).contains(&v)
}
/// Row versions per virtual block (TID offsets 1..=256; tidbitmap allows 291).
pub const ROWS_PER_VBLOCK: u16 = 256;

/// `t_infomask2` bit of an update chain's redirect (heap leaves 0x1800
/// unused; see `chain`).
pub const REDIRECT_FLAG: u16 = 0x0800;
/// `t_infomask2` bit of a redirect that a flush or merge stored as its
/// header alone (the other bit heap leaves unused). Redirects without it —
/// made in place by VACUUM, or stored by builds before this bit — still
/// hold the body of the version they were until their run is rewritten
/// (an older header-only one merely counts as garbage once more).
pub const REDIRECT_BODYLESS_FLAG: u16 = 0x1000;
/// `t_infomask` and `t_infomask2` bits (`htup_details.h`) that the pure
/// page code reads; `pg::htup` has them from `pg_sys` for the Postgres side.
pub mod infomask {
    pub const HEAP_HASNULL: u16 = 0x0001;
    pub const HEAP_COMBOCID: u16 = 0x0020;
    pub const HEAP_XMIN_COMMITTED: u16 = 0x0100;
    pub const HEAP_XMIN_INVALID: u16 = 0x0200;
    pub const HEAP_XMIN_FROZEN: u16 = HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID;
    pub const HEAP_XMAX_COMMITTED: u16 = 0x0400;
    pub const HEAP_XMAX_INVALID: u16 = 0x0800;
    pub const HEAP_XMAX_IS_MULTI: u16 = 0x1000;
    /// `t_infomask2`
    pub const HEAP_NATTS_MASK: u16 = 0x07FF;
    pub const HEAP_HOT_UPDATED: u16 = 0x4000;
    pub const HEAP_ONLY_TUPLE: u16 = 0x8000;
}

/// Size of [`PageTag`].
pub const TAG_SIZE: usize = 16;

#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    Meta = 1,
    L0 = 2,
    RunData = 3,
    RunIndex = 4,
    Free = 5,
    L0Dir = 6,
    /// The blob of an expanded compact run page (`compact_page`).
    RunPayload = 7,
}

impl PageKind {
    /// Every kind, in the order of their numbers.
    pub const ALL: [PageKind; 7] = {
        use PageKind::*;
        [Meta, L0, RunData, RunIndex, Free, L0Dir, RunPayload]
    };

    /// The kind numbered `v` (kinds are numbered from 1 in `ALL`'s order:
    /// an index, no search — every page read asks).
    pub fn from_u16(v: u16) -> Option<PageKind> {
        PageKind::ALL.get((v as usize).checked_sub(1)?).copied()
    }
}

/// The special-space tag of every page.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageTag {
    pub magic: u32,
    pub version: u16,
    pub kind: u16,
    pub vblock: u32,
    pub flags: u32,
}
const _: () = assert!(std::mem::size_of::<PageTag>() == TAG_SIZE);

impl PageTag {
    /// The tag fields as stored at byte `at` of a page image (unchecked).
    pub fn read(page: &[u8], at: usize) -> PageTag {
        PageTag {
            magic: u32_at(page, at),
            version: u16_at(page, at + 4),
            kind: u16_at(page, at + 6),
            vblock: u32_at(page, at + 8),
            flags: u32_at(page, at + 12),
        }
    }

    pub fn new(kind: PageKind, vblock: u32) -> PageTag {
        PageTag {
            magic: MAGIC,
            version: FORMAT_VERSION,
            kind: kind as u16,
            vblock,
            flags: 0,
        }
    }

    /// Checks magic and version; returns the page kind.
    pub fn validate(&self) -> Result<PageKind, FormatError> {
        if self.magic != MAGIC {
            return Err(FormatError::BadMagic(self.magic));
        }
        if !version_readable(self.version as u32) {
            return Err(FormatError::BadVersion(self.version));
        }
        PageKind::from_u16(self.kind).ok_or(FormatError::BadKind(self.kind))
    }
}

/// Standard page geometry (the server's, checked in `pg::page`).
pub use strata_base::page_layout::{BLOCK_SIZE, PAGE_HEADER_SIZE};
/// Runs a table can have; a flush that would exceed it merges into the newest run.
pub const MAX_RUNS: usize = 32;
/// L0 directory pages the metapage can list.
pub const MAX_DIR_PAGES: usize = 512;
/// Entries per L0 directory page.
pub const DIR_ENTRIES: usize = (BLOCK_SIZE - PAGE_HEADER_SIZE - TAG_SIZE) / 4;
/// Largest L0, in pages, before it must be flushed (about 8 GB).
pub const MAX_L0_PAGES: usize = MAX_DIR_PAGES * DIR_ENTRIES;
/// Fence entries per RUN_INDEX page.
pub const FENCE_ENTRIES: usize = (BLOCK_SIZE - PAGE_HEADER_SIZE - TAG_SIZE) / FENCE_SIZE;
pub const FENCE_SIZE: usize = 16;
/// Data pages one run can index (root × leaves); larger flushes emit more runs.
pub const MAX_RUN_DATA_PAGES: usize = FENCE_ENTRIES * FENCE_ENTRIES;
/// Bytes of the rowid prefix of each RUN_DATA item.
pub const ROWID_PREFIX: usize = 8;
/// Largest row version: it must fit an L0 page and, with its rowid prefix,
/// a run page (page minus header, tag, one line pointer and the prefix).
pub const MAX_TUPLE_SIZE: usize =
    (BLOCK_SIZE - PAGE_HEADER_SIZE - TAG_SIZE - 4 - ROWID_PREFIX) & !7;
/// RUN_INDEX flags.
pub const INDEX_LEAF: u32 = 0;
pub const INDEX_ROOT: u32 = 1;
/// A page of a run's bloom filter (format version 4, see [`super::bloom`]).
pub const INDEX_BLOOM: u32 = 2;

/// Fixed part of the metapage (block 0), right after the page header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaHeader {
    pub magic: u32,
    pub version: u32,
    /// Virtual block of the next L0 page.
    pub next_vblock: u32,
    /// Virtual block of the oldest L0 page (everything below is in runs).
    pub l0_first_vblock: u32,
    pub next_run_id: u32,
    pub nruns: u32,
    /// Count of L0 flushes and run merges performed (for lsm_info).
    pub flushes: u64,
    pub compactions: u64,
}
const _: () = assert!(std::mem::size_of::<MetaHeader>() == 40);

impl MetaHeader {
    /// The fixed part of a metapage image, checked (no allocation: hot paths
    /// read only this, one directory slot or one run).
    pub fn decode(page: &[u8]) -> Result<MetaHeader, FormatError> {
        let h = MetaHeader {
            magic: u32_at(page, META_HEADER_AT),
            version: u32_at(page, META_HEADER_AT + 4),
            next_vblock: u32_at(page, META_HEADER_AT + 8),
            l0_first_vblock: u32_at(page, META_HEADER_AT + 12),
            next_run_id: u32_at(page, META_HEADER_AT + 16),
            nruns: u32_at(page, META_HEADER_AT + 20),
            flushes: u64_at(page, META_HEADER_AT + 24),
            compactions: u64_at(page, META_HEADER_AT + 32),
        };
        if h.magic != MAGIC {
            return Err(FormatError::BadMagic(h.magic));
        }
        if !version_readable(h.version) {
            return Err(FormatError::BadVersion(h.version as u16));
        }
        if h.nruns as usize > MAX_RUNS || h.l0_first_vblock > h.next_vblock {
            return Err(FormatError::BadMeta);
        }
        Ok(h)
    }

    /// Directory slot and entry of L0 virtual block `v` (None: not in L0).
    pub fn dir_position(&self, v: u32) -> Option<(usize, usize)> {
        if v < self.l0_first_vblock || v >= self.next_vblock {
            return None;
        }
        let i = (v - self.l0_first_vblock) as usize;
        Some((i / DIR_ENTRIES, i % DIR_ENTRIES))
    }
}

/// Block of L0 directory slot `slot` in a metapage image.
pub fn dir_slot_block(page: &[u8], slot: usize) -> u32 {
    u32_at(page, META_DIR_AT + slot * 4)
}

/// Run `i` of a metapage image.
pub fn run_at(page: &[u8], i: usize) -> RunDesc {
    let at = META_RUNS_AT + i * 48;
    RunDesc {
        run_id: u32_at(page, at),
        level: u16_at(page, at + 4),
        flags: u16_at(page, at + 6),
        root: u32_at(page, at + 8),
        data_pages: u32_at(page, at + 12),
        first_rowid: u64_at(page, at + 16),
        last_rowid: u64_at(page, at + 24),
        versions: u64_at(page, at + 32),
        tuple_bytes: u64_at(page, at + 40),
    }
}

/// Pages a sequential scan reads, from a metapage image: the L0 pages and
/// every run's data pages (not the metapage, directories, fence indexes,
/// filters or free pages). The planner costs scans by this number.
pub fn scan_pages(page: &[u8], header: &MetaHeader) -> u64 {
    let l0 = header.next_vblock.saturating_sub(header.l0_first_vblock) as u64;
    l0 + (0..header.nruns as usize)
        .map(|i| run_at(page, i).data_pages as u64)
        .sum::<u64>()
}

/// The run of a metapage image that holds `rowid`, if any.
pub fn run_holding(page: &[u8], header: &MetaHeader, rowid: u64) -> Option<RunDesc> {
    (0..header.nruns as usize)
        .map(|i| run_at(page, i))
        .find(|r| r.first_rowid <= rowid && rowid <= r.last_rowid)
}

/// The open run of a metapage image, without decoding the rest.
pub fn open_run(page: &[u8]) -> Option<OpenRun> {
    let run_id = u32_at(page, META_OPEN_AT);
    (run_id != 0).then(|| OpenRun {
        run_id,
        root: u32_at(page, META_OPEN_AT + 4),
        first_rowid: u64_at(page, META_OPEN_AT + 8),
        end_rowid: u64_at(page, META_OPEN_AT + 16),
    })
}

/// One run, as listed in the metapage.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunDesc {
    pub run_id: u32,
    pub level: u16,
    pub flags: u16,
    /// Block of the root RUN_INDEX page.
    pub root: u32,
    pub data_pages: u32,
    pub first_rowid: u64,
    pub last_rowid: u64,
    pub versions: u64,
    pub tuple_bytes: u64,
}
const _: () = assert!(std::mem::size_of::<RunDesc>() == 48);

pub const META_HEADER_AT: usize = PAGE_HEADER_SIZE;
pub const META_RUNS_AT: usize = 64;
pub const META_DIR_AT: usize = META_RUNS_AT + MAX_RUNS * std::mem::size_of::<RunDesc>();
pub const META_STATS_AT: usize = META_DIR_AT + MAX_DIR_PAGES * 4;
pub const META_PENDING_AT: usize = META_STATS_AT + std::mem::size_of::<MetaStats>();
/// Pending entries the metapage can hold.
pub const MAX_PENDING: usize = 128;
pub const PENDING_SIZE: usize = 24;
/// `l0_seal` (see [`Meta::l0_seal`]).
pub const META_SEAL_AT: usize = META_PENDING_AT + 8 + MAX_PENDING * PENDING_SIZE;
/// The open run of a bulk load (see [`OpenRun`]).
pub const META_OPEN_AT: usize = META_SEAL_AT + 8;
pub const META_END: usize = META_OPEN_AT + 24;

/// The run a bulk load is writing, published so that its rows are found by
/// TID while it writes (version 11; see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRun {
    pub run_id: u32,
    /// Block of its root RUN_INDEX page (its leaves hold the data pages
    /// written so far).
    pub root: u32,
    /// Rowids reserved for it: `first_rowid .. end_rowid`.
    pub first_rowid: u64,
    pub end_rowid: u64,
}

impl OpenRun {
    pub fn holds(&self, rowid: u64) -> bool {
        (self.first_rowid..self.end_rowid).contains(&rowid)
    }
}

/// Pages freed by a switch that older scans may still read: kind L0 (virtual
/// blocks `lo..hi`), RunData (every page of run `lo`), L0Dir (block `lo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Full transaction id that was next at the switch: the pages may be
    /// reused once every snapshot is newer than it.
    pub safe_fxid: u64,
    pub kind: PageKind,
    pub lo: u32,
    pub hi: u32,
}

impl Pending {
    /// Whether this entry covers the page at `block` with tag `tag`.
    pub fn covers(&self, block: u32, tag: &PageTag) -> bool {
        match (self.kind, PageKind::from_u16(tag.kind)) {
            (PageKind::L0, Some(PageKind::L0)) => (self.lo..self.hi).contains(&tag.vblock),
            (
                PageKind::RunData,
                Some(PageKind::RunData | PageKind::RunIndex | PageKind::RunPayload),
            ) => {
                tag.vblock == self.lo
            }
            (PageKind::L0Dir, Some(PageKind::L0Dir)) => block == self.lo,
            _ => false,
        }
    }
}

/// Cumulative work counters of a table (tuple bytes and versions written by
/// flushes and by merges; versions dropped as dead; versions frozen).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaStats {
    pub flushed_bytes: u64,
    pub flushed_versions: u64,
    pub compacted_bytes: u64,
    pub compacted_versions: u64,
    pub dropped_versions: u64,
    pub frozen_versions: u64,
}
const _: () = assert!(std::mem::size_of::<MetaStats>() == 48);

impl MetaStats {
    fn decode(page: &[u8]) -> MetaStats {
        let at = |i: usize| u64_at(page, META_STATS_AT + i * 8);
        MetaStats {
            flushed_bytes: at(0),
            flushed_versions: at(1),
            compacted_bytes: at(2),
            compacted_versions: at(3),
            dropped_versions: at(4),
            frozen_versions: at(5),
        }
    }

    fn encode(&self, page: &mut [u8]) {
        let v = [
            self.flushed_bytes,
            self.flushed_versions,
            self.compacted_bytes,
            self.compacted_versions,
            self.dropped_versions,
            self.frozen_versions,
        ];
        for (i, x) in v.iter().enumerate() {
            put_u64(page, META_STATS_AT + i * 8, *x);
        }
    }

    /// Tuple bytes written into runs per byte flushed out of L0 (1.0 before
    /// any merge; 0 before any flush).
    pub fn write_amplification(&self) -> f64 {
        if self.flushed_bytes == 0 {
            return 0.0;
        }
        (self.flushed_bytes + self.compacted_bytes) as f64 / self.flushed_bytes as f64
    }
}
const _: () = assert!(META_END <= BLOCK_SIZE - TAG_SIZE);

/// The whole metapage, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub header: MetaHeader,
    pub runs: Vec<RunDesc>,
    pub l0_dir: Vec<u32>,
    pub stats: MetaStats,
    pub pending: Vec<Pending>,
    /// Run ids from this one up to `next_run_id` belong to a merge that is
    /// writing its pages (0: none). Their pages are in use though no run
    /// lists them yet. Stored in the word after `npending`.
    pub writing_from: u32,
    /// A flush in progress copies the L0 pages below this virtual block (0:
    /// none): inserts append only to L0 pages at or above it.
    pub l0_seal: u32,
    /// The run a bulk load is writing and publishing (version 11).
    pub open: Option<OpenRun>,
}

impl Meta {
    pub fn new() -> Meta {
        Meta {
            header: MetaHeader {
                magic: MAGIC,
                version: FORMAT_VERSION as u32,
                // Virtual block 0 would give rowid 0; start at 1 like format 1 did.
                next_vblock: 1,
                l0_first_vblock: 1,
                next_run_id: 1,
                nruns: 0,
                flushes: 0,
                compactions: 0,
            },
            runs: Vec::new(),
            l0_dir: vec![0; MAX_DIR_PAGES],
            stats: MetaStats::default(),
            pending: Vec::new(),
            writing_from: 0,
            l0_seal: 0,
            open: None,
        }
    }

    /// Decodes a metapage image (`page.len() == BLOCK_SIZE`).
    pub fn decode(page: &[u8]) -> Result<Meta, FormatError> {
        let h = MetaHeader::decode(page)?;
        let runs = (0..h.nruns as usize).map(|i| run_at(page, i)).collect();
        let l0_dir = (0..MAX_DIR_PAGES)
            .map(|i| dir_slot_block(page, i))
            .collect();
        let npending = (u32_at(page, META_PENDING_AT) as usize).min(MAX_PENDING);
        let pending = (0..npending)
            .filter_map(|i| {
                let at = META_PENDING_AT + 8 + i * PENDING_SIZE;
                Some(Pending {
                    safe_fxid: u64_at(page, at),
                    kind: PageKind::from_u16(u16_at(page, at + 8))?,
                    lo: u32_at(page, at + 12),
                    hi: u32_at(page, at + 16),
                })
            })
            .collect();
        let writing_from = u32_at(page, META_PENDING_AT + 4);
        let l0_seal = u32_at(page, META_SEAL_AT);
        let open = open_run(page);
        Ok(Meta {
            header: h,
            runs,
            l0_dir,
            stats: MetaStats::decode(page),
            pending,
            writing_from,
            l0_seal,
            open,
        })
    }

    /// Encodes into a metapage image (header, tag and pd_lower are the caller's).
    pub fn encode(&self, page: &mut [u8]) {
        let h = &self.header;
        let at = META_HEADER_AT;
        put_u32(page, at, h.magic);
        put_u32(page, at + 4, h.version);
        put_u32(page, at + 8, h.next_vblock);
        put_u32(page, at + 12, h.l0_first_vblock);
        put_u32(page, at + 16, h.next_run_id);
        put_u32(page, at + 20, self.runs.len() as u32);
        put_u64(page, at + 24, h.flushes);
        put_u64(page, at + 32, h.compactions);
        page[at + 40..META_RUNS_AT].fill(0);
        page[META_RUNS_AT..META_DIR_AT].fill(0);
        for (i, r) in self.runs.iter().enumerate() {
            let at = META_RUNS_AT + i * 48;
            put_u32(page, at, r.run_id);
            put_u16(page, at + 4, r.level);
            put_u16(page, at + 6, r.flags);
            put_u32(page, at + 8, r.root);
            put_u32(page, at + 12, r.data_pages);
            put_u64(page, at + 16, r.first_rowid);
            put_u64(page, at + 24, r.last_rowid);
            put_u64(page, at + 32, r.versions);
            put_u64(page, at + 40, r.tuple_bytes);
        }
        for (i, b) in self.l0_dir.iter().enumerate() {
            put_u32(page, META_DIR_AT + i * 4, *b);
        }
        self.stats.encode(page);
        page[META_PENDING_AT..META_END].fill(0);
        put_u32(page, META_SEAL_AT, self.l0_seal);
        if let Some(o) = self.open {
            put_u32(page, META_OPEN_AT, o.run_id);
            put_u32(page, META_OPEN_AT + 4, o.root);
            put_u64(page, META_OPEN_AT + 8, o.first_rowid);
            put_u64(page, META_OPEN_AT + 16, o.end_rowid);
        }
        put_u32(
            page,
            META_PENDING_AT,
            self.pending.len().min(MAX_PENDING) as u32,
        );
        put_u32(page, META_PENDING_AT + 4, self.writing_from);
        for (i, p) in self.pending.iter().take(MAX_PENDING).enumerate() {
            let at = META_PENDING_AT + 8 + i * PENDING_SIZE;
            put_u64(page, at, p.safe_fxid);
            put_u16(page, at + 8, p.kind as u16);
            put_u32(page, at + 12, p.lo);
            put_u32(page, at + 16, p.hi);
        }
    }

    /// Whether run id `id` belongs to a merge that is still writing its pages.
    pub fn is_being_written(&self, id: u32) -> bool {
        self.writing_from != 0 && (self.writing_from..self.header.next_run_id).contains(&id)
    }

    /// Whether the page at `block` (tag `tag`) is freed but still pending.
    pub fn is_pending(&self, block: u32, tag: &PageTag) -> bool {
        self.pending.iter().any(|p| p.covers(block, tag))
    }

    /// Number of L0 pages.
    pub fn l0_pages(&self) -> u32 {
        self.header.next_vblock - self.header.l0_first_vblock
    }

    /// Directory slot and entry of L0 virtual block `v` (None: not in L0).
    pub fn dir_position(&self, v: u32) -> Option<(usize, usize)> {
        self.header.dir_position(v)
    }

    /// Directory slot and entry that the next L0 page will take.
    pub fn dir_position_for_next(&self) -> (usize, usize) {
        let i = (self.header.next_vblock - self.header.l0_first_vblock) as usize;
        (i / DIR_ENTRIES, i % DIR_ENTRIES)
    }

    /// The run holding `rowid`, if any.
    pub fn run_of(&self, rowid: u64) -> Option<&RunDesc> {
        self.runs
            .iter()
            .find(|r| r.first_rowid <= rowid && rowid <= r.last_rowid)
    }

    /// Whether run `run_id` is the open run of a bulk load (published, not
    /// yet listed; or abandoned, until VACUUM clears it).
    pub fn is_open(&self, run_id: u32) -> bool {
        self.open.is_some_and(|o| o.run_id == run_id)
    }

    pub fn has_run(&self, run_id: u32) -> bool {
        self.runs.iter().any(|r| r.run_id == run_id)
    }

    pub fn lists_dir_page(&self, block: u32) -> bool {
        block != 0 && self.l0_dir.contains(&block)
    }
}

impl Default for Meta {
    fn default() -> Self {
        Meta::new()
    }
}

pub fn u16_at(p: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([p[at], p[at + 1]])
}
pub fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(p[at..at + 4].try_into().unwrap())
}
pub fn u64_at(p: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(p[at..at + 8].try_into().unwrap())
}
pub fn put_u16(p: &mut [u8], at: usize, v: u16) {
    p[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u32(p: &mut [u8], at: usize, v: u32) {
    p[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(p: &mut [u8], at: usize, v: u64) {
    p[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("bad page magic 0x{0:08x}")]
    BadMagic(u32),
    #[error("unsupported lsm format version {0} (this build reads versions {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})")]
    BadVersion(u16),
    #[error("unknown lsm page kind {0}")]
    BadKind(u16),
    #[error("inconsistent metapage")]
    BadMeta,
}

/// Largest rowid: virtual blocks are 32-bit block numbers, 256 rows each.
pub const MAX_ROWID: u64 = (u32::MAX as u64 + 1) * ROWS_PER_VBLOCK as u64 - 1;

/// Rowid of line pointer `offset` (1-based) in virtual block `vblock`.
pub fn rowid(vblock: u32, offset: u16) -> u64 {
    vblock as u64 * ROWS_PER_VBLOCK as u64 + (offset as u64 - 1)
}

/// Logical TID `(vblock, offset)` of a rowid.
pub fn tid_of_rowid(rowid: u64) -> (u32, u16) {
    (
        (rowid / ROWS_PER_VBLOCK as u64) as u32,
        (rowid % ROWS_PER_VBLOCK as u64) as u16 + 1,
    )
}

/// Whether a TID offset can name a row at all.
pub fn offset_in_range(offset: u16) -> bool {
    (1..=ROWS_PER_VBLOCK).contains(&offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rowid_tid_round_trip() {
        for r in [0u64, 1, 255, 256, 257, MAX_ROWID] {
            let (v, o) = tid_of_rowid(r);
            assert!(offset_in_range(o));
            assert_eq!(rowid(v, o), r);
        }
        assert_eq!(tid_of_rowid(256), (1, 1));
        assert!(!offset_in_range(0) && !offset_in_range(257));
    }

    #[test]
    fn meta_round_trip() {
        let mut m = Meta::new();
        m.header.next_vblock = 5000;
        m.header.l0_first_vblock = 700;
        m.header.flushes = 3;
        m.runs.push(RunDesc {
            run_id: 4,
            root: 77,
            data_pages: 10,
            first_rowid: 256,
            last_rowid: 179_000,
            versions: 1234,
            ..Default::default()
        });
        m.header.nruns = 1;
        m.l0_dir[0] = 55;
        m.stats.flushed_bytes = 1000;
        m.stats.compacted_bytes = 500;
        m.stats.frozen_versions = 7;
        m.pending.push(Pending {
            safe_fxid: 1 << 33,
            kind: PageKind::L0,
            lo: 5,
            hi: 9,
        });
        m.pending.push(Pending {
            safe_fxid: 7,
            kind: PageKind::RunData,
            lo: 3,
            hi: 0,
        });
        assert_eq!(m.stats.write_amplification(), 1.5);
        let mut page = vec![0u8; BLOCK_SIZE];
        m.encode(&mut page);
        assert_eq!(Meta::decode(&page).unwrap(), m);
        assert_eq!(open_run(&page), None);
        m.open = Some(OpenRun {
            run_id: 9,
            root: 31,
            first_rowid: 180_000,
            end_rowid: 180_000 + 65_536,
        });
        m.encode(&mut page);
        assert_eq!(Meta::decode(&page).unwrap(), m);
        assert!(open_run(&page).is_some_and(|o| o.holds(180_000) && !o.holds(180_000 + 65_536)));
        m.open = None;
        m.encode(&mut page);
        assert_eq!(Meta::decode(&page).unwrap(), m);
        assert_eq!(m.l0_pages(), 4300);
        assert_eq!(m.dir_position(700), Some((0, 0)));
        assert_eq!(m.dir_position(700 + DIR_ENTRIES as u32 + 3), Some((1, 3)));
        assert_eq!(m.dir_position(699), None);
        assert_eq!(m.dir_position(5000), None);
        assert_eq!(m.run_of(256).map(|r| r.run_id), Some(4));
        assert_eq!(m.run_of(255), None);
        assert!(m.has_run(4) && !m.has_run(5));
        assert!(m.lists_dir_page(55) && !m.lists_dir_page(0));
        // the allocation-free readers agree with the full decode
        let h = MetaHeader::decode(&page).unwrap();
        assert_eq!(h, m.header);
        assert_eq!(dir_slot_block(&page, 0), 55);
        assert_eq!(run_holding(&page, &h, 1000), Some(m.runs[0]));
        assert_eq!(run_holding(&page, &h, 200_000), None);
        assert_eq!(scan_pages(&page, &h), 4300 + 10);
        let next = FORMAT_VERSION + 1;
        page[META_HEADER_AT + 4] = next as u8;
        assert_eq!(Meta::decode(&page), Err(FormatError::BadVersion(next)));
    }

    #[test]
    fn geometry() {
        assert_eq!(DIR_ENTRIES, 2038);
        assert_eq!(FENCE_ENTRIES, 509);
        assert_eq!(META_STATS_AT, 3648);
        assert_eq!(META_PENDING_AT, 3696);
        assert_eq!(META_SEAL_AT, 6776);
        assert_eq!(META_OPEN_AT, 6784);
        assert_eq!(META_END, 6808);
    }

    #[test]
    fn pending_entries_cover_what_was_freed() {
        let l0 = Pending {
            safe_fxid: 1,
            kind: PageKind::L0,
            lo: 10,
            hi: 20,
        };
        assert!(l0.covers(99, &PageTag::new(PageKind::L0, 10)));
        assert!(!l0.covers(99, &PageTag::new(PageKind::L0, 20)));
        assert!(!l0.covers(99, &PageTag::new(PageKind::RunData, 12)));
        let run = Pending {
            safe_fxid: 1,
            kind: PageKind::RunData,
            lo: 4,
            hi: 0,
        };
        assert!(run.covers(1, &PageTag::new(PageKind::RunData, 4)));
        assert!(run.covers(1, &PageTag::new(PageKind::RunIndex, 4)));
        assert!(!run.covers(1, &PageTag::new(PageKind::RunData, 5)));
        let dir = Pending {
            safe_fxid: 1,
            kind: PageKind::L0Dir,
            lo: 77,
            hi: 0,
        };
        assert!(dir.covers(77, &PageTag::new(PageKind::L0Dir, 0)));
        assert!(!dir.covers(78, &PageTag::new(PageKind::L0Dir, 0)));
        let mut m = Meta::new();
        m.pending = vec![l0, run];
        assert!(m.is_pending(5, &PageTag::new(PageKind::RunIndex, 4)));
        assert!(!m.is_pending(5, &PageTag::new(PageKind::Free, 4)));
    }

    #[test]
    fn tag_validation() {
        let t = PageTag::new(PageKind::L0, 7);
        assert_eq!(t.validate(), Ok(PageKind::L0));
        assert_eq!(
            PageTag { magic: 1, ..t }.validate(),
            Err(FormatError::BadMagic(1))
        );
        assert_eq!(
            PageTag { version: FORMAT_VERSION + 1, ..t }.validate(),
            Err(FormatError::BadVersion(FORMAT_VERSION + 1))
        );
        assert_eq!(
            PageTag { version: 1, ..t }.validate(),
            Err(FormatError::BadVersion(1))
        );
        assert_eq!(PageTag { version: 2, ..t }.validate(), Ok(PageKind::L0));
        assert_eq!(
            PageTag { kind: 99, ..t }.validate(),
            Err(FormatError::BadKind(99))
        );
    }

    #[test]
    fn every_page_kind_number_names_its_kind() {
        let named: Vec<Option<PageKind>> = (0..=8).map(PageKind::from_u16).collect();
        let mut want = vec![None];
        want.extend(PageKind::ALL.map(Some));
        want.push(None);
        assert_eq!(named, want);
    }
}
