//! Per-run bloom filters over rowids. Pure: no Postgres calls.
//!
//! A point lookup (index fetch, `t_ctid` chain step, TID fetch) finds the one
//! run whose rowid range holds the rowid from the metapage and then walks the
//! run's fence index: root, leaf, data page. A rowid in that range need not
//! be in the run: flushes and merges drop versions dead to every snapshot
//! while index entries (and `t_ctid` links) still name them until VACUUM's
//! index bulk-delete. The filter answers "surely not here" from the root page
//! and one filter page, so such a lookup skips the leaf and data page reads.
//!
//! The filter is a *blocked* bloom filter: a rowid hashes to one 512-bit
//! block (one cache line) of one filter page, and sets or tests `k` bits in
//! that block. Layout (format version 4, see [`super::format`]):
//!
//! ```text
//!  RUN_INDEX root page of a run with a filter (flags INDEX_ROOT):
//!  +------------+----------------+------+--------------------------------------+-----+
//!  | PageHeader | fence entries  | free | k u8 | pad 3 | npages u32 | block u32 × npages | pad to 8 | tag |
//!  +------------+----------------+------+--------------------------------------+-----+
//!                                        ^ pd_special (no filter: pd_special = BLCKSZ - 16)
//!  RUN_INDEX filter page (flags INDEX_BLOOM):
//!  | PageHeader | block 0 (64 B) | block 1 | ... | block 126 |  tag |     pd_lower = 8152
//!
//!  h1 = mix(rowid), h2 = mix(h1 ^ SECOND)
//!  page  = (h1 >> 32) * npages >> 32          block = (h1 & 0xffffffff) * 127 >> 32
//!  bit i = (h2 >> (9 * i)) & 511, i = 0 .. k   (bit b: byte b / 8, mask 1 << (b % 8))
//! ```
//!
//! These hash constants are part of the on-disk format: changing them makes
//! every stored filter lie.

/// Bytes of one filter block.
pub const BLOCK_BYTES: usize = 64;
/// Filter blocks per filter page (`127 * 64 = 8128` bytes fill the page body).
pub const BLOCKS_PER_PAGE: usize = 127;
/// Filter bytes per filter page.
pub const PAGE_BYTES: usize = BLOCK_BYTES * BLOCKS_PER_PAGE;
/// Bits per filter page.
pub const PAGE_BITS: u64 = (PAGE_BYTES * 8) as u64;
/// Most bits a key may set (9 bits of `h2` each).
pub const MAX_K: u8 = 7;
const SECOND: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's finalizer: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fastrange(x: u32, n: usize) -> usize {
    ((x as u64 * n as u64) >> 32) as usize
}

/// Where a rowid's bits are: filter page, byte offset of its block in the
/// page body, and the `k` bit numbers inside the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub page: usize,
    pub block_at: usize,
    h2: u64,
    k: u8,
}

impl Probe {
    pub fn new(rowid: u64, npages: usize, k: u8) -> Probe {
        let h1 = mix(rowid);
        Probe {
            page: fastrange((h1 >> 32) as u32, npages),
            block_at: fastrange(h1 as u32, BLOCKS_PER_PAGE) * BLOCK_BYTES,
            h2: mix(h1 ^ SECOND),
            k: k.clamp(1, MAX_K),
        }
    }

    fn bits(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.k as u32).map(|i| ((self.h2 >> (9 * i)) & 511) as usize)
    }

    /// Whether `body` (a filter page body, [`PAGE_BYTES`] long) has every bit.
    pub fn hits(&self, body: &[u8]) -> bool {
        let block = &body[self.block_at..self.block_at + BLOCK_BYTES];
        self.bits().all(|b| block[b / 8] & (1 << (b % 8)) != 0)
    }

    fn set(&self, body: &mut [u8]) {
        let at = self.block_at;
        for b in self.bits() {
            body[at + b / 8] |= 1 << (b % 8);
        }
    }
}

/// Filter geometry for `keys` rowids at `bits_per_key`, with at most
/// `max_pages` filter pages: `(npages, k)`. `None` when no filter is wanted.
pub fn geometry(keys: u64, bits_per_key: u32, max_pages: usize) -> Option<(usize, u8)> {
    if keys == 0 || bits_per_key == 0 || max_pages == 0 {
        return None;
    }
    let wanted = (keys * bits_per_key as u64).div_ceil(PAGE_BITS) as usize;
    let npages = wanted.clamp(1, max_pages);
    // k = bits per key * ln 2 is optimal for a plain bloom filter
    let real_bits_per_key = (npages as f64 * PAGE_BITS as f64) / keys as f64;
    let k = (real_bits_per_key * std::f64::consts::LN_2)
        .round()
        .clamp(1.0, MAX_K as f64) as u8;
    Some((npages, k))
}

