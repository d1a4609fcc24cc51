//! Tests of the page and manifest checks on hand-built page images.

use super::*;
use crate::page_image::{fence_page, PageImage};
use crate::run_packer::RunPacker;

const BS: usize = 8192;
const CTX: Context<'static> = Context {
    block_size: BS,
    attrs: &[],
    natts: 3,
    next_xid: 1000,
    frozen_xid: 3,
};

/// A 32-byte tuple (xmin, xmax, infomask, ctid).
fn tuple(xmin: u32, xmax: u32, mask: u16, (cb, co): (u32, u16)) -> Vec<u8> {
    let mut t = vec![0u8; 32];
    t[0..4].copy_from_slice(&xmin.to_le_bytes());
    t[4..8].copy_from_slice(&xmax.to_le_bytes());
    t[12..14].copy_from_slice(&((cb >> 16) as u16).to_le_bytes());
    t[14..16].copy_from_slice(&(cb as u16).to_le_bytes());
    t[16..18].copy_from_slice(&co.to_le_bytes());
    t[18..20].copy_from_slice(&2u16.to_le_bytes());
    t[20..22].copy_from_slice(&mask.to_le_bytes());
    t[22] = 24;
    t
}

fn l0_page(vblock: u32, tuples: &[(u32, u32, u16, (u32, u16))]) -> Vec<u8> {
    let mut p = PageImage::new(PageKind::L0, vblock, 0);
    for &(xmin, xmax, mask, ctid) in tuples {
        assert!(p.add_item(&[&tuple(xmin, xmax, mask, ctid)]));
    }
    p.bytes().to_vec()
}

fn check(block: u32, p: &[u8]) -> (Summary, Vec<Problem>) {
    let mut problems = vec![];
    let s = check_page(block, p, &CTX, &|_| None, &mut problems);
    (s, problems)
}

fn meta_page(meta: &Meta) -> Vec<u8> {
    let mut p = PageImage::new(PageKind::Meta, 0, 0);
    p.append_array(&vec![0u8; format::META_END - format::PAGE_HEADER_SIZE]);
    let mut bytes = p.bytes().to_vec();
    meta.encode(&mut bytes);
    bytes
}

#[test]
fn healthy_page_has_no_problems() {
    let p = l0_page(
        7,
        &[(10, 0, HEAP_XMAX_INVALID, (7, 1)), (11, 12, 0, (7, 1))],
    );
    let (s, problems) = check(1, &p);
    assert_eq!(problems, vec![]);
    assert_eq!(
        (s.kind, s.owner, s.versions, s.tuple_bytes),
        (Some(PageKind::L0), 7, 2, 64)
    );
    assert_eq!(s.links[1].rowid, format::rowid(7, 2));
}

#[test]
fn new_page_is_empty_not_broken() {
    let (s, problems) = check(5, &vec![0u8; BS]);
    assert!(problems.is_empty() && s.kind.is_none());
    let mut p = vec![0u8; BS];
    p[100] = 1;
    assert_eq!(check(5, &p).1.len(), 1);
}

#[test]
fn detects_bad_tag_bounds_and_xids() {
    let mut p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID, (1, 1))]);
    p[BS - TAG_SIZE] ^= 0xFF;
    assert!(check(1, &p).1[0].message.contains("bad page magic"));

    let p = l0_page(2, &[(10, 0, HEAP_XMAX_INVALID, (2, 1))]);
    assert!(check(0, &p).1[0]
        .message
        .contains("only block 0 is the metapage"));

    let p = l0_page(1, &[(5000, 0, HEAP_XMAX_INVALID, (1, 1))]);
    assert!(check(1, &p).1[0].message.contains("next xid"));

    let both = HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID;
    let p = l0_page(1, &[(10, 0, both, (1, 1))]);
    assert!(check(1, &p).1[0]
        .message
        .contains("both committed and invalid"));

    let mut p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID, (1, 1))]);
    p[14..16].copy_from_slice(&10u16.to_le_bytes()); // upper < lower
    assert!(check(1, &p).1[0].message.contains("bad page bounds"));
}

