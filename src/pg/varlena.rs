//! Varlena allocation and detoasting.

use pgrx::pg_sys;

/// Size of the 4-byte varlena length header.
pub const VARHDRSZ: usize = 4;

/// Detoasts (decompresses, fetches out of line, expands short headers) a varlena
/// datum. The result is 4-byte-header, MAXALIGNed when copied, and lives in the
/// current memory context.
///
/// # Safety
/// `datum` must be a non-null varlena datum.
pub unsafe fn detoast(datum: pg_sys::Datum) -> *mut pg_sys::varlena {
    // SAFETY: the caller guarantees `datum` points to a varlena.
    unsafe { pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) }
}

/// Total size (header included) of a 4-byte-header varlena.
///
/// # Safety
/// `ptr` must point to a detoasted varlena.
pub unsafe fn varsize(ptr: *const pg_sys::varlena) -> usize {
    // SAFETY: the caller guarantees a 4-byte header, whose low 30 bits (after the
    // shift on little-endian) hold the total length.
    let header = unsafe { (ptr as *const u32).read() };
    (header >> 2) as usize & 0x3FFF_FFFF
}

/// Allocates a zeroed varlena of `total` bytes (header included) in the current
/// memory context and sets its length word.
pub fn alloc_zeroed(total: usize) -> *mut pg_sys::varlena {
    assert!((VARHDRSZ..0x3FFF_FFFF).contains(&total));
    // SAFETY: palloc0 either returns a valid allocation or raises an ERROR.
    let ptr = unsafe { pg_sys::palloc0(total) } as *mut u32;
    // SAFETY: `ptr` is a fresh allocation of at least 4 bytes; SET_VARSIZE on a
    // little-endian machine stores `len << 2` in the first word.
    unsafe { ptr.write((total as u32) << 2) };
    ptr as *mut pg_sys::varlena
}
