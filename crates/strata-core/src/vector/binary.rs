//! Binary (COPY BINARY / protocol) form of `vector`, as pgvector sends it:
//! big-endian `int16 dim`, `int16 unused = 0`, then `dim` big-endian `float4`.

use super::{check_element, ops::check_dims, VectorError};

pub fn encode(elements: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * elements.len());
    out.extend_from_slice(&(elements.len() as i16).to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    for x in elements {
        out.extend_from_slice(&x.to_bits().to_be_bytes());
    }
    out
}

/// Decodes one vector from the front of `bytes`; returns it and the bytes used.
pub fn decode(bytes: &[u8]) -> Result<(Vec<f32>, usize), VectorError> {
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
    let used = 4 + 4 * dims;
    if bytes.len() < used {
        return Err(VectorError::BinaryTruncated(dims));
    }
    let mut out = Vec::with_capacity(dims);
    for chunk in bytes[4..used].chunks_exact(4) {
        let x = f32::from_bits(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        check_element(x)?;
        out.push(x);
    }
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
        let nan = f32::NAN.to_bits().to_be_bytes();
        assert_eq!(
            decode(&[0, 1, 0, 0, nan[0], nan[1], nan[2], nan[3]]),
            Err(VectorError::NaN)
        );
    }
}
