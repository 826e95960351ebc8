//! The stage contract: how one persona hands a batch of events to the next and learns that it
//! was taken.
//!
//! Standalone wires stages in process; the grid wires the same stages over the network. A
//! batch is columnar (Arrow, one [`TenantBatch`] per tenant): exactly what a record carries,
//! so a network link sends it as one record and the next persona works on it without
//! converting it back; the acknowledgement and the error are plain data that serialize. No
//! persona knows which wiring it has. Which stage follows which is decided in one place (the
//! worker's `pipeline` module).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use meniscus_grid::Event;
use serde::{Deserialize, Serialize};

use crate::columnar::{tenant_batches, ColumnarError, TenantBatch};

/// A future a stage returns: owns everything it needs, so it can be spawned.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Events travelling together from one read, datagram or request, in columns, per tenant.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub tenants: Vec<TenantBatch>,
    /// Acknowledged only once written to the store's write-ahead log (fsynced too when an
    /// event is durable), even when no event is durable: for protocols whose acknowledgement
    /// tells the sender it may forget the message (RELP). Otherwise a non-durable batch is
    /// acknowledged as soon as the store has queued it.
    pub acknowledge_when_written: bool,
    /// Acknowledged only once fsynced, whatever its events' producers: rows a storage worker
    /// hands off, which it deletes on the answer.
    pub synced: bool,
    /// The same events as one plain (uncompressed, unencrypted) Arrow IPC record, as a link
    /// received them: a store whose write-ahead log takes plain records writes these bytes
    /// instead of encoding `tenants` again. Whoever changes `tenants` must drop it
    /// ([`Then`] does for every transform).
    sealed: Option<Bytes>,
}

impl Batch {
    pub fn new(tenants: Vec<TenantBatch>) -> Batch {
        Batch {
            tenants,
            acknowledge_when_written: false,
            synced: false,
            sealed: None,
        }
    }

    /// This batch with `record`, a plain Arrow IPC record of exactly its events (see
    /// `sealed`); the caller has decoded `tenants` from it.
    pub fn with_sealed_record(mut self, record: Bytes) -> Batch {
        self.sealed = Some(record);
        self
    }

    /// The plain record of exactly these events, if the batch came with one.
    pub fn take_sealed_record(&mut self) -> Option<Bytes> {
        self.sealed.take()
    }

    /// This batch, acknowledged only once written (see `acknowledge_when_written`).
    pub fn acknowledged_when_written(mut self) -> Batch {
        self.acknowledge_when_written = true;
        self
    }

    /// A batch of owned events (HTTP bodies, tools, tests).
    pub fn from_events(events: &[Event]) -> Result<Batch, ColumnarError> {
        Ok(Batch::new(tenant_batches(events)?))
    }

    pub fn rows(&self) -> usize {
        self.tenants
            .iter()
            .map(|group| group.batch.num_rows())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    /// A batch must be on disk before it is acknowledged when any event in it is durable.
    pub fn is_durable(&self) -> bool {
        self.tenants.iter().any(TenantBatch::is_durable)
    }
}

/// What a stage answers when it has taken a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Events taken.
    pub events: u64,
    /// True when they are on disk (fsynced) downstream; always true for a durable batch.
    pub synced: bool,
}

/// Why a batch was not taken. Nothing of the batch counts as acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StageError {
    /// The next stage's queue is full: retry later (HTTP 503 with `Retry-After`).
    #[error("the ingest queue is full")]
    Full,
    /// The stage cannot take anything now (stopping, a failed disk, an unreachable peer):
    /// retry later, elsewhere if possible.
    #[error("storage unavailable: {reason}")]
    Unavailable { reason: String },
    /// This batch can never be taken as it is (too large, malformed): do not retry it.
    #[error("batch refused: {reason}")]
    Refused { reason: String },
}

impl StageError {
    pub fn unavailable(reason: impl Into<String>) -> StageError {
        StageError::Unavailable {
            reason: reason.into(),
        }
    }

    pub fn refused(reason: impl Into<String>) -> StageError {
        StageError::Refused {
            reason: reason.into(),
        }
    }
}

/// How a caller waits when the next stage is busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for space: TCP and UDP readers, so the socket slows down instead of dropping.
    Wait,
    /// Fail at once with [`StageError::Full`]: HTTP, so the client is told to retry.
    Refuse,
}

/// A persona's input.
pub trait Stage: Send + Sync + 'static {
    /// Takes a batch. The CPU work a stage does on it (normalizing, encoding) is done in this
    /// call, on the caller's thread, while the events are still in that core's cache; the
    /// returned future only waits for the acknowledgement: for a durable batch, once it is on
    /// disk (fsync); otherwise once the next stage has queued it. A caller may keep several
    /// such futures in flight.
    fn hand_on(
        self: Arc<Self>,
        batch: Batch,
        when_full: WhenFull,
    ) -> BoxFuture<Result<Ack, StageError>>;
}

/// Work a persona does to a batch in place before it goes on (the normalizer).
pub trait Transform: Send + Sync + 'static {
    fn apply(&self, batch: &mut Batch);
}

/// A transform followed by the next stage: one stage to whoever hands batches to it.
pub struct Then<T: ?Sized, N: ?Sized> {
    pub transform: Arc<T>,
    pub next: Arc<N>,
}

impl<T: Transform + ?Sized, N: Stage + ?Sized> Stage for Then<T, N> {
    fn hand_on(
        self: Arc<Self>,
        mut batch: Batch,
        when_full: WhenFull,
    ) -> BoxFuture<Result<Ack, StageError>> {
        self.transform.apply(&mut batch);
        // The transform may have changed the events: the received record no longer holds them.
        batch.sealed = None;
        self.next.clone().hand_on(batch, when_full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl Transform for Nothing {
        fn apply(&self, _batch: &mut Batch) {}
    }

    /// Takes the record the batch arrives with, to look at.
    struct Look(std::sync::Mutex<Option<Bytes>>);
    impl Stage for Look {
        fn hand_on(
            self: Arc<Self>,
            mut batch: Batch,
            _: WhenFull,
        ) -> BoxFuture<Result<Ack, StageError>> {
            *self.0.lock().unwrap() = batch.take_sealed_record();
            Box::pin(async { Ok(Ack::default()) })
        }
    }

    #[test]
    fn a_transform_drops_the_received_record_since_it_may_have_changed_the_events() {
        let look = Arc::new(Look(Default::default()));
        let batch = Batch::default().with_sealed_record(Bytes::from_static(&[1, 2, 3]));
        drop(look.clone().hand_on(batch.clone(), WhenFull::Wait));
        assert_eq!(
            look.0.lock().unwrap().as_deref(),
            Some([1u8, 2, 3].as_slice())
        );
        let then = Arc::new(Then {
            transform: Arc::new(Nothing),
            next: look.clone(),
        });
        drop(then.hand_on(batch, WhenFull::Wait));
        assert_eq!(*look.0.lock().unwrap(), None);
    }

    #[test]
    fn errors_serialize_as_tagged_kinds() {
        let error = StageError::refused("record too large");
        let json = serde_json::to_string(&error).unwrap();
        assert_eq!(json, r#"{"kind":"refused","reason":"record too large"}"#);
        assert_eq!(serde_json::from_str::<StageError>(&json).unwrap(), error);
        assert_eq!(
            serde_json::to_string(&StageError::Full).unwrap(),
            r#"{"kind":"full"}"#
        );
    }
}
