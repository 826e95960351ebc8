//! Limits on what a tenant's SQL can make one function call build.
//!
//! DataFusion's memory pool counts what operators reserve (sorts, joins, aggregations), not
//! what a scalar function allocates for its result: `SELECT cardinality(range(1, 150000000))`
//! built a 1.2 GB array in one call and `length(repeat('a', 1500000000))` a 1.5 GB string,
//! with a 256 MiB query limit. A call cannot be cancelled half-way, so the functions whose
//! output can be far larger than their input are wrapped: before the inner function runs, the
//! wrapper works out an upper bound of the bytes it would build from its arguments (lengths,
//! counts, ranges) and refuses the call when that is over the query's memory limit.
//!
//! Also here: `version()` answers "Meniscus" instead of naming the engine and its version.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::compute::{cast, CastOptions};
use datafusion::arrow::datatypes::{DataType, FieldRef, IntervalUnit, TimeUnit};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// How a function's output size is bounded from its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Bound {
    /// `repeat(text, n)`: text length times n.
    Repeat,
    /// `lpad/rpad(text, n [, fill])`: n characters of up to four bytes.
    Pad,
    /// `replace(text, from, to)`: every occurrence of `from` grown to `to`.
    Replace,
    /// `regexp_replace(text, pattern, replacement [, flags])`: a replacement at every
    /// position at worst, `$n` references expanding to the whole text.
    RegexpReplace,
    /// `range/generate_series(start, stop [, step])`: elements from start to stop.
    Series,
    /// `array_repeat(element, n)`: n elements.
    ArrayRepeat,
    /// `array_resize(array, n [, fill])`: n elements.
    ArrayResize,
}

const GUARDED: [(&str, Bound); 9] = [
    ("repeat", Bound::Repeat),
    ("lpad", Bound::Pad),
    ("rpad", Bound::Pad),
    ("replace", Bound::Replace),
    ("regexp_replace", Bound::RegexpReplace),
    ("range", Bound::Series),
    ("generate_series", Bound::Series),
    ("array_repeat", Bound::ArrayRepeat),
    ("array_resize", Bound::ArrayResize),
];

/// Bytes counted per element of a built array (value plus offsets and validity).
const ELEMENT_BYTES: u128 = 16;

