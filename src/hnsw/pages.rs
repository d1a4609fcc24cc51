//! Page access for `strata_hnsw`: the metapage, element and neighbor items,
//! and [`DiskGraph`], the [`Graph`] the search runs over. Every change is a
//! GenericXLog record; readers take share locks one page at a time and copy
//! what they need out (the one exception, an element's rows with its row
//! lists, is `rows`': ascending blocks).

use crate::pg::page::Page;
use crate::pg::relation::Rel;
use super::format::{
    self, ElemId, Element, IdMap, Layout, Meta, Scalar, KIND_GRAPH, KIND_META, MAGIC, META_SIZE, TAG_SIZE,
};
use super::codes::{Coder, Query};
use super::graph::guided::CodedGraph;
use super::graph::{Graph, Scored};
use super::metric::{Metric, PreparedQuery};
use super::wal::IndexWrite;
use crate::pg::buffer::{self, Locked};
use crate::pg::fsm;
use crate::pg::page;
use pgrx::pg_sys;
use pgrx::prelude::*;

pub const META_BLOCK: pg_sys::BlockNumber = 0;

pub fn index_name(index: Rel) -> String {
    crate::pg::rel::relname(index)
}

pub(super) fn corrupted(index: Rel, what: String) -> ! {
    crate::pg::error::error(
        PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
        format!("{what} in strata_hnsw index \"{}\"", index_name(index)),
    )
}

/// Initialises `p` (a working copy) as an empty page of `kind` in the
/// index's format `version`.
pub fn init_page(p: Page, kind: u16, version: u16) {
    page::init(p, TAG_SIZE);
    let special = page::special(p);
    // SAFETY: the special space is TAG_SIZE bytes.
    unsafe {
        (special as *mut u32).write_unaligned(MAGIC);
        (special.add(4) as *mut u16).write_unaligned(version);
        (special.add(6) as *mut u16).write_unaligned(kind);
    }
}

pub(super) fn page_kind(p: Page) -> Option<u16> {
    if page::is_new(p) || page::special_size(p) != TAG_SIZE {
        return None;
    }
    let special = page::special(p);
    // SAFETY: TAG_SIZE bytes of special space.
    unsafe {
        if (special as *const u32).read_unaligned() != MAGIC {
            return None;
        }
        Some((special.add(6) as *const u16).read_unaligned())
    }
}

/// Writes `meta` into a metapage working copy.
pub fn write_meta(p: Page, meta: &Meta) {
    let at = page::PAGE_HEADER_SIZE;
    meta.encode(&mut page::bytes_mut(p)[at..at + META_SIZE]);
    page::set_lower(p, at + META_SIZE);
}

fn decode_meta(p: Page) -> Option<Meta> {
    let at = page::PAGE_HEADER_SIZE;
    (page_kind(p) == Some(KIND_META))
        .then(|| Meta::decode(&page::bytes(p)[at..at + META_SIZE]))
        .flatten()
}

pub fn read_meta(index: Rel) -> Meta {
    let meta = decode_meta(Locked::share(index, META_BLOCK).page());
    meta.unwrap_or_else(|| corrupted(index, "invalid metapage".into()))
}

/// The metapage of a buffer the caller has pinned and locked.
pub fn read_meta_locked(buf: pg_sys::Buffer) -> Meta {
    decode_meta(buffer::page(buf)).unwrap_or_else(|| {
        crate::pg::error::error(
            PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
            "invalid strata_hnsw metapage",
        )
    })
}

/// Changes the metapage under its exclusive lock (one WAL record); `f`
/// returns false to leave it unchanged.
pub fn update_meta(index: Rel, f: impl FnOnce(&mut Meta) -> bool) {
    let buf = Locked::exclusive(index, META_BLOCK);
    let mut meta = read_meta_locked(buf.buffer());
    if f(&mut meta) {
        let mut w = IndexWrite::start(index);
        let p = w.register(buf.buffer(), false);
        write_meta(p, &meta);
        w.commit();
    }
}

/// Runs `f` on graph page `block` under a share lock (None for the
/// metapage or a page that is not a graph page).
fn with_page<T>(index: Rel, block: u32, f: impl FnOnce(Page) -> Option<T>) -> Option<T> {
    // Index relations never shrink, so a stored id names an existing block.
    if block == META_BLOCK {
        return None;
    }
    let buf = Locked::share(index, block);
    let p = buf.page();
    // Every block but the metapage is a graph page, so the page header's
    // special size stands for the kind: reading the tag at the page's end
    // touched one more cache line per element visited (12% of a scan's CPU
    // in a profile); `page::item` still bounds-checks the line pointer.
    if !page::is_new(p) && page::special_size(p) == TAG_SIZE {
        f(p)
    } else {
        None
    }
}

