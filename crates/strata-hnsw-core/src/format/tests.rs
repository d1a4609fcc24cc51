//! Unit tests of the on-disk format: metapage, element, row list and
//! neighbor items of every version, compact ids and their limits.
use super::*;

#[test]
fn meta_round_trip() {
    let m = Meta {
        version: FORMAT_VERSION,
        dims: 128,
        m: 16,
        ef_construction: 64,
        metric: 2,
        entry: ElemId {
            block: 7,
            offset: 3,
        },
        entry_level: 4,
        elements: 123_456,
        insert_block: 99,
        code_bits: 64,
        code_seed: 0xDEAD_BEEF,
        code_scale: 3,
        scalar: Scalar::Binary16,
    };
    let mut b = vec![0u8; META_SIZE];
    m.encode(&mut b);
    assert_eq!(Meta::decode(&b), Some(m));
    assert_eq!(m.layout(), Some(Layout::CURRENT.with_scalar(Scalar::Binary16)));
    // version 1 metapages still decode; unknown versions do not
    let v1 = Meta {
        version: 1,
        code_bits: 0,
        code_seed: 0,
        code_scale: 0,
        scalar: Scalar::Float4,
        ..m
    };
    v1.encode(&mut b);
    assert_eq!(Meta::decode(&b), Some(v1));
    put_u32(&mut b, 4, 10);
    assert_eq!(Meta::decode(&b), None);
    // bit elements (byte 46 = 2) from version 7; a version 6 metapage with
    // that byte is read as float4 (version 6 never wrote it)
    let bits = Meta {
        scalar: Scalar::Bit,
        ..m
    };
    bits.encode(&mut b);
    assert_eq!(Meta::decode(&b).map(|d| d.scalar), Some(Scalar::Bit));
    put_u32(&mut b, 4, 6);
    assert_eq!(Meta::decode(&b).map(|d| d.scalar), Some(Scalar::Float4));
    // sparse elements (byte 46 = 3) from version 8
    let sparse = Meta {
        scalar: Scalar::Sparse,
        ..m
    };
    sparse.encode(&mut b);
    assert_eq!(Meta::decode(&b).map(|d| d.scalar), Some(Scalar::Sparse));
    put_u32(&mut b, 4, 7);
    assert_eq!(Meta::decode(&b).map(|d| d.scalar), Some(Scalar::Float4));
    m.encode(&mut b);
    b[0] = 0;
    assert_eq!(Meta::decode(&b), None);
}

