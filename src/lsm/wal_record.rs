//! Records of Strata's WAL resource manager for `lsm` row changes, and the
//! page changes their redo makes (pure: byte layouts and page bytes only).
//!
//! Written when `strata` is in `shared_preload_libraries` (see
//! `crate::pg::wal`); each is one page change that used to be a GenericXLog
//! delta of the whole page. All integers little-endian; every record names
//! its pages as registered blocks, so full-page images and the redo LSN
//! check work as for Postgres's own records ([lsm-format.md] "WAL records").
//!
//! ```text
//! INSERT  0x10  block 0: an L0 page; its data, per new version:
//!               +----------+---------+------------------+
//!               | item u16 | len u16 | tuple (len bytes)|  ... repeated
//!               +----------+---------+------------------+
//! HEADERS 0x20  block 0: an L0 or RUN_DATA page; its data:
//!               +-------------+--------------+
//!               | ndetach u16 | item u16 ... |  versions of a compact page
//!               +-------------+--------------+  given headers of their own
//!               +------------+-----------------------------------------+
//!               | offset u16 | 22 bytes: t_xmin t_xmax t_cid t_ctid    |
//!               |            |           t_infomask2 t_infomask        | ...
//!               +------------+-----------------------------------------+
//!               (headers written, after the detaching); block 1 (when a
//!               detach ran out of slots): the new RUN_PAYLOAD page, a
//!               full-page image, which the page's moved blob names
//! UPDATE  0x30  an UPDATE's new version and the old version's stamp in one
//!               record: block 0 the L0 page taking the new version, block 1
//!               (absent when it is the same page) the old version's page;
//!               each block's data:
//!               +-----------------+-----------------------+--------------+
//!               | insert_len u16  | INSERT data           | HEADERS data |
//!               |                 | (insert_len bytes)    | (or nothing) |
//!               +-----------------+-----------------------+--------------+
//! ```

use super::compact_page;
use super::compressed_page::CodecError;
use super::format::{self, infomask, PageKind};
use super::page_image;

/// This format's resource manager id, from the custom range (128–255).
pub const RMGR_ID: u8 = 171;
pub const RMGR_NAME: &std::ffi::CStr = c"strata_lsm";

pub const INSERT: u8 = 0x10;
pub const HEADERS: u8 = 0x20;
pub const UPDATE: u8 = 0x30;

/// Bytes of a header a stamp may change (everything before `t_hoff`).
pub const HEADER_FIELDS: usize = super::compressed_page::TUPLE_HEADER_SIZE - 1;

/// The record type's name (`rm_identify`).
pub fn identify(info: u8) -> Option<&'static std::ffi::CStr> {
    match info {
        INSERT => Some(c"INSERT"),
        HEADERS => Some(c"HEADERS"),
        UPDATE => Some(c"UPDATE"),
        _ => None,
    }
}

fn malformed(what: &str) -> CodecError {
    CodecError::Layout(format!("malformed strata_lsm WAL record: {what}"))
}

/// Appends one new version to an INSERT record's block data.
pub fn push_insert(out: &mut Vec<u8>, item: u16, tuple: &[u8]) {
    out.extend_from_slice(&item.to_le_bytes());
    out.extend_from_slice(&(tuple.len() as u16).to_le_bytes());
    out.extend_from_slice(tuple);
}

/// The `(item, tuple)` pairs of an INSERT record's block data.
pub fn inserts(data: &[u8]) -> Result<Vec<(u16, &[u8])>, CodecError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        if at + 4 > data.len() {
            return Err(malformed("INSERT entry header"));
        }
        let item = format::u16_at(data, at);
        let len = format::u16_at(data, at + 2) as usize;
        at += 4;
        if at + len > data.len() {
            return Err(malformed("INSERT tuple length"));
        }
        out.push((item, &data[at..at + len]));
        at += len;
    }
    Ok(out)
}