/// The bytes of item `offset` of a page the caller holds locked.
fn item_bytes<'a>(p: Page, offset: u16) -> Option<&'a [u8]> {
    // SAFETY: a normal item on a page the caller keeps pinned and locked
    // while it uses the slice.
    page::item(p, offset).map(|(ptr, len)| unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Runs `f` on item `id`'s bytes under a share lock.
fn with_item<T>(index: Rel, id: ElemId, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
    if id.is_none() {
        return None;
    }
    with_page(index, id.block, |p| item_bytes(p, id.offset).map(f))
}

/// Changes item `id` in place under the page's exclusive lock (one WAL
/// record); `f` returns false to leave it unchanged.
pub fn update_item(index: Rel, id: ElemId, f: impl FnOnce(&mut [u8]) -> bool) -> bool {
    let buf = Locked::exclusive(index, id.block);
    let mut w = IndexWrite::start(index);
    let p = w.register(buf.buffer(), false);
    let changed = match page::item(p, id.offset) {
        // SAFETY: a normal item inside the working copy.
        Some((ptr, len)) => f(unsafe { std::slice::from_raw_parts_mut(ptr, len) }),
        None => false,
    };
    if changed {
        w.commit();
    } else {
        drop(w);
    }
    changed
}

/// Whether graph page `p` has room for items of these lengths: free space
/// for them (MAXALIGNed) and their line pointers, and in version 5 item
/// offsets a compact id can name.
pub(super) fn room_for(p: Page, layout: Layout, lens: &[usize]) -> bool {
    let bytes: usize = lens.iter().map(|&n| maxalign(n) + 4).sum();
    let items = lens.len() as u16;
    page::free_space_for_new_item(p) + 4 >= bytes
        && layout.max_items().is_none_or(|max| page::max_offset(p) + items <= max)
}

/// A new page at the end of the index, pinned and exclusively locked; an
/// error when the index's format cannot name it (version 5: 2^26 pages).
pub(super) fn extend(index: Rel, layout: Layout) -> pg_sys::Buffer {
    if buffer::nblocks(index) > layout.max_block() {
        crate::pg::error::error(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "strata_hnsw index \"{}\" cannot grow past {} pages in format version {}",
                index_name(index),
                layout.max_block() as u64 + 1,
                layout.version
            ),
        )
    }
    buffer::extend_locked(index)
}

/// Builds a neighbor item for `new` as an element of top `level`.
fn neighbor_item(params: &Params, level: usize, new: &NewElement) -> Vec<u8> {
    let (m, len) = (params.m, params.code_len());
    let mut item = format::encode_neighbors(params.layout, m, level, new.lists, len);
    if len > 0 {
        let at = format::codes_region(params.layout, &item, m).0;
        for (k, code) in new.codes.iter().enumerate().take(format::capacity(m, 0)) {
            if let Some(c) = code {
                item[at + k * len..at + (k + 1) * len].copy_from_slice(&c[..len]);
            }
        }
    }
    item
}

/// A new element and what its items hold.
pub struct NewElement<'a> {
    pub element: &'a Element,
    pub vector: &'a [f32],
    /// Its neighbor lists, level 0 first.
    pub lists: &'a [Vec<ElemId>],
    /// The codes of `lists[0]`, in list order ([`DiskGraph::codes_for`];
    /// none for an index without codes).
    pub codes: &'a [Option<Vec<u8>>],
}

/// Adds the items of a new element: its neighbor item, then its element item
/// (which names the neighbor item). Uses the last page when both fit, else
/// new pages. Returns the element's id.
pub fn add_element(index: Rel, params: &Params, new: &NewElement) -> ElemId {
    let layout = params.layout;
    if let Some(id) = reuse_free_slot(index, params, new) {
        return id;
    }
    let (element, vector) = (new.element, new.vector);
    let neighbors = &neighbor_item(params, element.level as usize, new)[..];
    let mut e = element.clone();
    let elem_len = layout.element_size(vector.len());
    // Try the last page for both items.
    let last = buffer::nblocks(index) - 1;
    if last > META_BLOCK {
        let buf = Locked::exclusive(index, last);
        let p = buf.page();
        if page_kind(p) == Some(KIND_GRAPH)
            && room_for(p, layout, &[neighbors.len(), elem_len])
        {
            let mut w = IndexWrite::start(index);
            let wp = w.register(buf.buffer(), false);
            let id = place_pair(index, wp, last, layout, &mut e, vector, neighbors);
            w.commit();
            return id;
        }
    }
    let buf = Locked::adopt(extend(index, layout));
    let block = buf.block();
    // a second page, if needed, is released before the first (declared
    // before the record, which is committed or abandoned first)
    let buf2: Locked;
    let mut w = IndexWrite::start(index);
    let wp = w.register(buf.buffer(), true);
    init_page(wp, KIND_GRAPH, layout.version);
    if room_for(wp, layout, &[neighbors.len(), elem_len]) {
        let id = place_pair(index, wp, block, layout, &mut e, vector, neighbors);
        w.commit();
        return id;
    }
    // Too large together (high dimensions): neighbors here, element on the next page.
    let nbr_off = page::add_item(wp, neighbors)
        .unwrap_or_else(|| corrupted(index, "neighbor item does not fit an empty page".into()));
    e.neighbors = ElemId {
        block,
        offset: nbr_off,
    };
    buf2 = Locked::adopt(extend(index, layout));
    let block2 = buf2.block();
    let wp2 = w.register(buf2.buffer(), true);
    init_page(wp2, KIND_GRAPH, layout.version);
    let item = format::encode_element(&e, layout, &[e.heap_tid()], vector);
    let off = page::add_item(wp2, &item)
        .unwrap_or_else(|| corrupted(index, "element item does not fit an empty page".into()));
    w.commit();
    ElemId {
        block: block2,
        offset: off,
    }
}

