//! The seam between personas: a stage takes a batch of events and acknowledges it.
//!
//! Standalone wires stages in process (correlator -> normalizer -> storage); the grid will
//! wire the same stages over the network with the same batch and acknowledgement semantics,
//! so no persona knows which wiring it has.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use meniscus_grid::Event;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Events travelling together from one read, datagram or request.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
}

impl Batch {
    pub fn new(events: Vec<Event>) -> Batch {
        Batch { events }
    }

    /// A batch must be on disk before it is acknowledged when any event in it is durable.
    pub fn is_durable(&self) -> bool {
        self.events.iter().any(|event| event.meniscus.durable)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StageError {
    /// The queue is full; the caller should retry later (HTTP 503 with `Retry-After`).
    #[error("ingest queue is full")]
    Full,
    /// The stage is shutting down or has failed; nothing in this batch was acknowledged.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// How a caller waits when the next stage is busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for space: TCP and UDP readers, so the socket slows down instead of dropping.
    Wait,
    /// Fail at once with [`StageError::Full`]: HTTP, so the client is told to retry.
    Refuse,
}

pub trait Stage: Send + Sync + 'static {
    /// Hands a batch on. Resolves when it is acknowledged: for a durable batch, once it is on
    /// disk (fsync); otherwise once the next stage has taken it.
    fn submit(&self, batch: Batch, when_full: WhenFull) -> BoxFuture<'_, Result<(), StageError>>;

    /// [`Stage::submit`] for a caller that keeps several batches in flight on tasks of their
    /// own (a TCP connection). A stage may do its CPU work here, before returning, on the
    /// caller's thread while the batch is still in that core's cache; the returned future
    /// then only waits for the acknowledgement.
    fn hand_on(
        self: Arc<Self>,
        batch: Batch,
        when_full: WhenFull,
    ) -> BoxFuture<'static, Result<(), StageError>> {
        Box::pin(async move { self.submit(batch, when_full).await })
    }
}
