//! Bit strings as pgvector uses them: PostgreSQL's own `bit(n)` type holds
//! binary embeddings, compared by Hamming and Jaccard distance, and
//! `binary_quantize(vector)` makes one from a `vector` (one bit per
//! dimension: set when the element is positive).
//!
//! Bits are packed as PostgreSQL's `VarBit` packs them — most significant
//! bit first, bit `i` in byte `i / 8` under mask `0x80 >> (i % 8)`, the
//! unused low bits of the last byte zero — so the distances work on whole
//! bytes: XOR / AND and a population count, 64 bits at a time.
//!
//! The population count has a scalar reference (`u64::count_ones` compiled
//! for the baseline x86-64: a bit-twiddling sequence) and, when the CPU has
//! it, the `popcnt` instruction: the same code compiled with the feature,
//! picked once at runtime as for the `vector` kernels ([`super::kernels`]).

use std::sync::OnceLock;

/// Calls `f` on the bytes of `a` and `b` (equal lengths) taken 64 bits at a
/// time, the tail zero-padded.
#[inline(always)]
fn for_words(a: &[u8], b: &[u8], mut f: impl FnMut(u64, u64)) {
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let x = u64::from_ne_bytes(x.try_into().expect("8-byte chunk"));
        let y = u64::from_ne_bytes(y.try_into().expect("8-byte chunk"));
        f(x, y);
    }
    let (ra, rb) = (ca.remainder(), cb.remainder());
    if !ra.is_empty() {
        let (mut x, mut y) = ([0u8; 8], [0u8; 8]);
        x[..ra.len()].copy_from_slice(ra);
        y[..rb.len()].copy_from_slice(rb);
        f(u64::from_ne_bytes(x), u64::from_ne_bytes(y));
    }
}

#[inline(always)]
fn hamming_words(a: &[u8], b: &[u8]) -> u64 {
    let mut d = 0u64;
    for_words(a, b, |x, y| d += u64::from((x ^ y).count_ones()));
    d
}

/// (|a ∧ b|, |a|, |b|) in bits.
#[inline(always)]
fn jaccard_words(a: &[u8], b: &[u8]) -> (u64, u64, u64) {
    let (mut ab, mut aa, mut bb) = (0u64, 0u64, 0u64);
    for_words(a, b, |x, y| {
        ab += u64::from((x & y).count_ones());
        aa += u64::from(x.count_ones());
        bb += u64::from(y.count_ones());
    });
    (ab, aa, bb)
}

#[cfg(target_arch = "x86_64")]
mod popcnt {
    //! The scalar code compiled with the `popcnt` instruction; installed in
    //! the dispatch table only after `is_x86_feature_detected!("popcnt")`.

    #[target_feature(enable = "popcnt")]
    fn hamming_popcnt(a: &[u8], b: &[u8]) -> u64 {
        super::hamming_words(a, b)
    }

    #[target_feature(enable = "popcnt")]
    fn jaccard_popcnt(a: &[u8], b: &[u8]) -> (u64, u64, u64) {
        super::jaccard_words(a, b)
    }

    pub fn hamming(a: &[u8], b: &[u8]) -> u64 {
        // SAFETY: only reachable through the table, set up after the CPU
        // was found to have popcnt.
        unsafe { hamming_popcnt(a, b) }
    }

    pub fn jaccard(a: &[u8], b: &[u8]) -> (u64, u64, u64) {
        // SAFETY: as above.
        unsafe { jaccard_popcnt(a, b) }
    }
}

struct BitTable {
    name: &'static str,
    hamming: fn(&[u8], &[u8]) -> u64,
    jaccard: fn(&[u8], &[u8]) -> (u64, u64, u64),
}

fn table() -> &'static BitTable {
    static TABLE: OnceLock<BitTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("popcnt") {
                return BitTable {
                    name: "popcnt",
                    hamming: popcnt::hamming,
                    jaccard: popcnt::jaccard,
                };
            }
        }
        BitTable {
            name: "scalar",
            hamming: hamming_words,
            jaccard: jaccard_words,
        }
    })
}

/// Which population count the dispatcher picked.
pub fn active_isa() -> &'static str {
    table().name
}

/// Bits that differ between `a` and `b` (packed bit strings of one length).
pub fn hamming(a: &[u8], b: &[u8]) -> u64 {
    debug_assert_eq!(a.len(), b.len());
    (table().hamming)(a, b)
}

/// Jaccard distance `1 - |a ∧ b| / |a ∨ b|` of packed bit strings of one
/// length; 1 when they share no set bit (pgvector's answer for two empty
/// sets too).
pub fn jaccard(a: &[u8], b: &[u8]) -> f64 {
    match jaccard_counts(a, b) {
        (0, _) => 1.0,
        (common, union) => 1.0 - common as f64 / union as f64,
    }
}