#[test]
fn element_and_neighbor_items() {
    let e = Element {
        heap_block: 42,
        heap_offset: 7,
        level: 2,
        flags: 0,
        neighbors: ElemId {
            block: 5,
            offset: 2,
        },
    };
    let tid = |block, offset| HeapTid { block, offset };
    let layouts = [1, 2, 5, 6, 7].map(|v| Layout::of(v).unwrap());
    for layout in layouts.into_iter().chain([Layout::CURRENT.with_scalar(Scalar::Binary16)]) {
        let item = encode_element(&e, layout, &[tid(42, 7)], &[1.0, -2.5, 3.25]);
        assert_eq!(item.len(), layout.element_size(3));
        assert_eq!(Element::decode(&item, layout), e);
        assert!(is_element_item(&item));
        assert_eq!(element_vector(&item, layout, 3), vec![1.0, -2.5, 3.25]);
        assert_eq!(&*element_floats(&item, layout, 3), &[1.0, -2.5, 3.25][..]);
        let mut buf = vec![9.0; 5];
        assert_eq!(element_floats_in(&item, layout, 3, &mut buf), &[1.0, -2.5, 3.25][..]);
        assert!(element_holds(&item, layout, &[1.0, -2.5, 3.25]));
        assert!(!element_holds(&item, layout, &[1.0, -2.5, 3.5]));
        assert_eq!(element_tids(&item, layout), vec![tid(42, 7)]);
    }
    assert_eq!(Layout::of(1).unwrap().element_size(3), 16 + 12);
    assert_eq!(Layout::of(2).unwrap().element_size(3), 72 + 12);
    assert_eq!(Layout::of(4).unwrap().element_size(3), 72 + 12);
    assert_eq!(Layout::of(5).unwrap().element_size(3), 24 + 12);
    assert_eq!(Layout::of(6).unwrap().with_scalar(Scalar::Binary16).element_size(3), 24 + 6);
    assert_eq!(Layout::of(0), None);
    assert_eq!(Layout::of(9), Some(Layout::CURRENT));
    assert_eq!(Layout::of(10), None);
    assert!(!Layout::of(6).unwrap().stores(Scalar::Bit) && Layout::CURRENT.stores(Scalar::Bit));
    assert!(!Layout::of(5).unwrap().stores(Scalar::Binary16));
    // binary16 elements hold halfvec values exactly, and tell them apart
    let half = Layout::CURRENT.with_scalar(Scalar::Binary16);
    let item = encode_element(&e, half, &[tid(1, 1)], &[2.0996094, -65504.0]);
    assert_eq!(element_vector(&item, half, 2), vec![2.0996094, -65504.0]);
    assert!(!element_holds(&item, half, &[2.1, -65504.0]));
    // bit elements: 0.0 / 1.0 coordinates packed MSB first, ceil(n / 8) bytes
    let bit = Layout::CURRENT.with_scalar(Scalar::Bit);
    let ones = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0];
    let item = encode_element(&e, bit, &[tid(1, 1)], &ones);
    assert_eq!(item.len(), bit.element_size(10));
    assert_eq!(bit.element_size(10), 24 + 2);
    assert_eq!(&item[bit.vector_offset()..], &[0b1011_0000, 0b1100_0000]);
    assert_eq!(&*element_floats(&item, bit, 10), &ones[..]);
    assert_eq!(element_floats_in(&item, bit, 10, &mut Vec::new()), &ones[..]);
    assert!(element_holds(&item, bit, &ones));
    assert!(!element_holds(&item, bit, &[0.0; 10]));
    assert!(!element_holds(&item, bit, &[1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5]));

    // version 2 holds up to ten heap rows, packed from slot 0
    let v2 = Layout::of(2).unwrap();
    let ten: Vec<HeapTid> = (1..=10).map(|o| tid(9, o)).collect();
    let mut item = encode_element(&e, v2, &ten, &[1.0, -2.5, 3.25]);
    assert_eq!(element_tids(&item, v2), ten);
    assert_eq!(Element::decode(&item, v2).heap_offset, 1);
    set_element_tids(&mut item, v2, &ten[7..]);
    assert_eq!(element_tids(&item, v2), ten[7..].to_vec());
    set_element_tids(&mut item, v2, &[]);
    assert!(Element::decode(&item, v2).is_free());
    assert!(element_tids(&item, v2).is_empty());
    assert_eq!(element_vector(&item, v2, 3), vec![1.0, -2.5, 3.25]);
    assert_eq!(row_list_of(&item, v2), None);

    // versions 3 and 4: the last slot can name a row list; nine rows stay
    // inline; version 5 likewise with three slots (two rows inline)
    let list_id = ElemId {
        block: 6,
        offset: 4,
    };
    for (version, slots) in [(4, 10), (5, 3)] {
        let layout = Layout::of(version).unwrap();
        assert_eq!(layout.tid_slots(), slots);
        let mut item = encode_element(&e, layout, &ten[..slots], &[1.0, -2.5, 3.25]);
        assert_eq!(element_tids(&item, layout), ten[..slots].to_vec());
        set_element_tids(&mut item, layout, &ten[..slots - 1]);
        set_row_list(&mut item, layout, list_id);
        assert_eq!(row_list_of(&item, layout), Some(list_id));
        assert_eq!(inline_slots(&item, layout), slots - 1);
        assert_eq!(element_tids(&item, layout), ten[..slots - 1].to_vec());
        assert!(is_element_item(&item));
        assert_eq!(Element::decode(&item, layout).flags, FLAG_ROW_LIST);
        assert_eq!(Element::decode(&item, layout).neighbors, e.neighbors);
        // emptied slots keep the link (the slot's lists serve its next element)
        set_element_tids(&mut item, layout, &[]);
        assert!(Element::decode(&item, layout).is_free());
        assert_eq!(row_list_of(&item, layout), Some(list_id));
        assert_eq!(element_vector(&item, layout, 3), vec![1.0, -2.5, 3.25]);
    }

    // row list items
    let many: Vec<HeapTid> = (1..=ROW_LIST_TIDS as u16).map(|o| tid(11, o)).collect();
    let mut r = encode_row_list(list_id, ROW_LIST_TIDS, &many);
    assert_eq!(r.len(), ROW_LIST_SIZE);
    assert!(is_row_list_item(&r) && !is_element_item(&r));
    assert_eq!(row_list_capacity(&r), ROW_LIST_TIDS);
    assert_eq!(decode_row_list(&r), (list_id, many.clone()));
    set_row_list_tids(&mut r, &many[..3]);
    assert_eq!(decode_row_list(&r), (list_id, many[..3].to_vec()));
    assert_eq!(
        decode_row_list(&encode_row_list(ElemId::NONE, ROW_LIST_TIDS, &[])),
        (ElemId::NONE, vec![])
    );
    // version 5: an element's first list is short; a build's fit their rows
    let v5 = Layout::CURRENT;
    assert_eq!(new_row_list_capacity(v5, 0), FIRST_ROW_LIST_TIDS);
    assert_eq!(new_row_list_capacity(v5, 1), ROW_LIST_TIDS);
    assert_eq!(new_row_list_capacity(Layout::of(4).unwrap(), 0), ROW_LIST_TIDS);
    assert_eq!(built_row_list_capacity(v5, 3), FIRST_ROW_LIST_TIDS);
    assert_eq!(built_row_list_capacity(v5, 40), 40);
    assert_eq!(built_row_list_capacity(Layout::of(4).unwrap(), 3), ROW_LIST_TIDS);
    let mut short = encode_row_list(list_id, FIRST_ROW_LIST_TIDS, &many[..2]);
    assert_eq!(short.len(), row_list_size(FIRST_ROW_LIST_TIDS));
    assert!(is_row_list_item(&short));
    assert_eq!(row_list_capacity(&short), FIRST_ROW_LIST_TIDS);
    set_row_list_tids(&mut short, &many[..FIRST_ROW_LIST_TIDS]);
    assert_eq!(decode_row_list(&short).1, many[..FIRST_ROW_LIST_TIDS].to_vec());
    // not row lists: lengths no capacity gives, other marks
    assert!(!is_row_list_item(&[0u8; 8]) && !is_row_list_item(&[0x40u8; 17]));

    let id = |b, o| ElemId {
        block: b,
        offset: o,
    };
    for (version, w) in [(4, 8), (5, 4)] {
        let layout = Layout::of(version).unwrap();
        assert_eq!(layout.id_size(), w);
        let lists = vec![vec![id(1, 1), id(1, 2)], vec![id(2, 1)], vec![]];
        let mut n = encode_neighbors(layout, 4, 2, &lists, 0);
        assert!(!is_element_item(&n));
        assert_eq!(n.len(), neighbors_size(layout, 4, 2, 0));
        assert_eq!(n.len(), 8 + w * (8 + 4 + 4));
        assert_eq!(decode_neighbors(layout, &n, 4, 0), lists[0]);
        assert_eq!(decode_neighbors(layout, &n, 4, 1), lists[1]);
        assert_eq!(decode_neighbors(layout, &n, 4, 2), lists[2]);
        assert_eq!(decode_neighbors(layout, &n, 4, 3), vec![]);
        // lists longer than the capacity are cut; in-place replacement
        let long: Vec<ElemId> = (1..=10).map(|o| id(3, o)).collect();
        set_neighbors(layout, &mut n, 4, 0, &long);
        assert_eq!(decode_neighbors(layout, &n, 4, 0), long[..8].to_vec());
        set_neighbors(layout, &mut n, 4, 1, &[]);
        assert_eq!(decode_neighbors(layout, &n, 4, 1), vec![]);
        assert_eq!(decode_neighbors(layout, &n, 4, 0).len(), 8);
        assert_eq!(codes_region(layout, &n, 4).1, 0);

        // level-0 codes follow the slots and move with their ids
        let mut c = encode_neighbors(layout, 4, 1, &[vec![], vec![id(2, 1)]], 5);
        assert_eq!(c.len(), neighbors_size(layout, 4, 1, 5));
        assert_eq!(codes_region(layout, &c, 4), (neighbors_size(layout, 4, 1, 0), 5));
        let code = |b: u8| Some(vec![b; 5]);
        set_neighbors_coded(layout, &mut c, 4, 0, &[id(1, 1), id(1, 2)], |o| code(o.offset as u8));
        assert_eq!(level0_code(layout, &c, 4, 1), &[2u8; 5][..]);
        // id(1, 1) keeps its code; id(3, 3) gets a new one
        set_neighbors_coded(layout, &mut c, 4, 0, &[id(3, 3), id(1, 1)], |_| code(9));
        assert_eq!(decode_neighbors(layout, &c, 4, 0), vec![id(3, 3), id(1, 1)]);
        assert_eq!(level0_code(layout, &c, 4, 0), &[9u8; 5][..]);
        assert_eq!(level0_code(layout, &c, 4, 1), &[1u8; 5][..]);
        assert_eq!(level0_code(layout, &c, 4, 2), &[0u8; 5][..]);
        // upper levels have no codes
        set_neighbors_coded(layout, &mut c, 4, 1, &[id(4, 4)], |_| panic!("no codes above level 0"));
        assert_eq!(decode_neighbors(layout, &c, 4, 1), vec![id(4, 4)]);
        assert_eq!(decode_neighbors(layout, &c, 4, 0), vec![id(3, 3), id(1, 1)]);
    }
}

