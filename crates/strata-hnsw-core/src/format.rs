//! On-disk format of `strata_hnsw` indexes, version 9 (versions 1–8 are
//! still read and written into; `docs/hnsw-format.md` draws every version,
//! this comment the first ones and the parts every version shares). Version
//! 9 stores a `vector` column's elements rounded to binary16 with a bound
//! ([`Scalar::Rounded16`], `rounded.rs`). Pure: no Postgres calls.
//!
//! Every page is a standard Postgres page with a 16-byte special space tag:
//!
//! ```text
//!  +----------+---------+---------+-------------+
//!  | magic u32| ver u16 | kind u16| reserved u64|     magic = 0x484E5357 ("HNSW")
//!  +----------+---------+---------+-------------+     kind: 1 META, 2 GRAPH
//! ```
//!
//! **Block 0, the metapage** (below `pd_lower`, so WAL images keep it):
//!
//! ```text
//!  24 magic u32 | version u32 | dims u32 | m u16 | ef_construction u16 |
//!     metric u16 | code_bits u16 | entry_block u32 | entry_offset u16 |
//!     entry_level i16 | elements u64 | insert_block u32 | code_seed u32 |
//!     code_scale u16 | half u16                                        (48 bytes)
//! ```
//!
//! `half` (version 6; padding before; a [`Scalar`] since version 7) is 1
//! when elements store their vector as binary16 values (`halfvec` columns):
//! `dims × u16` instead of `dims × f32` below; readers widen them to `f32`
//! exactly; 4 (version 9) when they store a `vector` column's values
//! rounded: `slack f32 | exp i16 | dims × u16`.
//!
//! `code_bits`, `code_seed` and `code_scale` are version 4's (zero before):
//! the neighbor codes' width and rotation (see below and `codes.rs`), and how
//! many elements a code-guided search keeps per unit of `ef_search`
//! (`calibrate.rs`; 0: the default, 2).
//!
//! **Graph pages** hold two kinds of items. An *element* is one distinct
//! vector and the heap rows that hold it (version 2: up to [`HEAP_TIDS`], so
//! duplicate vectors share one element like pgvector's; version 1: one):
//!
//! ```text
//!  0  heap TID 0: block u32, offset u16   (offset 0: a free slot, reusable)
//!  6  level u8 | flags u8 (0x80 = element item, always set; 0x01 = deleted)
//!  8  neighbor item: block u32, offset u16 | pad u16
//!  16 version 2 only: heap TIDs 1..9, 9 × { block u32, offset u16 } | pad u16
//!  16 (v1) / 72 (v2) vector: dims × f32
//! ```
//!
//! The heap TIDs of an element are packed from the front: TID 0 is empty
//! only in a free slot.
//!
//! Version 3 has no limit on the rows of one vector. When an element's ten
//! slots are full, flag 0x02 (`FLAG_ROW_LIST`) is set and the last slot (TID
//! 9) names the element's first *row list item* instead of a heap row; the
//! element itself then holds nine rows, the lists the rest:
//!
//! ```text
//!  0  next row list: block u32, offset u16   (offset 0: the last one)
//!  6  count u8 (0..=100) | mark u8 = 0x40     (never 0x80: not an element)
//!  8  heap TIDs: 100 × { block u32, offset u16 }, packed from the front
//! ```
//!
//! A row list lies on its element's page or a later one, so a backend that
//! holds the element's page and locks a row list's never waits for a lower
//! block. Every change to an element's rows (its slots and its lists) is
//! made under its page's exclusive lock, and readers walk the lists under
//! its share lock: the set of rows is read whole. A row list with room is
//! reused before a new one is added (a new one becomes the first); lists
//! stay with their element slot, emptied, when VACUUM frees it, and serve
//! the next element placed there. TID 0 stays filled while any row lives:
//! VACUUM moves rows from a list into the element when its own slots empty.
//!
//! and its *neighbor list*, written next to it when it fits:
//!
//! ```text
//!  0  levels u8 (= element level + 1) | pad u8 | count u16 per level, padded to 8
//!  .. per level l: capacity(l) slots of { block u32, offset u16, pad u16 }
//!     capacity(0) = 2·m, capacity(l > 0) = m; unused slots are zero
//! ```
//!
//! Version 4 adds, when the metapage's `code_bits` is not zero, a **code of
//! each level-0 neighbor** after the last level's slots, in slot order
//! (slot k's code describes the element slot k names, relative to the
//! list's owner; a code of an empty slot is meaningless):
//!
//! ```text
//!  .. capacity(0) codes of code_len = code_bits/8 + 4 bytes each:
//!     sign bits (code_bits, bit i of byte i/8 = coordinate i) |
//!     A bfloat16 | B bfloat16
//! ```
//!
//! A search that expands an element scores its whole neighborhood from the
//! page it read (`codes.rs` has the estimate); exact distances, read with
//! each expanded element, still decide what is returned.
//!
//! An element is named by the TID of its element item ([`ElemId`]). Both items
//! have a fixed size for the life of the index, so neighbor lists are
//! rewritten in place and a vacuumed element's slot is reused whole.

