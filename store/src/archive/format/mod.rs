//! The archive's own object format: a hot-store file's rows re-encoded for the long term,
//! so an object takes about half the bytes the compacted Parquet file did. Used for files up
//! to `EVENTS_MAX_FILE_BYTES` (see there for why not larger ones, yet).
//!
//! Why not Parquet: an hour of a quiet tenant is a few thousand rows, and Parquet spends ~100
//! bytes per column chunk on metadata whatever it holds (26 columns, most of them null or
//! constant), which alone is 0.01 of loghub's raw bytes; and its `msg` column compresses as
//! one run of lines, where splitting it into templates and variables ([`messages`]) takes a
//! third less. Hot files stay Parquet: they are read far more often, and written while ingest
//! runs.
//!
//! Layout (plain bytes, before the object is sealed in chunks):
//!
//! ```text
//! "MNEV" | version (1 byte) | header length (u32 LE) | header | stream | stream | ...
//! header: rows, stream count, then per stream: name length, name, codec (1 byte),
//!         plain length, stored length                       (numbers LEB128)
//! ```
//!
//! Five streams, each compressed on its own: `columns` (every column but `msg`) and four for
//! `msg` (`msg.templates`, `msg.order`, `msg.integers`, `msg.strings`). A query reads the
//! header, then only the streams of the columns it uses: a count by minute and severity
//! fetches `columns`, a small part of the object, and no message.
//!
//! Streams are compressed with Brotli: on loghub's message streams it took 0.047–0.048 of raw
//! against 0.0505 for zstd -19 (`bench/templates`, which adds Brotli's column when Python's
//! brotli module is installed), at a similar speed for quality 10 and a third of it for 11;
//! small objects get 11, large ones 10 ([`quality_for`]).

pub mod columns;
pub mod messages;
mod varint;

use std::collections::HashMap;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;

use messages::MessageStreams;
use varint::corrupt;

pub const MAGIC: &[u8; 4] = b"MNEV";
pub const VERSION: u8 = 1;
/// Bytes before the header: magic, version and the header's length.
pub const PREAMBLE_BYTES: usize = 9;
/// What a reader fetches first: the preamble and, nearly always, the whole header.
pub const FIRST_READ_BYTES: u64 = 16 * 1024;

/// The stream of every column but `msg`: per column its name, length and encoding (see
/// [`columns`]). One stream, not one each: most columns are null or constant, and a stream
/// of its own cost each ~40 bytes of header and compressor framing, 0.002 of loghub's raw
/// bytes in all; the columns a query reads besides `msg` are small beside it.
const COLUMNS: &str = "columns";
const MESSAGE_STREAMS: [&str; 4] = ["msg.templates", "msg.order", "msg.integers", "msg.strings"];

/// How a stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    None = 0,
    Brotli = 1,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    pub name: String,
    codec: Codec,
    pub plain_bytes: u64,
    /// Where its stored bytes lie in the object.
    pub range: Range<u64>,
}

/// An object's header: its row count and where each stream lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directory {
    pub rows: usize,
    pub streams: Vec<Stream>,
}

/// Brotli quality by the bytes to compress: 11 is a third of 10's speed (~1 MB/s of streams
/// on these machines) for 2–3 % fewer bytes, worth it while an object takes a second or two.
fn quality_for(plain_bytes: usize) -> u32 {
    if plain_bytes <= 2 * 1024 * 1024 {
        11
    } else {
        10
    }
}

