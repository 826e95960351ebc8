//! Whether the store takes new batches. It stops taking them, instead of buffering without
//! bound, while the write-ahead log cannot be written (a failed segment creation or directory
//! fsync, a disk that fails writes) or while memory is full because flushes cannot keep up.
//! Callers that can wait (TCP and UDP readers) wait, so TCP flow control reaches the sender;
//! callers that cannot (HTTP) are refused with a reason (503).

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Why the gate is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The write-ahead log cannot be written; the reason names the failure.
    WalUnwritable(String),
    /// Memory holds as much as it may until a flush finishes.
    MemoryFull,
}

impl Closed {
    pub fn describe(&self) -> String {
        match self {
            Closed::WalUnwritable(reason) => {
                format!("the write-ahead log cannot be written: {reason}")
            }
            Closed::MemoryFull => "memory is full until a flush to Parquet finishes".to_string(),
        }
    }
}

pub struct Gate {
    open: AtomicBool,
    closed: Mutex<Option<Closed>>,
    opened: Notify,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Gate {
    /// An open gate.
    pub fn new() -> Gate {
        Gate {
            open: AtomicBool::new(true),
            closed: Mutex::new(None),
            opened: Notify::new(),
        }
    }

    /// `None` when open.
    pub fn closed(&self) -> Option<Closed> {
        if self.open.load(Ordering::Acquire) {
            return None;
        }
        self.closed.lock().clone()
    }

    pub fn close(&self, why: Closed) {
        let mut closed = self.closed.lock();
        if closed.as_ref() != Some(&why) {
            tracing::warn!(reason = %why.describe(), "storage stops taking new batches");
        }
        *closed = Some(why);
        self.open.store(false, Ordering::Release);
    }

    pub fn open(&self) {
        let mut closed = self.closed.lock();
        if let Some(why) = closed.take() {
            tracing::info!(was = %why.describe(), "storage takes new batches again");
        }
        self.open.store(true, Ordering::Release);
        drop(closed);
        self.opened.notify_waiters();
    }

    /// Waits until the gate is open.
    pub async fn wait_open(&self) {
        loop {
            let notified = self.opened.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}
