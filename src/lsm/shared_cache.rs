//! The server's cache of decoded compressed pages (`strata.lsm_block_cache`
//! MB of shared memory, [`super::block_cache`] partitions with an LWLock
//! each). Point lookups on compact run pages ([`super::version_data`]) read
//! a version's row from here instead of checking and decompressing its
//! page; a miss decodes the page once and stores all its rows.
//!
//! Keys. An entry must always be the rows of the blob its key names. The
//! key is the relation's file (tablespace, database, relfilenumber), the
//! block, the page's run and first rowid — which a compact page keeps for
//! as long as it belongs to its run, stamps and blob moves included (see
//! `version_data::Key`) — and the blob's 16-byte header, whose crc covers
//! the compressed frame and the page's rowids. A relfilenumber used again
//! after a DROP would need the same block, run, first rowid, lengths and
//! crc to be mistaken for the old one. Entries are never invalidated: what
//! a key names never changes, and the ring overwrites what is no longer read.
//!
//! Only with `strata` in `shared_preload_libraries` (shared memory is given
//! out at server start); otherwise, or with the setting at 0, lookups
//! decode as before.

use super::block_cache::{self, Key, Partition, View};
use super::gucs;
use crate::pg::shmem::{self, LockGuard};
use pgrx::pg_sys;
use std::ffi::CStr;

const PARTITIONS: usize = 16;
const TRANCHE: &CStr = c"strata_block_cache";
const NAME: &CStr = c"strata block cache";

/// Where the cache is in this process (set by the postmaster at startup;
/// backends inherit it when they fork).
#[derive(Clone, Copy)]
struct Shared {
    base: *mut u8,
    part_len: usize,
    locks: *mut pg_sys::LWLockPadded,
}

static mut SHARED: Option<Shared> = None;

fn shared() -> Option<Shared> {
    // SAFETY: written once by the startup hook before any backend exists.
    unsafe { SHARED }
}

/// Bytes of one partition for a cache of `total` bytes (8-aligned).
fn part_len(total: usize) -> usize {
    (total / PARTITIONS) & !7
}

/// Sets up the cache when preloading with a non-zero size (`_PG_init`).
pub fn register() {
    if shmem::preloading() && gucs::block_cache_bytes() > 0 {
        shmem::install(request, startup);
    }
}

fn request() {
    shmem::request(part_len(gucs::block_cache_bytes()) * PARTITIONS, TRANCHE, PARTITIONS as i32);
}

fn startup() {
    let part_len = part_len(gucs::block_cache_bytes());
    // zeroed partitions are empty
    let base = shmem::init_zeroed(NAME, part_len * PARTITIONS);
    let locks = shmem::named_locks(TRANCHE);
    // SAFETY: the postmaster's single thread, before backends fork.
    unsafe { SHARED = Some(Shared { base, part_len, locks }) };
}

/// The partition of hash `h` and its memory.
fn partition(s: &Shared, h: u64) -> (usize, *mut u8) {
    let i = (h as usize) % PARTITIONS;
    // SAFETY: i < PARTITIONS partitions of part_len bytes from base.
    (i, unsafe { s.base.add(i * s.part_len) })
}

/// Words of a key that place its entry: the page's file and block (see
/// `block_cache`'s "Keys"), known before the page is read.
pub const PLACE_WORDS: usize = 2;

/// The hash that places the entry of a key, or of its first
/// [`PLACE_WORDS`] words.
fn place(words: &[u64]) -> u64 {
    block_cache::hash_words(&words[..PLACE_WORDS])
}

/// Starts loading the index slots where the page that `words` (a key's
/// first [`PLACE_WORDS`]) names would be, ahead of a lookup: a point
/// lookup calls this before it reads the page, so that this cache miss and
/// the page's overlap.
pub fn prefetch(words: [u64; PLACE_WORDS]) {
    let Some(s) = shared() else {
        return;
    };
    let h = place(&words);
    let (_, mem) = partition(&s, h);
    let at = block_cache::first_slot_at(s.part_len, h);
    // a hint: computes an address inside the partition, reads nothing
    strata_base::prefetch::lines(mem.wrapping_add(at) as *const i8, 2);
}

/// Whether lookups go through the cache.
pub fn enabled() -> bool {
    shared().is_some()
}

/// `f` of the rest of item `item` of the page `key` names, run under the
/// partition's lock (so `f` copies it where it goes — no copy in between);
/// `Err(admit)` when it is not there, `admit` when the page missed recently
/// too: store it ([`put`]) after decoding it (see `block_cache`'s
/// "Admission").
pub fn with_rest<T>(key: &Key, item: usize, f: impl FnOnce(&[u8]) -> T) -> Result<T, bool> {
    let Some(s) = shared() else {
        return Err(false);
    };
    let h = place(key);
    let (i, mem) = partition(&s, h);
    // SAFETY: the cache's lock array, one per partition; `i` is a partition.
    let _lock = unsafe { LockGuard::acquire(s.locks, i, false) };
    // SAFETY: the partition's memory, read under its lock in shared mode
    // (writers take it exclusively).
    let view = View::of(unsafe { std::slice::from_raw_parts(mem, s.part_len) });
    match view.rest(key, h, item) {
        Some(r) => Ok(f(r)),
        None => Err(view.second_miss(h)),
    }
}

/// Stores the rests of a page (`rests[i]` is item i + 1's) under `key`.
pub fn put(key: &Key, rests: &[&[u8]]) {
    let Some(s) = shared() else {
        return;
    };
    let head = block_cache::entry_head(rests);
    let mut parts = Vec::with_capacity(rests.len() + 1);
    parts.push(&head[..]);
    parts.extend_from_slice(rests);
    let h = place(key);
    let (i, mem) = partition(&s, h);
    // SAFETY: the cache's lock array, one per partition; `i` is a partition.
    let _lock = unsafe { LockGuard::acquire(s.locks, i, true) };
    // SAFETY: the partition's memory, under its lock in exclusive mode.
    let mut p = Partition::of(unsafe { std::slice::from_raw_parts_mut(mem, s.part_len) });
    p.put(key, h, &parts);
}

/// The cache's size in bytes and its hits, misses and stored pages so far
/// (since server start); None without a cache.
pub fn stats() -> Option<(usize, u64, u64, u64)> {
    use std::sync::atomic::Ordering::Relaxed;
    let s = shared()?;
    let (mut hits, mut misses, mut inserts) = (0, 0, 0);
    for i in 0..PARTITIONS {
        // SAFETY: the header of partition i (its counters are atomics).
        let h = block_cache::header_of(unsafe {
            std::slice::from_raw_parts(s.base.add(i * s.part_len), block_cache::HEADER_SIZE)
        });
        hits += h.hits.load(Relaxed);
        misses += h.misses.load(Relaxed);
        inserts += h.inserts.load(Relaxed);
    }
    Some((s.part_len * PARTITIONS, hits, misses, inserts))
}
