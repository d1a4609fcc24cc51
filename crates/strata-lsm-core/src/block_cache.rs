//! A cache of decoded compressed pages (pure: the memory is handed in; the
//! shared-memory home, locks and keys are in [`super::shared_cache`]).
//!
//! A point lookup on a compressed run page must check the page's crc,
//! decompress its sections and rebuild its row: several microseconds for
//! one row, where heap reads it in place. LSM engines answer this with a
//! cache of decoded blocks (RocksDB's block cache); this is Strata's, one per
//! server in shared memory, split into partitions that each have a lock.
//!
//! A partition is a ring buffer of entries with a small open-addressing
//! index. An entry is written at the ring's head and is never changed; the
//! head only moves forward (an absolute byte count), so an entry is intact
//! as long as the head has not come round to it again — eviction is FIFO,
//! and a stale index slot is simply one whose entry was overwritten. An
//! entry never wraps: when it does not fit before the ring's end, the head
//! skips to the start.
//!
//! ```text
//!  partition = Header (64 bytes) | ghost u64 x 1024 | Bucket x nbuckets | ring (ring_len bytes)
//!  Bucket    = key u64 x 6 | pos u64 (absolute ring offset) | len u32 | used u32     (64 bytes)
//!  entry     = n u32 | (start u32, len u32) x n | row bytes         (a page's rests by item)
//! ```
//!
//! Admission. Storing a page costs decoding all of its rows; a table much
//! larger than the cache, read at random, would pay that on every lookup
//! and hit nothing. So a page is stored on its second miss: a miss leaves
//! the key's hash in a slot of the partition's ghost array (lossy, lock-free)
//! and a later miss that finds it there admits the page.
//!
//! Keys are opaque here; whoever makes them guarantees that one key always
//! names the same bytes (see [`super::shared_cache`]). The hash that places
//! an entry is the caller's too: hashing only the words of a key that are
//! known early (a page's file and block, before the page is read) lets the
//! caller prefetch the slots ([`first_slot_at`]) while it reads the rest of
//! the key;
//! entries that share those words then share their slots, which PROBE
//! allows for.

use std::sync::atomic::{AtomicU64, Ordering};

pub const KEY_WORDS: usize = 6;
pub type Key = [u64; KEY_WORDS];

/// Index slots probed for a key.
const PROBE: usize = 8;
/// Entries are placed at multiples of this.
const ALIGN: u64 = 8;

/// A partition's header: the ring's head and counters.
#[repr(C)]
pub struct Header {
    /// Bytes ever written to the ring (the next entry's absolute offset).
    head: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub inserts: AtomicU64,
    _pad: [u64; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Bucket {
    key: Key,
    pos: u64,
    len: u32,
    used: u32,
}

pub const HEADER_SIZE: usize = std::mem::size_of::<Header>();
/// Hashes of recent misses a partition remembers (see "Admission").
const GHOSTS: usize = 1024;
const GHOST_SIZE: usize = GHOSTS * 8;
pub const BUCKET_SIZE: usize = std::mem::size_of::<Bucket>();
const _: () = assert!(BUCKET_SIZE == 64, "a bucket is one cache line");

/// How a partition of `bytes` bytes is divided: `(nbuckets, ring_len)`.
/// One index slot per 2 KB of ring (pages decode to 8–40 KB; small ones
/// leave slots to spare).
pub fn geometry(bytes: usize) -> (usize, usize) {
    let usable = bytes.saturating_sub(HEADER_SIZE + GHOST_SIZE);
    let nbuckets = (usable / (2048 + BUCKET_SIZE)).max(PROBE);
    let ring = usable.saturating_sub(nbuckets * BUCKET_SIZE) & !(ALIGN as usize - 1);
    (nbuckets, ring)
}

/// A 64-bit hash of a key's words, or of its first ones (see "Keys"):
/// the splitmix64 finalizer over them.
pub fn hash_words(words: &[u64]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for w in words {
        h ^= *w;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
    }
    h ^= h >> 29;
    h.wrapping_mul(0x94D0_49BB_1331_11EB) ^ (h >> 32)
}

/// The header of the partition at `mem` (its first [`HEADER_SIZE`] bytes
/// are enough: counters are read without the partition's lock).
pub fn header_of(mem: &[u8]) -> &Header {
    assert!(mem.len() >= HEADER_SIZE && (mem.as_ptr() as usize).is_multiple_of(8), "a partition header");
    // SAFETY: HEADER_SIZE 8-aligned bytes; Header is atomics, valid for any bytes.
    unsafe { &*(mem.as_ptr() as *const Header) }
}

/// A partition seen through its memory, for reading (under a shared lock).
pub struct View<'a> {
    header: &'a Header,
    ghosts: &'a [AtomicU64],
    buckets: &'a [Bucket],
    ring: &'a [u8],
}

/// A partition seen through its memory, for writing (under an exclusive lock).
pub struct Partition<'a> {
    header: &'a Header,
    buckets: &'a mut [Bucket],
    ring: &'a mut [u8],
}