/// Tag magic, "HNSW".
pub const MAGIC: u32 = 0x484E_5357;
/// The format new indexes are built in.
pub const FORMAT_VERSION: u16 = 9;
/// The oldest format still read (and inserted into).
pub const OLDEST_VERSION: u16 = 1;
/// Heap TIDs an element holds in version 2.
pub const HEAP_TIDS: usize = 10;
pub const TAG_SIZE: usize = 16;
pub use strata_base::page_layout::{BLOCK_SIZE, PAGE_HEADER_SIZE};
pub const KIND_META: u16 = 1;
pub const KIND_GRAPH: u16 = 2;
pub const META_SIZE: usize = 48;
/// Largest dimension count the index accepts (the vector must fit a page).
pub const MAX_DIMS: usize = 2000;
/// Largest dimension count of binary16 elements (`halfvec`, version 6).
pub const MAX_HALF_DIMS: usize = 4000;
/// Largest bit count of bit elements (`bit(n)`, version 7).
pub const MAX_BIT_DIMS: usize = 64_000;
/// Most non-zero elements of a sparse element (`sparsevec`, version 8;
/// pgvector's limit, so an element fits a page).
pub const MAX_SPARSE_NNZ: usize = 1000;
/// Bytes of the element header shared by both versions (TID 0, level,
/// flags, neighbor item).
pub const ELEMENT_HEADER: usize = 16;
pub const FLAG_DELETED: u8 = 1;
/// Version 3: the last heap TID slot names the element's first row list.
pub const FLAG_ROW_LIST: u8 = 2;
/// Heap TIDs a row list item holds (at most, in version 5).
pub const ROW_LIST_TIDS: usize = 100;
/// Size of a row list item (of a full-size one, in version 5).
pub const ROW_LIST_SIZE: usize = row_list_size(ROW_LIST_TIDS);
/// Version 5: heap TIDs of an element's first row list (most vectors with
/// more rows than the three slots have a few: versions of one row).
pub const FIRST_ROW_LIST_TIDS: usize = 8;
/// Byte 7 of a row list item.
pub const ROW_LIST_MARK: u8 = 0x40;
/// Set in every element item; never set in byte 7 of a neighbor item (that
/// byte is padding or the high byte of a count, and counts stay below 256).
pub const FLAG_ELEMENT: u8 = 0x80;
/// Highest layer an element can get (further capped by [`max_level`]).
pub const MAX_LEVEL: u8 = 15;
/// Version 5: bytes of an element header (three heap TID slots).
pub const COMPACT_HEADER: usize = 24;
/// Version 5: heap TID slots of an element item.
pub const COMPACT_TIDS: usize = 3;
/// Version 5: bits of a compact id's item offset (the rest name the block).
pub const COMPACT_OFFSET_BITS: u32 = 6;
/// Version 5: most items one graph page holds (a compact id's offset).
pub const COMPACT_MAX_ITEMS: u16 = (1 << COMPACT_OFFSET_BITS) - 1;
/// Version 5: the highest block a compact id names (an index of at most
/// 2^26 pages, 512 GB).
pub const COMPACT_MAX_BLOCK: u32 = (1 << (32 - COMPACT_OFFSET_BITS)) - 1;

/// An element, named by its element item's (block, offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ElemId {
    pub block: u32,
    pub offset: u16,
}

impl ElemId {
    pub const NONE: ElemId = ElemId {
        block: 0,
        offset: 0,
    };

    pub fn is_none(&self) -> bool {
        self.offset == 0
    }
}

/// Hashing of element ids for the sets and maps a search touches per
/// visited element (visited set, header cache, returned set): ids are small
/// (block, offset) pairs, and a multiply per field mixes them for a
/// fraction of std's SipHash cost.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const ID_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(ID_MIX);
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.0 = (self.0.rotate_left(32) ^ v as u64).wrapping_mul(ID_MIX);
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0.rotate_left(32) ^ v as u64).wrapping_mul(ID_MIX);
    }
}

/// A set of element ids hashed by [`IdHasher`].
pub type IdSet = std::collections::HashSet<ElemId, std::hash::BuildHasherDefault<IdHasher>>;
/// A map keyed by element ids hashed by [`IdHasher`].
pub type IdMap<V> = std::collections::HashMap<ElemId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// What an element's vector coordinates are stored as (the metapage's
/// byte 46 since version 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// float4 (`vector`; every version).
    Float4 = 0,
    /// IEEE binary16 (`halfvec`; version 6).
    Binary16 = 1,
    /// One bit per dimension, packed as `bit(n)` packs them (version 7);
    /// seen by the graph as coordinates 0.0 and 1.0, so Hamming distance is
    /// L1 and Jaccard distance comes from dot products, exactly.
    Bit = 2,
    /// A sparse vector's non-zero elements (`sparsevec`; version 8), stored
    /// as the graph carries them ([`strata_vector_core::sparse::Slots`]):
    /// `nnz u32 | indices i32 × nnz | values f32 × nnz`, so elements differ
    /// in size (at most [`MAX_SPARSE_NNZ`] non-zeros).
    Sparse = 3,
    /// float4 values (`vector`) stored at half precision, scaled by a power
    /// of two, with the rounding's bound (version 9; [`super::rounded`]):
    /// `slack f32 | exp i16 | dims × binary16`. Scans ask the executor to
    /// recheck the order of rows whose vectors were rounded.
    Rounded16 = 4,
}

impl Scalar {
    /// The oldest format version storing this scalar.
    pub fn since_version(self) -> u16 {
        match self {
            Scalar::Float4 => OLDEST_VERSION,
            Scalar::Binary16 => 6,
            Scalar::Bit => 7,
            Scalar::Sparse => 8,
            Scalar::Rounded16 => 9,
        }
    }

