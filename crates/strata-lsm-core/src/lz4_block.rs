//! LZ4 block decoding for run pages (pure; the encoder stays `lz4_flex`).
//!
//! Run pages hold long repeats: the same bytes in every row of a column
//! (a row head of three bytes, a delta of 1, a dictionary code of 0), which
//! LZ4 encodes as one match whose offset is shorter than its length. A
//! general decoder copies such a match a byte at a time; here it is copied
//! in doubling chunks — after the first `offset` bytes the output from the
//! match's source on is periodic, so each copy can take everything written
//! since the source — a handful of `memcpy`s for a whole page's column.
//!
//! ```text
//!  block = sequence ... ; sequence = token u8 | [literal length bytes] | literals
//!                                    | offset u16 LE | [match length bytes]   (not in the last sequence)
//!  token: high 4 bits literal length, low 4 bits match length - 4; 15 = more bytes follow,
//!         each added, until one is below 255
//! ```
//!
//! Every read and write is bounds-checked: a damaged frame is an error,
//! never a panic or a write outside `out` (pages are also crc-checked
//! before they are decoded).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Lz4Error {
    #[error("LZ4 block truncated at byte {0}")]
    Truncated(usize),
    #[error("LZ4 match offset {offset} at output byte {at}")]
    BadOffset { offset: usize, at: usize },
    #[error("LZ4 block decodes past {0} bytes")]
    TooLong(usize),
}

/// Reads an extended length (bytes of 255 continue it) at `*at`.
#[inline]
fn extended(input: &[u8], at: &mut usize, mut len: usize) -> Result<usize, Lz4Error> {
    loop {
        let b = *input.get(*at).ok_or(Lz4Error::Truncated(*at))?;
        *at += 1;
        len += b as usize;
        if b != 255 {
            return Ok(len);
        }
    }
}

/// Decodes LZ4 block `input` into `out`; the number of bytes written.
pub fn decode_into(input: &[u8], out: &mut [u8]) -> Result<usize, Lz4Error> {
    let (mut i, mut o) = (0usize, 0usize);
    if input.is_empty() {
        return Err(Lz4Error::Truncated(0));
    }
    loop {
        let token = *input.get(i).ok_or(Lz4Error::Truncated(i))?;
        i += 1;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            lit = extended(input, &mut i, lit)?;
        }
        if i + lit > input.len() {
            return Err(Lz4Error::Truncated(i));
        }
        if o + lit > out.len() {
            return Err(Lz4Error::TooLong(out.len()));
        }
        if i + lit + 16 <= input.len() && o + lit + 16 <= out.len() {
            // 16 bytes at a time (the bytes past the literals are written
            // again by what follows)
            // SAFETY: chunk k reads input[i + k .. i + k + 16] and writes
            // out[o + k .. o + k + 16] with k < lit, both inside the slices
            // (checked just above); input and out do not overlap.
            unsafe {
                let (from, to) = (input.as_ptr().add(i), out.as_mut_ptr().add(o));
                let mut k = 0;
                while k < lit {
                    std::ptr::copy_nonoverlapping(from.add(k), to.add(k), 16);
                    k += 16;
                }
            }
        } else {
            out[o..o + lit].copy_from_slice(&input[i..i + lit]);
        }
        i += lit;
        o += lit;
        if i == input.len() {
            return Ok(o); // the last sequence has literals only
        }
        let off = input.get(i..i + 2).ok_or(Lz4Error::Truncated(i))?;
        let offset = u16::from_le_bytes([off[0], off[1]]) as usize;
        i += 2;
        let mut len = (token & 0x0f) as usize;
        if len == 15 {
            len = extended(input, &mut i, len)?;
        }
        len += 4;
        if offset == 0 || offset > o {
            return Err(Lz4Error::BadOffset { offset, at: o });
        }
        if o + len > out.len() {
            return Err(Lz4Error::TooLong(out.len()));
        }
        copy_match(out, o - offset, o, len);
        o += len;
    }
}

/// Copies a match `N` bytes at a time (up to `N - 1` bytes past its end,
/// which what follows writes again); the caller checked `dst - src >= N`
/// and `dst + len + N <= out.len()`.
#[inline]
fn copy_chunks<const N: usize>(out: &mut [u8], src: usize, dst: usize, len: usize) {
    debug_assert!(dst - src >= N && dst + len + N <= out.len());
    // SAFETY: chunk k reads out[src + k .. + N] and writes out[dst + k .. + N]
    // with k < len, inside `out` (checked by the caller); the two ranges of
    // a chunk are N or more bytes apart, so they do not overlap, and what is
    // read lies below dst + k: already written.
    unsafe {
        let base = out.as_mut_ptr();
        let mut k = 0;
        while k < len {
            std::ptr::copy_nonoverlapping(base.add(src + k), base.add(dst + k), N);
            k += N;
        }
    }
}

