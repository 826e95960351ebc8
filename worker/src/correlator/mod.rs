//! The correlator persona: takes logs in every protocol Meniscus speaks, identifies and
//! authenticates the tenant, builds CEE events and hands them to the next stage.
//!
//! - [`accept`]: the one path every source goes through (auth, limits, job ids, counting,
//!   hand-off);
//! - [`sources`]: one folder per protocol, each turning its bytes into events.

pub mod accept;
pub mod sources;

use std::sync::Arc;

pub use accept::{Accept, AcceptError, Admission, Admitted, WhenLimited};

/// What every source of one process shares.
pub struct Correlator {
    pub accept: Accept,
    /// Largest syslog message kept whole; longer ones are cut and flagged.
    pub max_message_bytes: usize,
    /// Largest HTTP body, also after decompression.
    pub max_http_body_bytes: usize,
}

impl Correlator {
    pub fn new(
        accept: Accept,
        max_message_bytes: usize,
        max_http_body_bytes: usize,
    ) -> Arc<Correlator> {
        Arc::new(Correlator {
            accept,
            max_message_bytes,
            max_http_body_bytes,
        })
    }
}
