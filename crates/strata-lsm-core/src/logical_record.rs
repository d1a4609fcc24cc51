//! Row-level records for logical decoding of `lsm` tables (pure: byte
//! layouts only).
//!
//! `lsm`'s page records (see [`super::wal_record`]) say how pages changed,
//! not which rows did: an UPDATE's old version may be a header stamp on
//! another page, a DELETE carries no row at all. So when `wal_level =
//! logical` (and only then) every row change also writes what decoding
//! needs: rows inserted into L0 mark their INSERT page record
//! ([`insert_mark`]), which already holds them whole; an UPDATE whose new
//! version and stamp are one UPDATE_SHORT record, and a DELETE's stamp,
//! add only the old row to their record ([`old_row_mark`]); every other
//! change writes one of the records below, in heap's terms: the new row as a heap tuple (TOAST pointers
//! kept: the TOAST table is a heap, whose chunks logical decoding reassembles
//! as for heap), and for UPDATE and DELETE the old row's replica identity —
//! its key columns, or the whole row under `REPLICA IDENTITY FULL`. The
//! resource manager's `rm_decode` turns each into reorder-buffer changes, so
//! every output plugin sees what it sees for heap. They change no page:
//! redo skips them. All integers little-endian; main data only, no blocks
//! ([lsm-format.md] "Logical decoding records").
//!
//! ```text
//! every record:
//! +------------+----------+------------+-----------+-------------+
//! | version u8 | flags u8 | spcOid u32 | dbOid u32 | relNumber u32|  14 bytes
//! +------------+----------+------------+-----------+-------------+
//! then
//! ROW_INSERT  0x60  count u32, then `count` tuples (rows loaded straight into
//!                   runs, COPY's batches there: one record per batch)
//! ROW_UPDATE  0x70  the new tuple, then the old one when flags has OLD
//! ROW_DELETE  0x80  the old tuple when flags has OLD
//! ROW_CONFIRM 0x90  nothing: the speculative insertion before it is confirmed
//!
//! tuple (heap's xl_heap_header, then the tuple from t_bits on):
//! +-------------+---------------+--------------+---------+--------------------+
//! | len u32     | infomask2 u16 | infomask u16 | hoff u8 | len bytes: the     |
//! |             |               |              |         | tuple from byte 23 |
//! +-------------+---------------+--------------+---------+--------------------+
//!
//! flags: 0x01 SPECULATIVE (ROW_INSERT of one tuple for ON CONFLICT),
//!        0x02 OLD (an old tuple follows), 0x04 KEY_ONLY (the old tuple
//!        holds only the replica identity's columns), 0x08 SUPER (ROW_DELETE
//!        taking back a speculative insertion), 0x10 MORE (ROW_INSERT, and
//!        the INSERT mark: more rows of the same multi-insert follow in
//!        later records, so decoding keeps the TOAST chunks logged before
//!        them — heap's XLH_INSERT_LAST_IN_MULTI, inverted so that records
//!        without the flag keep their meaning)
//! ```

use super::compressed_page::CodecError;

pub const ROW_INSERT: u8 = 0x60;
pub const ROW_UPDATE: u8 = 0x70;
pub const ROW_DELETE: u8 = 0x80;
pub const ROW_CONFIRM: u8 = 0x90;

/// The layout version written in every record.
pub const VERSION: u8 = 1;

const SPECULATIVE: u8 = 0x01;
const OLD: u8 = 0x02;
const KEY_ONLY: u8 = 0x04;
const SUPER: u8 = 0x08;
const MORE: u8 = 0x10;

/// `SizeofHeapTupleHeader`: where a tuple's null bitmap starts.
pub const TUPLE_HEADER_BYTES: usize = 23;
const PREFIX: usize = 14;
const TUPLE_PREFIX: usize = 9;

/// What an L0 INSERT record's mark says of its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsertMark {
    /// One speculative insertion (ON CONFLICT).
    pub speculative: bool,
    /// More rows of the same multi-insert follow in later records (MORE).
    pub more: bool,
}

