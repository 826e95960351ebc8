//! The Meniscus record: what the write-ahead log appends, a spool holds and a link between
//! personas carries — one format, so replay after a crash and drain after a network cut are
//! the same code.
//!
//! - [`frame`]: framing, checksum, optional zstd and AES-256-GCM, and the size limit that
//!   writers and readers share.
//! - [`columnar`]: the Arrow form of CEE events (the hot store's schema), built a row at a
//!   time as sources parse, and the payload that carries it, one Arrow IPC stream per tenant.
//! - [`stage`]: the contract between personas: a columnar batch, its acknowledgement, the
//!   errors, the [`Stage`] trait.
//!
//! No DataFusion and no async runtime here: the operator links this crate.
#![forbid(unsafe_code)]

pub mod columnar;
pub mod frame;
pub mod stage;

pub use columnar::{BatchBuilder, ColumnarError, EventColumns, EventRow, TenantBatch};
pub use frame::{PayloadFormat, RecordCodec, RecordError};
pub use stage::{Ack, Batch, Stage, StageError, Transform, WhenFull};