    /// Bytes the coordinates of a `dims`-dimensional vector take (for a
    /// sparse vector, `dims` counts its slots: `1 + 2 × nnz`).
    pub fn bytes_for(self, dims: usize) -> usize {
        match self {
            Scalar::Float4 | Scalar::Sparse => 4 * dims,
            Scalar::Binary16 => 2 * dims,
            Scalar::Bit => dims.div_ceil(8),
            Scalar::Rounded16 => super::rounded::bytes_for(dims),
        }
    }

    /// Largest dimension count a column indexed as this scalar may declare.
    pub fn max_dims(self) -> usize {
        match self {
            Scalar::Float4 | Scalar::Rounded16 => MAX_DIMS,
            Scalar::Binary16 => MAX_HALF_DIMS,
            Scalar::Bit => MAX_BIT_DIMS,
            Scalar::Sparse => strata_vector_core::sparse::MAX_DIM,
        }
    }

    /// The SQL type of a column whose values are stored as this scalar.
    pub fn type_name(self) -> &'static str {
        match self {
            Scalar::Float4 | Scalar::Rounded16 => "vector",
            Scalar::Binary16 => "halfvec",
            Scalar::Bit => "bit",
            Scalar::Sparse => "sparsevec",
        }
    }

    /// Metapage byte 46 of a `version` metapage (padding, read as float4,
    /// where that version stores no such scalar).
    fn of_byte(version: u16, b: u16) -> Scalar {
        let s = match b {
            1 => Scalar::Binary16,
            2 => Scalar::Bit,
            3 => Scalar::Sparse,
            4 => Scalar::Rounded16,
            _ => Scalar::Float4,
        };
        if version >= s.since_version() {
            s
        } else {
            Scalar::Float4
        }
    }
}

/// The element layout of one format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub version: u16,
    /// What element coordinates are stored as.
    pub scalar: Scalar,
}

impl Layout {
    pub const CURRENT: Layout = Layout {
        version: FORMAT_VERSION,
        scalar: Scalar::Float4,
    };

    /// The layout of a version this build reads (float4 elements).
    pub fn of(version: u16) -> Option<Layout> {
        (OLDEST_VERSION..=FORMAT_VERSION).contains(&version).then_some(Layout {
            version,
            scalar: Scalar::Float4,
        })
    }

    /// This layout with `scalar` elements (callers check
    /// [`Layout::stores`]).
    pub fn with_scalar(self, scalar: Scalar) -> Layout {
        Layout { scalar, ..self }
    }

    /// This layout for a column whose values are `column`'s: a `vector`
    /// column's elements are rounded to binary16 from version 9
    /// ([`Scalar::Rounded16`]); the others are stored as they are.
    pub fn for_column(self, column: Scalar) -> Layout {
        match column {
            Scalar::Float4 if self.stores(Scalar::Rounded16) => self.with_scalar(Scalar::Rounded16),
            c => self.with_scalar(c),
        }
    }

    /// Whether this version's elements can store `scalar` values.
    pub fn stores(&self, scalar: Scalar) -> bool {
        self.version >= scalar.since_version()
    }

    /// Whether neighbor items can hold level-0 codes (version 4; the
    /// metapage's `code_bits` says whether they do).
    pub fn codes(&self) -> bool {
        self.version >= 4
    }

    /// Whether elements can have row lists (version 3): no limit on the
    /// rows of one vector.
    pub fn row_lists(&self) -> bool {
        self.version >= 3
    }

    /// Whether element ids in neighbor lists and element headers are
    /// compact, 4 bytes (version 5), rather than 8.
    pub fn compact(&self) -> bool {
        self.version >= 5
    }

    /// Bytes of an element id in a neighbor list.
    pub fn id_size(&self) -> usize {
        if self.compact() {
            4
        } else {
            8
        }
    }

    /// Most items a graph page may hold (None: what fits).
    pub fn max_items(&self) -> Option<u16> {
        self.compact().then_some(COMPACT_MAX_ITEMS)
    }

    /// The highest block an index of this layout may have.
    pub fn max_block(&self) -> u32 {
        if self.compact() {
            COMPACT_MAX_BLOCK
        } else {
            u32::MAX - 1
        }
    }

    /// Heap TID slots of an element item (without row lists: the most rows
    /// one element holds).
    pub fn tid_slots(&self) -> usize {
        match self.version {
            1 => 1,
            2..=4 => HEAP_TIDS,
            _ => COMPACT_TIDS,
        }
    }

    /// Offset of the vector in an element item.
    pub fn vector_offset(&self) -> usize {
        match self.version {
            1 => ELEMENT_HEADER,
            2..=4 => ELEMENT_HEADER + 6 * (HEAP_TIDS - 1) + 2,
            _ => COMPACT_HEADER,
        }
    }

    /// Offset of heap TID slot `slot` in an element item.
    fn tid_at(&self, slot: usize) -> usize {
        match slot {
            0 => 0,
            _ if self.compact() => 12 + 6 * (slot - 1),
            _ => ELEMENT_HEADER + 6 * (slot - 1),
        }
    }