/// A filter under construction: `npages` page bodies.
pub struct Filter {
    pub k: u8,
    pub pages: Vec<Vec<u8>>,
}

impl Filter {
    pub fn new(npages: usize, k: u8) -> Filter {
        Filter {
            k,
            pages: vec![vec![0u8; PAGE_BYTES]; npages.max(1)],
        }
    }

    pub fn add(&mut self, rowid: u64) {
        let p = Probe::new(rowid, self.pages.len(), self.k);
        p.set(&mut self.pages[p.page]);
    }

    pub fn may_contain(&self, rowid: u64) -> bool {
        let p = Probe::new(rowid, self.pages.len(), self.k);
        p.hits(&self.pages[p.page])
    }
}

/// Bytes of the root page trailer describing a filter of `npages` pages.
pub fn trailer_len(npages: usize) -> usize {
    (8 + 4 * npages).div_ceil(8) * 8
}

/// Filter pages a root trailer can list when the root has `free` bytes to
/// spare (the page's free space minus what its fence entries use).
pub fn pages_fitting(free: usize) -> usize {
    free.saturating_sub(8) / 4
}

/// The root page trailer: `k`, then the blocks of the filter pages.
pub fn encode_trailer(k: u8, blocks: &[u32]) -> Vec<u8> {
    let mut t = vec![0u8; trailer_len(blocks.len())];
    t[0] = k;
    t[4..8].copy_from_slice(&(blocks.len() as u32).to_le_bytes());
    for (i, b) in blocks.iter().enumerate() {
        t[8 + 4 * i..12 + 4 * i].copy_from_slice(&b.to_le_bytes());
    }
    t
}

/// `(k, filter page blocks)` from a root trailer; None when it is not one
/// (no filter, or a trailer whose length does not match its page count).
pub fn decode_trailer(t: &[u8]) -> Option<(u8, Vec<u32>)> {
    let (k, n) = trailer_header(t)?;
    let blocks = (0..n)
        .map(|i| u32::from_le_bytes(t[8 + 4 * i..12 + 4 * i].try_into().unwrap()))
        .collect();
    Some((k, blocks))
}

/// The filter page block and probe for `rowid` from a root trailer, reading
/// only the one entry it needs (the lookup path); None as [`decode_trailer`].
pub fn trailer_probe(t: &[u8], rowid: u64) -> Option<(u32, Probe)> {
    let (k, n) = trailer_header(t)?;
    let probe = Probe::new(rowid, n, k);
    let at = trailer_entry_at(probe.page);
    Some((u32::from_le_bytes(t[at..at + 4].try_into().unwrap()), probe))
}

/// `(k, npages)` of a well-formed trailer.
fn trailer_header(t: &[u8]) -> Option<(u8, usize)> {
    if t.len() < 8 {
        return None;
    }
    let k = t[0];
    let n = u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize;
    (n > 0 && k > 0 && k <= MAX_K && trailer_len(n) == t.len()).then_some((k, n))
}

/// Byte offset, inside the trailer, of the entry naming filter page `i`.
pub fn trailer_entry_at(i: usize) -> usize {
    8 + 4 * i
}

/// Rowids in increasing order, kept as LEB128 deltas (about one byte each
/// for the dense rowids of a flush), so a writer can build a run's filter
/// when the run closes without holding every rowid as a u64.
#[derive(Default)]
pub struct RowidLog {
    bytes: Vec<u8>,
    last: u64,
    len: u64,
}

impl RowidLog {
    pub fn push(&mut self, rowid: u64) {
        debug_assert!(self.len == 0 || rowid > self.last, "rowids must increase");
        let mut d = rowid - if self.len == 0 { 0 } else { self.last };
        loop {
            let b = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                self.bytes.push(b);
                break;
            }
            self.bytes.push(b | 0x80);
        }
        self.last = rowid;
        self.len += 1;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let mut at = 0;
        let mut prev = 0u64;
        std::iter::from_fn(move || {
            if at >= self.bytes.len() {
                return None;
            }
            let (mut d, mut shift) = (0u64, 0);
            loop {
                let b = self.bytes[at];
                at += 1;
                d |= ((b & 0x7f) as u64) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            prev += d;
            Some(prev)
        })
    }

