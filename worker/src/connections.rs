//! Who may hold a connection, and for how long: so that a stranger's sockets cannot take the
//! service from the tenants.
//!
//! Found by trying: 1,600 idle sockets against a 1,024 file limit stopped `/healthz`, SQL and
//! durable publishes and made the write-ahead log fail with "Too many open files". Now every
//! listener caps its connections and a client address's share of them, idle connections are
//! closed, and the process keeps a reserve of file descriptors that sockets never take, so the
//! store can always open its files.
//!
//! A cap alone hands the listener to whoever fills it first: a stranger with 16 addresses
//! held all 4,096 places of a tenant's syslog port, and the tenant's own sender was refused
//! (found by bench/noisy). So a full syslog listener makes room: the connection that has said
//! least recently — one that never sent a byte for a second, or any silent for ten — is closed
//! for the newcomer. Senders that talk keep their place; only idle sockets are given up.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    open: Mutex<Open>,
    refused: Family<Counter>,
    /// Zero point of the slots' activity clocks.
    epoch: Instant,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
    /// Connections that may be closed to make room, by slot id.
    evictable: HashMap<u64, Arc<Activity>>,
    next_id: u64,
}

/// What a connection last did, shared between its reader and the table.
struct Activity {
    /// Milliseconds after the table's epoch of the last read that brought bytes (or of the
    /// accept, before any).
    last_active_ms: AtomicU64,
    spoke: AtomicBool,
    evicted: AtomicBool,
    wake: tokio::sync::Notify,
}

/// A connection that never sent a byte may be closed for a newcomer after this long...
const EVICTABLE_SILENT_AFTER: Duration = Duration::from_secs(1);
/// ... and one that did, after this long without a byte.
const EVICTABLE_IDLE_AFTER: Duration = Duration::from_secs(10);

/// A connection's place in its listener's table, given back when dropped.
pub struct Slot {
    table: Arc<ConnectionTable>,
    peer: IpAddr,
    id: u64,
    activity: Arc<Activity>,
}

impl Slot {
    /// Records that the connection just delivered bytes: it keeps its place.
    pub fn touch(&self) {
        self.activity.spoke.store(true, Ordering::Relaxed);
        self.activity
            .last_active_ms
            .store(self.table.now_ms(), Ordering::Relaxed);
    }

    /// Resolves when the listener closed this connection to make room for a newcomer.
    pub async fn evicted(&self) {
        while !self.activity.evicted.load(Ordering::Acquire) {
            self.activity.wake.notified().await;
        }
    }
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
            open: Mutex::new(Open::default()),
            refused,
            epoch: Instant::now(),
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A slot for a new connection from `peer`, or why there is none (counted). The
    /// connection is never closed to make room for another (HTTP: its header and body
    /// timeouts bound how long a silent client holds it).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        self.admit_with(peer, false)
    }

    /// Like [`admit`](Self::admit), for connections that may be closed when they are idle
    /// and the listener is full (syslog streams: the reader watches [`Slot::evicted`]); and
    /// a full listener closes such an idle connection to admit this one.
    pub fn admit_evictable(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        self.admit_with(peer, true)
    }

    fn admit_with(self: &Arc<Self>, peer: IpAddr, evictable: bool) -> Result<Slot, Refused> {
        let refused = |reason: Refused| {
            self.refused.inc(&[self.transport, reason.reason()]);
            reason
        };
        let now = self.now_ms();
        let mut open = self.open.lock();
        let mine = open.per_address.get(&peer).copied().unwrap_or(0);
        if mine >= self.limits.per_address {
            return Err(refused(Refused::AddressFull));
        }
        if open.total >= self.limits.per_listener && !(evictable && evict_idlest(&mut open, now)) {
            return Err(refused(Refused::ListenerFull));
        }
        if !self.budget.take() {
            // Every descriptor is in use: an idle connection of this listener gives its
            // place up; its descriptor comes back when its reader has closed it, and the
            // reserve covers the moment between. At most EVICTIONS_IN_FLIGHT such moments at
            // once: a flood of newcomers on a busy machine could otherwise evict faster than
            // the readers close, and take the reserve (EMFILE for the store).
            let in_flight = self.budget.open.load(Ordering::Acquire);
            if in_flight >= self.budget.limit + EVICTIONS_IN_FLIGHT
                || !(evictable && evict_idlest(&mut open, now))
            {
                return Err(refused(Refused::NoFileDescriptors));
            }
            self.budget.open.fetch_add(1, Ordering::AcqRel);
        }
        open.total += 1;
        *open.per_address.entry(peer).or_default() += 1;
        let id = open.next_id;
        open.next_id += 1;
        let activity = Arc::new(Activity {
            last_active_ms: AtomicU64::new(now),
            spoke: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        });
        if evictable {
            open.evictable.insert(id, activity.clone());
        }
        Ok(Slot {
            table: self.clone(),
            peer,
            id,
            activity,
        })
    }
}

