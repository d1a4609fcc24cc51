//! Cache-line prefetch hints: ask the CPU to start loading memory a few
//! steps before it is read, so that independent misses overlap (the
//! parallel HNSW build's neighbour lists, the code scans, the shared block
//! cache's slots during an lsm point lookup). A no-op off x86_64.

/// Asks the CPU to fetch `lines` cache lines from `p` on.
#[inline(always)]
pub fn lines(p: *const i8, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    for k in 0..lines {
        // SAFETY: a prefetch is a hint: it never faults, whatever the
        // address, and reads nothing into the program.
        unsafe {
            std::arch::x86_64::_mm_prefetch(p.wrapping_add(64 * k), std::arch::x86_64::_MM_HINT_T0)
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, lines);
}
