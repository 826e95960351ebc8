//! RELP, rsyslog's Reliable Event Logging Protocol (`omrelp` → a `protocol: relp` listener):
//! every message is acknowledged, and only once it is stored — after the fsync for durable
//! producers — so rsyslog resends whatever was not acknowledged when a connection or Meniscus
//! went away.
//!
//! A session: the client's `open` (answered with the protocol version and `commands=syslog`),
//! then `syslog` frames, each a syslog message (tenant from its structured data or the
//! listener's binding, exactly as on a syslog TCP listener), answered `200 OK` once the batch
//! of the read that carried it is stored; `close` is answered and ends the session. When the
//! store cannot take a batch its messages are answered `500` and the connection is closed, so
//! the client keeps them and sends them again. A message refused for its credentials is
//! answered `200 OK` (counted in `meniscus_ingest_auth_failures_total`), as on syslog TCP: a
//! `500` would make rsyslog retry it forever and hold up every message behind it.
//!
//! Delivery is at least once: a message stored just before the connection broke, and not yet
//! acknowledged, is sent again and stored twice.
//!
//! With a `tls` section the listener speaks RELP over TLS (rsyslog's `omrelp` with `tls="on"`),
//! and a client certificate can name the tenant, as on a syslog TLS listener.

pub mod frame;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use meniscus_record::{Batch, BatchBuilder, WhenFull};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::syslog::event::{Refusal, SourceContext};
use super::syslog::tcp::ConnectionGauge;
use super::syslog::tls::TlsListener;
use crate::connections::{ConnectionTable, Slot};
use crate::correlator::{Admission, Correlator, WhenLimited};

/// The most a read buffer holds besides one frame in progress.
const READ_CHUNK_BYTES: usize = 256 * 1024;

pub struct RelpListener {
    pub listener: TcpListener,
    pub source: SourceContext,
    pub connections: Arc<ConnectionTable>,
    /// RELP over TLS when set.
    pub tls: Option<Arc<TlsListener>>,
}

impl RelpListener {
    pub async fn serve(self, correlator: Arc<Correlator>) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "relp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = self.connections.admit_evictable(peer.ip()) else {
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let idle_timeout = self.connections.limits().idle_timeout;
            let mut source = self.source.clone();
            let correlator = correlator.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => session(stream, peer, source, idle_timeout, &slot, correlator).await,
                    Some(tls) => {
                        let transport = source.transport.as_str();
                        let Some((stream, tenant)) =
                            tls.handshake(stream, peer, transport, &correlator).await
                        else {
                            return;
                        };
                        if tenant.is_some() {
                            source.bound_tenant = tenant;
                        }
                        session(stream, peer, source, idle_timeout, &slot, correlator).await
                    }
                }
            });
        }
    }
}

/// What a frame of one read is answered with, in the order the frames came.
enum Answer {
    /// Known now (open, close, an unknown command).
    Now(u64, String),
    /// A syslog message: `200 OK` once the read's batch is stored.
    Stored(u64),
    /// A frame that cannot be read: the server ends the session (`serverclose`).
    ServerClose,
}