    /// Reads an element id written by [`Layout::put_id`].
    fn get_id(&self, b: &[u8], at: usize) -> ElemId {
        if self.compact() {
            let v = get_u32(b, at);
            ElemId {
                block: v >> COMPACT_OFFSET_BITS,
                offset: (v & COMPACT_MAX_ITEMS as u32) as u16,
            }
        } else {
            get_id(b, at)
        }
    }

    /// Writes an element id in this layout's width (compact: block above
    /// the low six bits, the offset in them; callers keep pages within
    /// [`Layout::max_items`] and [`Layout::max_block`]).
    fn put_id(&self, b: &mut [u8], at: usize, id: ElemId) {
        if self.compact() {
            assert!(
                id.block <= COMPACT_MAX_BLOCK && id.offset <= COMPACT_MAX_ITEMS,
                "element id ({}, {}) past the compact format's limits",
                id.block,
                id.offset
            );
            put_u32(b, at, (id.block << COMPACT_OFFSET_BITS) | id.offset as u32);
        } else {
            put_id(b, at, id)
        }
    }

    /// Size of an element item for `dims` dimensions.
    pub fn element_size(&self, dims: usize) -> usize {
        self.vector_offset() + self.scalar.bytes_for(dims)
    }
}

/// A heap row's TID as stored in an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeapTid {
    pub block: u32,
    pub offset: u16,
}

fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn get_id(b: &[u8], at: usize) -> ElemId {
    ElemId {
        block: get_u32(b, at),
        offset: get_u16(b, at + 4),
    }
}
fn put_id(b: &mut [u8], at: usize, id: ElemId) {
    put_u32(b, at, id.block);
    put_u16(b, at + 4, id.offset);
    put_u16(b, at + 6, 0);
}

/// The metapage struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Format version of the index (its element layout).
    pub version: u16,
    pub dims: u32,
    pub m: u16,
    pub ef_construction: u16,
    pub metric: u16,
    pub entry: ElemId,
    /// Level of the entry point; -1 when the graph is empty.
    pub entry_level: i16,
    pub elements: u64,
    pub insert_block: u32,
    /// Coordinates kept by the level-0 neighbor codes (version 4; 0: no codes).
    pub code_bits: u16,
    /// Seed of the codes' rotation.
    pub code_seed: u32,
    /// Elements a guided search keeps per unit of ef_search (0: default).
    pub code_scale: u16,
    /// What element coordinates are stored as (version 6 and later).
    pub scalar: Scalar,
}

impl Meta {
    /// The element layout this metapage describes.
    pub fn layout(&self) -> Option<Layout> {
        Layout::of(self.version).map(|l| l.with_scalar(self.scalar))
    }

    pub fn encode(&self, b: &mut [u8]) {
        put_u32(b, 0, MAGIC);
        put_u32(b, 4, self.version as u32);
        put_u32(b, 8, self.dims);
        put_u16(b, 12, self.m);
        put_u16(b, 14, self.ef_construction);
        put_u16(b, 16, self.metric);
        put_u16(b, 18, self.code_bits);
        put_u32(b, 20, self.entry.block);
        put_u16(b, 24, self.entry.offset);
        b[26..28].copy_from_slice(&self.entry_level.to_le_bytes());
        b[28..36].copy_from_slice(&self.elements.to_le_bytes());
        put_u32(b, 36, self.insert_block);
        put_u32(b, 40, self.code_seed);
        put_u16(b, 44, self.code_scale);
        put_u16(b, 46, self.scalar as u16);
    }

    pub fn decode(b: &[u8]) -> Option<Meta> {
        let version = u16::try_from(get_u32(b, 4)).ok()?;
        if get_u32(b, 0) != MAGIC || Layout::of(version).is_none() {
            return None;
        }
        Some(Meta {
            version,
            dims: get_u32(b, 8),
            m: get_u16(b, 12),
            ef_construction: get_u16(b, 14),
            metric: get_u16(b, 16),
            entry: ElemId {
                block: get_u32(b, 20),
                offset: get_u16(b, 24),
            },
            entry_level: i16::from_le_bytes([b[26], b[27]]),
            elements: u64::from_le_bytes(b[28..36].try_into().unwrap()),
            insert_block: get_u32(b, 36),
            // zero in older versions' metapages (padding)
            code_bits: if version >= 4 { get_u16(b, 18) } else { 0 },
            code_seed: if version >= 4 { get_u32(b, 40) } else { 0 },
            code_scale: if version >= 4 { get_u16(b, 44) } else { 0 },
            scalar: Scalar::of_byte(version, get_u16(b, 46)),
        })
    }
}

/// Neighbor slots at `level`.
pub fn capacity(m: usize, level: usize) -> usize {
    if level == 0 {
        2 * m
    } else {
        m
    }
}

fn neighbors_header(levels: usize) -> usize {
    (2 + 2 * levels).div_ceil(8) * 8
}

/// Size of the neighbor item of an element with top `level`, with level-0
/// codes of `code_len` bytes (0: none).
pub fn neighbors_size(layout: Layout, m: usize, level: usize, code_len: usize) -> usize {
    let slots: usize = (0..=level).map(|l| capacity(m, l)).sum();
    neighbors_header(level + 1) + layout.id_size() * slots + capacity(m, 0) * code_len
}