/// Bits set in both and in either of two packed bit strings of one length
/// (what [`jaccard`] divides).
pub fn jaccard_counts(a: &[u8], b: &[u8]) -> (u64, u64) {
    debug_assert_eq!(a.len(), b.len());
    let (ab, aa, bb) = (table().jaccard)(a, b);
    (ab, aa + bb - ab)
}

/// The bits of `bytes` (MSB first) as coordinates 0.0 and 1.0, `bits` of
/// them: how `strata_hnsw` sees a `bit(n)` value, so that L1 distance is
/// the Hamming distance and dot products count common bits, exactly (every
/// sum stays an integer below 2^24).
pub fn widen(bytes: &[u8], bits: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(bits);
    widen_into(bytes, bits, &mut out);
    out
}

/// [`widen`] into `out` (cleared first; no allocation once it has room).
pub fn widen_into(bytes: &[u8], bits: usize, out: &mut Vec<f32>) {
    debug_assert!(bytes.len() >= bytes_for(bits));
    out.clear();
    out.extend((0..bits).map(|i| f32::from((bytes[i / 8] >> (7 - i % 8)) & 1)));
}

/// Packs coordinates into bits (MSB first), a bit set where the
/// coordinate is not zero (the inverse of [`widen`]); `out` holds
/// `bytes_for(x.len())` bytes.
pub fn pack_nonzero(x: &[f32], out: &mut [u8]) {
    quantize_by(x, out, |v| v != 0.0)
}

/// Bytes that hold `bits` bits.
pub fn bytes_for(bits: usize) -> usize {
    bits.div_ceil(8)
}

/// One bit per element of `x` into `out` (`bytes_for(x.len())` bytes), set
/// when the element is positive (NaN and zeros, of either sign, give 0),
/// packed most significant bit first.
pub fn quantize_into(x: &[f32], out: &mut [u8]) {
    quantize_by(x, out, |v| v > 0.0)
}

/// [`quantize_into`] for `halfvec` elements (binary16 bits).
pub fn quantize_half_into(x: &[u16], out: &mut [u8]) {
    quantize_by(x, out, |h| super::half::to_f32(h) > 0.0)
}

fn quantize_by<T: Copy>(x: &[T], out: &mut [u8], positive: impl Fn(T) -> bool) {
    debug_assert_eq!(out.len(), bytes_for(x.len()));
    for (byte, chunk) in out.iter_mut().zip(x.chunks(8)) {
        *byte = chunk
            .iter()
            .enumerate()
            .fold(0u8, |acc, (j, &v)| acc | (u8::from(positive(v)) << (7 - j)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs a string of '0'/'1' as VarBit does.
    fn bits(s: &str) -> Vec<u8> {
        let mut out = vec![0u8; bytes_for(s.len())];
        for (i, c) in s.chars().enumerate() {
            if c == '1' {
                out[i / 8] |= 0x80 >> (i % 8);
            }
        }
        out
    }

    #[test]
    fn hamming_counts_differing_bits() {
        assert_eq!(hamming(&bits("111"), &bits("001")), 2);
        assert_eq!(hamming(&bits("1111000011110000101"), &bits("0000111111110000111")), 9);
        assert_eq!(hamming(&bits(""), &bits("")), 0);
    }

    #[test]
    fn jaccard_matches_pgvector() {
        assert_eq!(jaccard(&bits("1111"), &bits("1010")), 0.5);
        assert_eq!(jaccard(&bits("1111"), &bits("0000")), 1.0);
        assert_eq!(jaccard(&bits("0000"), &bits("0000")), 1.0);
        assert_eq!(jaccard(&bits("1100"), &bits("1100")), 0.0);
        assert!((jaccard(&bits("110"), &bits("011")) - 2.0 / 3.0).abs() < 1e-15);
    }

    fn quantize(x: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; bytes_for(x.len())];
        quantize_into(x, &mut out);
        out
    }

    #[test]
    fn quantize_sets_positive_elements_msb_first() {
        assert_eq!(quantize(&[1.0, -2.0, 0.0, 3.0]), bits("1001"));
        let x: Vec<f32> = (0..19).map(|i| if i % 3 == 0 { 0.5 } else { -0.0 }).collect();
        let want: String = (0..19).map(|i| if i % 3 == 0 { '1' } else { '0' }).collect();
        assert_eq!(quantize(&x), bits(&want));
        assert_eq!(quantize(&[f32::NAN, f32::INFINITY, -f32::INFINITY]), bits("010"));
    }

    #[test]
    fn dispatched_kernels_equal_the_scalar_reference() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 200, 8000] {
            let a: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            assert_eq!(hamming(&a, &b), hamming_words(&a, &b), "len {len}");
            assert_eq!((table().jaccard)(&a, &b), jaccard_words(&a, &b), "len {len}");
            let naive: u64 = a.iter().zip(&b).map(|(x, y)| u64::from((x ^ y).count_ones())).sum();
            assert_eq!(hamming(&a, &b), naive);
        }
        assert!(["popcnt", "scalar"].contains(&active_isa()));
    }
}
