//! Network-shaped field types: ipv4, ipv6, mac48, cisco-interface-spec.

use super::{at, is_space, numeric, Fmt, Out, Parsed};
use serde_json::{Map, Value};

/// One to three digits with value <= 255; returns the new offset.
fn ipv4_byte(s: &[u8], i: usize) -> Option<usize> {
    if !at(s, i).is_ascii_digit() {
        return None;
    }
    let mut val = (s[i] - b'0') as u32;
    let mut i = i + 1;
    if at(s, i).is_ascii_digit() {
        val = val * 10 + (s[i] - b'0') as u32;
        i += 1;
        if at(s, i).is_ascii_digit() {
            val = val * 10 + (s[i] - b'0') as u32;
            i += 1;
        }
    }
    (val <= 255).then_some(i)
}

/// Dotted quad; nothing is required after the last byte. Returns the length.
pub(crate) fn ipv4(s: &[u8], offs: usize) -> Option<usize> {
    if offs + 7 > s.len() {
        return None;
    }
    let mut i = offs;
    for part in 0..4 {
        i = ipv4_byte(s, i)?;
        if part < 3 {
            if at(s, i) != b'.' {
                return None;
            }
            i += 1;
        }
    }
    Some(i - offs)
}

/// RFC 4291 text form, including `::` and an embedded IPv4 tail. The address must be
/// followed by whitespace or end of line (unless it ends in an IPv4 part).
pub(crate) fn ipv6(s: &[u8], offs: usize) -> Parsed {
    let len = s.len();
    if offs + 2 > len {
        return None;
    }
    let c0 = s[offs];
    if !(c0.is_ascii_hexdigit() || (c0 == b':' && s[offs + 1] == b':')) {
        return None;
    }
    let mut i = offs;
    let mut n_blocks = 0;
    let mut had_abbrev = false;
    let mut begin_block = offs;
    let mut has_ipv4 = false;
    'blocks: for _ in 0..9 {
        begin_block = i;
        if i == len {
            return None;
        }
        let mut j = 0;
        while j < 4 && i + j < len && s[i + j].is_ascii_hexdigit() {
            j += 1;
        }
        i += j;
        n_blocks += 1;
        if i == len || is_space(s[i]) {
            break 'blocks;
        }
        if s[i] == b'.' {
            has_ipv4 = true;
            break 'blocks;
        }
        if s[i] != b':' {
            return None;
        }
        i += 1;
        if i == len {
            break 'blocks;
        }
        if s[i] == b':' {
            if had_abbrev {
                return None;
            }
            had_abbrev = true;
            i += 1;
            if i == len {
                break 'blocks;
            }
        }
    }
    if has_ipv4 {
        n_blocks -= 1;
        if begin_block == offs {
            return None; // a plain IPv4 address is not an IPv6 address
        }
        i = begin_block + ipv4(s, begin_block)?;
    }
    if n_blocks > 8 || (had_abbrev && n_blocks >= 8) {
        return None;
    }
    if i >= 2 && at(s, i - 1) == b':' && at(s, i - 2) != b':' {
        return None; // trailing block missing
    }
    Some((i - offs, Out::Span(offs, i)))
}

/// Six hex pairs separated consistently by ':' or '-'.
pub(crate) fn mac48(s: &[u8], i: usize) -> Parsed {
    if s.len() < i + 17 {
        return None;
    }
    let delim = s[i + 2];
    if delim != b':' && delim != b'-' {
        return None;
    }
    for k in 0..6 {
        let p = i + k * 3;
        if !s[p].is_ascii_hexdigit()
            || !s[p + 1].is_ascii_hexdigit()
            || (k < 5 && s[p + 2] != delim)
        {
            return None;
        }
    }
    Some((17, Out::Span(i, i + 17)))
}

fn number_len(s: &[u8], i: usize) -> Option<usize> {
    numeric::number(s, i, 0, Fmt::String).map(|(n, _)| n)
}

/// Cisco ASA `[interface:]ip/port [SP (ip2/port2)] [[SP](user)]`, as an object.
pub(crate) fn cisco_interface_spec(s: &[u8], offs: usize) -> Parsed {
    let len = s.len();
    let mut i = offs;
    let c = at(s, i);
    if c == b':' || is_space(c) || i >= len {
        return None;
    }
    let mut intf = None;
    let mut have_ip = false;
    let mut idx_ip = i;
    let mut len_ip = 0;
    if let Some(l) = ipv4(s, i) {
        have_ip = true;
        len_ip = l;
        i += l - 1; // on the last byte, the colon-skip below steps past it
    } else {
        let start = i;
        while i < len {
            if is_space(s[i]) {
                return None;
            }
            if s[i] == b':' {
                break;
            }
            i += 1;
        }
        intf = Some((start, i));
    }
    if i == len {
        return None;
    }
    i += 1;
    if !have_ip {
        idx_ip = i;
        len_ip = ipv4(s, i)?;
        i += len_ip;
    }
    if i >= len || s[i] != b'/' {
        return None;
    }
    i += 1;
    let idx_port = i;
    let len_port = number_len(s, i)?;
    i += len_port;
    let mut ip2 = None;
    let mut user = None;
    if i != len {
        if i + 5 < len && s[i] == b' ' && s[i + 1] == b'(' {
            let mut t = i + 2;
            let idx_ip2 = t;
            if let Some(l2) = ipv4(s, t) {
                // liblognorm skips the '/' here without checking it
                t += l2 + 1;
                let idx_port2 = t;
                if let Some(lp2) = number_len(s, t) {
                    t += lp2;
                    if t < len && s[t] == b')' {
                        i = t + 1;
                        ip2 = Some((idx_ip2, l2, idx_port2, lp2));
                    }
                }
            }
        }
        if (i + 2 < len && s[i] == b'(' && !is_space(s[i + 1]))
            || (i + 3 < len && s[i] == b' ' && s[i + 1] == b'(' && !is_space(s[i + 2]))
        {
            let idx_user = i + if s[i] == b' ' { 2 } else { 1 };
            let mut t = idx_user;
            while t < len && !is_space(s[t]) && s[t] != b')' {
                t += 1;
            }
            if t < len && s[t] == b')' {
                i = t + 1;
                user = Some((idx_user, t));
            }
        }
    }
    let str_of = |a: usize, b: usize| Value::String(super::span_string(s, a, b));
    let mut obj = Map::new();
    if let Some((a, b)) = intf {
        obj.insert("interface".into(), str_of(a, b));
    }
    obj.insert("ip".into(), str_of(idx_ip, idx_ip + len_ip));
    obj.insert("port".into(), str_of(idx_port, idx_port + len_port));
    if let Some((a, l, p, lp)) = ip2 {
        obj.insert("ip2".into(), str_of(a, a + l));
        obj.insert("port2".into(), str_of(p, p + lp));
    }
    if let Some((a, b)) = user {
        obj.insert("user".into(), str_of(a, b));
    }
    Some((i - offs, Out::Value(Box::new(Value::Object(obj)))))
}