/// Puts the new element into a slot VACUUM freed (found through the free
/// space map) whose neighbor item, on the same page, has room for its levels.
fn reuse_free_slot(index: Rel, params: &Params, new: &NewElement) -> Option<ElemId> {
    let (element, vector) = (new.element, new.vector);
    let (m, layout, dims) = (params.m, params.layout, vector.len());
    let nblocks = buffer::nblocks(index);
    // Pages with free slots too small for this element go back to the FSM.
    let mut skipped: Vec<u32> = Vec::new();
    let give_back = |skipped: &[u32]| {
        for &b in skipped {
            // a hint, re-checked on use; the range vacuum lifts the upper
            // levels again (the lookup lowered them)
            fsm::record_free(index, b);
            fsm::vacuum_range(index, b, b + 1);
        }
    };
    loop {
        let block = match fsm::take_free_page(index) {
            Some(b) if !skipped.contains(&b) => b,
            _ => {
                give_back(&skipped);
                return None;
            }
        };
        if block == META_BLOCK || block >= nblocks {
            continue;
        }
        let buf = Locked::exclusive(index, block);
        let p = buf.page();
        let mut slots = Vec::new();
        let mut free = 0usize;
        if page_kind(p) == Some(KIND_GRAPH) {
            for off in 1..=page::max_offset(p) {
                let Some((ptr, len)) = page::item(p, off) else {
                    continue;
                };
                // SAFETY: a normal item on the exclusively locked page.
                let item = unsafe { std::slice::from_raw_parts(ptr, len) };
                if !format::is_element_of(item, layout, dims) {
                    continue;
                }
                let e = Element::decode(item, layout);
                if !e.is_free() || e.neighbors.block != block {
                    continue;
                }
                free += 1;
                // a sparse element reuses a slot at least its size (its
                // count says where its vector ends; the rest is left over)
                if len < layout.element_size(vector.len()) {
                    continue;
                }
                if let Some((nptr, nlen)) = page::item(p, e.neighbors.offset) {
                    // SAFETY: as above.
                    let levels = unsafe { *nptr } as usize;
                    if levels > element.level as usize
                        && nlen == format::neighbors_size(layout, m, levels - 1, params.code_len())
                    {
                        slots.push((off, e.neighbors.offset, nlen, levels));
                    }
                }
            }
        }
        // Best fit: the slot with the fewest levels that still holds the new
        // element's, so slots of high levels stay for elements that need them.
        let Some(&(off, nbr_off, nlen, levels)) = slots.iter().min_by_key(|s| (s.3, s.0)) else {
            drop(buf);
            if free > 0 {
                skipped.push(block);
            }
            continue;
        };
        let mut w = IndexWrite::start(index);
        let wp = w.register(buf.buffer(), false);
        let mut e = element.clone();
        e.neighbors = ElemId {
            block,
            offset: nbr_off,
        };
        let mut item = format::encode_element(&e, layout, &[e.heap_tid()], vector);
        let (eptr, elen) = page::item(wp, off).expect("slot found above");
        // SAFETY: the free slot's item in the working copy.
        let old = unsafe { std::slice::from_raw_parts(eptr, elen) };
        if let Some(lists) = format::row_list_of(old, layout) {
            // the slot's row lists (emptied when it was freed) stay with it
            format::set_row_list(&mut item, layout, lists);
        }
        let (nptr, _) = page::item(wp, nbr_off).expect("slot found above");
        // The slot keeps its neighbor item layout (its level count); the
        // levels above the new element's stay empty.
        let nbr = neighbor_item(params, levels - 1, new);
        debug_assert_eq!(nbr.len(), nlen);
        assert!(item.len() <= elen, "the slot was chosen for its size");
        // SAFETY: both items lie in the working copy with the sizes checked
        // above (the element's at most its slot's).
        unsafe {
            std::ptr::copy_nonoverlapping(item.as_ptr(), eptr, item.len());
            std::ptr::copy_nonoverlapping(nbr.as_ptr(), nptr, nlen);
        }
        w.commit();
        drop(buf);
        if free > 1 {
            // more free slots remain on this page, of any size: the lookup
            // took the page out of the FSM, so it goes back
            skipped.push(block);
        }
        give_back(&skipped);
        return Some(ElemId { block, offset: off });
    }
}