#[test]
fn frozen_xmin_may_precede_relfrozenxid() {
    let ctx = Context {
        frozen_xid: 500,
        ..CTX
    };
    let p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID | HEAP_XMIN_FROZEN, (1, 1))]);
    let mut problems = vec![];
    check_page(1, &p, &ctx, &|_| None, &mut problems);
    assert!(problems.is_empty());
    let p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID, (1, 1))]);
    let s = check_page(1, &p, &ctx, &|_| None, &mut problems);
    assert!(problems.is_empty());
    assert_eq!(s.old_xmins, vec![(1, 10)]);
}

#[test]
fn old_xmins_matter_only_on_pages_in_use() {
    // xmins 10..12 and 11 (run, L0) precede relfrozenxid 100
    let (_, mut pages) = table();
    let ctx = Context {
        frozen_xid: 100,
        ..CTX
    };
    // a stale L0 page the manifest no longer reaches
    pages.push(l0_page(0, &[(5, 0, HEAP_XMAX_INVALID, (0, 1))]));
    let (used, problems) = verify_with(&pages, &ctx);
    assert!(!used[pages.len() - 1]);
    assert!(!problems.is_empty());
    assert!(problems
        .iter()
        .all(|p| p.message.contains("precedes relfrozenxid 100")));
    assert!(problems
        .iter()
        .all(|p| (p.block as usize) < pages.len() - 1));
}

/// A table: metapage, one run (data, leaf, root), L0 directory and two L0 pages.
fn table() -> (Meta, Vec<Vec<u8>>) {
    // rowids 256, 257 (vblock 1); 257 was updated into L0 rowid 2*256
    table_of(tuple(10, 11, 0, (2, 1)), tuple(11, 0, HEAP_XMAX_INVALID, (2, 1)))
}

/// [`table`] with rowid 257 (in the run) and L0 rowid 2*256 given.
fn table_of(t257: Vec<u8>, t512: Vec<u8>) -> (Meta, Vec<Vec<u8>>) {
    let mut packer = RunPacker::new(1, None);
    assert!(packer
        .add(256, &tuple(10, 0, HEAP_XMAX_INVALID, (1, 1)))
        .is_empty());
    assert!(packer.add(257, &t257).is_empty());
    let done = packer.finish().pop().unwrap();
    let (data, first) = (done.image, done.first_rowid);
    let leaf = fence_page(1, format::INDEX_LEAF, &[(first, 1)]);
    let root = fence_page(1, format::INDEX_ROOT, &[(first, 2)]);
    let mut dir = PageImage::new(PageKind::L0Dir, 0, 0);
    dir.append_array(&5u32.to_le_bytes());
    dir.append_array(&6u32.to_le_bytes());
    let mut meta = Meta::new();
    meta.header.l0_first_vblock = 2;
    meta.header.next_vblock = 4;
    meta.header.next_run_id = 2;
    meta.l0_dir[0] = 4;
    meta.runs.push(RunDesc {
        run_id: 1,
        root: 3,
        data_pages: 1,
        first_rowid: 256,
        last_rowid: 257,
        versions: 2,
        tuple_bytes: 64,
        ..Default::default()
    });
    let pages = vec![
        meta_page(&meta),
        data.bytes().to_vec(),
        leaf.bytes().to_vec(),
        root.bytes().to_vec(),
        dir.bytes().to_vec(),
        {
            let mut p = PageImage::new(PageKind::L0, 2, 0);
            assert!(p.add_item(&[&t512]));
            p.bytes().to_vec()
        },
        l0_page(3, &[(12, 0, HEAP_XMAX_INVALID, (3, 1))]),
    ];
    (meta, pages)
}

/// A header-only redirect to `ctid`, as VACUUM writes into a run.
fn redirect(ctid: (u32, u16)) -> Vec<u8> {
    let mut t = tuple(0, 0, HEAP_XMIN_INVALID | HEAP_XMAX_INVALID, ctid);
    t[18..20].copy_from_slice(&format::REDIRECT_FLAG.to_le_bytes());
    t.truncate(24);
    t
}