#[test]
fn compact_ids_reach_their_limits() {
    let v5 = Layout::CURRENT;
    assert_eq!((v5.max_items(), v5.max_block()), (Some(63), (1 << 26) - 1));
    assert_eq!(Layout::of(4).unwrap().max_items(), None);
    let far = [
        ElemId {
            block: COMPACT_MAX_BLOCK,
            offset: COMPACT_MAX_ITEMS,
        },
        ElemId {
            block: 1,
            offset: 1,
        },
        ElemId::NONE,
    ];
    let mut b = [0u8; 4];
    for id in far {
        v5.put_id(&mut b, 0, id);
        assert_eq!(v5.get_id(&b, 0), id);
    }
    // an element's neighbor item is named compactly too
    let e = Element {
        heap_block: u32::MAX - 1,
        heap_offset: 300,
        level: 15,
        flags: FLAG_DELETED,
        neighbors: far[0],
    };
    let item = encode_element(&e, v5, &[e.heap_tid()], &[0.5; 4]);
    assert_eq!(Element::decode(&item, v5), e);
}

#[test]
#[should_panic(expected = "more heap TIDs than a row list holds")]
fn short_row_lists_refuse_a_ninth_row() {
    let tids: Vec<HeapTid> = (1..=9).map(|o| HeapTid { block: 1, offset: o }).collect();
    let mut r = encode_row_list(ElemId::NONE, FIRST_ROW_LIST_TIDS, &[]);
    set_row_list_tids(&mut r, &tids);
}

