//! Syslog over TCP (RFC 6587) and TLS (RFC 5425): one task per connection, framing, parsing and
//! handing batches on. A read waits while the next stage is full, so a fast sender is slowed
//! by TCP flow control instead of losing messages.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use meniscus_grid::Transport;
use meniscus_syslog::{Framer, Framing};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use meniscus_record::stage::BoxFuture;
use meniscus_record::{Ack, Batch, BatchBuilder, StageError, WhenFull};

use super::event::{Refusal, SourceContext};
use super::tls::TlsListener;
use crate::connections::{ConnectionTable, Slot};
use crate::correlator::{Admission, Correlator, WhenLimited};

/// Bytes one read may take from a busy connection; the frames in it become one batch.
/// bench/e2e, one connection: 256 KiB gave 1.06 M msg/s, 512 KiB 1.14-1.17 M (fewer, larger
/// batches through the same per-batch work); 1 MiB was no faster and peaked at 535 MiB RSS
/// with four connections (four batches in flight each).
const READ_BUFFER_BYTES: usize = 512 * 1024;
/// A connection's read buffer starts this small and doubles each time a read fills it, up to
/// [`READ_BUFFER_BYTES`]: 2,000 idle connections holding 512 KiB each took 600 MB before.
const FIRST_READ_BUFFER_BYTES: usize = 16 * 1024;
/// Batches of one connection handed on and not yet acknowledged, at most.
const MAX_BATCHES_IN_FLIGHT: usize = 4;

pub struct StreamListener {
    pub listener: TcpListener,
    pub framing: Framing,
    pub source: SourceContext,
    pub tls: Option<Arc<TlsListener>>,
    pub connections: Arc<ConnectionTable>,
}

impl StreamListener {
    pub async fn serve(self, correlator: Arc<Correlator>) {
        let transport = self.source.transport;
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, transport = transport.as_str(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Over the listener's, the address's or the process's share: closed at once
            // (unless an idle connection gives its place up, see connections.rs).
            let Ok(slot) = self.connections.admit_evictable(peer.ip()) else {
                drop(stream);
                continue;
            };
            let idle_timeout = self.connections.limits().idle_timeout;
            let _ = stream.set_nodelay(true);
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(60))
                .with_interval(Duration::from_secs(10));
            // Detects peers that vanished without closing (power loss, cable cut).
            let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
            let correlator = correlator.clone();
            let framing = self.framing;
            let mut source = self.source.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let slot = &slot;
                match tls {
                    None => {
                        read_stream(
                            stream,
                            peer,
                            framing,
                            source,
                            idle_timeout,
                            slot,
                            correlator,
                        )
                        .await
                    }
                    Some(tls) => {
                        let Some((stream, tenant)) =
                            tls.handshake(stream, peer, "tls", &correlator).await
                        else {
                            return;
                        };
                        if tenant.is_some() {
                            source.bound_tenant = tenant;
                        }
                        read_stream(
                            stream,
                            peer,
                            framing,
                            source,
                            idle_timeout,
                            slot,
                            correlator,
                        )
                        .await
                    }
                }
            });
        }
    }
}

