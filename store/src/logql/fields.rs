//! Labels that live inside a column rather than in one: the Loki labels an agent pushed (kept
//! under `native.labels`) and the fields `| json` and `| logfmt` find in a line. Each is a
//! plain function, and a query-engine function over it so that filters on such labels run in
//! the same plan as every other filter. The functions are built into each plan, never
//! registered by name, so tenant SQL cannot call them.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::lit;
use serde_json::Value;

use super::ast::LineFormat;

/// The label `__error__` takes when `| json` meets a line that is not a JSON object (Loki's
/// value, which Grafana's queries filter on with `| __error__=""`).
pub const JSON_ERROR: &str = "JSONParserErr";
pub const ERROR_LABEL: &str = "__error__";

/// The Loki labels stored with an event (`native.labels`), if any.
pub fn native_labels(native: &str) -> Option<serde_json::Map<String, Value>> {
    if !native.contains("\"labels\"") {
        return None;
    }
    match serde_json::from_str::<Value>(native).ok()? {
        Value::Object(mut object) => match object.remove("labels")? {
            Value::Object(labels) => Some(labels),
            _ => None,
        },
        _ => None,
    }
}

/// The fields of a line as labels: for `json`, an object's members with nested objects
/// flattened with `_` (`{"req":{"id":1}}` gives `req_id`), arrays left out; for `logfmt`,
/// `key=value` and `key="quoted value"` pairs. Names are made label names (`-`, `.` → `_`).
pub fn line_fields(format: LineFormat, line: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    match format {
        LineFormat::Json => match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => flatten("", &object, &mut fields),
            _ => {
                fields.insert(ERROR_LABEL.to_string(), JSON_ERROR.to_string());
            }
        },
        LineFormat::Logfmt => {
            for (key, value) in logfmt_pairs(line) {
                fields.insert(label_name(&key), value);
            }
        }
    }
    fields
}

/// One field of a line (see [`line_fields`]); `None` when the line has no such field.
pub fn line_field(format: LineFormat, line: &str, name: &str) -> Option<String> {
    match format {
        // Flattening names cannot be reversed in general (`a_b` may be `a.b` or `a` → `b`),
        // so the whole object is flattened; lines are short.
        LineFormat::Json => line_fields(format, line).remove(name),
        LineFormat::Logfmt => logfmt_pairs(line)
            .into_iter()
            .rev()
            .find(|(key, _)| label_name(key) == name)
            .map(|(_, value)| value),
    }
}

fn flatten(
    prefix: &str,
    object: &serde_json::Map<String, Value>,
    into: &mut BTreeMap<String, String>,
) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            label_name(key)
        } else {
            format!("{prefix}_{}", label_name(key))
        };
        match value {
            Value::Object(inner) => flatten(&name, inner, into),
            Value::Array(_) => {}
            Value::String(text) => {
                into.insert(name, text.clone());
            }
            Value::Null => {
                into.insert(name, String::new());
            }
            other => {
                into.insert(name, other.to_string());
            }
        }
    }
}

/// A field name as a label name: characters other than letters, digits and `_` become `_`.
fn label_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `key=value` pairs of a logfmt line; a value may be quoted (with `\"` inside); a bare key
/// has the empty value.
fn logfmt_pairs(line: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            match chars.next() {
                // `=value` without a key: skipped.
                Some(_) => {
                    while chars.next_if(|c| !c.is_whitespace()).is_some() {}
                    continue;
                }
                None => break,
            }
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(other) => value.push(other),
                            None => break,
                        },
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
    pairs
}

/// `native_label(native, 'app')`: a Loki label of the event, or null.
pub fn native_label_expr(native: Expr, name: &str) -> Expr {
    udf(TextFunction::NativeLabel).call(vec![native, lit(name.to_string())])
}

/// `native_labels(native)`: the event's Loki labels as a JSON object text, or null; a key
/// for grouping by stream.
pub fn native_labels_expr(native: Expr) -> Expr {
    udf(TextFunction::NativeLabels).call(vec![native])
}

/// `line_field(msg, 'json', 'status')`: a field of the line, or null.
pub fn line_field_expr(msg: Expr, format: LineFormat, name: &str) -> Expr {
    udf(TextFunction::LineField(format)).call(vec![msg, lit(name.to_string())])
}

