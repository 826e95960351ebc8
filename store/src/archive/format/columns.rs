//! One stream per column other than `msg`: its values as the smallest of a few plain
//! encodings, before the stream is compressed. The first byte names the encoding.
//!
//! Nulls are part of every encoding (a length, number or flag of 0), so a column of nulls is a
//! run of zero bytes that compresses to nothing: most of the event schema's columns are null
//! or constant in most hours.

use std::io;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray, StringArray,
};
use datafusion::arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Int32Type, TimeUnit, TimestampMicrosecondType, UInt64Type,
    UInt8Type,
};

use super::varint::{self, corrupt};

/// Text: per row its length + 1 (0: null), then the bytes of every row.
const TEXT: u8 = 1;
/// Text that is all ULIDs (event ids): per row the difference from the row before as a
/// 128-bit number + 1 (0: null). Monotonic ULIDs differ by one within a millisecond, so a row
/// takes a byte instead of the ~3 a compressor spends pointing at the previous id.
const ULIDS: u8 = 2;
/// Integers: per row zigzag(difference from the row before) + 1 (0: null). Times.
const INTEGER_DELTAS: u8 = 3;
/// Integers: per row zigzag(value) + 1 (0: null). Process ids, codes.
const INTEGERS: u8 = 4;
/// Booleans: per row 0 (null), 1 (false) or 2 (true).
const BOOLEANS: u8 = 5;

pub fn encode(field: &Field, column: &ArrayRef) -> io::Result<Vec<u8>> {
    match field.data_type() {
        DataType::Utf8 => Ok(encode_text(column.as_string::<i32>())),
        DataType::Boolean => {
            let values = column.as_boolean();
            let mut out = Vec::with_capacity(values.len() + 1);
            out.push(BOOLEANS);
            out.extend((0..values.len()).map(|row| match values.is_null(row) {
                true => 0,
                false => 1 + u8::from(values.value(row)),
            }));
            Ok(out)
        }
        DataType::Int32 => Ok(encode_integers(column.as_primitive::<Int32Type>())),
        DataType::UInt8 => Ok(encode_integers(column.as_primitive::<UInt8Type>())),
        DataType::UInt64 => Ok(encode_integers(column.as_primitive::<UInt64Type>())),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Ok(encode_integers(
            column.as_primitive::<TimestampMicrosecondType>(),
        )),
        other => Err(io::Error::other(format!(
            "column {} of type {other} has no archive encoding",
            field.name()
        ))),
    }
}

fn encode_text(values: &StringArray) -> Vec<u8> {
    if let Some(ulids) = encode_ulids(values) {
        return ulids;
    }
    let mut lengths = Vec::with_capacity(values.len());
    for row in 0..values.len() {
        let length = match values.is_null(row) {
            true => 0,
            false => values.value(row).len() as u128 + 1,
        };
        varint::put(&mut lengths, length);
    }
    let mut out = Vec::with_capacity(lengths.len() + values.value_data().len() + 10);
    out.push(TEXT);
    varint::put(&mut out, lengths.len() as u128);
    out.extend_from_slice(&lengths);
    for row in 0..values.len() {
        if !values.is_null(row) {
            out.extend_from_slice(values.value(row).as_bytes());
        }
    }
    out
}

/// `None` unless every value is a ULID written the one way it prints back.
fn encode_ulids(values: &StringArray) -> Option<Vec<u8>> {
    if values.null_count() == values.len() {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() * 2 + 1);
    out.push(ULIDS);
    let mut previous: u128 = 0;
    for row in 0..values.len() {
        if values.is_null(row) {
            varint::put(&mut out, 0);
            continue;
        }
        let text = values.value(row);
        let id = ulid::Ulid::from_string(text).ok()?;
        if id.to_string() != text {
            return None;
        }
        let value = u128::from(id);
        let delta = value.wrapping_sub(previous) as i128;
        // zigzag + 1 overflows only for a difference of i128::MIN: leave such a column as text.
        let code = varint::zigzag(delta).checked_add(1)?;
        varint::put(&mut out, code);
        previous = value;
    }
    Some(out)
}

