//! `msg` split as CLP splits log text: each message becomes a template (its text with every
//! token that holds a digit cut out) and the variables cut out of it, and each kind of thing
//! is stored with its own kind.
//!
//! A program writes its messages from a few hundred templates, so a column of template
//! numbers and, per template and variable position, a run of values that are all the same
//! kind of thing (a thread id, a port, a time of day, a block id) compress far better than the
//! lines do (`bench/templates`: 0.050 of raw for loghub's message text against 0.064 for
//! `zstd -19` of the raw files).
//!
//! Four streams:
//! - `templates`: the distinct templates in order of first use, each ended by a NUL (text
//!   compresses better run on than cut by length bytes: ~15 % on loghub's templates);
//! - `order`: per row, its template's number + 1 (0: a null message);
//! - `integers`: per template, per integer position of it, in row order, each value's
//!   difference from the one before it in that position (zigzag LEB128);
//! - `strings`: likewise for the other variables (a token with a digit that is not a plain
//!   decimal integer: `blk_-695…`, `10.251.73.220`, `0x1f`), NUL-terminated.
//!
//! Exact for every string: a template escapes NUL and the bytes that mark variables, a token
//! that holds one of those bytes stays in the template, and an integer is cut out only in
//! the one spelling that prints back the same (no leading zeros, no `-0`, at most 18 digits).

use std::io;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};

use super::varint::{self, corrupt};

/// Marks an integer variable in a template.
const INTEGER: u8 = 0x11;
/// Marks a string variable in a template.
const STRING: u8 = 0x12;
/// Makes the byte after it literal.
const ESCAPE: u8 = 0x10;

/// Bytes between tokens: whitespace and the punctuation log lines put around values.
fn is_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | b'='
            | b':'
            | b','
            | b'['
            | b']'
            | b'('
            | b')'
            | b'{'
            | b'}'
            | b'"'
            | b'\''
            | b'/'
            | b';'
            | b'@'
            | b'<'
            | b'>'
            | b'|'
    )
}

/// The streams of one column of messages.
#[derive(Default)]
pub struct MessageStreams {
    pub templates: Vec<u8>,
    pub order: Vec<u8>,
    pub integers: Vec<u8>,
    pub strings: Vec<u8>,
}

enum Variable<'a> {
    Integer(i64),
    String(&'a [u8]),
}

/// The integer a token spells, if it spells it the only way the integer prints.
fn integer_of(token: &[u8]) -> Option<i64> {
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    let canonical = !digits.is_empty()
        && digits.len() <= 18
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
        && !(digits == b"0" && digits.len() != token.len());
    if !canonical {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// Splits `message` into `template` (cleared first) and its variables.
fn split<'a>(message: &'a [u8], template: &mut Vec<u8>, variables: &mut Vec<Variable<'a>>) {
    template.clear();
    variables.clear();
    let mut at = 0;
    while at < message.len() {
        if is_delimiter(message[at]) {
            template.push(message[at]);
            at += 1;
            continue;
        }
        let end = message[at..]
            .iter()
            .position(|&byte| is_delimiter(byte))
            .map_or(message.len(), |length| at + length);
        let token = &message[at..end];
        let variable = token.iter().any(u8::is_ascii_digit)
            && !token
                .iter()
                .any(|&byte| matches!(byte, 0 | ESCAPE | INTEGER | STRING));
        if !variable {
            for &byte in token {
                if matches!(byte, 0 | ESCAPE | INTEGER | STRING) {
                    template.push(ESCAPE);
                }
                template.push(byte);
            }
        } else if let Some(value) = integer_of(token) {
            template.push(INTEGER);
            variables.push(Variable::Integer(value));
        } else {
            template.push(STRING);
            variables.push(Variable::String(token));
        }
        at = end;
    }
}

/// The variable kinds of a template, in order (`true`: integer).
fn slots_of(template: &[u8]) -> Vec<bool> {
    let mut slots = Vec::new();
    let mut bytes = template.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            ESCAPE => {
                bytes.next();
            }
            INTEGER => slots.push(true),
            STRING => slots.push(false),
            _ => {}
        }
    }
    slots
}