/// Highest level whose neighbor item, with the most codes, still fits a page
/// for this `m` (15 for m <= 39; 5 for m = 100, where a level above 5 has
/// probability 1e-12), counted with 8-byte ids (every version's widest).
pub fn max_level(m: usize) -> u8 {
    let free = BLOCK_SIZE - PAGE_HEADER_SIZE - TAG_SIZE - 4;
    (0..=MAX_LEVEL)
        .rev()
        .find(|&l| neighbors_size(Layout { version: 4, scalar: Scalar::Float4 }, m, l as usize, 0) + MAX_CODES_BYTES <= free)
        .unwrap_or(0)
}

/// Most bytes the level-0 codes of one neighbor item take (the code width
/// is chosen to stay within it, see [`code_bits_for`]).
pub const MAX_CODES_BYTES: usize = 2048;

/// The code width (coordinates kept) a new index of `dims` dimensions and
/// this `m` gets: `preferred` rounded down to a multiple of 8 and capped by
/// the padded dimensions, narrowed until a list's codes fit
/// [`MAX_CODES_BYTES`]; 0 (no codes) when even 32 bits do not fit. (Version
/// 5 was tried with codes narrowed until a page held two thirds as many
/// elements as a plain layout: 88 of 128 bits, 56 of GloVe's 64 — recall
/// per element read fell so far that queries at recall 0.95 ran at half the
/// rate; see docs/hnsw-format.md.)
pub fn code_bits_for(dims: usize, m: usize, preferred: usize) -> u16 {
    let padded = dims.next_power_of_two().max(64);
    let mut bits = preferred.min(padded) / 8 * 8;
    while bits >= 32 && capacity(m, 0) * (bits / 8 + 4) > MAX_CODES_BYTES {
        bits -= 8;
    }
    if bits >= 32 {
        bits as u16
    } else {
        0
    }
}

/// A decoded element item.
#[derive(Clone, Debug, PartialEq)]
pub struct Element {
    pub heap_block: u32,
    pub heap_offset: u16,
    pub level: u8,
    pub flags: u8,
    pub neighbors: ElemId,
}

impl Element {
    pub fn deleted(&self) -> bool {
        self.flags & FLAG_DELETED != 0
    }

    /// A free slot (vacuumed): no heap row.
    pub fn is_free(&self) -> bool {
        self.heap_offset == 0
    }

    /// The heap row in slot 0 (the only one in version 1).
    pub fn heap_tid(&self) -> HeapTid {
        HeapTid {
            block: self.heap_block,
            offset: self.heap_offset,
        }
    }

    pub fn decode(item: &[u8], layout: Layout) -> Element {
        Element {
            heap_block: get_u32(item, 0),
            heap_offset: get_u16(item, 4),
            level: item[6],
            flags: item[7] & !FLAG_ELEMENT,
            neighbors: layout.get_id(item, 8),
        }
    }

    /// Writes the header into `item` (vector bytes are the caller's).
    pub fn encode_header(&self, item: &mut [u8], layout: Layout) {
        put_u32(item, 0, self.heap_block);
        put_u16(item, 4, self.heap_offset);
        item[6] = self.level;
        item[7] = self.flags | FLAG_ELEMENT;
        layout.put_id(item, 8, self.neighbors);
    }
}

/// Whether an item is an element item (else it is a neighbor item).
pub fn is_element_item(item: &[u8]) -> bool {
    item.len() >= ELEMENT_HEADER && item[7] & FLAG_ELEMENT != 0
}

/// The vector stored in an element item, borrowed in place when the item
/// holds float4 values 4-byte aligned (items are MAXALIGNed on pages, so
/// always in practice) on a little-endian machine, else copied (binary16
/// elements are widened, bits become 0.0 / 1.0: exactly, so distances equal
/// the SQL operators').
pub fn element_floats(item: &[u8], layout: Layout, dims: usize) -> std::borrow::Cow<'_, [f32]> {
    if !matches!(layout.scalar, Scalar::Float4 | Scalar::Sparse) {
        return std::borrow::Cow::Owned(element_vector(item, layout, dims));
    }
    let dims = vector_len(item, layout, dims);
    let at = layout.vector_offset();
    let bytes = &item[at..at + 4 * dims];
    if cfg!(target_endian = "little") && bytes.as_ptr().align_offset(4) == 0 {
        // SAFETY: 4 * dims initialised bytes, 4-byte aligned; every bit
        // pattern is a valid f32.
        std::borrow::Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(bytes.as_ptr() as *const f32, dims)
        })
    } else {
        std::borrow::Cow::Owned(element_vector(item, layout, dims))
    }
}

/// [`element_floats`] without an allocation per call: float4 values
/// borrowed in place as there, others widened into `buf` (cleared first).
pub fn element_floats_in<'a>(item: &'a [u8], layout: Layout, dims: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
    match layout.scalar {
        Scalar::Binary16 => {
            strata_vector_core::half::widen_le_bytes_into(element_bytes(item, layout, dims), buf);
            buf
        }
        Scalar::Float4 | Scalar::Sparse => match element_floats(item, layout, dims) {
            std::borrow::Cow::Borrowed(v) => v,
            std::borrow::Cow::Owned(v) => {
                *buf = v;
                buf
            }
        },
        Scalar::Bit => {
            strata_vector_core::bits::widen_into(element_bytes(item, layout, dims), dims, buf);
            buf
        }
        Scalar::Rounded16 => {
            super::rounded::decode_into(element_bytes(item, layout, dims), buf);
            buf
        }
    }
}