/// One block's data of an UPDATE record: INSERT data, then HEADERS data
/// (None: no header on this page changes).
pub fn encode_update(insert: &[u8], headers: Option<&Headers>) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + insert.len() + 32);
    out.extend_from_slice(&(insert.len() as u16).to_le_bytes());
    out.extend_from_slice(insert);
    if let Some(h) = headers {
        out.extend_from_slice(&h.encode());
    }
    out
}

/// The INSERT entries and headers of one block of an UPDATE record.
#[allow(clippy::type_complexity)]
pub fn decode_update(data: &[u8]) -> Result<(Vec<(u16, &[u8])>, Option<Headers>), CodecError> {
    if data.len() < 2 {
        return Err(malformed("UPDATE length"));
    }
    let n = format::u16_at(data, 0) as usize;
    let insert = data
        .get(2..2 + n)
        .ok_or_else(|| malformed("UPDATE insert length"))?;
    let rest = &data[2 + n..];
    let headers = (!rest.is_empty())
        .then(|| Headers::decode(rest))
        .transpose()?;
    Ok((inserts(insert)?, headers))
}

/// A HEADERS record's data: versions detached, then headers written.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Headers {
    pub detached: Vec<u16>,
    pub written: Vec<(u16, [u8; HEADER_FIELDS])>,
}

impl Headers {
    /// Records that the header at byte `offset` of `page` was written.
    pub fn written_at(&mut self, page: &[u8], offset: usize) {
        let mut h = [0u8; HEADER_FIELDS];
        h.copy_from_slice(&page[offset..offset + HEADER_FIELDS]);
        self.written.push((offset as u16, h));
    }

    pub fn is_empty(&self) -> bool {
        self.detached.is_empty() && self.written.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 2 * self.detached.len() + 24 * self.written.len());
        out.extend_from_slice(&(self.detached.len() as u16).to_le_bytes());
        for i in &self.detached {
            out.extend_from_slice(&i.to_le_bytes());
        }
        for (at, h) in &self.written {
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(h);
        }
        out
    }

    pub fn decode(data: &[u8]) -> Result<Headers, CodecError> {
        if data.len() < 2 {
            return Err(malformed("HEADERS length"));
        }
        let n = format::u16_at(data, 0) as usize;
        let rest = data
            .get(2 + 2 * n..)
            .ok_or_else(|| malformed("HEADERS items"))?;
        if rest.len() % (2 + HEADER_FIELDS) != 0 {
            return Err(malformed("HEADERS length"));
        }
        Ok(Headers {
            detached: (0..n).map(|i| format::u16_at(data, 2 + 2 * i)).collect(),
            written: rest
                .chunks_exact(2 + HEADER_FIELDS)
                .map(|e| (format::u16_at(e, 0), e[2..].try_into().expect("chunk size")))
                .collect(),
        })
    }

    /// Redo: detaches, then writes the headers. `payload_block` is the
    /// record's block 1, if it registered one.
    pub fn apply(&self, page: &mut [u8], payload_block: Option<u32>) -> Result<(), CodecError> {
        if !self.detached.is_empty() {
            let mut missing = false;
            detach_items(page, self.detached.iter().map(|&i| i as usize), || {
                missing = payload_block.is_none();
                payload_block.unwrap_or(0)
            })?;
            if missing {
                return Err(malformed("a blob moved but no payload page is named"));
            }
        }
        for (at, h) in &self.written {
            let at = *at as usize;
            if at < format::PAGE_HEADER_SIZE || at + HEADER_FIELDS > page.len() {
                return Err(malformed("HEADERS offset"));
            }
            page[at..at + HEADER_FIELDS].copy_from_slice(h);
        }
        Ok(())
    }
}