pub fn encode(messages: &StringArray) -> MessageStreams {
    let mut numbers: foldhash::HashMap<Vec<u8>, usize> = Default::default();
    let mut templates: Vec<Vec<u8>> = Vec::new();
    // Per template, per variable position: its values in row order.
    let mut columns: Vec<Vec<Vec<Variable>>> = Vec::new();
    let mut streams = MessageStreams::default();
    let (mut template, mut variables) = (Vec::new(), Vec::new());
    for row in 0..messages.len() {
        if messages.is_null(row) {
            varint::put(&mut streams.order, 0);
            continue;
        }
        split(
            messages.value(row).as_bytes(),
            &mut template,
            &mut variables,
        );
        let number = match numbers.get(&template) {
            Some(&number) => number,
            None => {
                let number = templates.len();
                numbers.insert(template.clone(), number);
                templates.push(template.clone());
                columns.push((0..variables.len()).map(|_| Vec::new()).collect());
                number
            }
        };
        varint::put(&mut streams.order, number as u128 + 1);
        for (position, variable) in variables.drain(..).enumerate() {
            columns[number][position].push(variable);
        }
    }
    for template in &templates {
        streams.templates.extend_from_slice(template);
        streams.templates.push(0);
    }
    for column in columns.iter().flatten() {
        let mut previous: i64 = 0;
        for variable in column {
            match variable {
                Variable::Integer(value) => {
                    let delta = i128::from(*value) - i128::from(previous);
                    varint::put(&mut streams.integers, varint::zigzag(delta));
                    previous = *value;
                }
                Variable::String(text) => {
                    streams.strings.extend_from_slice(text);
                    streams.strings.push(0);
                }
            }
        }
    }
    streams
}

