//! Meniscus shared types: what every persona and the operator agree on. Types only: no async
//! runtime, no Arrow, no I/O, so the operator and every tool can link it cheaply.
//!
//! - [`event`]: the CEE event, the one shape a log message has inside Meniscus.
//! - [`tenant`]: tenant specs (the future `Tenant` CRD spec), validated ids, the registry that
//!   authenticates tokens.
//! - [`rate_limit`]: the token bucket behind a tenant's `limits.eventsPerSecond`.
//! - [`duration`]: human durations (`7d`, `36h`) used in specs.
//! - [`routes`]: personas, workers and the versioned routes; which storage workers hold a tenant.
#![forbid(unsafe_code)]

pub mod duration;
pub mod event;
pub mod rate_limit;
pub mod routes;
pub mod tenant;

pub use event::{Correlation, Event, Transport};
pub use tenant::{Producer, Tenant, TenantId, TenantRegistry, TenantSpec};