#[test]
fn redirects_are_counted_and_must_name_a_heap_only_version() {
    let mut member = tuple(11, 0, HEAP_XMAX_INVALID, (2, 1));
    member[18..20].copy_from_slice(&(HEAP_ONLY_TUPLE | 2).to_le_bytes());
    let (_, pages) = table_of(redirect((2, 1)), member);
    let (_, problems) = verify(&pages);
    assert!(problems.is_empty(), "{problems:?}");
    let mut p = vec![];
    assert_eq!(check_page(1, &pages[1], &CTX, &|_| None, &mut p).redirects, 1);

    // the target is no heap-only version: reported where the redirect is
    let (_, pages) = table_of(redirect((2, 1)), tuple(11, 0, HEAP_XMAX_INVALID, (2, 1)));
    let (_, problems) = verify(&pages);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].block, problems[0].offset), (1, 2));
    assert!(problems[0].message.contains("no heap-only version"));
}

fn verify(pages: &[Vec<u8>]) -> (Vec<bool>, Vec<Problem>) {
    verify_with(pages, &CTX)
}

/// Checks every page under `ctx`, then the manifest: which pages are in
/// use, and the problems found.
fn verify_with(pages: &[Vec<u8>], ctx: &Context) -> (Vec<bool>, Vec<Problem>) {
    let mut problems = vec![];
    let summaries: Vec<Summary> = pages
        .iter()
        .enumerate()
        .map(|(b, p)| check_page(b as u32, p, ctx, &|_| None, &mut problems))
        .collect();
    let used = check_manifest(&summaries, ctx.frozen_xid, &mut problems);
    (used, problems)
}

#[test]
fn consistent_table_verifies() {
    let (_, mut pages) = table();
    let (used, problems) = verify(&pages);
    assert_eq!(problems, vec![]);
    assert!(used.iter().all(|u| *u));
    // an orphan page (an interrupted flush's) is unused, not a problem
    pages.push(PageImage::new(PageKind::RunData, 9, 0).bytes().to_vec());
    let (used, problems) = verify(&pages);
    assert_eq!((problems.len(), used[7]), (0, false));
}

#[test]
fn stray_pages_claiming_the_manifest_are_found() {
    let (_, mut pages) = table();
    // a data page of run 1 that its fence index does not reach
    let mut packer = RunPacker::new(1, None);
    assert!(packer
        .add(300, &tuple(10, 0, HEAP_XMAX_INVALID, (1, 45)))
        .is_empty());
    pages.push(packer.finish().pop().unwrap().image.bytes().to_vec());
    let (_, problems) = verify(&pages);
    assert!(problems
        .iter()
        .any(|p| p.block == 7 && p.message.contains("does not reach it")));
}

#[test]
fn run_bloom_filters_are_checked() {
    use crate::bloom::{encode_trailer, Filter};
    use crate::page_image::{bloom_page, root_page_with_filter};
    let (_, mut pages) = table();
    let with_filter = |rowids: &[u64]| {
        let mut f = Filter::new(1, 7);
        rowids.iter().for_each(|r| f.add(*r));
        let root = root_page_with_filter(1, &[(256, 2)], &encode_trailer(7, &[7]));
        (
            root.bytes().to_vec(),
            bloom_page(1, &f.pages[0]).bytes().to_vec(),
        )
    };
    let (root, bits) = with_filter(&[256, 257]);
    pages[3] = root;
    pages.push(bits);
    let (used, problems) = verify(&pages);
    assert_eq!(problems, vec![]);
    assert!(used[7]);
    // a filter that lacks rowid 257 would make lookups miss it
    let (root, bits) = with_filter(&[256]);
    pages[3] = root;
    pages[7] = bits;
    let (_, problems) = verify(&pages);
    assert!(
        problems
            .iter()
            .any(|p| p.block == 1 && p.message.contains("rowid 257 is missing")),
        "{problems:?}"
    );
    // the root names a page that is not a filter page of the run
    pages[7] = PageImage::new(PageKind::RunIndex, 1, format::INDEX_LEAF)
        .bytes()
        .to_vec();
    assert!(verify(&pages)
        .1
        .iter()
        .any(|p| p.message.contains("not its bloom filter page")));
    // a truncated filter page
    pages[7] = PageImage::new(PageKind::RunIndex, 1, format::INDEX_BLOOM)
        .bytes()
        .to_vec();
    assert!(verify(&pages)
        .1
        .iter()
        .any(|p| p.message.contains("bad bloom filter page")));
}