async fn session<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    source: SourceContext,
    idle_timeout: Duration,
    slot: &Slot,
    correlator: Arc<Correlator>,
) {
    let transport = source.transport;
    let _gauge = ConnectionGauge::open(&correlator, transport);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let max_message = correlator.max_message_bytes;
    // librelp's largest message is 128 KiB by default; a frame may carry a message up to the
    // larger of that and our limit (longer ones are cut to the limit, as on syslog TCP).
    let max_data = max_message.max(128 * 1024) + 1024;
    let mut buffer: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut refusals_logged = 0;
    let mut opened = false;
    loop {
        // None: silent for the idle timeout, or closed to make room on a full listener.
        let read = tokio::select! {
            read = tokio::time::timeout(idle_timeout, reader.read(&mut chunk)) => read.ok(),
            () = slot.evicted() => None,
        };
        let read = match read {
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(read)) => read,
            None => {
                correlator
                    .accept
                    .metrics
                    .closed_idle_connections
                    .inc(&[transport.as_str()]);
                let _ = writer.write_all(b"0 serverclose 0\n").await;
                return;
            }
        };
        slot.touch();
        if read == chunk.len() && chunk.len() < READ_CHUNK_BYTES {
            chunk.resize((chunk.len() * 2).min(READ_CHUNK_BYTES), 0);
        }
        buffer.extend_from_slice(&chunk[..read]);

        let registry = correlator.accept.registry();
        let received_at = Utc::now();
        let mut batch = BatchBuilder::default();
        let mut answers = Vec::new();
        let mut closing = false;
        let mut used = 0;
        let mut bytes_in = 0u64;
        loop {
            let (frame, length) = match frame::parse(&buffer[used..], max_data) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%peer, %error, "relp: closing the session");
                    correlator
                        .accept
                        .metrics
                        .rejected_messages
                        .inc(&[transport.as_str(), "malformed_frame"]);
                    // What came before the bad frame is still stored and answered.
                    closing = true;
                    answers.push(Answer::ServerClose);
                    break;
                }
            };
            used += length;
            match frame.command {
                "open" => {
                    opened = true;
                    answers.push(Answer::Now(
                        frame.txnr,
                        format!(
                            "200 OK\nrelp_version=0\nrelp_software=meniscus,{},https://github.com/meniscus\ncommands=syslog",
                            env!("CARGO_PKG_VERSION")
                        ),
                    ));
                }
                "syslog" if opened => {
                    bytes_in += frame.data.len() as u64;
                    let (message, truncated_from) = if frame.data.len() > max_message {
                        (&frame.data[..max_message], Some(frame.data.len()))
                    } else {
                        (frame.data, None)
                    };
                    // rsyslog ends each message with its template's LF.
                    let message = message.strip_suffix(b"\n").unwrap_or(message);
                    match correlator.append_syslog(
                        &mut batch,
                        &registry,
                        message,
                        truncated_from,
                        None,
                        &source,
                        received_at,
                    ) {
                        Ok(()) | Err(Refusal::Empty) => {}
                        Err(refusal) => {
                            if refusals_logged < 3 {
                                refusals_logged += 1;
                                tracing::warn!(%peer, reason = refusal.reason(), "relp message refused");
                            }
                        }
                    }
                    answers.push(Answer::Stored(frame.txnr));
                }
                "syslog" => answers.push(Answer::Now(
                    frame.txnr,
                    "500 the session is not open: send open first".into(),
                )),
                "close" => {
                    // Answered without data, as librelp servers do.
                    answers.push(Answer::Now(frame.txnr, String::new()));
                    closing = true;
                    break;
                }
                other => answers.push(Answer::Now(
                    frame.txnr,
                    format!(
                        "500 unknown command {other:?}; this server speaks open, syslog, close"
                    ),
                )),
            }
        }
        buffer.drain(..used);

        let stored = if batch.is_empty() {
            Ok(())
        } else {
            store(&correlator, batch, transport, bytes_in).await
        };
        let mut out = Vec::new();
        for answer in &answers {
            match answer {
                Answer::ServerClose => out.extend_from_slice(b"0 serverclose 0\n"),
                Answer::Now(txnr, body) => out.extend_from_slice(&frame::response(*txnr, body)),
                Answer::Stored(txnr) => match &stored {
                    Ok(()) => out.extend_from_slice(&frame::response(*txnr, "200 OK")),
                    Err(reason) => out.extend_from_slice(&frame::response(
                        *txnr,
                        &format!("500 not stored ({reason}); send it again"),
                    )),
                },
            }
        }
        if !out.is_empty() && writer.write_all(&out).await.is_err() {
            return;
        }
        if let Err(reason) = stored {
            tracing::error!(%peer, %reason, "relp: storage unavailable; closing the session so the sender keeps its messages");
            let _ = writer.write_all(b"0 serverclose 0\n").await;
            return;
        }
        if closing {
            return;
        }
        if buffer.len() > max_data + READ_CHUNK_BYTES {
            // Cannot happen with a well-formed stream: parse refuses oversize frames.
            return;
        }
    }
}

/// Hands a read's batch on and waits until it is stored (fsynced for durable producers):
/// only then may its messages be acknowledged. Over a tenant's limit the session waits (the
/// sender's window fills and it slows down); with the queue full it waits too.
async fn store(
    correlator: &Correlator,
    batch: BatchBuilder,
    transport: meniscus_grid::Transport,
    bytes: u64,
) -> Result<(), String> {
    let groups = batch.finish().map_err(|error| error.to_string())?;
    let admission = Admission {
        transport,
        bytes,
        when_limited: Some(WhenLimited::Pace),
        when_full: WhenFull::Wait,
        job_ids: false,
    };
    let admitted = correlator
        .accept
        .admit(Batch::new(groups).acknowledged_when_written(), admission)
        .await
        .map_err(|error| error.to_string())?;
    admitted
        .ack
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}
