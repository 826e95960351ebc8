//! TLS for syslog (RFC 5425) with rustls: server certificate, optional client-certificate
//! verification against a CA, and a mapping from a client certificate's CN or DNS SAN to a
//! tenant, for devices that cannot add structured data.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use meniscus_grid::tenant::{TenantId, TenantRegistry};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// A TLS client that has not finished its handshake by then is dropped, so slow or silent
/// clients cannot hold connection slots forever.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct TlsListener {
    pub acceptor: TlsAcceptor,
    client_tenants: HashMap<String, TenantId>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("invalid TLS setup: {0}")]
    Rustls(String),
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|source| TlsSetupError::Read {
        path: shown.clone(),
        source,
    })?;
    let certificates: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<_, _>>()
        .map_err(|source| TlsSetupError::Read {
            path: shown.clone(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsSetupError::NoCertificate { path: shown });
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|source| TlsSetupError::Read {
        path: shown.clone(),
        source,
    })?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|source| TlsSetupError::Read {
            path: shown.clone(),
            source,
        })?
        .ok_or(TlsSetupError::NoKey { path: shown })
}

impl TlsListener {
    pub fn from_config(config: &TlsConfig) -> Result<TlsListener, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsSetupError::Rustls(error.to_string()))?;
        let builder = match &config.client_ca_file {
            Some(ca_file) => {
                let mut roots = RootCertStore::empty();
                for certificate in read_certificates(ca_file)? {
                    roots
                        .add(certificate)
                        .map_err(|error| TlsSetupError::Rustls(format!("client CA: {error}")))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if config.client_cert_optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                }
                .build()
                .map_err(|error| TlsSetupError::Rustls(error.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let server = builder
            .with_single_cert(
                read_certificates(&config.cert_file)?,
                read_key(&config.key_file)?,
            )
            .map_err(|error| TlsSetupError::Rustls(error.to_string()))?;
        let client_tenants = config
            .client_tenants
            .iter()
            .map(|mapping| (mapping.name.clone(), mapping.tenant.clone()))
            .collect();
        Ok(TlsListener {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            client_tenants,
        })
    }

    /// The server side of a client's handshake, within [`HANDSHAKE_TIMEOUT`]: the TLS stream
    /// and the tenant its client certificate maps to, or `None` (counted as
    /// `meniscus_ingest_rejected_messages_total{transport, reason="handshake_failed" |
    /// "handshake_timeout"}` and logged).
    pub async fn handshake(
        &self,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        transport: &str,
        correlator: &crate::correlator::Correlator,
    ) -> Option<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        Option<TenantId>,
    )> {
        let rejected = &correlator.accept.metrics.rejected_messages;
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                let tenant = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| self.tenant_for(leaf, &correlator.accept.registry()));
                Some((stream, tenant))
            }
            Ok(Err(error)) => {
                rejected.inc(&[transport, "handshake_failed"]);
                tracing::warn!(%peer, %error, transport, "tls handshake failed");
                None
            }
            Err(_) => {
                rejected.inc(&[transport, "handshake_timeout"]);
                tracing::warn!(%peer, transport, "tls handshake timed out");
                None
            }
        }
    }

    /// The tenant a verified client certificate maps to: its subject CN first, then its DNS
    /// subject-alternative names, looked up in the listener's `clientTenants`, then in the
    /// tenants' own `tlsClientIdentities` (which change with the registry, no restart).
    /// Only meaningful when client certificates are verified.
    pub fn tenant_for(
        &self,
        certificate: &CertificateDer<'_>,
        registry: &TenantRegistry,
    ) -> Option<TenantId> {
        let names = certificate_names(certificate);
        names
            .iter()
            .find_map(|name| self.client_tenants.get(name).cloned())
            .or_else(|| {
                registry
                    .by_client_identity(&names)
                    .map(|tenant| tenant.id.clone())
            })
    }
}

/// Whether a connection's first bytes are a TLS handshake record (content type 22, version
/// 3.x): no syslog frame starts that way (octet counts start with a digit, messages with `<`
/// or text).
pub fn looks_like_tls_handshake(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, minor, ..] if *minor <= 0x04)
}

/// Subject common names, then DNS SANs, of a DER certificate.
pub fn certificate_names(certificate: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|name| name.as_str().ok().map(String::from))
        .collect();
    if let Ok(Some(extension)) = parsed.subject_alternative_name() {
        for general_name in &extension.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = general_name {
                names.push(dns.to_string());
            }
        }
    }
    names
}