/// The stored bytes of an element item's vector (`layout.scalar`'s encoding).
pub fn element_bytes(item: &[u8], layout: Layout, dims: usize) -> &[u8] {
    let at = layout.vector_offset();
    &item[at..at + layout.scalar.bytes_for(vector_len(item, layout, dims))]
}

/// The length of an element item's vector as the graph sees it: `dims`, or
/// a sparse element's slot count (`1 + 2 × nnz`, read from the item).
fn vector_len(item: &[u8], layout: Layout, dims: usize) -> usize {
    match layout.scalar {
        Scalar::Sparse => 1 + 2 * get_u32(item, layout.vector_offset()) as usize,
        _ => dims,
    }
}

/// Whether `item` is one of an index's element items (`dims` dimensions;
/// a sparse element of any size that holds its vector whole).
pub fn is_element_of(item: &[u8], layout: Layout, dims: usize) -> bool {
    is_element_item(item)
        && match layout.scalar {
            Scalar::Sparse => element_fits(item, layout, dims),
            _ => item.len() == layout.element_size(dims),
        }
}

/// Whether `item` is long enough for the element it starts (`dims`
/// dimensions; a sparse element by the count it stores).
pub fn element_fits(item: &[u8], layout: Layout, dims: usize) -> bool {
    let at = layout.vector_offset();
    match layout.scalar {
        Scalar::Sparse => {
            item.len() >= at + 4
                && (get_u32(item, at) as usize) <= MAX_SPARSE_NNZ
                && item.len() >= layout.element_size(vector_len(item, layout, dims))
        }
        _ => item.len() >= layout.element_size(dims),
    }
}

/// The vector stored in an element item.
pub fn element_vector(item: &[u8], layout: Layout, dims: usize) -> Vec<f32> {
    let bytes = element_bytes(item, layout, dims);
    match layout.scalar {
        Scalar::Binary16 => strata_vector_core::half::widen_le_bytes(bytes),
        Scalar::Bit => strata_vector_core::bits::widen(bytes, dims),
        Scalar::Rounded16 => super::rounded::decode(bytes),
        Scalar::Float4 | Scalar::Sparse => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    }
}

/// Writes `vector` into an element item in the layout's scalar type (a
/// binary16 layout is given binary16 values widened, stored exactly).
fn put_vector(item: &mut [u8], layout: Layout, vector: &[f32]) {
    let at = layout.vector_offset();
    let n = layout.scalar.bytes_for(vector.len());
    write_scalars(&mut item[at..at + n], layout.scalar, vector);
}

/// Whether `scalar` stores `x` without rounding.
fn stored_exactly(scalar: Scalar, x: f32) -> bool {
    match scalar {
        Scalar::Float4 | Scalar::Sparse => true,
        Scalar::Binary16 => {
            strata_vector_core::half::to_f32(strata_vector_core::half::from_f32_unchecked(x)).to_bits() == x.to_bits()
        }
        Scalar::Bit => x == 0.0 || x == 1.0,
        // rows whose vectors round alike may share (`element_holds`)
        Scalar::Rounded16 => true,
    }
}

/// `vector` in `scalar`'s bytes (`out` is exactly as long as they are).
fn write_scalars(out: &mut [u8], scalar: Scalar, vector: &[f32]) {
    match scalar {
        Scalar::Float4 | Scalar::Sparse => {
            for (c, x) in out.chunks_exact_mut(4).zip(vector) {
                c.copy_from_slice(&x.to_le_bytes());
            }
        }
        Scalar::Binary16 => {
            for (c, x) in out.chunks_exact_mut(2).zip(vector) {
                c.copy_from_slice(&strata_vector_core::half::from_f32_unchecked(*x).to_le_bytes());
            }
        }
        Scalar::Bit => strata_vector_core::bits::pack_nonzero(vector, out),
        Scalar::Rounded16 => super::rounded::encode(vector, out),
    }
}

/// `vector` as an element of `layout` stores it, widened: rounded for a
/// version-9 `vector` element, itself otherwise.
pub fn as_stored(layout: Layout, vector: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    match layout.scalar {
        Scalar::Rounded16 => {
            let mut b = vec![0u8; super::rounded::bytes_for(vector.len())];
            super::rounded::encode(vector, &mut b);
            std::borrow::Cow::Owned(super::rounded::decode(&b))
        }
        _ => std::borrow::Cow::Borrowed(vector),
    }
}

/// How far an element's rows' vectors may lie from the one it stores (the
/// L2 norm of the rounding of a version-9 `vector` element; 0 otherwise:
/// stored exactly).
pub fn element_slack(item: &[u8], layout: Layout, dims: usize) -> f32 {
    match layout.scalar {
        Scalar::Rounded16 => super::rounded::slack(element_bytes(item, layout, dims)),
        _ => 0.0,
    }
}

/// Whether the element item stores exactly `vector` (bit for bit), or — a
/// version-9 `vector` element — `vector` rounds to what it stores within
/// its slack.
pub fn element_holds(item: &[u8], layout: Layout, vector: &[f32]) -> bool {
    let at = layout.vector_offset();
    let n = layout.scalar.bytes_for(vector.len());
    if layout.scalar == Scalar::Rounded16 {
        return item.len() >= at + n && super::rounded::stands_for(&item[at..at + n], vector);
    }
    if item.len() < at + n || !vector.iter().all(|x| stored_exactly(layout.scalar, *x)) {
        return false;
    }
    let mut want = vec![0u8; n];
    write_scalars(&mut want, layout.scalar, vector);
    item[at..at + n] == want[..]
}

