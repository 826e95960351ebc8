//! How compacted files store `msg` when `compactionSplitMessages` is on: its first [`TOKEN_COLUMNS`] space-separated tokens in
//! columns of their own (`msg_t0`, `msg_t1`, …) and whatever follows in `msg`.
//!
//! A program writes its messages from a few templates, so the n-th word of its messages is
//! usually the same kind of thing (a verb, an address, a status, a duration). Stored
//! column-wise, each kind compresses against its own kind instead of against the whole line:
//! on bench/query's corpus `msg` took ~27 B/row this way against ~30 B/row whole (zstd 9),
//! and ~25 B/row against ~28 at zstd 15. Twelve columns gave the smallest files of the
//! counts tried (6, 12, 16, 24, 32).
//!
//! Off by default (`compactionSplitMessages`): reading a dozen short columns instead of one
//! long one made a free-text search over bench/query's 10 M events cost about twice the CPU
//! (1.8 -> 3.8 s) and about doubled the process's peak memory during queries (~480 -> ~1,000
//! MB, mostly freed pages the allocator keeps), for 0.173 -> 0.160 of raw on disk (0.149 with
//! zstd 15). Files record in the manifest whether they are split.
//!
//! The split is exact for every string: joining the non-null parts with single spaces gives
//! the message back byte for byte (doubled, leading and trailing spaces become empty tokens).
//! Token columns that are all null (absent) leave `msg` as the whole text.
//!
//! Queries never see the token columns: the query engine reads split files with
//! [`stored_schema`] and rebuilds `msg` with [`msg_from_tokens`]; compaction rebuilds it
//! with [`join`] before it merges files.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::NullBufferBuilder;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{exec_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use meniscus_record::columnar::schema;

/// How many leading tokens get a column each.
pub const TOKEN_COLUMNS: usize = 12;

/// The token columns' names, in order.
pub fn token_column_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| (0..TOKEN_COLUMNS).map(|i| format!("msg_t{i}")).collect())
}

/// The schema of a compacted file: the event schema with `msg` nullable (it holds only what
/// follows the token columns, often nothing) and the token columns at the end.
pub fn stored_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields: Vec<Field> = schema()
                .fields()
                .iter()
                .map(|field| {
                    let field = field.as_ref().clone();
                    if field.name() == "msg" {
                        field.with_nullable(true)
                    } else {
                        field
                    }
                })
                .collect();
            fields.extend(
                token_column_names()
                    .iter()
                    .map(|name| Field::new(name, DataType::Utf8, true)),
            );
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// Splits `msg` of a batch in the event schema into a batch in [`stored_schema`].
pub fn split(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let msg_index = batch.schema().index_of("msg")?;
    let messages = batch.column(msg_index).as_string::<i32>();
    let rows = messages.len();
    let mut tokens: Vec<StringBuilder> = (0..TOKEN_COLUMNS)
        .map(|_| StringBuilder::with_capacity(rows, messages.value_data().len() / TOKEN_COLUMNS))
        .collect();
    let mut rest = StringBuilder::new();
    for row in 0..rows {
        if messages.is_null(row) {
            tokens.iter_mut().for_each(StringBuilder::append_null);
            rest.append_null();
            continue;
        }
        let message = messages.value(row);
        let mut start = 0;
        let mut used = 0;
        for space in memchr::memchr_iter(b' ', message.as_bytes()) {
            if used == TOKEN_COLUMNS {
                break;
            }
            tokens[used].append_value(&message[start..space]);
            used += 1;
            start = space + 1;
        }
        if used < TOKEN_COLUMNS {
            // The last token: everything after the last space (possibly empty).
            tokens[used].append_value(&message[start..]);
            used += 1;
            tokens[used..]
                .iter_mut()
                .for_each(StringBuilder::append_null);
            rest.append_null();
        } else {
            rest.append_value(&message[start..]);
        }
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[msg_index] = Arc::new(rest.finish());
    columns.extend(
        tokens
            .iter_mut()
            .map(|builder| Arc::new(builder.finish()) as ArrayRef),
    );
    RecordBatch::try_new(stored_schema(), columns)
}

/// Rebuilds whole messages from token columns and the rest: the non-null parts of each row
/// joined by single spaces; null where every part is null. Fails only when a batch's text
/// would pass 2 GiB.
pub fn join_arrays(tokens: &[&StringArray], rest: &StringArray) -> Result<StringArray, ArrowError> {
    if tokens
        .iter()
        .all(|column| column.null_count() == column.len())
    {
        // A file without token columns: `msg` already holds every message whole.
        return Ok(rest.clone());
    }
    let rows = rest.len();
    let bytes = tokens
        .iter()
        .map(|column| column.value_data().len())
        .sum::<usize>()
        + rest.value_data().len()
        + rows * TOKEN_COLUMNS;
    // Written straight into the array's buffers: a builder copying each row through a
    // `String` cost a third more.
    let mut values: Vec<u8> = Vec::with_capacity(bytes);
    let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
    let mut nulls = NullBufferBuilder::new(rows);
    offsets.push(0);
    for row in 0..rows {
        let mut any = false;
        for column in tokens.iter().copied().chain(std::iter::once(rest)) {
            if column.is_null(row) {
                continue;
            }
            if any {
                values.push(b' ');
            }
            values.extend_from_slice(column.value(row).as_bytes());
            any = true;
        }
        nulls.append(any);
        let end = i32::try_from(values.len()).map_err(|_| {
            ArrowError::ComputeError("a batch's rebuilt messages pass 2 GiB".into())
        })?;
        offsets.push(end);
    }
    // Valid UTF-8 by construction (whole strings joined by spaces); checked all the same.
    StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from_vec(values),
        nulls.finish(),
    )
}

