//! Transparent huge pages for large arrays read at random (an HNSW build's
//! vectors and lists): one `madvise` pair, Linux only, advice only.

/// Asks the kernel to back `data`'s memory with transparent huge pages, now
/// (`MADV_COLLAPSE`) and for what is faulted in later (`MADV_HUGEPAGE`):
/// an index build reads vectors and lists from anywhere in hundreds of megabytes,
/// and with 4 KiB pages nearly every such read also missed the TLB (on
/// SIFT-like 1M, 42% of the search loop's time sat on one prefetch
/// instruction). Only whole 2 MiB pages inside `data` are advised; the
/// contents are unchanged, and a kernel that declines (THP off, no memory
/// to compact) leaves the build as it was.
pub fn prefer_huge_pages<T>(data: &[T]) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const HUGE: usize = 2 << 20;
        let start = data.as_ptr() as usize;
        let end = start + std::mem::size_of_val(data);
        let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if to <= from {
            return;
        }
        // SAFETY: advice on whole pages inside memory `data` borrows; neither
        // call changes what the memory holds or who owns it, and failures
        // (ignored) change nothing.
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_COLLAPSE);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = data;
}
