//! The chain-hint table's layout and protocol, over any slice of 32-bit
//! atomics (the extension gives it shared memory; tests give it a Vec):
//! where an update chain's walk may start (see the extension's
//! `lsm::chain_hint` for what a hint means and how it is checked).
//!
//! ```text
//!  slot (12 words): seq | db | relfilenumber | root block | root offset
//!                   | member block | member offset | member xmin
//!                   | pred block | pred offset | pred xmin | unused
//! ```
//!
//! `pred` is the member just before `member` in the chain, when the writer
//! knew it (offset 0: not known).
//!
//! A slot is chosen by hashing the key (file and root TID); a colliding key
//! overwrites it. `seq` is a sequence lock: a writer makes it odd, fills the
//! slot and makes it even again; a reader takes a slot only when `seq` was
//! even and unchanged around its reads, so it never pairs one key with
//! another key's member. Writers that find a slot being written give up (a
//! hint may be lost, never torn). `seq` 0 marks a slot never written.

use std::sync::atomic::{fence, AtomicU32, Ordering};

/// Words per slot.
pub const WORDS: usize = 12;

/// A chain's root: the relation file (database, relfilenumber) and the
/// root's TID (block, offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root {
    pub db: u32,
    pub rel: u32,
    pub block: u32,
    pub offset: u16,
}

/// A member of the chain and the xmin it had when hinted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub block: u32,
    pub offset: u16,
    pub xmin: u32,
}

/// What a slot says about a chain: a member to start at and, when the
/// writer knew it, the member right before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    pub member: Member,
    pub pred: Option<Member>,
}

/// First word of the slot for `root` in a table of `slots` slots.
fn slot_of(root: &Root, slots: usize) -> usize {
    let mut h = (root.db as u64) << 32 | root.rel as u64;
    h ^= (root.block as u64) << 16 | root.offset as u64;
    h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) as usize % slots) * WORDS
}

/// The hint for `root`, if its slot holds it.
pub fn get(table: &[AtomicU32], root: &Root) -> Option<Hint> {
    let slots = table.len() / WORDS;
    if slots == 0 {
        return None;
    }
    let s = &table[slot_of(root, slots)..][..WORDS];
    let seq = s[0].load(Ordering::Acquire);
    if seq & 1 == 1 || seq == 0 {
        return None;
    }
    let w: [u32; 10] = std::array::from_fn(|i| s[i + 1].load(Ordering::Relaxed));
    fence(Ordering::Acquire);
    if s[0].load(Ordering::Relaxed) != seq {
        return None;
    }
    let same = w[0] == root.db && w[1] == root.rel && w[2] == root.block && w[3] == root.offset as u32;
    let member = |i: usize| Member {
        block: w[i],
        offset: w[i + 1] as u16,
        xmin: w[i + 2],
    };
    same.then(|| Hint {
        member: member(4),
        pred: (w[8] != 0).then(|| member(7)),
    })
}

/// Makes `hint` the hint for `root` (unless another writer is filling its
/// slot right now).
pub fn set(table: &[AtomicU32], root: &Root, hint: &Hint) {
    let slots = table.len() / WORDS;
    if slots == 0 {
        return;
    }
    let s = &table[slot_of(root, slots)..][..WORDS];
    write(s, |s| {
        let (member, pred) = (hint.member, hint.pred);
        let w = [
            root.db,
            root.rel,
            root.block,
            root.offset as u32,
            member.block,
            member.offset as u32,
            member.xmin,
            pred.map_or(0, |p| p.block),
            pred.map_or(0, |p| p.offset as u32),
            pred.map_or(0, |p| p.xmin),
        ];
        for (i, v) in w.into_iter().enumerate() {
            s[i + 1].store(v, Ordering::Relaxed);
        }
    });
}

/// Clears every hint of relation file (`db`, `rel`).
pub fn forget_file(table: &[AtomicU32], db: u32, rel: u32) {
    for s in table.chunks_exact(WORDS) {
        if s[1].load(Ordering::Relaxed) == db && s[2].load(Ordering::Relaxed) == rel {
            // a slot being written is retried until its writer is done
            while !write(s, |s| s[2].store(0, Ordering::Relaxed)) {
                std::hint::spin_loop();
            }
        }
    }
}