/// Wraps the functions that can allocate without bound in `ctx` with guards holding each call
/// to `budget` bytes, and replaces `version()`.
pub fn install(ctx: &SessionContext, budget: usize) {
    for (name, bound) in GUARDED {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Guarded {
                inner,
                bound,
                budget,
            }));
        }
    }
    ctx.register_udf(ScalarUDF::new_from_impl(Version {
        signature: Signature::exact(vec![], Volatility::Immutable),
    }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Guarded {
    inner: Arc<ScalarUDF>,
    bound: Bound,
    budget: usize,
}

/// Per-row integer values of an argument (`None` where null or not a number).
fn integers(argument: &ArrayRef) -> Option<Int64Array> {
    let options = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    let cast =
        datafusion::arrow::compute::cast_with_options(argument, &DataType::Int64, &options).ok()?;
    Some(
        cast.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .clone(),
    )
}

/// Per-row byte lengths of a text (or binary) argument; zero where null.
fn byte_lengths(argument: &ArrayRef) -> Vec<u128> {
    let lengths = length(argument)
        .ok()
        .and_then(|lengths| integers(&lengths))
        .unwrap_or_else(|| Int64Array::from(vec![0i64; argument.len()]));
    (0..argument.len())
        .map(|row| {
            if lengths.is_null(row) {
                0
            } else {
                lengths.value(row).max(0) as u128
            }
        })
        .collect()
}

fn integer_at(values: &Option<Int64Array>, row: usize) -> u128 {
    match values {
        Some(values) if !values.is_null(row) => values.value(row).max(0) as u128,
        _ => 0,
    }
}

/// Microseconds of a temporal value or an interval, for counting the elements of a series.
fn micros(argument: &ArrayRef) -> Option<Vec<Option<i128>>> {
    match argument.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let intervals =
                argument.as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>();
            Some(
                (0..intervals.len())
                    .map(|row| {
                        (!intervals.is_null(row)).then(|| {
                            let value = intervals.value(row);
                            (value.months as i128) * 30 * 86_400_000_000
                                + (value.days as i128) * 86_400_000_000
                                + (value.nanoseconds as i128) / 1_000
                        })
                    })
                    .collect(),
            )
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let intervals =
                argument.as_primitive::<datafusion::arrow::datatypes::IntervalDayTimeType>();
            Some(
                (0..intervals.len())
                    .map(|row| {
                        (!intervals.is_null(row)).then(|| {
                            let value = intervals.value(row);
                            (value.days as i128) * 86_400_000_000
                                + (value.milliseconds as i128) * 1_000
                        })
                    })
                    .collect(),
            )
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            let intervals =
                argument.as_primitive::<datafusion::arrow::datatypes::IntervalYearMonthType>();
            Some(
                (0..intervals.len())
                    .map(|row| {
                        (!intervals.is_null(row))
                            .then(|| intervals.value(row) as i128 * 30 * 86_400_000_000)
                    })
                    .collect(),
            )
        }
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let as_micros =
                cast(argument, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?;
            let values =
                as_micros.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            Some(
                (0..values.len())
                    .map(|row| (!values.is_null(row)).then(|| values.value(row) as i128))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// Elements of one row's series from start to stop by step (inclusive).
fn series_length(start: i128, stop: i128, step: i128) -> u128 {
    if step == 0 {
        return 0;
    }
    let span = stop - start;
    if (span > 0) != (step > 0) && span != 0 {
        return 0;
    }
    (span / step).unsigned_abs() + 1
}

impl Guarded {
    /// An upper bound of the bytes this call would build.
    fn bytes(&self, args: &ScalarFunctionArgs) -> u128 {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .filter_map(|value| value.to_array(rows).ok())
            .collect();
        if arrays.len() != args.args.len() || arrays.is_empty() {
            return 0;
        }
        match self.bound {
            Bound::Repeat => {
                let lengths = byte_lengths(&arrays[0]);
                let counts = arrays.get(1).and_then(integers);
                (0..rows)
                    .map(|row| lengths[row].saturating_mul(integer_at(&counts, row)))
                    .fold(0, u128::saturating_add)
            }
            Bound::Pad => {
                let counts = arrays.get(1).and_then(integers);
                (0..rows)
                    .map(|row| integer_at(&counts, row).saturating_mul(4))
                    .fold(0, u128::saturating_add)
            }
            Bound::Replace => {
                let text = byte_lengths(&arrays[0]);
                let from = arrays.get(1).map(byte_lengths).unwrap_or_default();
                let to = arrays.get(2).map(byte_lengths).unwrap_or_default();
                (0..rows)
                    .map(|row| {
                        let (from, to) = (
                            from.get(row).copied().unwrap_or(1).max(1),
                            to.get(row).copied().unwrap_or(0),
                        );
                        let occurrences = text[row] / from;
                        text[row] + occurrences.saturating_mul(to.saturating_sub(from))
                    })
                    .fold(0, u128::saturating_add)
            }
            Bound::RegexpReplace => {
                let text = byte_lengths(&arrays[0]);
                let replacement = arrays.get(2).map(byte_lengths).unwrap_or_default();
                let references = arrays
                    .get(2)
                    .and_then(|array| array.as_string_opt::<i32>().cloned())
                    .map(|strings| {
                        (0..strings.len())
                            .map(|row| {
                                if strings.is_null(row) {
                                    0
                                } else {
                                    strings.value(row).matches('$').count() as u128
                                }
                            })
                            .collect::<Vec<u128>>()
                    });
                (0..rows)
                    .map(|row| {
                        let replacement = replacement.get(row).copied().unwrap_or(0);
                        let references = references
                            .as_ref()
                            .and_then(|counts| counts.get(row).copied())
                            .unwrap_or(1);
                        let per_match = replacement + references.saturating_mul(text[row]);
                        (text[row] + 1).saturating_mul(per_match + 1)
                    })
                    .fold(0, u128::saturating_add)
            }
            Bound::Series => {
                let single = arrays.len() == 1;
                let (start, stop) = if single {
                    (None, &arrays[0])
                } else {
                    (Some(&arrays[0]), &arrays[1])
                };
                let step = arrays.get(2);
                let count = |row: usize| -> u128 {
                    match (start.map(micros), micros(stop), step.map(micros)) {
                        (Some(Some(start)), Some(stop), Some(Some(step))) => {
                            match (start[row], stop[row], step[row]) {
                                (Some(start), Some(stop), Some(step)) => {
                                    series_length(start, stop, step)
                                }
                                _ => 0,
                            }
                        }
                        _ => {
                            let value = |array: Option<&ArrayRef>, default: i64| -> i128 {
                                array
                                    .and_then(integers)
                                    .filter(|values| !values.is_null(row))
                                    .map_or(default as i128, |values| values.value(row) as i128)
                            };
                            let start = value(start, 0);
                            let stop = value(Some(stop), 0);
                            let step = value(step, 1);
                            series_length(start, stop, step)
                        }
                    }
                };
                (0..rows)
                    .map(|row| count(row).saturating_mul(ELEMENT_BYTES))
                    .fold(0, u128::saturating_add)
            }
            Bound::ArrayRepeat => {
                let element = byte_lengths(&arrays[0]);
                let counts = arrays.get(1).and_then(integers);
                (0..rows)
                    .map(|row| {
                        integer_at(&counts, row)
                            .saturating_mul(element.get(row).copied().unwrap_or(0) + ELEMENT_BYTES)
                    })
                    .fold(0, u128::saturating_add)
            }
            Bound::ArrayResize => {
                let counts = arrays.get(1).and_then(integers);
                (0..rows)
                    .map(|row| integer_at(&counts, row).saturating_mul(ELEMENT_BYTES))
                    .fold(0, u128::saturating_add)
            }
        }
    }
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let bytes = self.bytes(&args);
        if bytes > self.budget as u128 {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}() would build about {bytes} bytes, over this query's memory limit of {} bytes",
                self.inner.name(),
                self.budget
            )));
        }
        self.inner.invoke_with_args(args)
    }
}

/// `version()`: the product, not the engine and its version.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Version {
    signature: Signature,
}

impl ScalarUDFImpl for Version {
    fn name(&self) -> &str {
        "version"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            "Meniscus".to_string(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_lengths_count_both_ends_and_refuse_nothing_backwards() {
        assert_eq!(series_length(1, 10, 1), 10);
        assert_eq!(series_length(10, 1, -3), 4);
        assert_eq!(series_length(1, 10, -1), 0);
        assert_eq!(series_length(5, 5, 1), 1);
        assert_eq!(series_length(0, 1, 0), 0);
    }
}
