//! On-disk format of `lsm` tables, version 1. Pure: no Postgres calls.
//!
//! Every page is a standard Postgres page (header, line pointers, tuples) with a
//! 16-byte special space tag:
//!
//! ```text
//!  special space (last 16 bytes of every page)
//!  +----------+---------+---------+-----------+-----------+
//!  | magic u32| ver u16 | kind u16| vblock u32| flags u32 |
//!  +----------+---------+---------+-----------+-----------+
//!  magic = 0x4C534D31 ("LSM1"), ver = FORMAT_VERSION,
//!  kind  = META | L0 | RUN_DATA | RUN_INDEX | FREE (RUN_*/FREE: compaction, later)
//! ```
//!
//! Block 0 is the metapage; its [`Meta`] struct sits right after the page header
//! (pd_lower covers it, so WAL full-page images keep it):
//!
//! ```text
//!  +-------------+--------------------------------------------------+---------+
//!  | PageHeader  | Meta { magic, version, l0_pages, runs, ... }     | special |
//!  +-------------+--------------------------------------------------+---------+
//! ```
//!
//! L0 pages hold row versions as `HeapTupleHeader` tuples, at most
//! [`ROWS_PER_VBLOCK`] per page. Each L0 page owns one *virtual block* `v` of the
//! rowid space: the row in line pointer `o` has rowid `v * 256 + (o - 1)` and the
//! logical TID `(v, o)`, which is what indexes store and what `t_ctid` chains
//! use. A row keeps its rowid for life, including after it is moved into a run,
//! so indexes never need rewriting; rowids are never reused. In format 1 a fresh
//! L0 page's virtual block equals its physical block number; when L0 pages are
//! flushed into runs their physical blocks are recycled under new virtual blocks
//! and the metapage's L0 directory maps virtual to physical.

/// Page tag magic, "LSM1".
pub const MAGIC: u32 = 0x4C53_4D31;
/// Bumped on any incompatible change of this file's layouts.
pub const FORMAT_VERSION: u16 = 1;
/// Row versions per virtual block (TID offsets 1..=256; tidbitmap allows 291).
pub const ROWS_PER_VBLOCK: u16 = 256;
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
}

impl PageKind {
    pub fn from_u16(v: u16) -> Option<PageKind> {
        Some(match v {
            1 => PageKind::Meta,
            2 => PageKind::L0,
            3 => PageKind::RunData,
            4 => PageKind::RunIndex,
            5 => PageKind::Free,
            _ => return None,
        })
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
        if self.version != FORMAT_VERSION {
            return Err(FormatError::BadVersion(self.version));
        }
        PageKind::from_u16(self.kind).ok_or(FormatError::BadKind(self.kind))
    }
}

/// Metapage contents (block 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub magic: u32,
    pub version: u32,
    /// Root of the L0 directory (0 = identity mapping, format 1).
    pub l0_directory: u32,
    /// Root of the run manifest (0 = no runs yet).
    pub manifest: u32,
    /// Count of L0 flushes and compactions performed (for lsm_info).
    pub flushes: u64,
    pub compactions: u64,
}

impl Meta {
    pub fn new() -> Meta {
        Meta {
            magic: MAGIC,
            version: FORMAT_VERSION as u32,
            l0_directory: 0,
            manifest: 0,
            flushes: 0,
            compactions: 0,
        }
    }
}

impl Default for Meta {
    fn default() -> Self {
        Meta::new()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("bad page magic 0x{0:08x}")]
    BadMagic(u32),
    #[error("unsupported lsm format version {0} (this build reads version {FORMAT_VERSION})")]
    BadVersion(u16),
    #[error("unknown lsm page kind {0}")]
    BadKind(u16),
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
    fn tag_validation() {
        let t = PageTag::new(PageKind::L0, 7);
        assert_eq!(t.validate(), Ok(PageKind::L0));
        assert_eq!(
            PageTag { magic: 1, ..t }.validate(),
            Err(FormatError::BadMagic(1))
        );
        assert_eq!(
            PageTag { version: 9, ..t }.validate(),
            Err(FormatError::BadVersion(9))
        );
        assert_eq!(
            PageTag { kind: 99, ..t }.validate(),
            Err(FormatError::BadKind(99))
        );
    }
}