use crate::page_layout::maxalign;

fn place_pair(
    index: Rel,
    wp: Page,
    block: u32,
    layout: Layout,
    e: &mut Element,
    vector: &[f32],
    neighbors: &[u8],
) -> ElemId {
    let nbr_off = page::add_item(wp, neighbors)
        .unwrap_or_else(|| corrupted(index, "no room for a neighbor item".into()));
    e.neighbors = ElemId {
        block,
        offset: nbr_off,
    };
    let item = format::encode_element(e, layout, &[e.heap_tid()], vector);
    let off = page::add_item(wp, &item)
        .unwrap_or_else(|| corrupted(index, "no room for an element item".into()));
    ElemId { block, offset: off }
}

/// The index's parameters, read once from the metapage.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub dims: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub metric: Metric,
    /// The element layout of the index's format version.
    pub layout: Layout,
    /// Coordinates per level-0 neighbor code (0: the index has no codes).
    pub code_bits: u16,
    pub code_seed: u32,
    /// Elements a guided search keeps per unit of ef_search (0: default).
    pub code_scale: u16,
}

impl Params {
    /// Bytes of one level-0 neighbor code (0: none).
    pub fn code_len(&self) -> usize {
        if self.code_bits > 0 && self.layout.codes() {
            super::codes::code_len(self.code_bits as usize)
        } else {
            0
        }
    }

    /// Raises for a vector the index cannot hold (builds and inserts): a
    /// sparse vector with more non-zeros than an element holds (54000,
    /// pgvector's message), or — for the others — `v` of other than the
    /// column's dimensions (22000).
    pub fn check_vector(&self, v: &[f32]) {
        if self.layout.scalar == Scalar::Sparse {
            let nnz = crate::vector::sparse::Slots::new(v).map_or(usize::MAX, |s| {
                crate::vector::sparse::Pairs::nnz(&s)
            });
            if nnz > format::MAX_SPARSE_NNZ {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "sparsevec cannot have more than {} non-zero elements for hnsw index",
                        format::MAX_SPARSE_NNZ
                    )
                );
            }
            return;
        }
        self.check_len(v.len())
    }

    /// An element item's size, for estimates: fixed, or a sparse element's
    /// with 100 non-zeros (typical of learned sparse embeddings).
    pub fn typical_element_size(&self) -> usize {
        match self.layout.scalar {
            Scalar::Sparse => self.layout.element_size(1 + 2 * 100.min(self.dims)),
            _ => self.layout.element_size(self.dims),
        }
    }

    /// Raises 22000 for a vector of `n` dimensions when the column's differ.
    pub fn check_len(&self, n: usize) {
        if n != self.dims {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                format!("expected {} dimensions, not {}", self.dims, n)
            );
        }
    }

    /// Elements a guided search keeps per unit of `ef` (the build's
    /// measurement, [`graph::guided::EF_SCALE`] where it made none).
    pub fn guided_scale(&self) -> usize {
        match self.code_scale {
            0 => super::graph::guided::EF_SCALE,
            s => s as usize,
        }
    }

    /// The coder of the index's neighbor codes, if it has them.
    pub fn coder(&self) -> Option<Coder> {
        (self.code_len() > 0)
            .then(|| Coder::new(self.dims, self.code_bits as usize, self.code_seed, self.metric))
            .flatten()
    }

    pub fn of(index: Rel, meta: &Meta) -> Params {
        Params {
            code_bits: meta.code_bits,
            code_seed: meta.code_seed,
            code_scale: meta.code_scale,
            layout: meta.layout().unwrap_or_else(|| {
                corrupted(index, format!("unknown format version {}", meta.version))
            }),
            dims: meta.dims as usize,
            m: meta.m as usize,
            ef_construction: meta.ef_construction as usize,
            metric: Metric::from_u16(meta.metric)
                .unwrap_or_else(|| corrupted(index, format!("unknown metric {}", meta.metric))),
        }
    }
}

