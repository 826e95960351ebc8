//! Syslog over UDP (RFC 5426): one datagram, one message, no trailing LF needed.
//!
//! The receive buffer is made large and drained in bursts: at full speed, default buffers lose
//! messages before userspace ever sees them (see LESSONS.md).

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use tokio::net::UdpSocket;

use meniscus_record::{Batch, BatchBuilder, WhenFull};

use super::event::{Refusal, SourceContext};
use crate::correlator::{Admission, Correlator};

const RECEIVE_BUFFER_BYTES: usize = 32 * 1024 * 1024;
const DATAGRAMS_PER_BATCH: usize = 512;

pub fn bind(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if address.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    if let Err(error) = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        tracing::warn!(%error, "cannot enlarge the UDP receive buffer; bursts may be lost (raise net.core.rmem_max)");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// Some senders (`logger --octet-count --udp`) put an RFC 6587 octet count in front of a
/// datagram. It is removed when it is exactly the length of the rest and a `<PRI>` follows, the
/// same test TCP's `auto` framing applies, so a message that merely starts with digits is kept.
fn strip_octet_count(datagram: &[u8]) -> &[u8] {
    let digits = datagram
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if digits == 0
        || digits > 9
        || datagram.get(digits) != Some(&b' ')
        || datagram.get(digits + 1) != Some(&b'<')
    {
        return datagram;
    }
    let rest = &datagram[digits + 1..];
    let declared: usize = std::str::from_utf8(&datagram[..digits])
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    if declared == rest.len() {
        rest
    } else {
        datagram
    }
}

pub async fn serve(socket: UdpSocket, source: SourceContext, correlator: Arc<Correlator>) {
    // One byte more than the limit tells a datagram at the limit from a longer one.
    let max = correlator.max_message_bytes;
    let mut buffer = vec![0u8; 65_536.max(max + 1)];
    let mut events_per_batch = 16;
    loop {
        // Sized like the previous batch, so bursts do not regrow it datagram by datagram.
        let mut batch = BatchBuilder::with_capacity(events_per_batch);
        let mut bytes_in = 0u64;
        let registry = correlator.accept.registry();
        for index in 0..DATAGRAMS_PER_BATCH {
            let received = if index == 0 {
                socket.recv_from(&mut buffer).await
            } else {
                match socket.try_recv_from(&mut buffer) {
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    other => other,
                }
            };
            let (length, _peer) = match received {
                Ok(received) => received,
                Err(error) => {
                    tracing::warn!(%error, "udp receive failed");
                    break;
                }
            };
            let (bytes, truncated_from) = if length > max {
                (&buffer[..max], Some(length))
            } else {
                (&buffer[..length], None)
            };
            let bytes = strip_octet_count(bytes);
            bytes_in += bytes.len() as u64;
            match correlator.append_syslog(
                &mut batch,
                &registry,
                bytes,
                truncated_from,
                None,
                &source,
                Utc::now(),
            ) {
                Ok(()) => {}
                Err(Refusal::Empty) => {}
                // Refusals are counted in meniscus_auth_failures_total by tenant resolution.
                Err(_refusal) => {}
            }
        }
        if !batch.is_empty() {
            events_per_batch = batch.rows().max(16);
            let batch = match batch.finish() {
                Ok(groups) => Batch::new(groups),
                Err(error) => {
                    tracing::error!(%error, "cannot build the batch of udp datagrams");
                    continue;
                }
            };
            // UDP is not rate-limited: a datagram cannot be slowed down, only dropped.
            let admission = Admission {
                transport: source.transport,
                bytes: bytes_in,
                when_limited: None,
                when_full: WhenFull::Wait,
                job_ids: false,
            };
            let stored = match correlator.accept.admit(batch, admission).await {
                Ok(admitted) => admitted
                    .ack
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = stored {
                tracing::error!(%error, "udp messages not stored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_octet_count;

    #[test]
    fn an_octet_count_is_removed_only_when_it_matches() {
        assert_eq!(strip_octet_count(b"5 <13>x"), b"<13>x");
        assert_eq!(strip_octet_count(b"6 <13>x"), b"6 <13>x");
        assert_eq!(
            strip_octet_count(b"91: *Oct  7 03:10:04: x"),
            b"91: *Oct  7 03:10:04: x"
        );
        assert_eq!(strip_octet_count(b"<13>x"), b"<13>x");
    }
}