/// Encodes `batch` (rows in the event schema, `msg` whole) as an object.
pub fn encode(batch: &RecordBatch) -> io::Result<Vec<u8>> {
    let schema = batch.schema();
    let mut streams: Vec<(String, Vec<u8>)> = vec![(COLUMNS.to_string(), Vec::new())];
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if field.name() == "msg" {
            let split = messages::encode(column.as_string::<i32>());
            for (name, bytes) in MESSAGE_STREAMS.iter().zip([
                split.templates,
                split.order,
                split.integers,
                split.strings,
            ]) {
                streams.push((name.to_string(), bytes));
            }
        } else {
            let encoded = columns::encode(field, column)?;
            let columns = &mut streams[0].1;
            varint::put(columns, field.name().len() as u128);
            columns.extend_from_slice(field.name().as_bytes());
            varint::put(columns, encoded.len() as u128);
            columns.extend_from_slice(&encoded);
        }
    }
    let total: usize = streams.iter().map(|(_, bytes)| bytes.len()).sum();
    let quality = quality_for(total);
    let mut header = Vec::new();
    varint::put(&mut header, batch.num_rows() as u128);
    varint::put(&mut header, streams.len() as u128);
    let mut body = Vec::new();
    for (name, plain) in &streams {
        let compressed = compress(plain, quality)?;
        let (codec, stored) = match compressed.len() < plain.len() {
            true => (Codec::Brotli, compressed.as_slice()),
            false => (Codec::None, plain.as_slice()),
        };
        varint::put(&mut header, name.len() as u128);
        header.extend_from_slice(name.as_bytes());
        header.push(codec as u8);
        varint::put(&mut header, plain.len() as u128);
        varint::put(&mut header, stored.len() as u128);
        body.extend_from_slice(stored);
    }
    let mut out = Vec::with_capacity(PREAMBLE_BYTES + header.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    let header_len =
        u32::try_from(header.len()).map_err(|_| io::Error::other("header over 4 GiB"))?;
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&body);
    Ok(out)
}

fn compress(plain: &[u8], quality: u32) -> io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: quality as i32,
        lgwin: 24,
        size_hint: plain.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(plain.len() / 4 + 64);
    brotli::BrotliCompress(&mut &plain[..], &mut out, &params)?;
    Ok(out)
}

impl Directory {
    /// Reads the header from the first bytes of an object. `Ok(Err(n))`: the header needs the
    /// first `n` bytes, more than `prefix` holds.
    pub fn parse(prefix: &[u8], object_bytes: u64) -> io::Result<Result<Directory, u64>> {
        if prefix.len() < PREAMBLE_BYTES || &prefix[..4] != MAGIC {
            return Err(corrupt("not an events object (no MNEV magic)"));
        }
        if prefix[4] != VERSION {
            return Err(corrupt(&format!(
                "format version {} (this build reads {VERSION})",
                prefix[4]
            )));
        }
        let header_len = u32::from_le_bytes([prefix[5], prefix[6], prefix[7], prefix[8]]) as u64;
        let body_start = PREAMBLE_BYTES as u64 + header_len;
        if body_start > object_bytes {
            return Err(corrupt("the header runs past the end of the object"));
        }
        if (prefix.len() as u64) < body_start {
            return Ok(Err(body_start));
        }
        let mut input = &prefix[PREAMBLE_BYTES..body_start as usize];
        let rows = varint::take_usize(&mut input)?;
        let count = varint::take_usize(&mut input)?;
        let mut streams = Vec::with_capacity(count.min(1024));
        let mut at = body_start;
        for _ in 0..count {
            let name_len = varint::take_usize(&mut input)?;
            let name = std::str::from_utf8(varint::take_bytes(&mut input, name_len)?)
                .map_err(|_| corrupt("a stream name is not text"))?
                .to_string();
            let codec = match varint::take_bytes(&mut input, 1)?[0] {
                0 => Codec::None,
                1 => Codec::Brotli,
                other => return Err(corrupt(&format!("unknown codec {other}"))),
            };
            let plain_bytes = varint::take(&mut input)? as u64;
            let stored = varint::take(&mut input)? as u64;
            let end = at
                .checked_add(stored)
                .filter(|&end| end <= object_bytes)
                .ok_or_else(|| corrupt("a stream runs past the end of the object"))?;
            streams.push(Stream {
                name,
                codec,
                plain_bytes,
                range: at..end,
            });
            at = end;
        }
        if !input.is_empty() || at != object_bytes {
            return Err(corrupt(
                "the header does not account for the object's bytes",
            ));
        }
        // Every encoding spends at least a byte per row in each stream, so a row count larger
        // than the largest stream is a damaged header (and must not size allocations).
        let largest = streams
            .iter()
            .map(|stream| stream.plain_bytes)
            .max()
            .unwrap_or(0);
        if rows as u64 > largest {
            return Err(corrupt("the header claims more rows than its streams hold"));
        }
        Ok(Ok(Directory { rows, streams }))
    }