/// The main data an L0 INSERT page record carries when its versions are
/// new rows for logical decoding (single-row inserts and COPY into L0):
/// `| version u8 | flags u8 (SPECULATIVE, MORE) |`. Decoding then reads the
/// rows from the record's block data (kept under full-page images) instead
/// of a ROW_INSERT repeating them.
pub fn insert_mark(mark: InsertMark) -> [u8; 2] {
    let mut flags = if mark.speculative { SPECULATIVE } else { 0 };
    if mark.more {
        flags |= MORE;
    }
    [VERSION, flags]
}

/// [`insert_mark`]'s reading: None for an INSERT record without one (a
/// version an UPDATE or a rewrite added).
pub fn read_insert_mark(main: &[u8]) -> Result<Option<InsertMark>, CodecError> {
    match main {
        [] => Ok(None),
        [VERSION, flags] => Ok(Some(InsertMark {
            speculative: flags & SPECULATIVE != 0,
            more: flags & MORE != 0,
        })),
        [v, _] => Err(malformed(&format!("unknown version {v}"))),
        _ => Err(malformed("INSERT mark length")),
    }
}

/// The main data a page record carries at `wal_level = logical` when it is
/// also a row change's decoding: an UPDATE_SHORT (its new version is the
/// new row) or the HEADERS record of a DELETE's stamp. `| version u8 |
/// flags u8 (OLD, KEY_ONLY) | old tuple when OLD |`: the old row per replica
/// identity. The record keeps its block data under full-page images.
pub fn old_row_mark(old: Option<OldRow<'_>>) -> Vec<u8> {
    let mut out = vec![VERSION, 0];
    if let Some(o) = old {
        out[1] = OLD | if o.key_only { KEY_ONLY } else { 0 };
        o.row.encode(&mut out);
    }
    out
}

/// [`old_row_mark`]'s reading: None for a record without one, else the old
/// row it names (if any).
#[allow(clippy::type_complexity)]
pub fn read_old_row_mark(main: &[u8]) -> Result<Option<Option<OldRow<'_>>>, CodecError> {
    let (version, flags) = match main {
        [] => return Ok(None),
        [v, f, ..] => (*v, *f),
        _ => return Err(malformed("old row mark length")),
    };
    if version != VERSION {
        return Err(malformed(&format!("unknown version {version}")));
    }
    let mut at = 2;
    let old = if flags & OLD != 0 {
        Some(OldRow {
            key_only: flags & KEY_ONLY != 0,
            row: Row::decode(main, &mut at)?,
        })
    } else {
        None
    };
    if at != main.len() {
        return Err(malformed("bytes after the old row mark"));
    }
    Ok(Some(old))
}

/// Whether `info` is one of these records.
pub fn is_row_record(info: u8) -> bool {
    matches!(info, ROW_INSERT | ROW_UPDATE | ROW_DELETE | ROW_CONFIRM)
}

/// The relation a record is about (`RelFileLocator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locator {
    pub spc: u32,
    pub db: u32,
    pub rel: u32,
}

/// A row as heap logs it: the header fields decoding needs, and the tuple's
/// bytes from its null bitmap on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    pub infomask2: u16,
    pub infomask: u16,
    pub hoff: u8,
    pub data: &'a [u8],
}

impl<'a> Row<'a> {
    /// The row of a formed heap tuple's bytes (`t_data`, `t_len` long).
    pub fn of_tuple(bytes: &'a [u8]) -> Result<Row<'a>, CodecError> {
        if bytes.len() < TUPLE_HEADER_BYTES {
            return Err(malformed("tuple shorter than its header"));
        }
        Ok(Row {
            infomask2: u16::from_ne_bytes([bytes[18], bytes[19]]),
            infomask: u16::from_ne_bytes([bytes[20], bytes[21]]),
            hoff: bytes[22],
            data: &bytes[TUPLE_HEADER_BYTES..],
        })
    }

    /// A tuple's bytes again, as decoding hands them to the reorder buffer:
    /// a zeroed header (no xmin, xmax or ctid: "not a disk based tuple")
    /// with the logged fields, then the data.
    pub fn write_tuple(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.tuple_len(), "buffer sized by tuple_len");
        out[..TUPLE_HEADER_BYTES].fill(0);
        out[18..20].copy_from_slice(&self.infomask2.to_ne_bytes());
        out[20..22].copy_from_slice(&self.infomask.to_ne_bytes());
        out[22] = self.hoff;
        out[TUPLE_HEADER_BYTES..].copy_from_slice(self.data);
    }

