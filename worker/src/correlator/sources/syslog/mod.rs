//! Syslog: RFC 5424 and RFC 3164 over TCP (RFC 6587 framing), UDP (RFC 5426) and TLS
//! (RFC 5425). Each frame becomes one event ([`event`]); the tenant comes from the message's
//! `[meniscus …]` element, the listener's tenant binding or the client certificate.

pub mod event;
pub mod tcp;
pub mod text_credentials;
pub mod tls;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{ListenerConfig, ListenerProtocol};
use crate::connections::ConnectionTable;
use crate::correlator::Correlator;
use event::SourceContext;
use tcp::StreamListener;
use tls::TlsListener;

/// Binds one syslog listener and starts serving it; returns the bound address.
pub async fn listen(
    listener: &ListenerConfig,
    correlator: Arc<Correlator>,
    connections: Arc<ConnectionTable>,
) -> anyhow::Result<(ListenerProtocol, SocketAddr)> {
    let source = SourceContext {
        transport: listener.protocol.transport(),
        bound_tenant: listener.tenant.clone(),
        timezone: listener.timezone,
    };
    let address = listener.address;
    match listener.protocol {
        ListenerProtocol::Udp => {
            let socket = udp::bind(address)
                .with_context(|| format!("cannot listen for syslog UDP on {address}"))?;
            let local = socket.local_addr()?;
            tokio::spawn(udp::serve(socket, source, correlator));
            Ok((listener.protocol, local))
        }
        ListenerProtocol::Relp => {
            let tls = match &listener.tls {
                Some(tls) => Some(Arc::new(TlsListener::from_config(tls)?)),
                None => None,
            };
            let tcp = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for RELP on {address}"))?;
            let local = tcp.local_addr()?;
            tokio::spawn(
                crate::correlator::sources::relp::RelpListener {
                    listener: tcp,
                    source,
                    connections,
                    tls,
                }
                .serve(correlator),
            );
            Ok((listener.protocol, local))
        }
        ListenerProtocol::Tcp | ListenerProtocol::Tls => {
            let tls = match &listener.tls {
                Some(tls) => Some(Arc::new(TlsListener::from_config(tls)?)),
                None => None,
            };
            let tcp = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for syslog on {address}"))?;
            let local = tcp.local_addr()?;
            tokio::spawn(
                StreamListener {
                    listener: tcp,
                    framing: listener.framing,
                    source,
                    tls,
                    connections,
                }
                .serve(correlator),
            );
            Ok((listener.protocol, local))
        }
    }
}