    fn stream(&self, name: &str) -> io::Result<&Stream> {
        self.streams
            .iter()
            .find(|stream| stream.name == name)
            .ok_or_else(|| corrupt(&format!("no stream {name}")))
    }

    /// The streams holding the columns of `schema`, in the order [`Directory::decode`]
    /// takes them.
    pub fn streams_for(&self, schema: &SchemaRef) -> io::Result<Vec<&Stream>> {
        let mut wanted = Vec::new();
        if schema.fields().iter().any(|field| field.name() != "msg") {
            wanted.push(self.stream(COLUMNS)?);
        }
        if schema.fields().iter().any(|field| field.name() == "msg") {
            for name in MESSAGE_STREAMS {
                wanted.push(self.stream(name)?);
            }
        }
        Ok(wanted)
    }

    /// The columns of `schema` (a projection of the event schema) from the stored bytes of
    /// their streams, given in the order of [`Directory::streams_for`].
    pub fn decode(&self, schema: &SchemaRef, stored: &[&[u8]]) -> io::Result<RecordBatch> {
        let wanted = self.streams_for(schema)?;
        if wanted.len() != stored.len() {
            return Err(io::Error::other(
                "streams given do not match the columns asked for",
            ));
        }
        let plain = wanted
            .iter()
            .zip(stored)
            .map(|(stream, bytes)| Ok((stream.name.as_str(), decompress(stream, bytes)?)))
            .collect::<io::Result<HashMap<&str, Vec<u8>>>>()?;
        let mut encoded: HashMap<&str, &[u8]> = HashMap::new();
        if let Some(stream) = plain.get(COLUMNS) {
            let mut input = stream.as_slice();
            while !input.is_empty() {
                let name_len = varint::take_usize(&mut input)?;
                let name = std::str::from_utf8(varint::take_bytes(&mut input, name_len)?)
                    .map_err(|_| corrupt("a column name is not text"))?;
                let len = varint::take_usize(&mut input)?;
                encoded.insert(name, varint::take_bytes(&mut input, len)?);
            }
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = if field.name() == "msg" {
                let take = |name: &str| plain.get(name).cloned().unwrap_or_default();
                let streams = MessageStreams {
                    templates: take(MESSAGE_STREAMS[0]),
                    order: take(MESSAGE_STREAMS[1]),
                    integers: take(MESSAGE_STREAMS[2]),
                    strings: take(MESSAGE_STREAMS[3]),
                };
                Arc::new(messages::decode(&streams, self.rows)?) as ArrayRef
            } else {
                match encoded.get(field.name().as_str()) {
                    Some(stream) => columns::decode(field, stream, self.rows)?,
                    // A column added to the schema after the object was written: null in its
                    // rows, as in Parquet files of older versions.
                    None if field.is_nullable() => {
                        datafusion::arrow::array::new_null_array(field.data_type(), self.rows)
                    }
                    None => return Err(corrupt(&format!("no column {}", field.name()))),
                }
            };
            columns.push(column);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        RecordBatch::try_new_with_options(schema.clone(), columns, &options)
            .map_err(|error| corrupt(&error.to_string()))
    }
}

fn decompress(stream: &Stream, stored: &[u8]) -> io::Result<Vec<u8>> {
    if stored.len() as u64 != stream.range.end - stream.range.start {
        return Err(corrupt(&format!(
            "stream {} has the wrong length",
            stream.name
        )));
    }
    let plain = match stream.codec {
        Codec::None => stored.to_vec(),
        Codec::Brotli => {
            let mut out = Vec::with_capacity(stream.plain_bytes.min(1 << 30) as usize);
            // At most one byte more than the header promises: a damaged stream cannot
            // inflate without bound.
            brotli::Decompressor::new(stored, 64 * 1024)
                .take(stream.plain_bytes.saturating_add(1))
                .read_to_end(&mut out)?;
            out
        }
    };
    if plain.len() as u64 != stream.plain_bytes {
        return Err(corrupt(&format!(
            "stream {} decompresses to the wrong length",
            stream.name
        )));
    }
    Ok(plain)
}

impl Directory {
    /// The header of `object`, given whole.
    fn of_whole(object: &[u8]) -> io::Result<Directory> {
        Directory::parse(object, object.len() as u64)?
            .map_err(|_| corrupt("the header runs past the end of the object"))
    }
}

/// Decodes a whole object (every column of `schema`).
pub fn decode_all(object: &[u8], schema: &SchemaRef) -> io::Result<RecordBatch> {
    let directory = Directory::of_whole(object)?;
    let streams = directory.streams_for(schema)?;
    let stored: Vec<&[u8]> = streams
        .iter()
        .map(|stream| &object[stream.range.start as usize..stream.range.end as usize])
        .collect();
    directory.decode(schema, &stored)
}

/// The stored bytes of each stream of an object, by name (for `examples/parquet_sizes`).
pub fn stream_sizes(object: &[u8]) -> io::Result<HashMap<String, u64>> {
    let directory = Directory::of_whole(object)?;
    Ok(directory
        .streams
        .iter()
        .map(|stream| (stream.name.clone(), stream.range.end - stream.range.start))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meniscus_record::columnar::schema;

    fn events(messages: &[&str]) -> RecordBatch {
        crate::archive::test_support::event_batch(messages)
    }

    #[test]
    fn an_object_decodes_to_the_rows_it_was_made_of_whole_or_by_columns() {
        let batch = events(&["took 12 ms", "took 13 ms on host-7", "hello"]);
        let object = encode(&batch).unwrap();
        assert_eq!(decode_all(&object, &schema()).unwrap(), batch);
        let projected = Arc::new(schema().project(&[0, 13]).unwrap());
        let directory = Directory::parse(&object, object.len() as u64)
            .unwrap()
            .unwrap();
        let streams = directory.streams_for(&projected).unwrap();
        assert_eq!(streams.len(), 5, "the columns and msg's four");
        let stored: Vec<&[u8]> = streams
            .iter()
            .map(|stream| &object[stream.range.start as usize..stream.range.end as usize])
            .collect();
        let back = directory.decode(&projected, &stored).unwrap();
        assert_eq!(back, batch.project(&[0, 13]).unwrap());
        // No column: a count.
        let none = Arc::new(schema().project(&[]).unwrap());
        assert_eq!(directory.decode(&none, &[]).unwrap().num_rows(), 3);
    }

    #[test]
    fn a_column_added_to_the_schema_later_reads_as_nulls() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let batch = events(&["a 1", "b 2"]);
        let object = encode(&batch).unwrap();
        let mut fields: Vec<Field> = schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("added_later", DataType::Utf8, true));
        let wider = Arc::new(Schema::new(fields.clone()));
        let read = decode_all(&object, &wider).unwrap();
        assert_eq!(read.column(read.num_columns() - 1).null_count(), 2);
        assert_eq!(
            read.project(&(0..batch.num_columns()).collect::<Vec<_>>())
                .unwrap(),
            batch
        );
        // A required column the object lacks cannot be made up.
        fields.pop();
        fields.push(Field::new("required_later", DataType::Utf8, false));
        let error = decode_all(&object, &Arc::new(Schema::new(fields))).unwrap_err();
        assert!(
            error.to_string().contains("no column required_later"),
            "{error}"
        );
    }

    #[test]
    fn a_header_longer_than_the_first_read_asks_for_more() {
        let batch = events(&["a 1"]);
        let object = encode(&batch).unwrap();
        let need = Directory::parse(&object[..PREAMBLE_BYTES + 1], object.len() as u64)
            .unwrap()
            .unwrap_err();
        assert!(need > PREAMBLE_BYTES as u64 + 1);
        assert!(
            Directory::parse(&object[..need as usize], object.len() as u64)
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn damaged_objects_are_errors() {
        let batch = events(&["took 12 ms on host-7", "hello 5"]);
        let object = encode(&batch).unwrap();
        assert!(decode_all(b"PAR1....", &schema()).is_err());
        let mut version = object.clone();
        version[4] = 9;
        let error = decode_all(&version, &schema()).unwrap_err().to_string();
        assert!(error.contains("version 9"), "{error}");
        assert!(decode_all(&object[..object.len() - 1], &schema()).is_err());
        // A flipped byte in every position either fails or (in a value) changes the rows;
        // it never panics.
        for at in PREAMBLE_BYTES..object.len() {
            let mut damaged = object.clone();
            damaged[at] ^= 0x5a;
            let _ = decode_all(&damaged, &schema());
        }
    }
}