/// Runs `fill` on slot `s` under its sequence lock; false when another
/// writer holds it.
fn write(s: &[AtomicU32], fill: impl FnOnce(&[AtomicU32])) -> bool {
    let seq = s[0].load(Ordering::Relaxed);
    if seq & 1 == 1
        || s[0]
            .compare_exchange(seq, seq.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        return false;
    }
    fence(Ordering::Release);
    fill(s);
    // odd → even, never 0 (a slot never written)
    let next = match seq.wrapping_add(2) {
        0 => 2,
        n => n,
    };
    s[0].store(next, Ordering::Release);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn table(slots: usize) -> Vec<AtomicU32> {
        (0..slots * WORDS).map(|_| AtomicU32::new(0)).collect()
    }

    fn root(i: u32) -> Root {
        Root {
            db: 5,
            rel: 16384,
            block: i,
            offset: (i % 7) as u16 + 1,
        }
    }

    /// The hint a test writer sets for root `i`, version `v`: a reader can
    /// tell from the member and its predecessor alone which root it belongs
    /// to (the predecessor only for odd `v`).
    fn member(i: u32, v: u32) -> Hint {
        Hint {
            member: Member {
                block: i * 1000 + v % 1000,
                offset: (i % 7) as u16 + 1,
                xmin: i,
            },
            pred: (v % 2 == 1).then_some(Member {
                block: i * 1000 + (v + 999) % 1000,
                offset: (i % 7) as u16 + 2,
                xmin: i + 1,
            }),
        }
    }

    #[test]
    fn set_get_overwrite_forget() {
        let t = table(64);
        assert_eq!(get(&t, &root(1)), None);
        set(&t, &root(1), &member(1, 0));
        assert_eq!(get(&t, &root(1)), Some(member(1, 0)));
        set(&t, &root(1), &member(1, 1));
        assert_eq!(get(&t, &root(1)), Some(member(1, 1)));
        assert!(member(1, 1).pred.is_some());
        // a hint without a predecessor clears the one before
        set(&t, &root(1), &member(1, 2));
        assert_eq!(get(&t, &root(1)).unwrap().pred, None);
        set(&t, &root(1), &member(1, 1));
        // another file's root with the same TID is another key
        let other = Root { rel: 16385, ..root(1) };
        assert_eq!(get(&t, &other), None);
        set(&t, &other, &member(2, 0));
        forget_file(&t, 5, 16384);
        assert_eq!(get(&t, &root(1)), None);
        assert!(get(&t, &other).is_none() || get(&t, &other) == Some(member(2, 0)));
    }

    #[test]
    fn colliding_keys_never_answer_for_each_other() {
        let t = table(1); // every key shares the one slot
        for i in 0..50 {
            set(&t, &root(i), &member(i, 0));
            assert_eq!(get(&t, &root(i)), Some(member(i, 0)));
            if i > 0 {
                assert_eq!(get(&t, &root(i - 1)), None);
            }
        }
    }

    #[test]
    fn a_slot_being_written_is_neither_read_nor_written() {
        let t = table(1);
        set(&t, &root(1), &member(1, 0));
        let seq = t[0].load(Ordering::Relaxed);
        t[0].store(seq + 1, Ordering::Relaxed); // a writer is filling it
        assert_eq!(get(&t, &root(1)), None);
        set(&t, &root(2), &member(2, 0)); // gives up
        t[0].store(seq + 2, Ordering::Relaxed); // the writer is done
        assert_eq!(get(&t, &root(1)), Some(member(1, 0)));
        assert_eq!(get(&t, &root(2)), None);
    }

    #[test]
    fn empty_table_holds_nothing() {
        let t: Vec<AtomicU32> = Vec::new();
        set(&t, &root(1), &member(1, 0));
        assert_eq!(get(&t, &root(1)), None);
    }

    #[test]
    fn concurrent_writers_never_tear_a_slot() {
        // few slots, many keys: constant collisions between four writers
        // while four readers check that a hint always belongs to its key
        let t = Arc::new(table(4));
        let writers: Vec<_> = (0..4u32)
            .map(|w| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for v in 0..1_000_000u32 {
                        let i = (v * 7 + w) % 64;
                        set(&t, &root(i), &member(i, v));
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..4u32)
            .map(|r| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    let mut seen = 0u32;
                    for v in 0..1_000_000u32 {
                        let i = (v * 13 + r) % 64;
                        if let Some(Hint { member: m, pred }) = get(&t, &root(i)) {
                            assert_eq!((m.block / 1000, m.offset, m.xmin), (i, (i % 7) as u16 + 1, i));
                            if let Some(p) = pred {
                                // the predecessor written with this member
                                assert_eq!((p.block, p.offset, p.xmin), (i * 1000 + (m.block % 1000 + 999) % 1000, (i % 7) as u16 + 2, i + 1));
                                assert_eq!(m.block % 2, 1, "only odd versions have one");
                            }
                            seen += 1;
                        }
                    }
                    seen
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let seen: u32 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(seen > 0, "readers found some hints");
    }
}