/// Evicted connections whose descriptors may still be open while newcomers use their place
/// (a small part of the store's reserve).
const EVICTIONS_IN_FLIGHT: usize = 16;

/// Closes the connection idle longest, if one is idle long enough to lose its place; its
/// counts are given back now (its reader closes the socket when woken). Whether one was.
fn evict_idlest(open: &mut Open, now_ms: u64) -> bool {
    let silent_ms = EVICTABLE_SILENT_AFTER.as_millis() as u64;
    let idle_ms = EVICTABLE_IDLE_AFTER.as_millis() as u64;
    let victim = open
        .evictable
        .iter()
        .filter(|(_, activity)| {
            let idle = now_ms.saturating_sub(activity.last_active_ms.load(Ordering::Relaxed));
            let spoke = activity.spoke.load(Ordering::Relaxed);
            idle >= idle_ms || (!spoke && idle >= silent_ms)
        })
        .min_by_key(|(_, activity)| activity.last_active_ms.load(Ordering::Relaxed))
        .map(|(id, _)| *id);
    let Some(activity) = victim.and_then(|id| open.evictable.remove(&id)) else {
        return false;
    };
    activity.evicted.store(true, Ordering::Release);
    activity.wake.notify_one();
    open.total = open.total.saturating_sub(1);
    // The victim's address count is given back by its slot's drop, which sees `evicted`
    // and skips the listener total only; see Slot::drop.
    true
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock();
        let evicted = self.activity.evicted.load(Ordering::Acquire);
        if !evicted {
            open.total = open.total.saturating_sub(1);
            open.evictable.remove(&self.id);
        }
        if let Some(count) = open.per_address.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.per_address.remove(&self.peer);
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

    #[test]
    fn a_full_syslog_listener_closes_its_idlest_connection_for_a_newcomer() {
        let (stranger, sender) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let table = table(2, 10, 100);
        let first = table.admit_evictable(stranger).unwrap();
        let talking = table.admit_evictable(stranger).unwrap();
        // Both just arrived: nobody is idle long enough to lose its place.
        assert_eq!(
            table.admit_evictable(sender).err(),
            Some(Refused::ListenerFull)
        );
        std::thread::sleep(EVICTABLE_SILENT_AFTER + Duration::from_millis(100));
        talking.touch();
        // An HTTP connection never evicts anyone.
        assert_eq!(table.admit(sender).err(), Some(Refused::ListenerFull));
        let newcomer = table
            .admit_evictable(sender)
            .expect("the silent one makes room");
        assert!(first.activity.evicted.load(Ordering::Acquire));
        assert!(
            !talking.activity.evicted.load(Ordering::Acquire),
            "a talker keeps its place"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(first.evicted());
        // Room for exactly one: the talker and the newcomer are both fresh.
        assert_eq!(
            table.admit_evictable(sender).err(),
            Some(Refused::ListenerFull)
        );
        drop(first);
        assert_eq!(
            table.open.lock().total,
            2,
            "the evicted slot is not given back twice"
        );
        assert_eq!(table.open.lock().per_address.get(&stranger), Some(&1));
        drop((talking, newcomer));
        assert_eq!(table.open.lock().total, 0);
        assert!(table.open.lock().per_address.is_empty());
        assert_eq!(table.budget.open.load(Ordering::Acquire), 0);
    }
}