fn udf(function: TextFunction) -> ScalarUDF {
    let arguments = match function {
        TextFunction::NativeLabels => 1,
        _ => 2,
    };
    ScalarUDF::new_from_impl(TextUdf {
        function,
        signature: Signature::uniform(arguments, vec![DataType::Utf8], Volatility::Immutable),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TextFunction {
    NativeLabel,
    NativeLabels,
    LineField(LineFormat),
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TextUdf {
    function: TextFunction,
    signature: Signature,
}

impl ScalarUDFImpl for TextUdf {
    fn name(&self) -> &str {
        match self.function {
            TextFunction::NativeLabel => "meniscus_native_label",
            TextFunction::NativeLabels => "meniscus_native_labels",
            TextFunction::LineField(LineFormat::Json) => "meniscus_json_field",
            TextFunction::LineField(LineFormat::Logfmt) => "meniscus_logfmt_field",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|value| value.to_array(rows))
            .collect::<DfResult<_>>()?;
        let Some(texts) = arrays
            .iter()
            .map(|array| array.as_string_opt::<i32>())
            .collect::<Option<Vec<_>>>()
        else {
            return exec_err!("{} takes text", self.name());
        };
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for row in 0..rows {
            if texts[0].is_null(row) {
                out.append_null();
                continue;
            }
            let text = texts[0].value(row);
            let name = texts.get(1).map(|names| names.value(row));
            let value = match (self.function, name) {
                (TextFunction::NativeLabel, Some(name)) => native_labels(text)
                    .and_then(|mut labels| labels.remove(name))
                    .map(|value| match value {
                        Value::String(text) => text,
                        other => other.to_string(),
                    }),
                (TextFunction::NativeLabels, _) => {
                    native_labels(text).map(|labels| Value::Object(labels).to_string())
                }
                (TextFunction::LineField(format), Some(name)) => line_field(format, text, name),
                _ => None,
            };
            out.append_option(value);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_flatten_and_other_lines_carry_the_error() {
        let fields = line_fields(
            LineFormat::Json,
            r#"{"level":"error","req":{"id":7,"user-agent":"curl"},"tags":[1],"ok":true,"n":null}"#,
        );
        assert_eq!(fields["level"], "error");
        assert_eq!(fields["req_id"], "7");
        assert_eq!(fields["req_user_agent"], "curl");
        assert_eq!(fields["ok"], "true");
        assert_eq!(fields["n"], "");
        assert!(!fields.contains_key("tags"));
        assert!(!fields.contains_key(ERROR_LABEL));
        let broken = line_fields(LineFormat::Json, "GET / 200");
        assert_eq!(broken[ERROR_LABEL], JSON_ERROR);
        assert_eq!(
            line_field(LineFormat::Json, r#"{"a":{"b":"c"}}"#, "a_b").as_deref(),
            Some("c")
        );
    }

    #[test]
    fn logfmt_pairs_take_quotes_and_bare_keys() {
        let fields = line_fields(
            LineFormat::Logfmt,
            r#"level=warn msg="disk \"sda\" full" took=3ms debug =x http.status=503"#,
        );
        assert_eq!(fields["level"], "warn");
        assert_eq!(fields["msg"], "disk \"sda\" full");
        assert_eq!(fields["took"], "3ms");
        assert_eq!(fields["debug"], "");
        assert_eq!(fields["http_status"], "503");
        assert_eq!(
            line_field(LineFormat::Logfmt, "a=1 a=2", "a").as_deref(),
            Some("2")
        );
        assert_eq!(line_field(LineFormat::Logfmt, "a=1", "b"), None);
    }

    #[test]
    fn native_labels_are_found_only_under_labels() {
        let native = r#"{"labels":{"app":"web","job":"x"},"structured_metadata":{"trace":"1"}}"#;
        let labels = native_labels(native).unwrap();
        assert_eq!(labels["app"], "web");
        assert!(!labels.contains_key("trace"));
        assert!(native_labels(r#"{"sd":{"x":1}}"#).is_none());
        assert!(native_labels("not json \"labels\"").is_none());
    }
}