#[test]
#[should_panic(expected = "past the compact format's limits")]
fn compact_ids_refuse_offsets_past_63() {
    let mut b = [0u8; 4];
    Layout::CURRENT.put_id(&mut b, 0, ElemId { block: 1, offset: 64 });
}

/// Level-0 elements (element and neighbor item, codes of `code_len`
/// bytes) one page holds in `layout`.
fn level0_per_page(layout: Layout, dims: usize, m: usize, code_len: usize) -> usize {
    let cost = strata_base::page_layout::item_cost;
    let pair = cost(layout.element_size(dims)) + cost(neighbors_size(layout, m, 0, code_len));
    let by_items = layout.max_items().map_or(usize::MAX, |n| n as usize / 2);
    ((BLOCK_SIZE - PAGE_HEADER_SIZE - TAG_SIZE) / pair).min(by_items)
}

/// The same for a plain HNSW layout — pgvector's: an element tuple of
/// 80 bytes of header and the vector, a neighbor tuple of 4 bytes and
/// 2m 6-byte ids.
fn plain_per_page(dims: usize, m: usize) -> usize {
    let cost = strata_base::page_layout::item_cost;
    (BLOCK_SIZE - PAGE_HEADER_SIZE - TAG_SIZE) / (cost(80 + 4 * dims) + cost(4 + 6 * capacity(m, 0)))
}