/// Gives versions `items` of a compact page their own headers
/// ([`compact_page::detach`]). When the slots run out, the page's blob moves
/// to a payload page at the block `payload_block()` returns
/// ([`compact_page::move_blob`]) — at most once — and its image is returned.
/// The same steps serve the change and its redo (which names the block the
/// record registered and drops the image: it comes as a full-page image).
pub fn detach_items(
    page: &mut [u8],
    items: impl IntoIterator<Item = usize>,
    mut payload_block: impl FnMut() -> u32,
) -> Result<Option<page_image::PageImage>, CodecError> {
    let mut payload = None;
    for item in items {
        let mut done = compact_page::detach(page, item)?;
        if !done && payload.is_none() {
            payload = Some(compact_page::move_blob(page, payload_block())?);
            done = compact_page::detach(page, item)?;
        }
        if !done {
            return Err(CodecError::Layout("no room for a header".into()));
        }
    }
    Ok(payload)
}

/// `rm_mask` for pages these records change: what may differ between a
/// primary's page and its replay without being logged — the LSN and
/// checksum, the free space between `pd_lower` and `pd_upper`, page hint
/// flags, and the commit hint bits of every row header (set by visibility
/// checks without WAL; frozen headers keep their xmin bits, as heap's mask).
pub fn mask(page: &mut [u8]) {
    crate::pg::page::mask_header_and_hole(page);
    let kind = page_image::tag_of(page).and_then(|t| PageKind::from_u16(t.kind));
    let headers: Vec<usize> = (1..=page_image::item_count(page))
        .filter_map(|n| match kind {
            Some(PageKind::L0) => page_image::item_extent(page, n).map(|(off, _)| off),
            Some(PageKind::RunData) => page_image::run_item_tuple(page, n).map(|(off, _)| off),
            _ => None,
        })
        .collect();
    for at in headers {
        if at + HEADER_FIELDS > page.len() {
            continue;
        }
        let mut mask = format::u16_at(page, at + 20);
        if mask & infomask::HEAP_XMIN_FROZEN == infomask::HEAP_XMIN_FROZEN {
            mask &= !(infomask::HEAP_XMAX_COMMITTED | infomask::HEAP_XMAX_INVALID);
        } else {
            mask &= !(infomask::HEAP_XMIN_FROZEN
                | infomask::HEAP_XMAX_COMMITTED
                | infomask::HEAP_XMAX_INVALID);
        }
        format::put_u16(page, at + 20, mask);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn update_blocks_round_trip() {
        let mut ins = Vec::new();
        super::push_insert(&mut ins, 7, &[1, 2, 3, 4, 5]);
        let mut h = super::Headers::default();
        h.written.push((48, [9u8; super::HEADER_FIELDS]));
        let both = super::encode_update(&ins, Some(&h));
        let (got, hdr) = super::decode_update(&both).unwrap();
        assert_eq!(got, vec![(7u16, &[1u8, 2, 3, 4, 5][..])]);
        assert_eq!(hdr, Some(h.clone()));
        let only_headers = super::encode_update(&[], Some(&h));
        assert_eq!(
            super::decode_update(&only_headers).unwrap(),
            (vec![], Some(h))
        );
        let only_insert = super::encode_update(&ins, None);
        assert_eq!(super::decode_update(&only_insert).unwrap().1, None);
        assert!(super::decode_update(&[9, 0, 1]).is_err());
    }

    use super::*;

    #[test]
    fn insert_entries_round_trip() {
        let mut data = Vec::new();
        push_insert(&mut data, 3, b"abc");
        push_insert(&mut data, 4, b"");
        push_insert(&mut data, 9, &[7u8; 300]);
        let got = inserts(&data).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (3, &b"abc"[..]));
        assert_eq!(got[1], (4, &b""[..]));
        assert_eq!(got[2].0, 9);
        assert_eq!(got[2].1, &[7u8; 300][..]);
        assert!(inserts(&data[..data.len() - 1]).is_err());
        assert!(inserts(&data[..2]).is_err());
    }

    #[test]
    fn headers_replay_the_logged_bytes() {
        let mut page = vec![0u8; 8192];
        for (i, b) in page[100..130].iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut rec = Headers::default();
        rec.written_at(&page, 100);
        let data = rec.encode();
        let back = Headers::decode(&data).unwrap();
        assert_eq!(back, rec);
        let mut replay = vec![0u8; 8192];
        back.apply(&mut replay, None).unwrap();
        assert_eq!(replay[100..122], page[100..122]);
        assert!(
            replay[122..].iter().all(|&b| b == 0),
            "only the fields before t_hoff"
        );
        assert!(Headers::decode(&data[..5]).is_err());
        assert!(Headers::decode(&[3, 0, 1, 0]).is_err());
        let mut far = rec;
        far.written[0].0 = 8180;
        assert!(far.apply(&mut replay, None).is_err());
    }

    /// A full compact page as a load writes it: versions of xmin 700
    /// sharing one header, rows of incompressible bytes, as many as fit.
    fn loaded_page() -> Vec<u8> {
        use crate::lsm::compressed_page::{self, Codec};
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let vs: Vec<(u64, Vec<u8>)> = (1000..1256u64)
            .map(|r| {
                let mut t = vec![0u8; 24];
                format::put_u32(&mut t, 0, 700);
                let (v, o) = format::tid_of_rowid(r);
                compact_page::put_ctid(&mut t, v, o);
                format::put_u16(&mut t, 18, 1);
                t[22] = 24;
                for _ in 0..24 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    t.push(seed as u8);
                }
                (r, t)
            })
            .collect();
        let refs: Vec<(u64, &[u8])> = vs.iter().map(|(r, t)| (*r, t.as_slice())).collect();
        (1..=refs.len())
            .rev()
            .find_map(|n| {
                let frame = compressed_page::compress(&refs[..n], Codec::Lz4);
                compact_page::build(9, &refs[..n], &frame)
            })
            .expect("some rows fit")
            .bytes()
            .to_vec()
    }

    /// Replaying a HEADERS record on the page as it was before the change
    /// gives the page the change made — also when the detaches ran out of
    /// slots and moved the blob — up to what `mask` hides.
    #[test]
    fn headers_redo_reproduces_detaches_and_a_blob_move() {
        let before = loaded_page();
        let mut after = before.clone();
        let items: Vec<usize> = (1..=page_image::item_count(&before)).collect();
        let mut moved_to = None;
        let image = detach_items(&mut after, items.iter().copied(), || {
            moved_to = Some(4242);
            4242
        })
        .unwrap();
        assert!(
            image.is_some() && moved_to == Some(4242),
            "detaching every version of a full page uses up its slots"
        );
        let mut rec = Headers {
            detached: items.iter().map(|&i| i as u16).collect(),
            ..Headers::default()
        };
        for &i in &items[..5] {
            let (at, _) = page_image::run_item_tuple(&after, i).unwrap();
            format::put_u32(&mut after, at + 4, 800); // xmax
            rec.written_at(&after, at);
        }
        let data = rec.encode();
        let mut replay = before.clone();
        Headers::decode(&data)
            .unwrap()
            .apply(&mut replay, Some(4242))
            .unwrap();
        assert_eq!(replay, after);
        assert!(
            compact_page::check(&replay).is_empty(),
            "{:?}",
            compact_page::check(&replay)
        );
        // without its payload block the record cannot be replayed
        let mut bare = before.clone();
        assert!(Headers::decode(&data)
            .unwrap()
            .apply(&mut bare, None)
            .is_err());
    }

    #[test]
    fn mask_hides_hint_bits_and_the_lsn_only() {
        let page = loaded_page();
        let (at, _) = page_image::run_item_tuple(&page, 1).unwrap();
        let mut hinted = page.clone();
        let m = format::u16_at(&hinted, at + 20)
            | infomask::HEAP_XMIN_COMMITTED
            | infomask::HEAP_XMAX_INVALID;
        format::put_u16(&mut hinted, at + 20, m);
        hinted[0..8].copy_from_slice(&0x1234_5678u64.to_le_bytes());
        let (mut a, mut b) = (page.clone(), hinted);
        mask(&mut a);
        mask(&mut b);
        assert_eq!(a, b);
        let mut stamped = page.clone();
        format::put_u32(&mut stamped, at + 4, 800);
        mask(&mut stamped);
        assert_ne!(a, stamped, "an xmax is not a hint");
    }
}