/// Integers of any width, as whichever of differences or plain values takes fewer bytes.
fn encode_integers<T: ArrowPrimitiveType>(values: &PrimitiveArray<T>) -> Vec<u8>
where
    T::Native: Into<Wide>,
{
    let wide = |row: usize| -> i128 { values.value(row).into().0 };
    let (mut deltas, mut plain) = (vec![INTEGER_DELTAS], vec![INTEGERS]);
    let mut previous: i128 = 0;
    for row in 0..values.len() {
        if values.is_null(row) {
            varint::put(&mut deltas, 0);
            varint::put(&mut plain, 0);
            continue;
        }
        let value = wide(row);
        // Values fit 64 bits, so their differences fit 65 and zigzag + 1 cannot overflow.
        varint::put(&mut deltas, varint::zigzag(value - previous) + 1);
        varint::put(&mut plain, varint::zigzag(value) + 1);
        previous = value;
    }
    if plain.len() < deltas.len() {
        plain
    } else {
        deltas
    }
}

/// A value of an integer column, widened.
pub struct Wide(i128);

macro_rules! wide_from {
    ($($native:ty),*) => {$(
        impl From<$native> for Wide {
            fn from(value: $native) -> Wide {
                Wide(i128::from(value))
            }
        }
    )*};
}
wide_from!(i32, u8, u64, i64);

pub fn decode(field: &Field, stream: &[u8], rows: usize) -> io::Result<ArrayRef> {
    let (&encoding, mut input) = stream
        .split_first()
        .ok_or_else(|| corrupt(&format!("column {} is empty", field.name())))?;
    let wrong = || {
        corrupt(&format!(
            "column {} of type {} cannot hold encoding {encoding}",
            field.name(),
            field.data_type()
        ))
    };
    let column: ArrayRef = match (field.data_type(), encoding) {
        (DataType::Utf8, TEXT) => Arc::new(decode_text(input, rows)?),
        (DataType::Utf8, ULIDS) => Arc::new(decode_ulids(input, rows)?),
        (DataType::Boolean, BOOLEANS) => {
            if input.len() != rows {
                return Err(corrupt(&format!(
                    "column {} has the wrong length",
                    field.name()
                )));
            }
            let values: Vec<Option<bool>> = input
                .iter()
                .map(|&flag| match flag {
                    0 => Ok(None),
                    1 | 2 => Ok(Some(flag == 2)),
                    _ => Err(corrupt("a boolean is neither true, false nor null")),
                })
                .collect::<io::Result<_>>()?;
            Arc::new(BooleanArray::from(values))
        }
        (data_type, INTEGER_DELTAS | INTEGERS) => {
            let values = decode_integers(&mut input, rows, encoding == INTEGER_DELTAS)?;
            if !input.is_empty() {
                return Err(corrupt(&format!(
                    "column {} has bytes left over",
                    field.name()
                )));
            }
            integers_as(data_type, values).ok_or_else(wrong)??
        }
        _ => return Err(wrong()),
    };
    if !field.is_nullable() && column.null_count() > 0 {
        return Err(corrupt(&format!("column {} holds nulls", field.name())));
    }
    Ok(column)
}

