//! The WAL record of Strata's resource manager for `strata_hnsw` index pages
//! (`strata_hnsw`, id 172): a page change as the byte ranges it changed
//! (pure: byte layouts and page bytes only).
//!
//! Written when `strata` is in `shared_preload_libraries` (see
//! `crate::pg::wal`); otherwise the same change goes out as a GenericXLog
//! record. The record says the same thing as GenericXLog's delta, but the
//! writer compares pages eight bytes at a time instead of byte by byte:
//! GenericXLog's `computeRegionDelta` was 5–9% of a single-row insert's
//! profile (one neighbor list rewritten per back link), for strata_hnsw and
//! pgvector alike. Every registered block is a standard page, so full-page
//! images leave out the hole and the redo LSN check works as for Postgres's
//! own records ([hnsw-format.md] "WAL").
//!
//! ```text
//! DELTA  0x10  blocks 0..3: index pages; each block's data, ranges in
//!              ascending, non-overlapping order (empty for a block logged
//!              as a full-page image — a new page):
//!              +------------+---------+----------------------------+
//!              | offset u16 | len u16 | the range's new bytes      |  ...
//!              +------------+---------+----------------------------+
//! ```
//! All integers little-endian.

/// This format's resource manager id, from the custom range (128–255);
/// `strata_lsm` is 171.
pub const RMGR_ID: u8 = 172;
pub const RMGR_NAME: &std::ffi::CStr = c"strata_hnsw";

pub const DELTA: u8 = 0x10;

/// The record type's name (`rm_identify`).
pub fn identify(info: u8) -> Option<&'static std::ffi::CStr> {
    (info == DELTA).then_some(c"DELTA")
}

/// Unchanged words between two changed runs up to which the runs are logged
/// as one range (a range header costs four bytes).
const MERGE_GAP_WORDS: usize = 1;

/// Words compared at once where pages are equal.
const BLOCK_WORDS: usize = 8;

