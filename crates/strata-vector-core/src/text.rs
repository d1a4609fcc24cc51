//! Text form of `vector`: `'[1,2.5,-3e-2]'`.
//!
//! Parsing follows pgvector: whitespace allowed around brackets and elements,
//! only whitespace after `]`. Output prints each element as the shortest decimal
//! that round-trips to the same `float4`, in the exact layout PostgreSQL's
//! `float4out` uses (fixed notation for decimal exponents -4..5, otherwise
//! `d.ddde±XX`).

use super::{check_element, VectorError, MAX_DIM};

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// Parses the text form into its elements.
pub fn parse(input: &str) -> Result<Vec<f32>, VectorError> {
    parse_as(input, |x| (x, x))
}

/// Parses the text form of a `halfvec`: each element read as `float4`,
/// then rounded to binary16; one that does not fit is out of range, named
/// as written (pgvector's `halfvec_in`).
pub fn parse_half(input: &str) -> Result<Vec<u16>, VectorError> {
    parse_as(input, |x| {
        let h = super::half::from_f32_unchecked(x);
        (h, super::half::to_f32(h))
    })
}

/// [`parse`] with each element, read as `float4`, converted by `convert`
/// into what is stored and its value; a stored value that is infinite where
/// the text does not say so is out of range.
fn parse_as<T>(input: &str, convert: impl Fn(f32) -> (T, f32)) -> Result<Vec<T>, VectorError> {
    let syntax = |detail: &'static str| VectorError::Syntax {
        input: input.to_string(),
        detail,
    };
    let bytes = input.as_bytes();
    let mut pos = 0;
    let skip_space = |pos: &mut usize| {
        while *pos < bytes.len() && is_space(bytes[*pos]) {
            *pos += 1;
        }
    };

    skip_space(&mut pos);
    if bytes.get(pos) != Some(&b'[') {
        return Err(syntax("Vector contents must start with \"[\"."));
    }
    pos += 1;
    skip_space(&mut pos);
    if bytes.get(pos) == Some(&b']') {
        return Err(VectorError::Empty);
    }

    let mut out = Vec::new();
    loop {
        if out.len() == MAX_DIM {
            return Err(VectorError::TooManyDimensions);
        }
        skip_space(&mut pos);
        let start = pos;
        while pos < bytes.len() && !is_space(bytes[pos]) && bytes[pos] != b',' && bytes[pos] != b']'
        {
            pos += 1;
        }
        let token = &input[start..pos];
        if token.is_empty() {
            return Err(syntax(""));
        }
        let value: f32 = token.parse().map_err(|_| syntax(""))?;
        let (element, stored) = convert(value);
        if stored.is_infinite() && !names_infinity(token) {
            return Err(VectorError::OutOfRange(token.to_string()));
        }
        check_element(stored)?;
        out.push(element);

        skip_space(&mut pos);
        match bytes.get(pos) {
            Some(b',') => pos += 1,
            Some(b']') => {
                pos += 1;
                break;
            }
            _ => return Err(syntax("")),
        }
    }
    skip_space(&mut pos);
    if pos != bytes.len() {
        return Err(syntax("Junk after closing right brace."));
    }
    Ok(out)
}

pub(crate) fn names_infinity(token: &str) -> bool {
    let t = token.trim_start_matches(['+', '-']).to_ascii_lowercase();
    t == "inf" || t == "infinity"
}

/// Formats elements as `[a,b,c]`.
pub fn format(elements: &[f32]) -> String {
    let mut out = String::with_capacity(elements.len() * 10 + 2);
    out.push('[');
    for (i, x) in elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_float4(&mut out, *x);
    }
    out.push(']');
    out
}

/// Appends one finite `f32` the way PostgreSQL's `float4out` prints it with
/// `extra_float_digits > 0` (shortest round-trip digits).
pub fn push_float4(out: &mut String, x: f32) {
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // `{:e}` yields the shortest round-trip digits, e.g. "-1.2345e-7".
    let sci = format!("{:e}", x);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if negative {
        out.push('-');
    }
    if (-4..6).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f32) -> String {
        let mut s = String::new();
        push_float4(&mut s, x);
        s
    }

    #[test]
    fn float4_layout_matches_postgres() {
        assert_eq!(f(1.0), "1");
        assert_eq!(f(2.5), "2.5");
        assert_eq!(f(-0.03), "-0.03");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(0.00001), "1e-05");
        assert_eq!(f(123456.0), "123456");
        assert_eq!(f(1234567.0), "1.234567e+06");
        assert_eq!(f(100000.0), "100000");
        assert_eq!(f(1e6), "1e+06");
        assert_eq!(f(1e-30), "1e-30");
        assert_eq!(f(3.4028235e38), "3.4028235e+38");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(1.0 / 3.0), "0.33333334");
        assert_eq!(f(-0.0), "-0");
        assert_eq!(f(0.0), "0");
        assert_eq!(f(10.5), "10.5");
    }

    #[test]
    fn parse_accepts_spaces_and_exponents() {
        assert_eq!(parse("[1,2.5,-3e-2]").unwrap(), vec![1.0, 2.5, -0.03]);
        assert_eq!(parse("  [ 1 , 2 ,3 ]  ").unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(parse("[.5, 5., +1]").unwrap(), vec![0.5, 5.0, 1.0]);
    }

    #[test]
    fn parse_rejects_malformed_input() {
        for bad in [
            "[1,,2]", "1,2", "[1,2] x", "[1 2]", "[1,2", "", "[", "[a]", "[1,]",
        ] {
            match parse(bad) {
                Err(e) => assert_eq!(e.sqlstate(), "22P02", "{bad}: {e}"),
                Ok(v) => panic!("{bad} parsed as {v:?}"),
            }
        }
        assert_eq!(parse("[]"), Err(VectorError::Empty));
        // no dimensions is a data exception (22000) in pgvector, not a syntax error
        assert_eq!(parse("[ ]").unwrap_err().sqlstate(), "22000");
    }

    #[test]
    fn parse_rejects_non_finite_and_out_of_range() {
        assert_eq!(parse("[NaN]"), Err(VectorError::NaN));
        assert_eq!(parse("[1,Infinity]"), Err(VectorError::Infinite));
        assert_eq!(parse("[-inf]"), Err(VectorError::Infinite));
        assert_eq!(parse("[1e39]"), Err(VectorError::OutOfRange("1e39".into())));
    }

    #[test]
    fn parse_limits_dimensions() {
        let ok = format!("[{}]", vec!["1"; MAX_DIM].join(","));
        assert_eq!(parse(&ok).unwrap().len(), MAX_DIM);
        let too_many = format!("[{}]", vec!["1"; MAX_DIM + 1].join(","));
        assert_eq!(parse(&too_many), Err(VectorError::TooManyDimensions));
    }

    #[test]
    fn text_round_trips() {
        let mut s = 12345u32;
        for _ in 0..2000 {
            s = s.wrapping_mul(1103515245).wrapping_add(12345);
            let x = f32::from_bits(s & 0x7f7f_ffff) * if s & 1 == 1 { -1.0 } else { 1.0 };
            if !x.is_finite() {
                continue;
            }
            let text = format(&[x]);
            assert_eq!(parse(&text).unwrap()[0].to_bits(), x.to_bits(), "{text}");
        }
    }
}