/// The on-disk graph: reads elements and neighbor lists through the buffer
/// manager, caching element headers for the life of one operation — and,
/// for an insert ([`DiskGraph::keeping_vectors`]), the vectors it read: the
/// neighbor heuristic compares candidates pairwise, the codes and back links
/// need the same vectors again, and each re-read is a buffer access.
pub struct DiskGraph {
    pub index: Rel,
    pub params: Params,
    headers: IdMap<Element>,
    /// Vectors read by this operation (None: not kept).
    vectors: Option<IdMap<Kept>>,
    /// The same vectors rotated for their codes, as they were needed (kept
    /// with `vectors`: an insert encodes each new neighbor's code twice —
    /// in the new list, and as the owner of a back link — and the new
    /// element's in every back link).
    rotated: Option<IdMap<Vec<f32>>>,
    /// The index's neighbor codes (format version 4), if it has them.
    /// (shared, not cloned, by the calls that encode while reading)
    coder: Option<std::rc::Rc<Coder>>,
    /// The query [`CodedGraph::expand`] scores codes against.
    prepared: Option<Query>,
    /// A bit index's prepared query packed as its elements are, so that
    /// distances to it are popcounts on the stored bytes (see
    /// [`QueryBits`]).
    query_bits: Option<QueryBits>,
    /// A sparse index's prepared query (inner product, cosine: looked up,
    /// not merged; see `Metric::prepare_query`), and which slice it was.
    sparse_query: Option<((*const f32, usize), PreparedQuery)>,
    /// Where a scan widens binary16 elements (no allocation per distance).
    scratch: Vec<f32>,
}

/// An element's vector as an insert keeps and compares it: coordinates,
/// or a bit index's string packed as the element stores it (distances by
/// popcounts, never widened to a float per bit).
#[derive(Clone)]
pub enum Kept {
    Floats(Vec<f32>),
    Bits(Vec<u8>),
}

impl Kept {
    /// The coordinates (a bit string widened to `dims` of 0.0 / 1.0).
    pub fn into_floats(self, dims: usize) -> Vec<f32> {
        match self {
            Kept::Floats(v) => v,
            Kept::Bits(b) => crate::vector::bits::widen(&b, dims),
        }
    }

    /// `metric`'s distance to `other` (the operator's value).
    pub fn distance(&self, other: &Kept, metric: Metric) -> f64 {
        match (self, other) {
            (Kept::Floats(x), Kept::Floats(y)) => metric.distance(x, y),
            (Kept::Bits(x), Kept::Bits(y)) => metric.bits_distance(x, y).unwrap_or(f64::INFINITY),
            _ => f64::INFINITY,
        }
    }

    /// `metric`'s comparable distance to `other`, both made ready by
    /// [`DiskGraph::ready`] (an order, not the operator's value; bit
    /// strings by popcounts).
    pub fn compare(&self, other: &Kept, metric: Metric) -> f64 {
        match (self, other) {
            (Kept::Floats(x), Kept::Floats(y)) => (metric.comparable())(x, y) as f64,
            (Kept::Bits(x), Kept::Bits(y)) => metric
                .bits_comparable()
                .map_or(f64::INFINITY, |f| f(x, y) as f64),
            _ => f64::INFINITY,
        }
    }
}

/// The packed bits of the query [`DiskGraph::prepare`] was given, and which
/// slice that was: a distance asked for that same slice uses them, any other
/// query (a VACUUM repair's) the widened coordinates.
struct QueryBits {
    of: (*const f32, usize),
    bits: Vec<u8>,
}

impl DiskGraph {
    pub fn new(index: Rel, params: Params) -> DiskGraph {
        DiskGraph {
            index,
            params,
            // an operation reads some hundreds of elements: no rehashing then
            headers: IdMap::with_capacity_and_hasher(1024, Default::default()),
            vectors: None,
            rotated: None,
            coder: params.coder().map(std::rc::Rc::new),
            prepared: None,
            query_bits: None,
            sparse_query: None,
            scratch: Vec::new(),
        }
    }

    /// Keeps every vector this graph reads for its life (one insert: some
    /// hundreds to a few thousand elements). An element slot VACUUM frees
    /// and reuses meanwhile keeps its old vector here, as its header is
    /// kept: that can only make a neighbor choice less apt, never wrong.
    pub fn keeping_vectors(mut self) -> DiskGraph {
        self.vectors = Some(IdMap::with_capacity_and_hasher(1024, Default::default()));
        self.rotated = Some(IdMap::default());
        self
    }

    /// The codes, relative to element `owner`, of the members of `next` not
    /// in `current` — what a rewrite of `owner`'s list at `level` needs
    /// ([`format::set_neighbors_coded`]); empty above level 0 or for an
    /// index without codes. `known` vectors (the owner's, a new element's)
    /// are not read again.
    pub fn new_member_codes(
        &mut self,
        owner: ElemId,
        level: usize,
        current: &[ElemId],
        next: &[ElemId],
        known: &[(ElemId, &[f32])],
    ) -> IdMap<Vec<u8>> {
        let added: Vec<ElemId> = next.iter().copied().filter(|n| !current.contains(n)).collect();
        let Some(coder) = self.coder.clone() else {
            return IdMap::default();
        };
        let mut c_rot = Vec::new();
        if level != 0 || added.is_empty() || !self.rotated(&coder, owner, known, &mut c_rot) {
            return IdMap::default();
        }
        let codes = self.codes_rotated(&coder, &c_rot, &added, known);
        added.into_iter().zip(codes).filter_map(|(id, c)| Some((id, c?))).collect()
    }

