//! `bit` datums (PostgreSQL's `VarBit`): borrowing a detoasted argument and
//! building a result, for the bit functions pgvector defines.
//!
//! ```text
//!  0       4                8                      8 + ceil(bit_len / 8)
//!  +-------+----------------+----------------------+
//!  | vl_len| bit_len  int32 | bits, MSB first      |
//!  +-------+----------------+----------------------+
//! ```
//!
//! [`Bits`] borrows an argument for the duration of a call; [`BitBuf`] is a
//! palloc'd result. Both map to the SQL type `bit`.

use super::bits;
use crate::pg::varlena::{self, VARHDRSZ};
use pgrx::pg_sys;
use std::marker::PhantomData;

/// Bytes before the first bit: varlena header and bit length.
const HEADER_SIZE: usize = VARHDRSZ + 4;

/// A `bit` argument, detoasted and borrowed for the current call.
#[derive(Clone, Copy)]
pub struct Bits<'a> {
    len: u32,
    bytes: &'a [u8],
}

impl<'a> Bits<'a> {
    /// Length in bits.
    pub fn bit_len(&self) -> u32 {
        self.len
    }

    /// The packed bits (`ceil(len / 8)` bytes, unused low bits zero).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Reads a bit string from a datum.
    ///
    /// # Safety
    /// `datum` must be a non-null `bit` or `varbit` datum that outlives `'a`.
    pub unsafe fn from_raw_datum(datum: pg_sys::Datum) -> Bits<'a> {
        // SAFETY: caller guarantees a VarBit; detoasting gives a 4-byte
        // header copy (or the original), int-aligned, whose bit length is
        // followed by ceil(len / 8) bytes within its varlena size.
        unsafe {
            let ptr = varlena::detoast(datum) as *const u8;
            let len = (ptr.add(VARHDRSZ) as *const i32).read() as u32;
            let n = bits::bytes_for(len as usize);
            debug_assert!(varlena::varsize(ptr as *const pg_sys::varlena) >= HEADER_SIZE + n);
            Bits {
                len,
                bytes: std::slice::from_raw_parts(ptr.add(HEADER_SIZE), n),
            }
        }
    }
}

/// A newly built `bit` value in palloc'd memory, ready to return.
pub struct BitBuf {
    ptr: *mut pg_sys::varlena,
    _not_send: PhantomData<*mut u8>,
}

impl BitBuf {
    /// A bit string of `len` bits whose packed bytes (`ceil(len / 8)`,
    /// zeroed) `fill` writes in place.
    pub fn filled(len: usize, fill: impl FnOnce(&mut [u8])) -> BitBuf {
        let n = bits::bytes_for(len);
        let ptr = varlena::alloc_zeroed(HEADER_SIZE + n);
        // SAFETY: `ptr` was just allocated with room for the header and `n`
        // bytes after it; palloc memory is MAXALIGNed.
        unsafe {
            let base = ptr as *mut u8;
            (base.add(VARHDRSZ) as *mut i32).write(len as i32);
            fill(std::slice::from_raw_parts_mut(base.add(HEADER_SIZE), n));
        }
        BitBuf {
            ptr,
            _not_send: PhantomData,
        }
    }

    pub fn into_datum(self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.ptr)
    }
}

super::sql_type::varlena_sql_type!(Bits, BitBuf, "bit", pg_sys::BITOID);
