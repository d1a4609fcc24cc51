//! Binary (COPY BINARY / protocol) form of `vector` and `halfvec`, as
//! pgvector sends them: big-endian `int16 dim`, `int16 unused = 0`, then
//! `dim` big-endian `float4` (binary16 for `halfvec`).

use super::{check_element, ops::check_dims, VectorError};

pub fn encode(elements: &[f32]) -> Vec<u8> {
    encode_as(elements, 4, |x, out| out.extend_from_slice(&x.to_bits().to_be_bytes()))
}

/// The binary form of a `halfvec`: `int16 dim`, `int16 unused = 0`, then
/// `dim` big-endian binary16 values.
pub fn encode_half(elements: &[u16]) -> Vec<u8> {
    encode_as(elements, 2, |h, out| out.extend_from_slice(&h.to_be_bytes()))
}

fn encode_as<T: Copy>(elements: &[T], width: usize, put: impl Fn(T, &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + width * elements.len());
    out.extend_from_slice(&(elements.len() as i16).to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    for &x in elements {
        put(x, &mut out);
    }
    out
}

/// Decodes one vector from the front of `bytes`; returns it and the bytes used.
pub fn decode(bytes: &[u8]) -> Result<(Vec<f32>, usize), VectorError> {
    decode_as(bytes, 4, |b| {
        let x = f32::from_bits(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        check_element(x).map(|_| x)
    })
}

/// Decodes one `halfvec` from the front of `bytes` ([`encode_half`]).
pub fn decode_half(bytes: &[u8]) -> Result<(Vec<u16>, usize), VectorError> {
    decode_as(bytes, 2, |b| {
        let h = u16::from_be_bytes([b[0], b[1]]);
        check_element(super::half::to_f32(h)).map(|_| h)
    })
}

/// The header's checks, then `dim` elements of `width` bytes each read
/// (and checked) by `read`.
fn decode_as<T>(
    bytes: &[u8],
    width: usize,
    read: impl Fn(&[u8]) -> Result<T, VectorError>,
) -> Result<(Vec<T>, usize), VectorError> {
    if bytes.len() < 4 {
        return Err(VectorError::BinaryTruncated(0));
    }
    let dims = i16::from_be_bytes([bytes[0], bytes[1]]);
    let unused = i16::from_be_bytes([bytes[2], bytes[3]]);
    if dims < 0 {
        return Err(VectorError::NoDimensions);
    }
    let dims = dims as usize;
    check_dims(dims)?;
    if unused != 0 {
        return Err(VectorError::BinaryUnused(unused));
    }
    let used = 4 + width * dims;
    if bytes.len() < used {
        return Err(VectorError::BinaryTruncated(dims));
    }
    let out = bytes[4..used]
        .chunks_exact(width)
        .map(read)
        .collect::<Result<Vec<T>, _>>()?;
    Ok((out, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = vec![1.0, -2.5, 3e-7];
        let bytes = encode(&v);
        assert_eq!(&bytes[..4], &[0, 3, 0, 0]);
        assert_eq!(decode(&bytes).unwrap(), (v, 16));
    }

    #[test]
    fn rejects_bad_messages() {
        assert_eq!(
            decode(&[0, 2, 0, 0, 0, 0]),
            Err(VectorError::BinaryTruncated(2))
        );
        assert_eq!(
            decode(&[0, 1, 0, 1, 0, 0, 0, 0]),
            Err(VectorError::BinaryUnused(1))
        );
        assert_eq!(decode(&[0, 0, 0, 0]), Err(VectorError::NoDimensions));
        let half = crate::half::narrow(&[1.5, -2.0]).unwrap();
        let bytes = encode_half(&half);
        assert_eq!(bytes, [0, 2, 0, 0, 0x3e, 0, 0xc0, 0]);
        assert_eq!(decode_half(&bytes), Ok((half, 8)));
        assert_eq!(decode_half(&[0, 1, 0, 0, 0x7c, 0]), Err(VectorError::Infinite));
        assert_eq!(decode_half(&[0, 2, 0, 0, 0x3e, 0]), Err(VectorError::BinaryTruncated(2)));
        let nan = f32::NAN.to_bits().to_be_bytes();
        assert_eq!(
            decode(&[0, 1, 0, 0, nan[0], nan[1], nan[2], nan[3]]),
            Err(VectorError::NaN)
        );
    }
}