    /// Element `id`'s vector made ready and rotated by `coder`, into `out`
    /// (from `known`, the kept rotations, or read); false when it cannot
    /// be read.
    fn rotated(&mut self, coder: &Coder, id: ElemId, known: &[(ElemId, &[f32])], out: &mut Vec<f32>) -> bool {
        if let Some(r) = self.rotated.as_ref().and_then(|k| k.get(&id)) {
            out.clear();
            out.extend_from_slice(r);
            return true;
        }
        match known.iter().find(|k| k.0 == id) {
            Some(k) => coder.rotate(k.1, out),
            None => match self.vector(id) {
                Some(v) => coder.rotate(&v, out),
                None => return false,
            },
        }
        if let Some(k) = self.rotated.as_mut() {
            k.insert(id, out.clone());
        }
        true
    }

    /// The codes of `ids` relative to an owner whose rotated vector is
    /// `c_rot` (None for one whose vector cannot be read).
    fn codes_rotated(
        &mut self,
        coder: &Coder,
        c_rot: &[f32],
        ids: &[ElemId],
        known: &[(ElemId, &[f32])],
    ) -> Vec<Option<Vec<u8>>> {
        let mut o_rot = Vec::new();
        ids.iter()
            .map(|&id| {
                if !self.rotated(coder, id, known, &mut o_rot) {
                    return None;
                }
                let mut code = vec![0u8; coder.code_len()];
                coder.encode(c_rot, &o_rot, &mut code);
                Some(code)
            })
            .collect()
    }

    /// Whether the index's level-0 lists carry neighbor codes.
    pub fn coded(&self) -> bool {
        self.coder.is_some()
    }

    /// Prepares `query` for [`CodedGraph::expand`] (once per scan).
    pub fn prepare(&mut self, query: &[f32]) {
        self.prepared = self.coder.as_ref().map(|c| c.query(query));
        self.sparse_query = self
            .params
            .metric
            .prepare_query(query)
            .map(|p| ((query.as_ptr(), query.len()), p));
        self.query_bits = (self.params.layout.scalar == Scalar::Bit).then(|| {
            let mut bits = vec![0u8; Scalar::Bit.bytes_for(query.len())];
            crate::vector::bits::pack_nonzero(query, &mut bits);
            QueryBits {
                of: (query.as_ptr(), query.len()),
                bits,
            }
        });
    }

    /// The packed bits of `query` when it is the prepared query of a bit
    /// index.
    fn bits_of(&self, query: &[f32]) -> Option<&[u8]> {
        self.query_bits
            .as_ref()
            .filter(|q| q.of == (query.as_ptr(), query.len()))
            .map(|q| &q.bits[..])
    }

    /// [`Self::bits_of`], packing `query` first when it is not the
    /// prepared one (an insert's vector, once).
    fn bits_for(&mut self, query: &[f32]) -> Option<&[u8]> {
        if self.params.layout.scalar != Scalar::Bit {
            return None;
        }
        if self.bits_of(query).is_none() {
            let mut bits = vec![0u8; Scalar::Bit.bytes_for(query.len())];
            crate::vector::bits::pack_nonzero(query, &mut bits);
            self.query_bits = Some(QueryBits {
                of: (query.as_ptr(), query.len()),
                bits,
            });
        }
        self.bits_of(query)
    }

    /// The codes, relative to an owner with vector `owner`, of the elements
    /// `ids` (in order; None for one whose vector cannot be read; `known`
    /// vectors are not read again). Empty when the index has no codes.
    pub fn codes_for(&mut self, owner: &[f32], ids: &[ElemId], known: &[(ElemId, &[f32])]) -> Vec<Option<Vec<u8>>> {
        let Some(coder) = self.coder.clone() else {
            return Vec::new();
        };
        let mut c_rot = Vec::new();
        coder.rotate(owner, &mut c_rot);
        self.codes_rotated(&coder, &c_rot, ids, known)
    }

    /// An element's header (cached).
    pub fn element(&mut self, id: ElemId) -> Option<Element> {
        if let Some(e) = self.headers.get(&id) {
            return Some(e.clone());
        }
        let (layout, dims) = (self.params.layout, self.params.dims);
        let e = with_item(self.index, id, |item| {
            format::element_fits(item, layout, dims).then(|| Element::decode(item, layout))
        })??;
        self.headers.insert(id, e.clone());
        Some(e)
    }

    /// Bytes held by the header cache (by capacity: key, value, control byte).
    pub fn cache_bytes(&self) -> usize {
        self.headers.capacity()
            * (std::mem::size_of::<ElemId>() + std::mem::size_of::<Element>() + 1)
    }

    /// Forgets cached headers (after this operation changed elements).
    pub fn forget(&mut self, id: ElemId) {
        self.headers.remove(&id);
    }

