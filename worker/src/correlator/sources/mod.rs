//! Ingest protocols, one folder each: a conversion from the protocol's bytes to CEE events and
//! a call into the shared accept path. A new protocol touches only its folder, the router (the
//! `http` module or `standalone`'s listeners) and the README.

pub mod agent;
pub mod elastic_bulk;
pub mod http_publish;
pub mod loki_push;
pub mod otlp_http;
pub mod relp;
pub mod syslog;
