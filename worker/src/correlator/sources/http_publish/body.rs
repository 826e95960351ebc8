//! Publish bodies to events: the original Meniscus `{"log_message": {...}}`, a bare message
//! object, a JSON array of either, NDJSON (one per line), or raw syslog lines (`text/plain`,
//! `application/syslog`); optionally `Content-Encoding: gzip` or `zstd`. A body is taken whole
//! or not at all: one bad line is an error naming the line.

use std::io::Read;

use chrono::{DateTime, FixedOffset, Utc};
use meniscus_grid::tenant::Tenant;
use meniscus_grid::Transport;
use meniscus_record::{Batch, BatchBuilder, EventColumns, EventRow};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::PublishError;
use crate::correlator::sources::syslog::event::{Refusal, SourceContext};
use crate::correlator::Correlator;

/// One message as the original Meniscus API took it.
#[derive(Debug, Deserialize)]
struct LogMessage {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    pname: Option<String>,
    #[serde(default)]
    pid: Option<StringOrNumber>,
    #[serde(default)]
    msgid: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    pri: Option<u8>,
    #[serde(default)]
    ver: Option<u8>,
    msg: String,
    #[serde(default)]
    native: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Text(String),
    Number(u64),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Envelope {
    Wrapped { log_message: LogMessage },
    Bare(LogMessage),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    NdJson,
    Syslog,
}

impl BodyFormat {
    /// Picks the format from `Content-Type`. `curl -d` sends
    /// `application/x-www-form-urlencoded` whatever the body is, so for that type (and none) the
    /// body decides: JSON when it starts with `{` or `[`, syslog lines otherwise.
    pub fn from_content_type(
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<BodyFormat, PublishError> {
        let media = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "" | "application/x-www-form-urlencoded" => Ok(BodyFormat::sniff(body)),
            "application/json" => Ok(BodyFormat::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Ok(BodyFormat::NdJson),
            "text/plain" | "application/syslog" => Ok(BodyFormat::Syslog),
            other => Err(PublishError::UnsupportedMediaType(other.to_string())),
        }
    }

    fn sniff(body: &[u8]) -> BodyFormat {
        match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
            Some(b'{') | Some(b'[') => BodyFormat::Json,
            _ => BodyFormat::Syslog,
        }
    }
}

/// Decompresses per `Content-Encoding`, refusing output larger than `limit` (zip bombs).
pub fn decode_body(
    encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, PublishError> {
    let mut decoded = Vec::new();
    let read_limited = |reader: &mut dyn Read, decoded: &mut Vec<u8>| -> Result<(), PublishError> {
        let read = reader.take(limit as u64 + 1).read_to_end(decoded);
        match read {
            Ok(_) if decoded.len() > limit => Err(PublishError::TooLarge { limit }),
            Ok(_) => Ok(()),
            Err(error) => Err(PublishError::BadBody(format!(
                "the body could not be decompressed: {error}"
            ))),
        }
    };
    match encoding
        .map(|value| value.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => {
            if body.len() > limit {
                return Err(PublishError::TooLarge { limit });
            }
            return Ok(body.to_vec());
        }
        Some("gzip") | Some("x-gzip") => {
            read_limited(&mut flate2::read::MultiGzDecoder::new(body), &mut decoded)?
        }
        Some("zstd") => {
            let mut decoder = zstd::stream::read::Decoder::new(body).map_err(|error| {
                PublishError::BadBody(format!("the body could not be decompressed: {error}"))
            })?;
            read_limited(&mut decoder, &mut decoded)?
        }
        Some(other) => return Err(PublishError::UnsupportedEncoding(other.to_string())),
    }
    Ok(decoded)
}

/// Appends one message of the body to the tenant's columns.
fn push_message(
    columns: &mut EventColumns,
    tenant: &Tenant,
    message: LogMessage,
    received_at: DateTime<Utc>,
    position: &str,
) -> Result<(), PublishError> {
    let time = match &message.time {
        Some(text) => Some(
            DateTime::<FixedOffset>::parse_from_rfc3339(text).map_err(|error| {
                PublishError::BadBody(format!(
                    "{position}: log_message.time {text:?} is not an RFC 3339 timestamp ({error})"
                ))
            })?,
        ),
        None => None,
    };
    if message.pri.is_some_and(|pri| pri > 191) {
        return Err(PublishError::BadBody(format!(
            "{position}: log_message.pri must be 0-191"
        )));
    }
    let producer = tenant.producer_for(message.pname.as_deref());
    let pid = message.pid.map(|pid| match pid {
        StringOrNumber::Text(text) => text,
        StringOrNumber::Number(number) => number.to_string(),
    });
    let native = message
        .native
        .filter(|native| !native.is_empty())
        .and_then(|native| serde_json::to_string(&native).ok());
    columns.push(&EventRow {
        time,
        host: message.host.as_deref(),
        pname: message.pname.as_deref(),
        pid: pid.as_deref(),
        msgid: message.msgid.as_deref(),
        pri: message.pri,
        ver: message.ver,
        native: native.as_deref(),
        ..EventRow::message(&message.msg, producer, Transport::Http, received_at)
    });
    Ok(())
}

fn parse_envelope(value: Value, position: &str) -> Result<LogMessage, PublishError> {
    let envelope: Envelope = serde_json::from_value(value).map_err(|error| {
        PublishError::BadBody(format!(
            "{position}: not a log message ({error}); expected {{\"log_message\": {{\"msg\": ..., \"host\": ..., \"pname\": ..., \"time\": ...}}}}"
        ))
    })?;
    Ok(match envelope {
        Envelope::Wrapped { log_message } => log_message,
        Envelope::Bare(message) => message,
    })
}

/// A syslog line left out of a publish: its line number and why.
pub type RefusedLine = (usize, &'static str);

impl Correlator {
    /// Turns a decoded body into a batch for `tenant`, or says exactly what is wrong with it.
    /// Syslog lines that are refused (credentials of another tenant in their structured
    /// data) are left out and listed, as (line number, reason); the other lines go on.
    pub fn http_batch(
        &self,
        tenant: &std::sync::Arc<Tenant>,
        format: BodyFormat,
        body: &[u8],
    ) -> Result<(Batch, Vec<RefusedLine>), PublishError> {
        let mut refused = Vec::new();
        let received_at = Utc::now();
        let mut batch = BatchBuilder::default();
        match format {
            BodyFormat::Json => {
                let value: Value = serde_json::from_slice(body).map_err(|error| {
                    PublishError::BadBody(format!("the body is not valid JSON: {error}"))
                })?;
                let columns = batch.tenant(&tenant.id);
                match value {
                    Value::Array(items) => {
                        for (index, item) in items.into_iter().enumerate() {
                            let position = format!("item {index}");
                            let message = parse_envelope(item, &position)?;
                            push_message(columns, tenant, message, received_at, &position)?;
                        }
                    }
                    single => {
                        let message = parse_envelope(single, "body")?;
                        push_message(columns, tenant, message, received_at, "body")?;
                    }
                }
            }
            BodyFormat::NdJson => {
                let text = std::str::from_utf8(body).map_err(|error| {
                    PublishError::BadBody(format!(
                        "the body is not valid UTF-8 (first bad byte at offset {})",
                        error.valid_up_to()
                    ))
                })?;
                let columns = batch.tenant(&tenant.id);
                for (index, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let position = format!("line {}", index + 1);
                    let value: Value = serde_json::from_str(line).map_err(|error| {
                        PublishError::BadBody(format!("{position}: not valid JSON: {error}"))
                    })?;
                    let message = parse_envelope(value, &position)?;
                    push_message(columns, tenant, message, received_at, &position)?;
                }
            }
            BodyFormat::Syslog => {
                let registry = self.accept.registry();
                let source = SourceContext {
                    transport: Transport::Http,
                    bound_tenant: Some(tenant.id.clone()),
                    timezone: chrono_tz::UTC,
                };
                let mut framer = meniscus_syslog::Framer::new(
                    meniscus_syslog::Framing::Auto,
                    self.max_message_bytes,
                );
                framer.extend(body);
                let mut line = 0;
                while let Some(frame) = framer.next_frame_ref(true) {
                    line += 1;
                    match self.append_syslog(
                        &mut batch,
                        &registry,
                        frame.bytes,
                        frame.truncated_from,
                        None,
                        &source,
                        received_at,
                    ) {
                        Ok(()) | Err(Refusal::Empty) => {}
                        Err(refusal) => refused.push((line, refusal.reason())),
                    }
                }
            }
        }
        if batch.is_empty() {
            if let Some(&(line, reason)) = refused.first() {
                return Err(PublishError::LineRefused { line, reason });
            }
        }
        let groups = batch.finish().map_err(|error| {
            PublishError::BadBody(format!("the events cannot be stored: {error}"))
        })?;
        Ok((Batch::new(groups), refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_pick_the_format() {
        assert_eq!(
            BodyFormat::from_content_type(None, b" {}").unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/x-www-form-urlencoded"), b"<13>hi")
                .unwrap(),
            BodyFormat::Syslog
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/json; charset=utf-8"), b"").unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/x-ndjson"), b"").unwrap(),
            BodyFormat::NdJson
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("text/plain"), b"{").unwrap(),
            BodyFormat::Syslog
        );
        assert!(matches!(
            BodyFormat::from_content_type(Some("image/png"), b""),
            Err(PublishError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn compressed_bodies_are_decoded_within_the_limit() {
        let text = b"hello\n".repeat(1000);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, &text).unwrap();
        let gzip = gzip.finish().unwrap();
        assert_eq!(decode_body(Some("gzip"), &gzip, 1 << 20).unwrap(), text);
        let zstd = zstd::bulk::compress(&text, 3).unwrap();
        assert_eq!(decode_body(Some("zstd"), &zstd, 1 << 20).unwrap(), text);
        assert!(matches!(
            decode_body(Some("gzip"), &gzip, 100),
            Err(PublishError::TooLarge { limit: 100 })
        ));
        assert!(matches!(
            decode_body(Some("gzip"), b"not gzip", 100),
            Err(PublishError::BadBody(_))
        ));
        assert!(matches!(
            decode_body(Some("br"), b"x", 100),
            Err(PublishError::UnsupportedEncoding(_))
        ));
    }
}