/// A batch read from any Parquet file brought back to whole messages: token columns, when
/// present, are joined into `msg` and dropped.
pub fn join(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let names = token_column_names();
    if batch.column_by_name(&names[0]).is_none() {
        return Ok(batch.clone());
    }
    let text = |name: &str| -> Result<&StringArray, ArrowError> {
        batch
            .column_by_name(name)
            .and_then(|column| column.as_string_opt::<i32>())
            .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is not text")))
    };
    let tokens = names
        .iter()
        .map(|name| text(name))
        .collect::<Result<Vec<_>, _>>()?;
    let message = join_arrays(&tokens, text("msg")?)?;
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if names.iter().any(|name| name == field.name()) {
            continue;
        }
        if field.name() == "msg" {
            fields.push(
                field
                    .as_ref()
                    .clone()
                    .with_nullable(message.null_count() > 0),
            );
            columns.push(Arc::new(message.clone()) as ArrayRef);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// `msg` for the query engine: `meniscus_msg(msg_t0, …, msg_t11, msg)` runs [`join_arrays`].
/// Built into each query's plan, not registered under its name, so tenant SQL cannot call it.
pub fn msg_from_tokens() -> ScalarUDF {
    ScalarUDF::new_from_impl(MsgFromTokens {
        signature: Signature::uniform(
            TOKEN_COLUMNS + 1,
            vec![DataType::Utf8],
            Volatility::Immutable,
        ),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MsgFromTokens {
    signature: Signature,
}

impl ScalarUDFImpl for MsgFromTokens {
    fn name(&self) -> &str {
        "meniscus_msg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        // Arrays of the batch's length, even where an argument is a constant.
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|value| value.to_array(args.number_rows))
            .collect::<DfResult<_>>()?;
        let mut text = Vec::with_capacity(arrays.len());
        for array in &arrays {
            match array.as_string_opt::<i32>() {
                Some(strings) => text.push(strings),
                None => return exec_err!("meniscus_msg takes text, got {}", array.data_type()),
            }
        }
        let Some((rest, tokens)) = text.split_last() else {
            return exec_err!("meniscus_msg takes {} arguments", TOKEN_COLUMNS + 1);
        };
        Ok(ColumnarValue::Array(Arc::new(join_arrays(tokens, rest)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use meniscus_grid::{Correlation, Event, Producer, Transport};
    use meniscus_record::columnar::events_to_batch;
    use proptest::prelude::*;

    fn event_batch(messages: &[&str]) -> RecordBatch {
        let producer = Producer::plain("default");
        let correlation = Correlation::new("acme", &producer, Transport::Tcp, Utc::now());
        let events: Vec<Event> = messages
            .iter()
            .map(|message| Event::from_message(message.to_string(), correlation.clone()))
            .collect();
        events_to_batch(&events).unwrap()
    }

    fn round_trip(messages: &[&str]) -> Vec<String> {
        let stored = split(&event_batch(messages)).unwrap();
        assert_eq!(stored.schema(), stored_schema());
        let joined = join(&stored).unwrap();
        assert!(joined.column_by_name("msg_t0").is_none());
        let msg = joined.column_by_name("msg").unwrap().as_string::<i32>();
        (0..msg.len())
            .map(|row| msg.value(row).to_string())
            .collect()
    }

    #[test]
    fn splits_into_leading_tokens_and_the_rest() {
        let long = "a b c d e f g h i j k l m  n o";
        let stored = split(&event_batch(&["GET /x 200", long])).unwrap();
        let column = |name: &str| {
            stored
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .clone()
        };
        assert_eq!(column("msg_t0").value(0), "GET");
        assert_eq!(column("msg_t2").value(0), "200");
        assert!(column("msg_t3").is_null(0), "no fourth token");
        assert!(column("msg").is_null(0), "nothing beyond the token columns");
        assert_eq!(column("msg_t11").value(1), "l");
        assert_eq!(
            column("msg").value(1),
            "m  n o",
            "the rest is kept verbatim"
        );
    }

    #[test]
    fn edge_cases_come_back_byte_for_byte() {
        let cases = [
            "",
            " ",
            "  ",
            "one",
            " leading",
            "trailing ",
            "a  b",
            "exactly twelve tokens here so the rest is null 1 2 3",
            "a b c d e f g h i j k l",
            "a b c d e f g h i j k l ",
            "a b c d e f g h i j k l m",
            "tab\tis not a separator, ünïcödé is fine",
        ];
        assert_eq!(round_trip(&cases), cases);
    }

    #[test]
    fn files_without_token_columns_read_as_whole_messages() {
        let batch = event_batch(&["whole message", "x"]);
        let joined = join(&batch).unwrap();
        assert_eq!(
            joined
                .column_by_name("msg")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "whole message"
        );
        let tokens: Vec<StringArray> = (0..TOKEN_COLUMNS)
            .map(|_| StringArray::new_null(2))
            .collect();
        let refs: Vec<&StringArray> = tokens.iter().collect();
        let rest = StringArray::from(vec!["whole message", "x"]);
        assert_eq!(join_arrays(&refs, &rest).unwrap(), rest);
    }

    proptest! {
        #[test]
        fn any_message_survives_split_and_join(
            messages in proptest::collection::vec("[ a-zé0-9]{0,60}", 1..20)
        ) {
            let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
            prop_assert_eq!(round_trip(&refs), messages);
        }
    }
}