    /// Splits off the rowids above `last`: they stay in `self`, the others
    /// are returned.
    pub fn take_through(&mut self, last: u64) -> RowidLog {
        let mut head = RowidLog::default();
        let mut tail = RowidLog::default();
        for r in self.iter() {
            if r <= last {
                head.push(r);
            } else {
                tail.push(r);
            }
        }
        *self = tail;
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 11
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        // rowids as a flush writes them: runs of offsets in virtual blocks,
        // every third version dropped as dead
        let keys: Vec<u64> = (0..200_000u64)
            .filter(|r| r % 3 != 0)
            .map(|r| 256 + r)
            .collect();
        let (npages, k) = geometry(keys.len() as u64, 10, 2000).unwrap();
        assert_eq!(
            (npages, k),
            (((keys.len() as u64 * 10).div_ceil(PAGE_BITS)) as usize, 7)
        );
        let mut f = Filter::new(npages, k);
        keys.iter().for_each(|r| f.add(*r));
        assert!(keys.iter().all(|r| f.may_contain(*r)));
        // the dropped rowids in the same range, and rowids far away
        let absent: Vec<u64> = (0..200_000u64)
            .filter(|r| r % 3 == 0)
            .map(|r| 256 + r)
            .collect();
        let fp = absent.iter().filter(|r| f.may_contain(**r)).count() as f64 / absent.len() as f64;
        assert!(fp < 0.02, "false positive rate {fp}");
        let mut s = 7;
        let far = (0..100_000)
            .filter(|_| f.may_contain((1 << 40) | (lcg(&mut s) % (1 << 39))))
            .count();
        assert!(far < 2_000, "{far} far false positives");
    }

    #[test]
    fn a_capped_filter_degrades_but_never_lies() {
        let (npages, k) = geometry(1_000_000, 10, 4).unwrap();
        assert_eq!(npages, 4);
        assert!((1..7).contains(&k));
        let mut f = Filter::new(npages, k);
        (0..1_000_000u64).for_each(|r| f.add(r * 2));
        assert!((0..1_000_000u64).all(|r| f.may_contain(r * 2)));
    }

    #[test]
    fn geometry_edges() {
        assert_eq!(geometry(0, 10, 10), None);
        assert_eq!(geometry(10, 0, 10), None);
        assert_eq!(geometry(10, 10, 0), None);
        // a small run still gets one page, with the most bits per key
        assert_eq!(geometry(10, 10, 100), Some((1, MAX_K)));
    }

    #[test]
    fn probes_are_stable() {
        // the hash is part of the on-disk format
        let p = Probe::new(123_456, 10, 7);
        assert_eq!(
            (p.page, p.block_at),
            (
                Probe::new(123_456, 10, 7).page,
                Probe::new(123_456, 10, 7).block_at
            )
        );
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161D_100B_05E5);
        assert!(p.page < 10 && p.block_at.is_multiple_of(BLOCK_BYTES) && p.block_at < PAGE_BYTES);
    }

    #[test]
    fn trailer_round_trip() {
        let t = encode_trailer(6, &[5, 9, 11]);
        assert_eq!(t.len(), 24);
        assert_eq!(decode_trailer(&t), Some((6, vec![5, 9, 11])));
        assert_eq!(decode_trailer(&t[..16]), None);
        assert_eq!(decode_trailer(&[0u8; 8]), None);
        let (block, probe) = trailer_probe(&t, 77).unwrap();
        assert_eq!(
            (block, probe),
            ([5, 9, 11][Probe::new(77, 3, 6).page], Probe::new(77, 3, 6))
        );
        assert_eq!(trailer_probe(&t[..16], 77), None);
        assert_eq!(
            u32::from_le_bytes(
                t[trailer_entry_at(2)..trailer_entry_at(2) + 4]
                    .try_into()
                    .unwrap()
            ),
            11
        );
        assert_eq!(pages_fitting(8 + 4 * 3 + 3), 3);
    }

    #[test]
    fn rowid_log_round_trip_and_split() {
        let rows = [1u64, 2, 3, 200, 70_000, 1 << 40, (1 << 40) + 1];
        let mut log = RowidLog::default();
        rows.iter().for_each(|r| log.push(*r));
        assert_eq!(log.len(), 7);
        assert_eq!(log.iter().collect::<Vec<_>>(), rows);
        let head = log.take_through(70_000);
        assert_eq!(head.iter().collect::<Vec<_>>(), &rows[..5]);
        assert_eq!(log.iter().collect::<Vec<_>>(), &rows[5..]);
        assert!(RowidLog::default().is_empty());
        // dense rowids cost a byte each
        let mut dense = RowidLog::default();
        (1000..2000u64).for_each(|r| dense.push(r));
        assert!(dense.bytes.len() < 1010);
    }
}