/// Rebuilds `rows` messages from their streams.
pub fn decode(streams: &MessageStreams, rows: usize) -> io::Result<StringArray> {
    let mut templates = Vec::new();
    let mut start = 0;
    let mut bytes = streams.templates.iter().enumerate();
    while let Some((at, &byte)) = bytes.next() {
        match byte {
            ESCAPE => {
                bytes.next();
            }
            0 => {
                templates.push(&streams.templates[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if start != streams.templates.len() {
        return Err(corrupt("a template is not terminated"));
    }
    let mut order = Vec::with_capacity(rows);
    let mut uses = vec![0usize; templates.len()];
    let mut input = streams.order.as_slice();
    for _ in 0..rows {
        let number = varint::take_usize(&mut input)?;
        if number > templates.len() {
            return Err(corrupt("a message names a template that is not there"));
        }
        if number > 0 {
            uses[number - 1] += 1;
        }
        order.push(number);
    }
    if !input.is_empty() {
        return Err(corrupt("more messages than rows"));
    }
    // Per template, its variables' values in row order, position by position.
    let mut integers = streams.integers.as_slice();
    let mut strings = streams.strings.as_slice();
    let mut values: Vec<Vec<Vec<std::borrow::Cow<[u8]>>>> = Vec::with_capacity(templates.len());
    let mut slots: Vec<Vec<bool>> = Vec::with_capacity(templates.len());
    for (template, &count) in templates.iter().zip(&uses) {
        let kinds = slots_of(template);
        let mut positions = Vec::with_capacity(kinds.len());
        for &integer in &kinds {
            let mut column = Vec::with_capacity(count);
            let mut previous: i128 = 0;
            for _ in 0..count {
                if integer {
                    previous = previous
                        .checked_add(varint::unzigzag(varint::take(&mut integers)?))
                        .ok_or_else(|| corrupt("an integer variable overflows"))?;
                    let value = i64::try_from(previous)
                        .map_err(|_| corrupt("an integer variable does not fit 64 bits"))?;
                    column.push(std::borrow::Cow::Owned(value.to_string().into_bytes()));
                } else {
                    let end = memchr::memchr(0, strings)
                        .ok_or_else(|| corrupt("a string variable is not terminated"))?;
                    column.push(std::borrow::Cow::Borrowed(&strings[..end]));
                    strings = &strings[end + 1..];
                }
            }
            positions.push(column);
        }
        values.push(positions);
        slots.push(kinds);
    }
    if !integers.is_empty() || !strings.is_empty() {
        return Err(corrupt("variables left over after the last message"));
    }
    let mut next = vec![0usize; templates.len()];
    let mut data = Vec::with_capacity(streams.templates.len() + streams.strings.len() * 2);
    let mut offsets = Vec::with_capacity(rows + 1);
    let mut nulls = Vec::with_capacity(rows);
    offsets.push(0i32);
    for &number in &order {
        nulls.push(number > 0);
        if number > 0 {
            let template = number - 1;
            let row = next[template];
            next[template] += 1;
            let mut position = 0;
            let mut bytes = templates[template].iter();
            while let Some(&byte) = bytes.next() {
                match byte {
                    ESCAPE => data.extend(bytes.next()),
                    INTEGER | STRING => {
                        data.extend_from_slice(&values[template][position][row]);
                        position += 1;
                    }
                    _ => data.push(byte),
                }
            }
        }
        let end = i32::try_from(data.len())
            .map_err(|_| corrupt("more than 2 GiB of messages in one object"))?;
        offsets.push(end);
    }
    let nulls = NullBuffer::from(nulls);
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    StringArray::try_new(
        offsets,
        Buffer::from_vec(data),
        (nulls.null_count() > 0).then_some(nulls),
    )
    .map_err(|error| corrupt(&format!("messages do not rebuild as text: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(messages: Vec<Option<&str>>) -> MessageStreams {
        let array = StringArray::from(messages);
        let streams = encode(&array);
        let back = decode(&streams, array.len()).unwrap();
        assert_eq!(back, array);
        streams
    }

    #[test]
    fn messages_rebuild_byte_for_byte() {
        round_trip(vec![
            Some("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating"),
            Some("081109 203807 222 INFO dfs.DataNode$PacketResponder: PacketResponder 0 for block blk_-6952295868487656571 terminating"),
            None,
            Some(""),
            Some("  leading, trailing and doubled  spaces  "),
            Some("-0 00 007 -12 12345678901234567890 -9223372036854775808 9223372036854775807 0x1f 1.5"),
            Some("markers \u{10}\u{11}\u{12} in text 1\u{11}2 and NUL 3\u{0}4 and é 5é"),
            Some("10.251.73.220:50010 [173.234.31.186] uid=0 euid=0 tty=NODEVssh"),
            Some("ünïcödé 名前 42 名前42"),
            Some("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 2 for block blk_1 terminating"),
        ]);
    }

    #[test]
    fn templates_are_shared_and_variables_cut_out() {
        let streams = round_trip(vec![
            Some("took 12 ms on host-7"),
            Some("took 13 ms on host-8"),
            Some("took 15 ms on host-7"),
        ]);
        // One template; three integers stored as differences (12, +1, +2); three strings.
        assert_eq!(streams.templates, b"took \x11 ms on \x12\0");
        assert_eq!(streams.order, vec![1, 1, 1]);
        assert_eq!(streams.integers, vec![24, 2, 4]);
        assert_eq!(streams.strings, b"host-7\0host-8\0host-7\0");
    }

    #[test]
    fn damaged_streams_are_errors_not_panics() {
        let array = StringArray::from(vec!["took 12 ms on host-7", "a 1 b"]);
        let streams = encode(&array);
        let cut = |mut bytes: Vec<u8>| {
            bytes.pop();
            bytes
        };
        let damaged = [
            MessageStreams {
                templates: cut(streams.templates.clone()),
                ..clone(&streams)
            },
            MessageStreams {
                order: vec![9, 9],
                ..clone(&streams)
            },
            MessageStreams {
                integers: cut(streams.integers.clone()),
                ..clone(&streams)
            },
            MessageStreams {
                strings: b"host-7".to_vec(),
                ..clone(&streams)
            },
            MessageStreams {
                strings: b"host-7\0extra\0".to_vec(),
                ..clone(&streams)
            },
        ];
        for streams in damaged {
            assert!(decode(&streams, 2).is_err());
        }
        assert!(decode(&streams, 3).is_err());
        assert!(decode(&streams, 1).is_err());
    }

    fn clone(streams: &MessageStreams) -> MessageStreams {
        MessageStreams {
            templates: streams.templates.clone(),
            order: streams.order.clone(),
            integers: streams.integers.clone(),
            strings: streams.strings.clone(),
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips(messages in proptest::collection::vec(
            proptest::option::of("[a-z0-9 =:\\-_.\u{10}\u{11}\u{12}\u{0}é]{0,40}"), 0..20)) {
            let array = StringArray::from(messages);
            let back = decode(&encode(&array), array.len()).unwrap();
            proptest::prop_assert_eq!(back, array);
        }
    }
}