/// The slots of an element item that hold heap rows: all of them, or all
/// but the last when it names a row list.
pub fn inline_slots(item: &[u8], layout: Layout) -> usize {
    if row_list_of(item, layout).is_some() {
        layout.tid_slots() - 1
    } else {
        layout.tid_slots()
    }
}

/// The first row list of an element item (version 3, flag set).
pub fn row_list_of(item: &[u8], layout: Layout) -> Option<ElemId> {
    (layout.row_lists() && item[7] & FLAG_ROW_LIST != 0)
        .then(|| get_id(item, layout.tid_at(layout.tid_slots() - 1)))
}

/// Makes the last slot of an element item name row list `first` (the slot's
/// heap row, if any, is the caller's to move first).
pub fn set_row_list(item: &mut [u8], layout: Layout, first: ElemId) {
    assert!(layout.row_lists(), "row lists need format version 3");
    item[7] |= FLAG_ROW_LIST;
    let at = layout.tid_at(layout.tid_slots() - 1);
    put_u32(item, at, first.block);
    put_u16(item, at + 4, first.offset);
}

/// The heap TIDs held in an element item's own slots, in slot order (empty
/// for a free slot); a row list's are read by [`decode_row_list`].
pub fn element_tids(item: &[u8], layout: Layout) -> Vec<HeapTid> {
    (0..inline_slots(item, layout))
        .map(|slot| HeapTid {
            block: get_u32(item, layout.tid_at(slot)),
            offset: get_u16(item, layout.tid_at(slot) + 4),
        })
        .take_while(|t| t.offset != 0)
        .collect()
}

/// Rewrites the heap TIDs of an element item's own slots, packed from slot
/// 0 (at most [`inline_slots`]; the rest are cleared, a row list link kept).
pub fn set_element_tids(item: &mut [u8], layout: Layout, tids: &[HeapTid]) {
    let slots = inline_slots(item, layout);
    assert!(tids.len() <= slots, "more heap TIDs than slots");
    for slot in 0..slots {
        let t = tids.get(slot).copied().unwrap_or(HeapTid {
            block: 0,
            offset: 0,
        });
        put_u32(item, layout.tid_at(slot), t.block);
        put_u16(item, layout.tid_at(slot) + 4, t.offset);
    }
}

/// Builds a whole element item holding `tids` (the header's TID is ignored).
pub fn encode_element(e: &Element, layout: Layout, tids: &[HeapTid], vector: &[f32]) -> Vec<u8> {
    let mut item = vec![0u8; layout.element_size(vector.len())];
    e.encode_header(&mut item, layout);
    set_element_tids(&mut item, layout, tids);
    put_vector(&mut item, layout, vector);
    item
}

/// Whether an item is a row list item.
pub fn is_row_list_item(item: &[u8]) -> bool {
    item.len() > 8
        && item.len() <= ROW_LIST_SIZE
        && (item.len() - 8).is_multiple_of(6)
        && item[7] == ROW_LIST_MARK
}

/// Heap TIDs a row list item has room for (its size says: 100 before
/// version 5, where an element's first list holds eight).
pub fn row_list_capacity(item: &[u8]) -> usize {
    ((item.len().max(8) - 8) / 6).min(ROW_LIST_TIDS)
}

/// The size of a row list item of `capacity` heap TIDs.
pub const fn row_list_size(capacity: usize) -> usize {
    8 + 6 * capacity
}

/// The capacity of a new row list of an element that has `lists` already:
/// a short first one in version 5, else full size.
pub fn new_row_list_capacity(layout: Layout, lists: usize) -> usize {
    if layout.compact() && lists == 0 {
        FIRST_ROW_LIST_TIDS
    } else {
        ROW_LIST_TIDS
    }
}

/// The capacity of a row list a build writes for `rows` heap TIDs (a chunk
/// of at most [`ROW_LIST_TIDS`]): in version 5 just those with room for a
/// few more, else full size.
pub fn built_row_list_capacity(layout: Layout, rows: usize) -> usize {
    if layout.compact() {
        rows.clamp(FIRST_ROW_LIST_TIDS, ROW_LIST_TIDS)
    } else {
        ROW_LIST_TIDS
    }
}

/// Builds a row list item of `capacity` heap TIDs (1..=[`ROW_LIST_TIDS`])
/// holding `tids`.
pub fn encode_row_list(next: ElemId, capacity: usize, tids: &[HeapTid]) -> Vec<u8> {
    assert!((1..=ROW_LIST_TIDS).contains(&capacity), "row list capacity {capacity}");
    let mut item = vec![0u8; row_list_size(capacity)];
    item[7] = ROW_LIST_MARK;
    put_u32(&mut item, 0, next.block);
    put_u16(&mut item, 4, next.offset);
    set_row_list_tids(&mut item, tids);
    item
}

/// The next row list and the heap TIDs of a row list item.
pub fn decode_row_list(item: &[u8]) -> (ElemId, Vec<HeapTid>) {
    let next = ElemId {
        block: get_u32(item, 0),
        offset: get_u16(item, 4),
    };
    let n = (item[6] as usize).min(row_list_capacity(item));
    let tids = (0..n)
        .map(|i| HeapTid {
            block: get_u32(item, 8 + 6 * i),
            offset: get_u16(item, 8 + 6 * i + 4),
        })
        .collect();
    (next, tids)
}