fn decode_text(mut input: &[u8], rows: usize) -> io::Result<StringArray> {
    let lengths_bytes = varint::take_usize(&mut input)?;
    let mut lengths = varint::take_bytes(&mut input, lengths_bytes)?;
    let mut offsets = Vec::with_capacity(rows + 1);
    let mut nulls = Vec::with_capacity(rows);
    offsets.push(0i32);
    let mut end: usize = 0;
    for _ in 0..rows {
        let length = varint::take_usize(&mut lengths)?;
        nulls.push(length > 0);
        end = end
            .checked_add(length.saturating_sub(1))
            .filter(|&end| end <= input.len())
            .ok_or_else(|| corrupt("text runs past the end of its stream"))?;
        offsets.push(i32::try_from(end).map_err(|_| corrupt("over 2 GiB of text"))?);
    }
    if !lengths.is_empty() || end != input.len() {
        return Err(corrupt("a text column's lengths and bytes disagree"));
    }
    let nulls = NullBuffer::from(nulls);
    StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from(input),
        (nulls.null_count() > 0).then_some(nulls),
    )
    .map_err(|error| corrupt(&format!("a text column is not text: {error}")))
}

fn decode_ulids(mut input: &[u8], rows: usize) -> io::Result<StringArray> {
    let mut previous: u128 = 0;
    let mut values = Vec::with_capacity(rows);
    for _ in 0..rows {
        let code = varint::take(&mut input)?;
        if code == 0 {
            values.push(None);
            continue;
        }
        let delta = varint::unzigzag(code - 1);
        previous = previous.wrapping_add(delta as u128);
        values.push(Some(ulid::Ulid::from(previous).to_string()));
    }
    if !input.is_empty() {
        return Err(corrupt("event ids left over"));
    }
    Ok(StringArray::from(values))
}

fn decode_integers(input: &mut &[u8], rows: usize, deltas: bool) -> io::Result<Vec<Option<i128>>> {
    let mut previous: i128 = 0;
    let mut values = Vec::with_capacity(rows);
    for _ in 0..rows {
        let code = varint::take(input)?;
        if code == 0 {
            values.push(None);
            continue;
        }
        let value = varint::unzigzag(code - 1);
        let value = match deltas {
            true => previous
                .checked_add(value)
                .ok_or_else(|| corrupt("an integer overflows"))?,
            false => value,
        };
        values.push(Some(value));
        previous = value;
    }
    Ok(values)
}

