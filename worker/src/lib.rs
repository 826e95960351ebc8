//! The Meniscus worker: the personas that run in the `meniscus` binary.
//!
//! - [`correlator`]: ingest. `correlator::sources::<protocol>` turn bytes into events;
//!   `correlator::accept` is the one path they all take (auth, limits, job ids, hand-off).
//! - [`normalizer`]: liblognorm-compatible rulebases applied per producer pattern.
//! - storage: the `meniscus-store` crate (WAL, hot store, compaction, retention, queries).
//! - [`tenant_api`]: the tenant's read API (jobs, search, SQL, counts).
//! - [`http`]: the router every HTTP source and the tenant API are mounted on, and the
//!   operational endpoints.
//! - [`pipeline`]: how the personas' stages are wired; [`standalone`]: everything in one
//!   process, its tenants from the configuration file and the admin API
//!   ([`tenant_sources`]).
//! - [`config`]: the configuration file, typed once at load.
//! - [`grid`]: `meniscus worker --persona …`, personas as processes.

pub mod allocator;
pub mod cli;
pub mod config;
pub mod connections;
pub mod correlator;
pub mod grid;
pub mod http;
pub mod normalizer;
pub mod pipeline;
pub mod standalone;
pub mod telemetry;
pub mod tenant_api;
pub mod tenant_sources;