    /// Element `id`'s coordinates (a bit index's string widened).
    pub fn vector(&mut self, id: ElemId) -> Option<Vec<f32>> {
        Some(self.kept(id)?.into_floats(self.params.dims))
    }

    /// Element `id`'s vector as kept (read, and kept when this graph keeps
    /// vectors).
    pub fn kept(&mut self, id: ElemId) -> Option<Kept> {
        if self.vectors.is_none() {
            return self.read_kept(id);
        }
        self.keep_vector(id).then(|| self.vectors.as_ref().expect("kept")[&id].clone())
    }

    /// `v` made ready for [`Kept::compare`] (cosine: normalized).
    pub fn ready(&self, mut v: Kept) -> Kept {
        if let Kept::Floats(f) = &mut v {
            self.params.metric.prepare(f);
        }
        v
    }

    fn read_kept(&self, id: ElemId) -> Option<Kept> {
        let (dims, layout) = (self.params.dims, self.params.layout);
        with_item(self.index, id, |item| {
            format::element_fits(item, layout, dims).then(|| kept_of(item, layout, dims))
        })?
    }

    /// Whether element `id`'s vector is among the kept ones, read into them
    /// now if it was not (false when vectors are not kept or it cannot be
    /// read).
    fn keep_vector(&mut self, id: ElemId) -> bool {
        match self.vectors.as_ref().map(|k| k.contains_key(&id)) {
            None => false,
            Some(true) => true,
            Some(false) => match self.read_kept(id) {
                Some(v) => {
                    self.vectors.as_mut().expect("kept").insert(id, v);
                    true
                }
                None => false,
            },
        }
    }

    /// Distance between two elements (for neighbor selection).
    pub fn between(&mut self, a: ElemId, b: ElemId) -> f64 {
        if self.vectors.is_some() {
            if !(self.keep_vector(a) && self.keep_vector(b)) {
                return f64::INFINITY;
            }
            let k = self.vectors.as_ref().expect("kept");
            return k[&a].distance(&k[&b], self.params.metric);
        }
        match (self.read_kept(a), self.read_kept(b)) {
            (Some(x), Some(y)) => x.distance(&y, self.params.metric),
            _ => f64::INFINITY,
        }
    }
}

/// The distance from a kept vector to `query` (`bits`: the query packed,
/// for a bit string; `prepared`: the query prepared, for a sparse vector).
fn to_query(
    metric: Metric,
    dims: usize,
    v: &Kept,
    bits: Option<&[u8]>,
    prepared: Option<&PreparedQuery>,
    query: &[f32],
) -> f64 {
    match (v, bits) {
        (Kept::Floats(f), _) => prepared.map_or_else(|| metric.distance(f, query), |p| p.distance(f)),
        (Kept::Bits(b), Some(q)) => metric.bits_distance(b, q).unwrap_or(f64::INFINITY),
        (Kept::Bits(b), None) => metric.distance(&crate::vector::bits::widen(b, dims), query),
    }
}

/// An element item's vector as [`Kept`]: a bit index's packed string as
/// stored, else the coordinates (binary16 widened).
fn kept_of(item: &[u8], layout: Layout, dims: usize) -> Kept {
    match layout.scalar {
        Scalar::Bit => Kept::Bits(format::element_bytes(item, layout, dims).to_vec()),
        _ => Kept::Floats(format::element_vector(item, layout, dims)),
    }
}