#[test]
fn version_5_packs_more_elements_per_page() {
    // m = 16, level 0, full-width codes (code_bits_for): a plain layout
    // holds 10 of 128 dimensions per page and 16 of GloVe's 50
    let (v4, v5) = (Layout::of(4).unwrap(), Layout::CURRENT);
    let code_len = |dims| code_bits_for(dims, 16, usize::MAX) as usize / 8 + 4;
    assert_eq!(plain_per_page(128, 16), 10);
    assert_eq!(level0_per_page(v4, 128, 16, code_len(128)), 5);
    assert_eq!(level0_per_page(v5, 128, 16, code_len(128)), 6);
    assert_eq!(plain_per_page(50, 16), 16);
    assert_eq!(level0_per_page(v4, 50, 16, code_len(50)), 8);
    assert_eq!(level0_per_page(v5, 50, 16, code_len(50)), 10);
    // a page of small elements stops at 63 items: 31 elements
    assert_eq!(level0_per_page(v5, 2, 4, 0), 31);
}

#[test]
fn id_sets_hold_what_they_are_given() {
    let mut set = IdSet::default();
    for block in 0..300u32 {
        for offset in 1..=40u16 {
            assert!(set.insert(ElemId { block, offset }));
        }
    }
    assert_eq!(set.len(), 12_000);
    assert!(set.contains(&ElemId {
        block: 299,
        offset: 40
    }));
    assert!(!set.contains(&ElemId {
        block: 300,
        offset: 1
    }));
}

#[test]
fn largest_vectors_fit_a_page() {
    let free = BLOCK_SIZE - PAGE_HEADER_SIZE - TAG_SIZE - 4;
    assert!(Layout::CURRENT.element_size(MAX_DIMS) <= free);
    assert!(Layout::CURRENT.with_scalar(Scalar::Binary16).element_size(MAX_HALF_DIMS) <= free);
    assert!(Layout::CURRENT.with_scalar(Scalar::Binary16).element_size(MAX_HALF_DIMS + 100) > free);
    assert!(Layout::CURRENT.with_scalar(Scalar::Bit).element_size(MAX_BIT_DIMS) <= free);
    for m in [2, 16, 38, 39, 100] {
        let bits = code_bits_for(2000, m, usize::MAX) as usize;
        let size = neighbors_size(Layout::of(4).unwrap(), m, max_level(m) as usize, bits / 8 + 4);
        assert!(size <= free, "m = {m}");
    }
    assert_eq!((max_level(16), max_level(39), max_level(100)), (15, 15, 5));
    // code widths: capped by the padded dimensions and by the list's room
    assert_eq!(code_bits_for(50, 16, 128), 64);
    assert_eq!(code_bits_for(128, 16, 128), 128);
    assert_eq!(code_bits_for(1536, 16, 1000), 480);
    assert_eq!(code_bits_for(1536, 100, 1000), 48);
    assert_eq!(code_bits_for(1536, 500, 1000), 0);
}