/// Whether bucket `b` names an entry the ring still holds, at head `head`.
fn intact(b: &Bucket, head: u64, ring_len: usize) -> bool {
    b.used != 0 && b.pos + b.len as u64 <= head && head <= b.pos + ring_len as u64
}

/// The `PROBE` index slots of `hash` among `n`.
fn slots(n: usize, hash: u64) -> impl Iterator<Item = usize> {
    let first = (hash >> 8) as usize % n;
    (0..PROBE.min(n)).map(move |i| (first + i) % n)
}

/// Byte offset, in a partition of `len` bytes, of the first index slot of
/// `hash` (a bucket is one cache line): what a caller prefetches ahead of a
/// lookup (see "Keys").
pub fn first_slot_at(len: usize, hash: u64) -> usize {
    let (nbuckets, _) = geometry(len);
    INDEX_AT + ((hash >> 8) as usize % nbuckets) * BUCKET_SIZE
}

/// Where a partition of `len` bytes has its index and ring: `(nbuckets,
/// ring offset, ring length)`; the index follows the header and ghosts.
fn split(len: usize) -> (usize, usize, usize) {
    let (nbuckets, ring_len) = geometry(len);
    (nbuckets, INDEX_AT + nbuckets * BUCKET_SIZE, ring_len)
}

const INDEX_AT: usize = HEADER_SIZE + GHOST_SIZE;

impl<'a> View<'a> {
    /// The partition laid out in `mem` (8-aligned; zeroed is empty).
    pub fn of(mem: &'a [u8]) -> View<'a> {
        assert_eq!(mem.as_ptr() as usize % 8, 0, "partition memory must be 8-aligned");
        let (nbuckets, ring_at, ring_len) = split(mem.len());
        let header = header_of(mem);
        // SAFETY: GHOSTS 8-aligned u64 after the header; atomics, shared.
        let ghosts = unsafe { std::slice::from_raw_parts(mem[HEADER_SIZE..].as_ptr() as *const AtomicU64, GHOSTS) };
        // SAFETY: nbuckets * BUCKET_SIZE bytes after the ghosts, 8-aligned;
        // Bucket is plain integers.
        let buckets = unsafe { std::slice::from_raw_parts(mem[INDEX_AT..].as_ptr() as *const Bucket, nbuckets) };
        View { header, ghosts, buckets, ring: &mem[ring_at..ring_at + ring_len] }
    }

    pub fn header(&self) -> &Header {
        self.header
    }

    /// The entry stored under `key`, if the ring still holds it.
    pub fn get(&self, key: &Key, hash: u64) -> Option<&'a [u8]> {
        let head = self.header.head.load(Ordering::Relaxed);
        let found = slots(self.buckets.len(), hash)
            .map(|i| &self.buckets[i])
            .find(|b| b.key == *key && intact(b, head, self.ring.len()));
        let counter = if found.is_some() { &self.header.hits } else { &self.header.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        let b = found?;
        let at = (b.pos % self.ring.len() as u64) as usize;
        Some(&self.ring[at..at + b.len as usize])
    }

    /// The rest of item `item` (1-based) in the entry stored under `key`
    /// (see [`entry_rest`]). The line holding the item's place in the
    /// entry's head is asked for before the head's count is read, so the
    /// two misses of a large entry overlap.
    pub fn rest(&self, key: &Key, hash: u64, item: usize) -> Option<&'a [u8]> {
        let entry = self.get(key, hash)?;
        let place = 4 + 8 * item.saturating_sub(1);
        strata_base::prefetch::lines(entry.as_ptr().wrapping_add(place) as *const i8, 1);
        entry_rest(entry, item)
    }