async fn read_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    framing: Framing,
    source: SourceContext,
    idle_timeout: Duration,
    slot: &Slot,
    correlator: Arc<Correlator>,
) {
    let transport = source.transport;
    let gauge = ConnectionGauge::open(&correlator, transport);
    let mut framer = Framer::new(framing, correlator.max_message_bytes);
    let mut buffer = vec![0u8; FIRST_READ_BUFFER_BYTES];
    let mut refusals_logged = 0;
    // Columns sized like the previous read's batch: growing them by doubling copied them
    // several times per read and kept faulting in fresh pages.
    let mut events_per_read = 64;
    // Batches handed on but not yet acknowledged. A durable batch is acknowledged after its
    // fsync; waiting for each before reading on would leave one connection idle for every
    // fsync. Syslog senders get no acknowledgement anyway, so a few batches may be in flight;
    // the cap keeps memory bounded and the queue's backpressure still reaches the socket.
    let mut in_flight: VecDeque<JoinHandle<Result<Ack, StageError>>> = VecDeque::new();
    let mut failed = false;
    let mut first_read = true;
    loop {
        let read_or_evicted = async {
            tokio::select! {
                read = stream.read(&mut buffer) => Some(read),
                () = slot.evicted() => None,
            }
        };
        let (read, at_end) = match tokio::time::timeout(idle_timeout, read_or_evicted).await {
            Ok(Some(Ok(0))) => (0, true),
            Ok(Some(Ok(read))) => {
                slot.touch();
                (read, false)
            }
            Ok(Some(Err(error))) => {
                tracing::debug!(%peer, %error, "connection read failed");
                (0, true)
            }
            // The listener is full and this connection was the idlest: closed like an
            // idle one, so that a sender with something to say gets its place.
            Ok(None) | Err(_) => {
                // Ends like a closed stream: what was received is stored, then the slot is
                // free for someone who has something to say.
                tracing::debug!(%peer, ?idle_timeout, "idle connection closed");
                correlator
                    .accept
                    .metrics
                    .closed_idle_connections
                    .inc(&[transport.as_str()]);
                (0, true)
            }
        };
        if first_read && read > 0 {
            first_read = false;
            // A sender speaking TLS to a plain listener (the OpenTelemetry Collector's syslog
            // exporter does by default): its handshake would be stored as dozens of garbage
            // events, once per retry, on a listener bound to a tenant.
            if transport == Transport::Tcp && super::tls::looks_like_tls_handshake(&buffer[..read])
            {
                correlator
                    .accept
                    .metrics
                    .rejected_messages
                    .inc(&[transport.as_str(), "tls_on_plain_listener"]);
                tracing::warn!(%peer, "a TLS handshake on a plain TCP listener: connection closed; send to a protocol: tls listener, or turn the sender's TLS off");
                break;
            }
        }
        if read == buffer.len() && buffer.len() < READ_BUFFER_BYTES {
            buffer.resize((buffer.len() * 2).min(READ_BUFFER_BYTES), 0);
        }
        framer.extend(&buffer[..read]);
        let registry = correlator.accept.registry();
        let received_at = Utc::now();
        let mut batch = BatchBuilder::with_capacity(events_per_read);
        let mut bytes_in = 0u64;
        // Frames are borrowed from the framer's buffer and copied once, into the columns.
        while let Some(frame) = framer.next_frame_ref(at_end) {
            bytes_in += frame.bytes.len() as u64;
            let framing_error = frame.error.as_ref().map(ToString::to_string);
            match correlator.append_syslog(
                &mut batch,
                &registry,
                frame.bytes,
                frame.truncated_from,
                framing_error.as_deref(),
                &source,
                received_at,
            ) {
                Ok(()) => {}
                Err(Refusal::Empty) => {}
                Err(refusal) => {
                    // Already counted in meniscus_ingest_auth_failures_total by tenant
                    // resolution.
                    if refusals_logged < 3 {
                        refusals_logged += 1;
                        tracing::warn!(%peer, reason = refusal.reason(), "syslog message refused");
                    }
                }
            }
        }
        if !batch.is_empty() {
            events_per_read = batch.rows().max(64);
            let batch = match batch.finish() {
                Ok(groups) => Batch::new(groups),
                Err(error) => {
                    tracing::error!(%peer, %error, "cannot build the batch of a read; closing the connection");
                    break;
                }
            };
            // Over a tenant's ingest limit the accept path pauses this read, so TCP flow
            // control slows the sender down and nothing is dropped.
            let admission = Admission {
                transport,
                bytes: bytes_in,
                when_limited: Some(WhenLimited::Pace),
                when_full: WhenFull::Wait,
                job_ids: false,
            };
            let pending: BoxFuture<Result<Ack, StageError>> =
                match correlator.accept.admit(batch, admission).await {
                    Ok(admitted) => admitted.ack,
                    Err(error) => {
                        Box::pin(async move { Err(StageError::unavailable(error.to_string())) })
                    }
                };
            in_flight.push_back(tokio::spawn(pending));
            while in_flight.len() > MAX_BATCHES_IN_FLIGHT {
                if let Some(oldest) = in_flight.pop_front() {
                    failed |= !matches!(oldest.await, Ok(Ok(_)));
                }
            }
            if failed {
                tracing::error!(%peer, "storage unavailable; closing the connection so the sender keeps its messages");
                break;
            }
        }
        if at_end {
            break;
        }
    }
    // The connection counts as open until what it sent is handed on.
    for handle in in_flight {
        if !matches!(handle.await, Ok(Ok(_))) && !failed {
            failed = true;
            tracing::error!(%peer, "storage unavailable; the last messages of this connection were not stored");
        }
    }
    drop(gauge);
}

/// Keeps `meniscus_ingest_open_connections` right however the task ends.
pub(crate) struct ConnectionGauge {
    gauge: meniscus_metrics::Gauge,
}

impl ConnectionGauge {
    pub(crate) fn open(correlator: &Arc<Correlator>, transport: Transport) -> ConnectionGauge {
        let gauge = correlator
            .accept
            .metrics
            .open_connections
            .with(&[transport.as_str()]);
        gauge.inc();
        ConnectionGauge { gauge }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