/// `values` as a column of `data_type`; `None` if that is not an integer type, an error if a
/// value does not fit it.
fn integers_as(data_type: &DataType, values: Vec<Option<i128>>) -> Option<io::Result<ArrayRef>> {
    fn narrow<T: ArrowPrimitiveType>(
        values: Vec<Option<i128>>,
        data_type: &DataType,
    ) -> io::Result<ArrayRef>
    where
        T::Native: TryFrom<i128>,
    {
        let values = values
            .into_iter()
            .map(|value| {
                value
                    .map(|value| {
                        T::Native::try_from(value)
                            .map_err(|_| corrupt("an integer is out of range"))
                    })
                    .transpose()
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Arc::new(
            PrimitiveArray::<T>::from_iter(values).with_data_type(data_type.clone()),
        ))
    }
    Some(match data_type {
        DataType::Int32 => narrow::<Int32Type>(values, data_type),
        DataType::UInt8 => narrow::<UInt8Type>(values, data_type),
        DataType::UInt64 => narrow::<UInt64Type>(values, data_type),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            narrow::<TimestampMicrosecondType>(values, data_type)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Int32Array, TimestampMicrosecondArray, UInt64Array, UInt8Array,
    };

    fn round_trip(field: Field, column: ArrayRef) -> Vec<u8> {
        let stream = encode(&field, &column).unwrap();
        let back = decode(&field, &stream, column.len()).unwrap();
        assert_eq!(&back, &column, "{}", field.name());
        stream
    }

    #[test]
    fn every_type_of_the_event_schema_round_trips_with_nulls_and_extremes() {
        let text = Field::new("t", DataType::Utf8, true);
        round_trip(
            text.clone(),
            Arc::new(StringArray::from(vec![
                Some("a"),
                None,
                Some(""),
                Some("é名"),
            ])),
        );
        round_trip(
            text.clone(),
            Arc::new(StringArray::from(vec![None::<&str>, None])),
        );
        round_trip(
            text.clone(),
            Arc::new(StringArray::from(Vec::<&str>::new())),
        );
        round_trip(
            Field::new("b", DataType::Boolean, true),
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        );
        round_trip(
            Field::new("i", DataType::Int32, true),
            Arc::new(Int32Array::from(vec![
                Some(i32::MIN),
                None,
                Some(i32::MAX),
                Some(0),
            ])),
        );
        round_trip(
            Field::new("u", DataType::UInt8, true),
            Arc::new(UInt8Array::from(vec![Some(255), None, Some(0)])),
        );
        round_trip(
            Field::new("w", DataType::UInt64, true),
            Arc::new(UInt64Array::from(vec![
                Some(u64::MAX),
                Some(0),
                None,
                Some(u64::MAX),
            ])),
        );
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        round_trip(
            Field::new("ts", utc.clone(), false),
            Arc::new(
                TimestampMicrosecondArray::from(vec![i64::MIN, i64::MAX, 0, 1_764_800_000_000_000])
                    .with_data_type(utc),
            ),
        );
    }

    #[test]
    fn monotonic_event_ids_take_a_byte_a_row_and_others_stay_text() {
        let mut id = ulid::Ulid::from_string("01M91QMYMV6B868W3AD6B4HZFM").unwrap();
        let ids: Vec<String> = (0..100)
            .map(|_| {
                id = id.increment().unwrap();
                id.to_string()
            })
            .collect();
        let field = Field::new("event_id", DataType::Utf8, false);
        let stream = round_trip(field.clone(), Arc::new(StringArray::from(ids.clone())));
        assert_eq!(stream[0], ULIDS);
        assert!(stream.len() < 100 + 20, "{} bytes", stream.len());
        // Lower case parses as a ULID but prints back upper case: kept as text.
        let mut mixed = ids;
        mixed[5] = mixed[5].to_lowercase();
        let stream = round_trip(field, Arc::new(StringArray::from(mixed)));
        assert_eq!(stream[0], TEXT);
    }

    #[test]
    fn integers_take_differences_or_values_whichever_is_smaller() {
        let field = Field::new("n", DataType::Int32, true);
        let times: Vec<i32> = (0..100).map(|i| 1_000_000 + i).collect();
        assert_eq!(
            round_trip(field.clone(), Arc::new(Int32Array::from(times)))[0],
            INTEGER_DELTAS
        );
        let jumpy: Vec<i32> = (0..100)
            .map(|i| if i % 2 == 0 { 1 } else { 1_000_000 })
            .collect();
        assert_eq!(
            round_trip(field, Arc::new(Int32Array::from(jumpy)))[0],
            INTEGERS
        );
    }

    #[test]
    fn damaged_streams_are_errors() {
        let field = Field::new("n", DataType::UInt8, false);
        let column: ArrayRef = Arc::new(UInt8Array::from(vec![1, 2, 3]));
        let stream = encode(&field, &column).unwrap();
        assert!(decode(&field, &stream, 4).is_err());
        assert!(decode(&field, &stream, 2).is_err());
        assert!(decode(&field, &[], 3).is_err());
        assert!(
            decode(&field, &[INTEGERS, 1, 0, 1], 3).is_err(),
            "a null in a non-null column"
        );
        assert!(
            decode(&field, &[INTEGERS, 0x81, 0x04, 1, 1], 3).is_err(),
            "out of range"
        );
        assert!(decode(&Field::new("t", DataType::Utf8, true), &stream, 3).is_err());
        let text = Field::new("t", DataType::Utf8, true);
        let stream = encode(
            &text,
            &(Arc::new(StringArray::from(vec!["ab", "c"])) as ArrayRef),
        )
        .unwrap();
        assert!(decode(&text, &stream[..stream.len() - 1], 2).is_err());
        let mut bad = stream.clone();
        *bad.last_mut().unwrap() = 0xff;
        assert!(decode(&text, &bad, 2).is_err(), "not UTF-8");
    }
}