    /// Notes a miss of `hash`; true when the same hash missed recently
    /// (admit the page: see "Admission").
    pub fn second_miss(&self, hash: u64) -> bool {
        let slot = &self.ghosts[(hash >> 24) as usize % GHOSTS];
        slot.swap(hash, Ordering::Relaxed) == hash
    }
}

impl<'a> Partition<'a> {
    /// The partition laid out in `mem` (8-aligned; zeroed is empty).
    pub fn of(mem: &'a mut [u8]) -> Partition<'a> {
        assert_eq!(mem.as_ptr() as usize % 8, 0, "partition memory must be 8-aligned");
        let (nbuckets, ring_at, ring_len) = split(mem.len());
        let (head, rest) = mem.split_at_mut(INDEX_AT);
        let (index, rest) = rest.split_at_mut(ring_at - INDEX_AT);
        let head: &'a [u8] = head;
        let header = header_of(head);
        // SAFETY: as in View::of, exclusively borrowed.
        let buckets = unsafe { std::slice::from_raw_parts_mut(index.as_mut_ptr() as *mut Bucket, nbuckets) };
        Partition { header, buckets, ring: &mut rest[..ring_len] }
    }

    /// Stores `parts` (concatenated) under `key`, evicting the oldest
    /// entries the ring overwrites. False when the entry is too large for
    /// the ring (more than a quarter of it) or the key is already there.
    pub fn put(&mut self, key: &Key, hash: u64, parts: &[&[u8]]) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let ring_len = self.ring.len();
        if len == 0 || len > ring_len / 4 || len > u32::MAX as usize {
            return false;
        }
        let mut head = self.header.head.load(Ordering::Relaxed);
        let slots: Vec<usize> = slots(self.buckets.len(), hash).collect();
        if slots.iter().any(|&i| self.buckets[i].key == *key && intact(&self.buckets[i], head, ring_len)) {
            return false;
        }
        // the slot: a free or stale one, else the oldest entry's
        let victim = slots
            .iter()
            .copied()
            .find(|&i| !intact(&self.buckets[i], head, ring_len))
            .unwrap_or_else(|| *slots.iter().min_by_key(|&&i| self.buckets[i].pos).expect("PROBE > 0"));
        // place: never across the ring's end
        let at = (head % ring_len as u64) as usize;
        if at + len > ring_len {
            head += (ring_len - at) as u64;
        }
        let start = (head % ring_len as u64) as usize;
        let mut w = start;
        for p in parts {
            self.ring[w..w + p.len()].copy_from_slice(p);
            w += p.len();
        }
        self.buckets[victim] = Bucket { key: *key, pos: head, len: len as u32, used: 1 };
        let next = (head + len as u64).div_ceil(ALIGN) * ALIGN;
        self.header.head.store(next, Ordering::Relaxed);
        self.header.inserts.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// The bytes of an entry holding `rests` (a page's rests by item): the
/// entry's head, to be followed by the rests in order.
pub fn entry_head(rests: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * rests.len());
    out.extend_from_slice(&(rests.len() as u32).to_le_bytes());
    let mut start = 4 + 8 * rests.len() as u32;
    for r in rests {
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        start += r.len() as u32;
    }
    out
}

/// The rest of item `item` (1-based) in an entry made by [`entry_head`].
pub fn entry_rest(entry: &[u8], item: usize) -> Option<&[u8]> {
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(entry.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let n = u32_at(0)?;
    if item == 0 || item > n {
        return None;
    }
    let (start, len) = (u32_at(4 + 8 * (item - 1))?, u32_at(8 + 8 * (item - 1))?);
    entry.get(start..start.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(bytes: usize) -> Vec<u64> {
        vec![0u64; bytes / 8]
    }

    fn bytes(m: &mut [u64]) -> &mut [u8] {
        // SAFETY: a u64 buffer viewed as bytes (8-aligned, same length in bytes).
        unsafe { std::slice::from_raw_parts_mut(m.as_mut_ptr() as *mut u8, m.len() * 8) }
    }

    fn key(i: u64) -> Key {
        [i, i * 3, 7, 1, 2, 9]
    }

    #[test]
    fn entries_come_back_until_the_ring_overwrites_them() {
        let mut m = mem(64 * 1024);
        let (_, ring) = geometry(64 * 1024);
        let entry = |i: u64| vec![i as u8; 3000 + i as usize];
        for i in 0..40u64 {
            assert!(Partition::of(bytes(&mut m)).put(&key(i), hash_words(&key(i)), &[&entry(i)]));
            let v = View::of(bytes(&mut m));
            assert_eq!(v.get(&key(i), hash_words(&key(i))), Some(&entry(i)[..]));
        }
        let p = View::of(bytes(&mut m));
        // what is left are the newest entries that fit in the ring, intact
        let mut held = 0;
        for i in 0..40u64 {
            if let Some(e) = p.get(&key(i), hash_words(&key(i))) {
                assert_eq!(e, &entry(i)[..]);
                held += e.len();
            }
        }
        assert!(held <= ring && held > ring / 2, "held {held} of {ring}");
        assert!(p.get(&key(0), hash_words(&key(0))).is_none(), "the oldest entry was overwritten");
        assert!(p.get(&key(39), hash_words(&key(39))).is_some());
        let mut p = Partition::of(bytes(&mut m));
        assert!(!p.put(&key(39), hash_words(&key(39)), &[b"again"]), "a present key is not stored twice");
        assert!(!p.put(&key(99), hash_words(&key(99)), &[&vec![0u8; ring / 2]]), "too large");
    }

    #[test]
    fn pages_are_admitted_on_their_second_miss() {
        let mut m = mem(64 * 1024);
        let v = View::of(bytes(&mut m));
        let (a, b) = (hash_words(&key(1)), hash_words(&key(2)));
        assert!(!v.second_miss(a));
        assert!(!v.second_miss(b));
        assert!(v.second_miss(a), "a missed before");
        assert!(v.second_miss(a));
    }

    #[test]
    fn colliding_keys_evict_the_oldest_of_their_slots() {
        let mut m = mem(256 * 1024);
        // one hash for all: they compete for the same PROBE slots
        for i in 0..(PROBE as u64 + 3) {
            assert!(Partition::of(bytes(&mut m)).put(&key(i), 42, &[&i.to_le_bytes()]));
        }
        let p = View::of(bytes(&mut m));
        for i in 0..3u64 {
            assert!(p.get(&key(i), 42).is_none(), "entry {i} lost its slot");
        }
        for i in 3..(PROBE as u64 + 3) {
            assert_eq!(p.get(&key(i), 42), Some(&i.to_le_bytes()[..]));
        }
        let h = p.header();
        assert_eq!(h.inserts.load(Ordering::Relaxed), PROBE as u64 + 3);
        assert!(h.hits.load(Ordering::Relaxed) >= PROBE as u64);
    }

    #[test]
    fn entries_index_their_rests() {
        let rests: [&[u8]; 3] = [b"alpha", b"", b"gamma!"];
        let mut e = entry_head(&rests);
        for r in rests {
            e.extend_from_slice(r);
        }
        assert_eq!(entry_rest(&e, 1), Some(&b"alpha"[..]));
        assert_eq!(entry_rest(&e, 2), Some(&b""[..]));
        assert_eq!(entry_rest(&e, 3), Some(&b"gamma!"[..]));
        assert_eq!(entry_rest(&e, 0), None);
        assert_eq!(entry_rest(&e, 4), None);
        assert_eq!(entry_rest(&e[..e.len() - 1], 3), None, "a truncated entry");
        let mut m = mem(64 * 1024);
        let h = hash_words(&key(5)[..2]);
        assert!(Partition::of(bytes(&mut m)).put(&key(5), h, &[&e]));
        let v = View::of(bytes(&mut m));
        assert_eq!(v.rest(&key(5), h, 3), Some(&b"gamma!"[..]));
        assert_eq!(v.rest(&key(5), h, 4), None);
        assert_eq!(v.rest(&key(6), h, 1), None, "another key placed alike");
        let first = (first_slot_at(64 * 1024, h) - INDEX_AT) / BUCKET_SIZE;
        assert_eq!(first, slots(v.buckets.len(), h).next().unwrap());
    }
}