#[test]
fn sparse_elements_hold_their_slots_and_differ_in_size() {
    use strata_vector_core::sparse::{Slots, Sparse};
    let sparse = Layout {
        version: 8,
        scalar: Scalar::Sparse,
    };
    let e = Element {
        heap_block: 9,
        heap_offset: 3,
        level: 1,
        flags: 0,
        neighbors: ElemId { block: 4, offset: 2 },
    };
    let tid = |block, offset| HeapTid { block, offset };
    let v = Sparse {
        dim: 1_000_000_000,
        indices: vec![0, 17, 999_999_999],
        values: vec![1.5, -2.0, 3.25e-3],
    };
    let slots = Slots::encode(v.view());
    let item = encode_element(&e, sparse, &[tid(9, 3)], &slots);
    assert_eq!(item.len(), sparse.vector_offset() + 4 * 7, "nnz, 3 indices, 3 values");
    // the typmod's dimension count does not size a sparse element
    assert!(element_fits(&item, sparse, 1_000_000_000));
    assert!(!element_fits(&item[..item.len() - 1], sparse, 1_000_000_000));
    assert!(!element_fits(&item[..sparse.vector_offset() + 2], sparse, 5));
    let back = element_floats(&item, sparse, 1_000_000_000);
    assert_eq!(Slots::new(&back).unwrap().to_sparse(v.dim), v);
    assert_eq!(element_floats_in(&item, sparse, 0, &mut Vec::new()).len(), 7);
    assert!(element_holds(&item, sparse, &slots));
    let none = Sparse { dim: 5, indices: vec![], values: vec![] };
    let empty = encode_element(&e, sparse, &[tid(9, 3)], &Slots::encode(none.view()));
    assert_eq!(empty.len(), sparse.vector_offset() + 4);
    assert!(element_fits(&empty, sparse, 5));
    // a count past the limit is not an element
    let mut bad = item.clone();
    bad[sparse.vector_offset()..sparse.vector_offset() + 4].copy_from_slice(&(MAX_SPARSE_NNZ as u32 + 1).to_le_bytes());
    assert!(!element_fits(&bad, sparse, 5));
    assert!(sparse.stores(Scalar::Sparse) && !Layout::of(7).unwrap().stores(Scalar::Sparse));
    assert_eq!(Layout::of(8).unwrap().with_scalar(Scalar::Sparse), sparse);
    // the largest sparse element fits a page with its neighbor item's room to spare
    let free = BLOCK_SIZE - PAGE_HEADER_SIZE - TAG_SIZE - 4;
    assert!(sparse.element_size(1 + 2 * MAX_SPARSE_NNZ) + 4 <= free);
}

#[test]
fn vector_columns_are_stored_rounded_from_version_9() {
    let e = Element {
        heap_block: 3,
        heap_offset: 4,
        level: 0,
        flags: 0,
        neighbors: ElemId { block: 3, offset: 1 },
    };
    let tid = |block, offset| HeapTid { block, offset };
    let rounded = Layout::CURRENT.for_column(Scalar::Float4);
    assert_eq!(rounded.scalar, Scalar::Rounded16);
    assert_eq!(Layout::of(8).unwrap().for_column(Scalar::Float4).scalar, Scalar::Float4);
    assert_eq!(Layout::CURRENT.for_column(Scalar::Binary16).scalar, Scalar::Binary16);
    // 24-byte header, slack and exponent, two bytes a coordinate: at 128
    // dimensions 286 bytes where float4 takes 536
    assert_eq!(rounded.element_size(128), 24 + 6 + 256);
    let v = [0.1f32, -2.5, 300.0];
    let item = encode_element(&e, rounded, &[tid(8, 9)], &v);
    assert!(is_element_of(&item, rounded, 3));
    let h = element_vector(&item, rounded, 3);
    assert_eq!(h, vec![0.099975586, -2.5, 300.0]);
    assert_eq!(element_floats_in(&item, rounded, 3, &mut Vec::new()), &h[..]);
    assert_eq!(&as_stored(rounded, &v)[..], &h[..]);
    let slack = element_slack(&item, rounded, 3);
    assert!(slack > 0.0 && (slack as f64) >= (0.1f64 - 0.099975586f32 as f64).abs());
    // the same vector shares the element; another does not
    assert!(element_holds(&item, rounded, &v));
    assert!(!element_holds(&item, rounded, &[0.1, -2.5, 301.0]));
    // exactly stored vectors have no slack
    let exact = encode_element(&e, rounded, &[tid(8, 9)], &[1.0, 2.0, 255.0]);
    assert_eq!(element_slack(&exact, rounded, 3), 0.0);
    assert_eq!(element_slack(&exact, Layout::of(8).unwrap(), 3), 0.0);
    // a metapage says so in byte 46, read only from version 9
    let mut b = vec![0u8; META_SIZE];
    let m = Meta {
        version: 9,
        dims: 3,
        m: 16,
        ef_construction: 64,
        metric: 1,
        entry: ElemId::NONE,
        entry_level: -1,
        elements: 0,
        insert_block: 0,
        code_bits: 0,
        code_seed: 0,
        code_scale: 0,
        scalar: Scalar::Rounded16,
    };
    m.encode(&mut b);
    assert_eq!(Meta::decode(&b).and_then(|d| d.layout()), Some(rounded));
    put_u32(&mut b, 4, 8);
    assert_eq!(Meta::decode(&b).map(|d| d.scalar), Some(Scalar::Float4));
}