/// The ranges in which `new` differs from `old` (pages of equal length, a
/// multiple of 64 bytes, at most 64 KiB), as block data.
pub fn encode_delta(old: &[u8], new: &[u8]) -> Vec<u8> {
    assert_eq!(old.len(), new.len(), "pages of one size");
    assert!(old.len().is_multiple_of(8 * BLOCK_WORDS) && old.len() <= 1 << 16, "a page image");
    let word = |p: &[u8], i: usize| u64::from_ne_bytes(p[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let words = old.len() / 8;
    let mut out = Vec::new();
    let mut i = 0;
    while i < words {
        // equal stretches a block at a time (memcmp), then word by word
        if i % BLOCK_WORDS == 0 && old[i * 8..(i + BLOCK_WORDS) * 8] == new[i * 8..(i + BLOCK_WORDS) * 8] {
            i += BLOCK_WORDS;
            continue;
        }
        if word(old, i) == word(new, i) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1; // one past the last changed word
        let mut j = end;
        while j < words {
            if word(old, j) != word(new, j) {
                end = j + 1;
            } else if j - end >= MERGE_GAP_WORDS {
                break;
            }
            j += 1;
        }
        let (from, to) = (start * 8, end * 8);
        out.extend_from_slice(&(from as u16).to_le_bytes());
        out.extend_from_slice(&((to - from) as u16).to_le_bytes());
        out.extend_from_slice(&new[from..to]);
        i = end;
    }
    out
}

/// A DELTA block that does not fit its page.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeltaError {
    #[error("a range header is cut short at byte {0}")]
    ShortHeader(usize),
    #[error("range {offset}+{len} runs past the page ({page} bytes) or the record")]
    OutOfBounds { offset: usize, len: usize, page: usize },
    #[error("range at {0} overlaps or precedes the one before it")]
    Unordered(usize),
}

/// The ranges of DELTA block `data`, checked against a page of `page_len`
/// bytes: (offset, new bytes), ascending.
fn ranges(data: &[u8], page_len: usize) -> Result<Vec<(usize, &[u8])>, DeltaError> {
    let (mut at, mut next_free, mut out) = (0, 0, Vec::new());
    while at < data.len() {
        if at + 4 > data.len() {
            return Err(DeltaError::ShortHeader(at));
        }
        let offset = u16::from_le_bytes([data[at], data[at + 1]]) as usize;
        let len = u16::from_le_bytes([data[at + 2], data[at + 3]]) as usize;
        if offset + len > page_len || at + 4 + len > data.len() {
            return Err(DeltaError::OutOfBounds {
                offset,
                len,
                page: page_len,
            });
        }
        if offset < next_free {
            return Err(DeltaError::Unordered(offset));
        }
        out.push((offset, &data[at + 4..at + 4 + len]));
        next_free = offset + len;
        at += 4 + len;
    }
    Ok(out)
}

/// Applies DELTA block `data` to `page` (nothing when it is malformed);
/// returns how many ranges it had.
pub fn apply_delta(page: &mut [u8], data: &[u8]) -> Result<usize, DeltaError> {
    let ranges = ranges(data, page.len())?;
    for &(offset, bytes) in &ranges {
        page[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
    Ok(ranges.len())
}

/// Ranges and changed bytes of a DELTA block (`pg_waldump`'s description).
pub fn describe(data: &[u8]) -> Result<(usize, usize), DeltaError> {
    let ranges = ranges(data, 1 << 16)?;
    Ok((ranges.len(), ranges.iter().map(|r| r.1.len()).sum()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..8192)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    #[test]
    fn a_delta_replays_every_change_and_only_those_bytes() {
        let old = page(1);
        let cases: Vec<Vec<(usize, usize)>> = vec![
            vec![],
            vec![(0, 1)],
            vec![(8191, 1)],
            vec![(100, 3), (104, 2)],
            vec![(100, 3), (140, 2), (4000, 900)],
            vec![(0, 8192)],
            vec![(7, 2), (23, 1), (24, 1), (8100, 92)],
        ];
        for changes in cases {
            let mut new = old.clone();
            for &(at, len) in &changes {
                for b in &mut new[at..at + len] {
                    *b = b.wrapping_add(1);
                }
            }
            let data = encode_delta(&old, &new);
            let mut replayed = old.clone();
            let ranges = apply_delta(&mut replayed, &data).unwrap();
            assert_eq!(replayed, new, "{changes:?}");
            assert_eq!(changes.is_empty(), ranges == 0);
            let changed: usize = changes.iter().map(|c| c.1).sum();
            let (_, bytes) = describe(&data).unwrap();
            assert!(bytes >= changed && bytes <= changed + 16 * changes.len() + 8, "{changes:?}: {bytes}");
        }
    }

    #[test]
    fn near_runs_are_one_range() {
        let old = vec![0u8; 8192];
        let mut new = old.clone();
        new[8] = 1;
        new[24] = 1; // one unchanged word between: merged
        new[64] = 1; // three: a range of its own
        let data = encode_delta(&old, &new);
        assert_eq!(describe(&data).unwrap(), (2, 32));
    }

    #[test]
    fn malformed_deltas_are_errors() {
        let mut p = vec![0u8; 8192];
        assert_eq!(apply_delta(&mut p, &[1, 0, 2]), Err(DeltaError::ShortHeader(0)));
        let past = [0xff, 0x1f, 2, 0, 9, 9]; // 8191 + 2
        assert!(matches!(apply_delta(&mut p, &past), Err(DeltaError::OutOfBounds { .. })));
        let short = [0, 0, 4, 0, 1]; // 4 bytes promised, 1 given
        assert!(matches!(apply_delta(&mut p, &short), Err(DeltaError::OutOfBounds { .. })));
        let unordered = [16, 0, 1, 0, 7, 8, 0, 1, 0, 7];
        assert_eq!(apply_delta(&mut p, &unordered), Err(DeltaError::Unordered(8)));
    }
}
