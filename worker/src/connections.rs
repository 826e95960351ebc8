//! Who may hold a connection, and for how long: so that a stranger's sockets cannot take the
//! service from the tenants.
//!
//! Found by trying: 1,600 idle sockets against a 1,024 file limit stopped `/healthz`, SQL and
//! durable publishes and made the write-ahead log fail with "Too many open files". Now every
//! listener caps its connections and a client address's share of them, idle connections are
//! closed, and the process keeps a reserve of file descriptors that sockets never take, so the
//! store can always open its files.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meniscus_metrics::{Counter, Family};
use parking_lot::Mutex;

/// Connection limits of one listener (and timeouts of its connections).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub per_listener: usize,
    pub per_address: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// HTTP: time to send the request headers.
    pub header_timeout: Duration,
    /// HTTP: time to send the request body.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            per_listener: 4096,
            // A relay (rsyslog with several queues, a load balancer) may hold many
            // connections from one address; a stranger's flood is still a small share.
            per_address: 256,
            idle_timeout: Duration::from_secs(600),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// File descriptors the process never gives to sockets: the WAL, Parquet files opened by
/// flushes, compaction and queries, and the store's directories always find one.
const RESERVED_FILE_DESCRIPTORS: usize = 256;

/// The process's socket budget: its open-file limit (raised to the hard limit at start) minus
/// the reserve.
pub struct SocketBudget {
    limit: usize,
    open: AtomicUsize,
}

impl SocketBudget {
    /// Raises the soft open-file limit to the hard one and returns the budget that leaves.
    pub fn from_process_limit() -> Arc<SocketBudget> {
        let limit = raise_open_file_limit();
        let budget = limit.saturating_sub(RESERVED_FILE_DESCRIPTORS).max(16);
        tracing::info!(
            open_file_limit = limit,
            sockets = budget,
            "file descriptors: sockets may use all but the store's reserve"
        );
        Arc::new(SocketBudget {
            limit: budget,
            open: AtomicUsize::new(0),
        })
    }

    /// A budget of `sockets` (tests).
    pub fn fixed(sockets: usize) -> Arc<SocketBudget> {
        Arc::new(SocketBudget {
            limit: sockets,
            open: AtomicUsize::new(0),
        })
    }

    fn take(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.limit).then_some(open + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The soft limit raised as far as the hard limit allows; returns the new soft limit.
fn raise_open_file_limit() -> usize {
    let mut limits = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limits) != 0 {
            return 1024;
        }
        if limits.rlim_cur < limits.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limits.rlim_max,
                rlim_max: limits.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limits.rlim_cur = limits.rlim_max;
            }
        }
    }
    usize::try_from(limits.rlim_cur).unwrap_or(usize::MAX)
}

/// Why a connection was closed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    ListenerFull,
    AddressFull,
    NoFileDescriptors,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::ListenerFull => "listener_full",
            Refused::AddressFull => "address_full",
            Refused::NoFileDescriptors => "file_descriptors",
        }
    }
}

/// The open connections of one listener.
pub struct ConnectionTable {
    limits: ConnectionLimits,
    transport: &'static str,
    budget: Arc<SocketBudget>,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    refused: Family<Counter>,
}

/// A connection's place in its listener's table, given back when dropped.
pub struct Slot {
    table: Arc<ConnectionTable>,
    peer: IpAddr,
}

impl ConnectionTable {
    pub fn new(
        limits: ConnectionLimits,
        transport: &'static str,
        budget: Arc<SocketBudget>,
        refused: Family<Counter>,
    ) -> Arc<ConnectionTable> {
        Arc::new(ConnectionTable {
            limits,
            transport,
            budget,
            open: Mutex::new((0, HashMap::new())),
            refused,
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// A slot for a new connection from `peer`, or why there is none (counted).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let refused = |reason: Refused| {
            self.refused.inc(&[self.transport, reason.reason()]);
            reason
        };
        let mut open = self.open.lock();
        let (total, per_address) = &mut *open;
        if *total >= self.limits.per_listener {
            return Err(refused(Refused::ListenerFull));
        }
        let mine = per_address.get(&peer).copied().unwrap_or(0);
        if mine >= self.limits.per_address {
            return Err(refused(Refused::AddressFull));
        }
        if !self.budget.take() {
            return Err(refused(Refused::NoFileDescriptors));
        }
        *total += 1;
        per_address.insert(peer, mine + 1);
        Ok(Slot {
            table: self.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock();
        let (total, per_address) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(count) = per_address.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.peer);
            }
        }
        self.table.budget.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meniscus_metrics::Registry;

    fn table(per_listener: usize, per_address: usize, sockets: usize) -> Arc<ConnectionTable> {
        let refused = Registry::new().counters(
            "meniscus_test_refused_total",
            "R.",
            &["transport", "reason"],
        );
        ConnectionTable::new(
            ConnectionLimits {
                per_listener,
                per_address,
                ..ConnectionLimits::default()
            },
            "tcp",
            SocketBudget::fixed(sockets),
            refused,
        )
    }

    #[test]
    fn listeners_addresses_and_the_process_each_have_a_cap() {
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let table = table(3, 2, 100);
        let first = table.admit(a).unwrap();
        let _second = table.admit(a).unwrap();
        assert_eq!(table.admit(a).err(), Some(Refused::AddressFull));
        let _third = table.admit(b).unwrap();
        assert_eq!(table.admit(b).err(), Some(Refused::ListenerFull));
        drop(first);
        assert!(table.admit(b).is_ok(), "a closed connection frees its slot");
        assert_eq!(table.refused.get(&["tcp", "address_full"]), 1);

        let scarce = super::tests::table(10, 10, 1);
        let _only = scarce.admit(a).unwrap();
        assert_eq!(scarce.admit(b).err(), Some(Refused::NoFileDescriptors));
    }
}