impl Graph for DiskGraph {
    fn distance(&mut self, id: ElemId, query: &[f32]) -> Option<(f64, bool)> {
        let (dims, metric, layout) = (self.params.dims, self.params.metric, self.params.layout);
        let keep = self.vectors.is_some();
        if keep {
            self.bits_for(query); // an insert's query, packed once
        }
        // a bit index measures its packed strings against the packed query
        let packed = self.query_bits.take();
        let q = packed
            .as_ref()
            .filter(|q| q.of == (query.as_ptr(), query.len()))
            .map(|q| &q.bits[..]);
        // a sparse index measures elements against its prepared query
        let sparse = self.sparse_query.take();
        let sq = sparse
            .as_ref()
            .filter(|(of, _)| *of == (query.as_ptr(), query.len()))
            .map(|(_, p)| p);
        let kept_d = self.vectors.as_ref().and_then(|k| k.get(&id)).and_then(|v| {
            let e = self.headers.get(&id).filter(|e| !e.is_free())?;
            Some((to_query(metric, dims, v, q, sq, query), e.deleted()))
        });
        if kept_d.is_some() {
            self.query_bits = packed;
            self.sparse_query = sparse;
            return kept_d;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = with_item(self.index, id, |item| {
            if !format::element_fits(item, layout, dims) {
                return None;
            }
            let e = Element::decode(item, layout);
            if e.is_free() {
                return None;
            }
            if keep {
                let kept = kept_of(item, layout, dims);
                return Some((to_query(metric, dims, &kept, q, sq, query), e, Some(kept)));
            }
            // a scan: popcounts on the stored bits, or coordinates widened
            // into the scratch buffer
            let by_bits = q.and_then(|q| metric.bits_distance(format::element_bytes(item, layout, dims), q));
            let d = by_bits.unwrap_or_else(|| {
                let v = format::element_floats_in(item, layout, dims, &mut scratch);
                sq.map_or_else(|| metric.distance(v, query), |p| p.distance(v))
            });
            Some((d, e, None))
        });
        self.scratch = scratch;
        self.query_bits = packed;
        self.sparse_query = sparse;
        let r = r??;
        let deleted = r.1.deleted();
        self.headers.insert(id, r.1);
        if let (Some(k), Some(v)) = (self.vectors.as_mut(), r.2) {
            k.insert(id, v);
        }
        Some((r.0, deleted))
    }

    fn neighbors(&mut self, id: ElemId, level: usize) -> Vec<ElemId> {
        let Some(e) = self.element(id) else {
            return Vec::new();
        };
        let (layout, m) = (self.params.layout, self.params.m);
        with_item(self.index, e.neighbors, |item| {
            format::decode_neighbors(layout, item, m, level)
        })
        .unwrap_or_default()
    }
}

impl CodedGraph for DiskGraph {
    fn expand(&mut self, id: ElemId, query: &[f32], out: &mut Vec<Scored>) -> Option<(f64, bool)> {
        let (dims, metric, layout, m) = (self.params.dims, self.params.metric, self.params.layout, self.params.m);
        let (Some(coder), Some(prepared)) = (self.coder.as_ref(), self.prepared.as_ref()) else {
            return None;
        };
        if id.is_none() {
            return None;
        }
        // the neighbor list with its codes, from a locked page
        let score = |item: &[u8], d: f64, out: &mut Vec<Scored>| {
            let (at, len) = format::codes_region(layout, item, m);
            if len == 0 {
                return;
            }
            let owner = coder.comparable(d) as f32;
            for (k, n) in format::neighbor_ids(layout, item, m, 0).enumerate() {
                out.push(Scored {
                    distance: coder.estimate_comparable(prepared, owner, &item[at + k * len..at + (k + 1) * len]),
                    id: n,
                });
            }
        };
        let vectors = self.vectors.as_mut();
        let scratch = &mut self.scratch;
        // the element and, when it lies on the same page (almost always),
        // its neighbor list: one buffer access
        let (d, e, scored) = with_page(self.index, id.block, |p| {
            let item = item_bytes(p, id.offset)?;
            if !format::element_fits(item, layout, dims) {
                return None;
            }
            let e = Element::decode(item, layout);
            if e.is_free() {
                return None;
            }
            let d = match vectors {
                Some(k) => {
                    let v = format::element_floats(item, layout, dims);
                    let d = metric.distance(&v, query);
                    k.insert(id, Kept::Floats(v.into_owned()));
                    d
                }
                None => metric.distance(format::element_floats_in(item, layout, dims, scratch), query),
            };
            let scored = e.neighbors.block == id.block
                && item_bytes(p, e.neighbors.offset).is_some_and(|n| {
                    score(n, d, out);
                    true
                });
            Some((d, e, scored))
        })?;
        if !scored {
            with_item(self.index, e.neighbors, |n| score(n, d, out));
        }
        let deleted = e.deleted();
        if self.vectors.is_some() {
            // an insert's neighbor choice asks for the header again (scans
            // skip the map insert)
            self.headers.insert(id, e);
        }
        Some((d, deleted))
    }

    fn comparable(&self, distance: f64) -> f64 {
        self.coder.as_ref().map_or(distance, |c| c.comparable(distance))
    }
}

/// Visits every element item of the index (block, offset, header, item).
pub fn for_each_element(
    index: Rel,
    params: &Params,
    mut f: impl FnMut(ElemId, &Element, &[u8]),
) {
    let (layout, dims) = (params.layout, params.dims);
    let nblocks = buffer::nblocks(index);
    for block in 1..nblocks {
        check_for_interrupts!();
        let buf = Locked::share(index, block);
        let p = buf.page();
        let mut items = Vec::new();
        if page_kind(p) == Some(KIND_GRAPH) {
            for off in 1..=page::max_offset(p) {
                if let Some((ptr, len)) = page::item(p, off) {
                    // SAFETY: a normal item on the share-locked page.
                    let item = unsafe { std::slice::from_raw_parts(ptr, len) };
                    if format::is_element_of(item, layout, dims) {
                        items.push((off, item.to_vec()));
                    }
                }
            }
        }
        drop(buf);
        for (off, item) in items {
            f(
                ElemId { block, offset: off },
                &Element::decode(&item, params.layout),
                &item,
            );
        }
    }
}
