//! A column's storage layout (`attlen`, `attalign`, `attbyval`) and the
//! length of a stored varlena value: what the column-wise encoders
//! ([`super::columnar`], [`super::column_dict`]) both read rows with. Pure.

/// One column's storage layout (`pg_attribute`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// `attlen`: > 0 fixed, -1 varlena, -2 cstring.
    pub len: i16,
    /// `attalign` in bytes: 1, 2, 4 or 8.
    pub align: u8,
    pub byval: bool,
}

impl Attr {
    /// From `(attlen, attalign in bytes, attbyval)` (see `pg::rel::attr_layouts`).
    pub fn from_layout((len, align, byval): (i16, u8, bool)) -> Attr {
        Attr { len, align, byval }
    }
}

/// Length of the varlena at the start of `v` (header included), for the
/// kinds a stored tuple can hold; None for anything else.
pub fn varlena_len(v: &[u8]) -> Option<usize> {
    let b = *v.first()?;
    if b == 0x01 {
        // 1-byte header, external: only on-disk TOAST pointers (tag 18,
        // varatt_external of 16 bytes) are stored in tuples
        return (v.get(1) == Some(&18)).then_some(18);
    }
    if b & 0x01 == 0x01 {
        return Some((b >> 1) as usize); // short, header included
    }
    let word = u32::from_le_bytes(v.get(..4)?.try_into().ok()?);
    Some((word >> 2) as usize)
}