/// Copies `len` bytes from `src` to `dst` (> `src`) in `out` as LZ4 means
/// it: byte by byte in effect, so an overlapping match repeats its period.
#[inline]
fn copy_match(out: &mut [u8], src: usize, dst: usize, len: usize) {
    let offset = dst - src;
    if offset >= 16 && dst + len + 16 <= out.len() {
        return copy_chunks::<16>(out, src, dst, len);
    }
    if offset >= 8 && dst + len + 8 <= out.len() {
        return copy_chunks::<8>(out, src, dst, len);
    }
    if offset >= len {
        out.copy_within(src..src + len, dst);
        return;
    }
    // out[src..] is periodic with period `offset` as far as it is written:
    // each step copies everything between the source and the write point
    let mut done = 0;
    while done < len {
        let chunk = (dst + done - src).min(len - done);
        out.copy_within(src..src + chunk, dst + done);
        done += chunk;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) {
        let frame = lz4_flex::block::compress(data);
        let mut out = vec![0u8; data.len()];
        assert_eq!(decode_into(&frame, &mut out), Ok(data.len()));
        assert_eq!(out, data);
        // too small an output is an error, not a write past it
        if !data.is_empty() {
            let mut short = vec![0u8; data.len() - 1];
            assert!(decode_into(&frame, &mut short).is_err());
        }
    }

    #[test]
    fn decodes_what_lz4_flex_encodes() {
        round_trip(b"");
        round_trip(b"a");
        round_trip(&[0u8; 5000]);
        round_trip(&[4, 0, 0].repeat(256));
        round_trip(&b"  ".repeat(3000));
        let mut x = 0x9e3779b97f4a7c15u64;
        let mut noise = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push((x % 7) as u8); // few symbols: many short matches
        }
        round_trip(&noise);
        let text: Vec<u8> = (0..3000).flat_map(|i| format!("user{i}@example.com|").into_bytes()).collect();
        round_trip(&text);
        let mixed: Vec<u8> = (0..4000u32).flat_map(|i| if i % 100 < 60 { vec![i as u8] } else { vec![7, 7, 7] }).collect();
        round_trip(&mixed);
    }

    #[test]
    fn damage_is_an_error() {
        let data: Vec<u8> = (0..2000u32).flat_map(|i| (i % 37).to_le_bytes()).collect();
        let frame = lz4_flex::block::compress(&data);
        let mut out = vec![0u8; data.len()];
        for cut in 0..frame.len() {
            let _ = decode_into(&frame[..cut], &mut out);
        }
        for at in 0..frame.len() {
            let mut bad = frame.clone();
            bad[at] ^= 0xa5;
            let _ = decode_into(&bad, &mut out);
        }
        // an offset reaching before the output's start
        assert_eq!(
            decode_into(&[0x10, b'a', 5, 0], &mut out),
            Err(Lz4Error::BadOffset { offset: 5, at: 1 })
        );
        assert!(matches!(decode_into(&[], &mut out), Err(Lz4Error::Truncated(0))));
    }
}

#[cfg(test)]
mod speed {
    /// Decoding speed next to lz4_flex's (run by hand:
    /// `cargo test --release --lib lz4_block::speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn against_lz4_flex() {
        let emails: Vec<u8> = (0..256).flat_map(|i| format!("\x2buser{}@example.com", 1_000_000 + i * 7).into_bytes()).collect();
        let blanks: Vec<u8> = (0..256).flat_map(|_| std::iter::once(0xabu8).chain(std::iter::repeat_n(b' ', 84))).collect();
        let ints: Vec<u8> = (0..256u64).flat_map(|i| (1_700_000_000 + i * 3).to_le_bytes()).collect();
        for (name, data) in [("emails", emails), ("blanks", blanks), ("ints", ints)] {
            let frame = lz4_flex::block::compress(&data);
            let mut out = vec![0u8; data.len()];
            let n = 20_000;
            let (mut ours, mut theirs) = (f64::MAX, f64::MAX);
            for _ in 0..5 {
                let t = std::time::Instant::now();
                for _ in 0..n {
                    super::decode_into(std::hint::black_box(&frame), &mut out).unwrap();
                }
                ours = ours.min(t.elapsed().as_nanos() as f64 / n as f64);
                let t = std::time::Instant::now();
                for _ in 0..n {
                    lz4_flex::block::decompress_into(std::hint::black_box(&frame), &mut out).unwrap();
                }
                theirs = theirs.min(t.elapsed().as_nanos() as f64 / n as f64);
            }
            println!("{name}: {} -> {} bytes, ours {ours:.0} ns, lz4_flex {theirs:.0} ns", data.len(), frame.len());
        }
    }
}