    /// `t_len` of the tuple [`Row::write_tuple`] writes.
    pub fn tuple_len(&self) -> usize {
        TUPLE_HEADER_BYTES + self.data.len()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.infomask2.to_le_bytes());
        out.extend_from_slice(&self.infomask.to_le_bytes());
        out.push(self.hoff);
        out.extend_from_slice(self.data);
    }

    fn decode(data: &'a [u8], at: &mut usize) -> Result<Row<'a>, CodecError> {
        let head = data
            .get(*at..*at + TUPLE_PREFIX)
            .ok_or_else(|| malformed("tuple header"))?;
        let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
        let body = data
            .get(*at + TUPLE_PREFIX..*at + TUPLE_PREFIX + len)
            .ok_or_else(|| malformed("tuple length"))?;
        *at += TUPLE_PREFIX + len;
        Ok(Row {
            infomask2: u16::from_le_bytes([head[4], head[5]]),
            infomask: u16::from_le_bytes([head[6], head[7]]),
            hoff: head[8],
            data: body,
        })
    }
}

/// The old row of an UPDATE or DELETE, per the table's replica identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OldRow<'a> {
    /// Only the identity's columns are set (DEFAULT / USING INDEX); false:
    /// the whole row (FULL).
    pub key_only: bool,
    pub row: Row<'a>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// `more`: more rows of the same multi-insert follow in later records.
    Insert { speculative: bool, more: bool, rows: Vec<Row<'a>> },
    Update { new: Row<'a>, old: Option<OldRow<'a>> },
    Delete { old: Option<OldRow<'a>>, super_delete: bool },
    Confirm,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowRecord<'a> {
    pub locator: Locator,
    pub change: Change<'a>,
}

fn malformed(what: &str) -> CodecError {
    CodecError::Layout(format!("malformed strata_lsm row record: {what}"))
}

impl<'a> RowRecord<'a> {
    /// The record's info bits and main data.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let (info, mut flags) = match &self.change {
            Change::Insert { speculative, more, .. } => (
                ROW_INSERT,
                if *speculative { SPECULATIVE } else { 0 } | if *more { MORE } else { 0 },
            ),
            Change::Update { .. } => (ROW_UPDATE, 0),
            Change::Delete { super_delete, .. } => (ROW_DELETE, if *super_delete { SUPER } else { 0 }),
            Change::Confirm => (ROW_CONFIRM, 0),
        };
        let old = match &self.change {
            Change::Update { old, .. } | Change::Delete { old, .. } => *old,
            _ => None,
        };
        if let Some(o) = old {
            flags |= OLD | if o.key_only { KEY_ONLY } else { 0 };
        }
        let mut out = Vec::with_capacity(64);
        out.push(VERSION);
        out.push(flags);
        for v in [self.locator.spc, self.locator.db, self.locator.rel] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        match &self.change {
            Change::Insert { rows, .. } => {
                out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
                rows.iter().for_each(|r| r.encode(&mut out));
            }
            Change::Update { new, .. } => new.encode(&mut out),
            Change::Delete { .. } | Change::Confirm => {}
        }
        if let Some(o) = old {
            o.row.encode(&mut out);
        }
        (info, out)
    }

    pub fn decode(info: u8, data: &'a [u8]) -> Result<RowRecord<'a>, CodecError> {
        if data.len() < PREFIX {
            return Err(malformed("shorter than its prefix"));
        }
        if data[0] != VERSION {
            return Err(malformed(&format!("unknown version {}", data[0])));
        }
        let flags = data[1];
        let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let locator = Locator {
            spc: u32_at(2),
            db: u32_at(6),
            rel: u32_at(10),
        };
        let mut at = PREFIX;
        let old = |at: &mut usize| -> Result<Option<OldRow<'a>>, CodecError> {
            if flags & OLD == 0 {
                return Ok(None);
            }
            Ok(Some(OldRow {
                key_only: flags & KEY_ONLY != 0,
                row: Row::decode(data, at)?,
            }))
        };
        let change = match info {
            ROW_INSERT => {
                let n = data
                    .get(at..at + 4)
                    .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                    .ok_or_else(|| malformed("row count"))?;
                at += 4;
                if n > data.len() / TUPLE_PREFIX {
                    return Err(malformed("row count past the record"));
                }
                let rows = (0..n)
                    .map(|_| Row::decode(data, &mut at))
                    .collect::<Result<Vec<_>, _>>()?;
                Change::Insert {
                    speculative: flags & SPECULATIVE != 0,
                    more: flags & MORE != 0,
                    rows,
                }
            }
            ROW_UPDATE => {
                let new = Row::decode(data, &mut at)?;
                Change::Update { new, old: old(&mut at)? }
            }
            ROW_DELETE => Change::Delete {
                old: old(&mut at)?,
                super_delete: flags & SUPER != 0,
            },
            ROW_CONFIRM => Change::Confirm,
            other => return Err(malformed(&format!("unknown type {other:#x}"))),
        };
        if at != data.len() {
            return Err(malformed("bytes after the last tuple"));
        }
        Ok(RowRecord { locator, change })
    }

    /// What `pg_waldump` prints for the record.
    pub fn describe(&self) -> String {
        let l = self.locator;
        let rel = format!("rel {}/{}/{}", l.spc, l.db, l.rel);
        let old = |o: &Option<OldRow>| match o {
            Some(o) if o.key_only => ", old key",
            Some(_) => ", old row",
            None => "",
        };
        match &self.change {
            Change::Insert { speculative, more, rows } => format!(
                "{rel}: rows {}{}{}",
                rows.len(),
                if *speculative { ", speculative" } else { "" },
                if *more { ", more follow" } else { "" }
            ),
            Change::Update { old: o, .. } => format!("{rel}{}", old(o)),
            Change::Delete { old: o, super_delete } => format!(
                "{rel}{}{}",
                old(o),
                if *super_delete { ", speculative insertion taken back" } else { "" }
            ),
            Change::Confirm => format!("{rel}: speculative insertion confirmed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple_bytes(infomask2: u16, infomask: u16, hoff: u8, data: &[u8]) -> Vec<u8> {
        let mut t = vec![0xAAu8; TUPLE_HEADER_BYTES];
        t[18..20].copy_from_slice(&infomask2.to_ne_bytes());
        t[20..22].copy_from_slice(&infomask.to_ne_bytes());
        t[22] = hoff;
        t.extend_from_slice(data);
        t
    }

    const LOC: Locator = Locator {
        spc: 1663,
        db: 16384,
        rel: 24576,
    };

    #[test]
    fn a_tuple_comes_back_with_its_fields_and_a_zeroed_header() {
        let t = tuple_bytes(3, 0x0902, 24, &[1, 0, 0, 0, 7, 7, 7, 7, 9]);
        let row = Row::of_tuple(&t).unwrap();
        assert_eq!((row.infomask2, row.infomask, row.hoff), (3, 0x0902, 24));
        let mut back = vec![0xFFu8; row.tuple_len()];
        row.write_tuple(&mut back);
        assert_eq!(&back[..18], &[0u8; 18], "no xmin, xmax, cid or ctid");
        assert_eq!(&back[18..], &t[18..]);
        assert!(Row::of_tuple(&t[..20]).is_err());
    }

    #[test]
    fn every_change_round_trips() {
        let a = tuple_bytes(2, 0x0800, 24, &[0, 1, 2, 3, 4, 5, 6, 7]);
        let b = tuple_bytes(2, 0x0801, 32, &[0xF0; 13]);
        let (ra, rb) = (Row::of_tuple(&a).unwrap(), Row::of_tuple(&b).unwrap());
        let changes = [
            Change::Insert {
                speculative: false,
                more: false,
                rows: vec![ra, rb, ra],
            },
            Change::Insert {
                speculative: false,
                more: true,
                rows: vec![ra, rb],
            },
            Change::Insert {
                speculative: true,
                more: false,
                rows: vec![rb],
            },
            Change::Insert {
                speculative: false,
                more: false,
                rows: vec![],
            },
            Change::Update { new: ra, old: None },
            Change::Update {
                new: ra,
                old: Some(OldRow { key_only: true, row: rb }),
            },
            Change::Delete {
                old: Some(OldRow { key_only: false, row: ra }),
                super_delete: false,
            },
            Change::Delete {
                old: None,
                super_delete: true,
            },
            Change::Confirm,
        ];
        for change in changes {
            let rec = RowRecord { locator: LOC, change };
            let (info, data) = rec.encode();
            assert!(is_row_record(info));
            assert_eq!(RowRecord::decode(info, &data).unwrap(), rec);
            assert!(!rec.describe().is_empty());
        }
    }

    #[test]
    fn old_row_marks_round_trip() {
        let t = tuple_bytes(2, 0x0800, 24, &[5; 12]);
        let old = OldRow {
            key_only: true,
            row: Row::of_tuple(&t).unwrap(),
        };
        let m = old_row_mark(Some(old));
        assert_eq!(read_old_row_mark(&m).unwrap(), Some(Some(old)));
        assert_eq!(read_old_row_mark(&old_row_mark(None)).unwrap(), Some(None));
        assert_eq!(read_old_row_mark(&[]).unwrap(), None);
        for cut in 1..m.len() {
            assert!(read_old_row_mark(&m[..cut]).is_err(), "cut at {cut}");
        }
        assert!(read_old_row_mark(&[VERSION + 1, 0]).is_err());
    }

    #[test]
    fn insert_marks_round_trip() {
        for speculative in [false, true] {
            for more in [false, true] {
                let m = InsertMark { speculative, more };
                assert_eq!(read_insert_mark(&insert_mark(m)).unwrap(), Some(m));
            }
        }
        // a mark written before MORE existed: the last of its multi-insert
        assert_eq!(
            read_insert_mark(&[VERSION, SPECULATIVE]).unwrap(),
            Some(InsertMark { speculative: true, more: false })
        );
        assert_eq!(read_insert_mark(&[]).unwrap(), None);
        assert!(read_insert_mark(&[VERSION + 1, 0]).is_err());
        assert!(read_insert_mark(&[VERSION]).is_err());
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let t = tuple_bytes(2, 0x0800, 24, &[9; 40]);
        let rec = RowRecord {
            locator: LOC,
            change: Change::Update {
                new: Row::of_tuple(&t).unwrap(),
                old: Some(OldRow {
                    key_only: true,
                    row: Row::of_tuple(&t).unwrap(),
                }),
            },
        };
        let (info, data) = rec.encode();
        for cut in 0..data.len() {
            assert!(RowRecord::decode(info, &data[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(RowRecord::decode(info, &longer).is_err());
        let mut newer = data.clone();
        newer[0] = VERSION + 1;
        assert!(RowRecord::decode(info, &newer).is_err());
        assert!(RowRecord::decode(0x10, &data).is_err());
        // a row count no record could hold
        let mut ins = RowRecord {
            locator: LOC,
            change: Change::Insert {
                speculative: false,
                more: false,
                rows: vec![],
            },
        }
        .encode()
        .1;
        ins[PREFIX..PREFIX + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(RowRecord::decode(ROW_INSERT, &ins).is_err());
    }
}
