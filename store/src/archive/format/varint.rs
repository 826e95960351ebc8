//! LEB128 integers and zigzag signs: the archive format's numbers, so small values (deltas,
//! lengths, template numbers) take a byte.

use std::io;

pub fn put(out: &mut Vec<u8>, mut value: u128) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads one number from the front of `input`, advancing it.
pub fn take(input: &mut &[u8]) -> io::Result<u128> {
    let mut value: u128 = 0;
    for shift in (0..128).step_by(7) {
        let (&byte, rest) = input
            .split_first()
            .ok_or_else(|| corrupt("a number runs past the end of its stream"))?;
        *input = rest;
        let bits = u128::from(byte & 0x7f);
        // The 19th byte holds the top two bits.
        if shift == 126 && bits > 0b11 {
            return Err(corrupt("a number does not fit 128 bits"));
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(corrupt("a number is longer than 128 bits"))
}

/// Reads a number that must fit `usize` (a length or an index).
pub fn take_usize(input: &mut &[u8]) -> io::Result<usize> {
    usize::try_from(take(input)?).map_err(|_| corrupt("a length does not fit memory"))
}

pub fn zigzag(value: i128) -> u128 {
    ((value << 1) ^ (value >> 127)) as u128
}

pub fn unzigzag(value: u128) -> i128 {
    ((value >> 1) as i128) ^ -((value & 1) as i128)
}

/// `len` bytes from the front of `input`, advancing it.
pub fn take_bytes<'a>(input: &mut &'a [u8], len: usize) -> io::Result<&'a [u8]> {
    if input.len() < len {
        return Err(corrupt("a value runs past the end of its stream"));
    }
    let (bytes, rest) = input.split_at(len);
    *input = rest;
    Ok(bytes)
}

pub fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("archived object: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_signs_round_trip_at_their_limits() {
        for value in [0, 1, 127, 128, 300, u64::MAX as u128, u128::MAX] {
            let mut out = Vec::new();
            put(&mut out, value);
            let mut input = out.as_slice();
            assert_eq!(take(&mut input).unwrap(), value);
            assert!(input.is_empty());
        }
        for value in [0, 1, -1, i64::MIN as i128, i128::MIN, i128::MAX] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn truncated_and_overlong_numbers_are_errors() {
        assert!(take(&mut &[0x80u8][..]).is_err());
        assert!(take(&mut &[0xffu8; 20][..]).is_err());
        let mut over = vec![0xffu8; 18];
        over.push(0x7f);
        assert!(take(&mut over.as_slice()).is_err());
    }
}