/// Rewrites the heap TIDs of a row list item, packed from the front.
pub fn set_row_list_tids(item: &mut [u8], tids: &[HeapTid]) {
    assert!(tids.len() <= row_list_capacity(item), "more heap TIDs than a row list holds");
    item[6] = tids.len() as u8;
    item[8..].fill(0);
    for (i, t) in tids.iter().enumerate() {
        put_u32(item, 8 + 6 * i, t.block);
        put_u16(item, 8 + 6 * i + 4, t.offset);
    }
}

/// Builds a neighbor item for top level `level` from per-level lists
/// (each truncated to its capacity), with room for level-0 codes of
/// `code_len` bytes (zeros: the caller writes them at [`codes_region`]).
pub fn encode_neighbors(layout: Layout, m: usize, level: usize, lists: &[Vec<ElemId>], code_len: usize) -> Vec<u8> {
    let mut item = vec![0u8; neighbors_size(layout, m, level, code_len)];
    item[0] = (level + 1) as u8;
    let w = layout.id_size();
    let mut at = neighbors_header(level + 1);
    for l in 0..=level {
        let list = lists.get(l).map(|v| v.as_slice()).unwrap_or(&[]);
        let n = list.len().min(capacity(m, l));
        put_u16(&mut item, 2 + 2 * l, n as u16);
        for (i, id) in list.iter().take(n).enumerate() {
            layout.put_id(&mut item, at + w * i, *id);
        }
        at += w * capacity(m, l);
    }
    item
}

/// The neighbors at `level` of a neighbor item (empty above its top level).
pub fn decode_neighbors(layout: Layout, item: &[u8], m: usize, level: usize) -> Vec<ElemId> {
    neighbor_ids(layout, item, m, level).collect()
}

/// [`decode_neighbors`] without a vector.
pub fn neighbor_ids(layout: Layout, item: &[u8], m: usize, level: usize) -> impl Iterator<Item = ElemId> + '_ {
    let levels = item[0] as usize;
    let w = layout.id_size();
    let (at, n) = if level >= levels {
        (0, 0)
    } else {
        let at = neighbors_header(levels) + (0..level).map(|l| w * capacity(m, l)).sum::<usize>();
        (at, (get_u16(item, 2 + 2 * level) as usize).min(capacity(m, level)))
    };
    (0..n).map(move |i| layout.get_id(item, at + w * i))
}

/// Replaces the list at `level` inside a neighbor item, in place.
pub fn set_neighbors(layout: Layout, item: &mut [u8], m: usize, level: usize, list: &[ElemId]) {
    let levels = item[0] as usize;
    assert!(
        level < levels,
        "level {level} above the element's top level"
    );
    let w = layout.id_size();
    let mut at = neighbors_header(levels);
    for l in 0..level {
        at += w * capacity(m, l);
    }
    let cap = capacity(m, level);
    let n = list.len().min(cap);
    put_u16(item, 2 + 2 * level, n as u16);
    item[at..at + w * cap].fill(0);
    for (i, id) in list.iter().take(n).enumerate() {
        layout.put_id(item, at + w * i, *id);
    }
}

/// Where a neighbor item's level-0 codes start and how long each is
/// (`(len, 0)` for an item without codes).
pub fn codes_region(layout: Layout, item: &[u8], m: usize) -> (usize, usize) {
    let levels = (item[0] as usize).max(1);
    let base = neighbors_size(layout, m, levels - 1, 0);
    (base, item.len().saturating_sub(base) / capacity(m, 0))
}

/// The code of level-0 slot `k` (empty when the item has none).
#[cfg(test)]
pub fn level0_code(layout: Layout, item: &[u8], m: usize, k: usize) -> &[u8] {
    let (at, len) = codes_region(layout, item, m);
    &item[at + k * len..at + (k + 1) * len]
}

/// Replaces the list at `level` like [`set_neighbors`], keeping each level-0
/// code with its element: an element the list held keeps its code, a new
/// one gets `code_of(id)` (zeros when None: the estimate is then the
/// owner's distance).
pub fn set_neighbors_coded(
    layout: Layout,
    item: &mut [u8],
    m: usize,
    level: usize,
    list: &[ElemId],
    mut code_of: impl FnMut(ElemId) -> Option<Vec<u8>>,
) {
    let (at, len) = codes_region(layout, item, m);
    if level != 0 || len == 0 {
        set_neighbors(layout, item, m, level, list);
        return;
    }
    let old = decode_neighbors(layout, item, m, 0);
    let mut codes = vec![0u8; capacity(m, 0) * len];
    for (k, id) in list.iter().take(capacity(m, 0)).enumerate() {
        let slot = &mut codes[k * len..(k + 1) * len];
        if let Some(j) = old.iter().position(|o| o == id) {
            slot.copy_from_slice(&item[at + j * len..at + (j + 1) * len]);
        } else if let Some(c) = code_of(*id) {
            slot.copy_from_slice(&c[..len]);
        }
    }
    set_neighbors(layout, item, m, 0, list);
    item[at..at + codes.len()].copy_from_slice(&codes);
}

#[cfg(test)]
mod tests;