#[test]
fn manifest_damage_is_found() {
    let (mut meta, pages) = table();
    // the directory maps a virtual block to a page that holds another one
    let mut bad = pages.clone();
    bad[6] = l0_page(9, &[(12, 0, HEAP_XMAX_INVALID, (9, 1))]);
    assert!(verify(&bad)
        .1
        .iter()
        .any(|p| p.message.contains("virtual block 3")));
    // a run that claims more versions than its pages hold
    meta.runs[0].versions = 3;
    let mut bad = pages.clone();
    bad[0] = meta_page(&meta);
    assert!(verify(&bad)
        .1
        .iter()
        .any(|p| p.message.contains("its index reaches 1 and 2")));
    // an update link to a rowid never handed out (a dropped one is fine)
    let mut bad = pages.clone();
    bad[5] = l0_page(2, &[(11, 12, 0, (3, 7))]);
    assert!(verify(&bad).1.is_empty());
    bad[5] = l0_page(2, &[(11, 12, 0, (4, 1))]);
    assert!(verify(&bad)
        .1
        .iter()
        .any(|p| p.message.contains("t_ctid (4,1)")));
    // the same rowid live in two places: the run also holds L0's rowid 512
    let mut packer = RunPacker::new(1, None);
    assert!(packer
        .add(256, &tuple(10, 0, HEAP_XMAX_INVALID, (1, 1)))
        .is_empty());
    assert!(packer
        .add(512, &tuple(10, 0, HEAP_XMAX_INVALID, (2, 1)))
        .is_empty());
    let mut bad = pages.clone();
    bad[1] = packer.finish().pop().unwrap().image.bytes().to_vec();
    assert!(verify(&bad)
        .1
        .iter()
        .any(|p| p.message.contains("rowid 512 is stored twice")));
    // a seal outside L0 (virtual blocks 2..4)
    meta.runs[0].versions = 2;
    meta.l0_seal = 9;
    let mut bad = pages.clone();
    bad[0] = meta_page(&meta);
    assert!(verify(&bad)
        .1
        .iter()
        .any(|p| p.message.contains("L0 seal 9 lies outside L0")));
    meta.l0_seal = 3;
    let mut good = pages.clone();
    good[0] = meta_page(&meta);
    assert_eq!(verify(&good).1.len(), 0);
    // one block used twice
    meta.l0_dir[0] = 1;
    let mut bad = pages.clone();
    bad[0] = meta_page(&meta);
    assert!(verify(&bad)
        .1
        .iter()
        .any(|p| p.message.contains("used twice")));
}

#[test]
fn open_runs_must_reserve_rowids_no_listed_run_holds() {
    let (mut meta, mut pages) = table();
    // a bulk load's open run 2 with an index that reaches no data page yet
    pages.push(fence_page(2, format::INDEX_ROOT, &[]).bytes().to_vec());
    meta.header.next_run_id = 3;
    let with_open = |meta: &Meta, first_rowid: u64, end_rowid: u64, run_id: u32| {
        let mut meta = meta.clone();
        meta.open = Some(format::OpenRun {
            run_id,
            root: 7,
            first_rowid,
            end_rowid,
        });
        let mut p = pages.clone();
        p[0] = meta_page(&meta);
        verify(&p)
    };
    // between run 1 (256..=257) and L0 (from 512)
    let (used, problems) = with_open(&meta, 300, 400, 2);
    assert_eq!(problems, vec![]);
    assert!(used[7], "the open run's root is in use");
    // below a listed run: runs flushed from L0 after an abandoned load lie
    // above its reserved range (what test_crash left behind once)
    assert_eq!(with_open(&meta, 100, 200, 2).1, vec![]);
    let bad_range = |p: &[Problem]| {
        p.iter()
            .any(|p| p.message == "open run 2 has a bad rowid range")
    };
    // overlapping run 1, reaching into L0, empty
    assert!(bad_range(&with_open(&meta, 250, 300, 2).1));
    assert!(bad_range(&with_open(&meta, 300, 600, 2).1));
    assert!(bad_range(&with_open(&meta, 300, 300, 2).1));
    // the id of a listed run
    let (_, problems) = with_open(&meta, 300, 400, 1);
    assert!(
        problems
            .iter()
            .any(|p| p.message == "open run 1 has a bad rowid range"),
        "{problems:?}"
    );
}
