//! Routes: which worker does what, as the coordinator hands them out and every worker keeps
//! a copy. Versioned: a worker that sees a newer version than its own asks for a snapshot.
//!
//! Storage is tenant-affine: a tenant's events go to (and its queries read from) the
//! `copies` storage workers that rank highest for it by rendezvous hashing, so a tenant's
//! data touches few workers, and adding or removing a worker moves only the tenants whose
//! top ranks it enters or leaves (about `copies / n` of them), never a reshuffle.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a worker does; one process may have several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Persona {
    Correlator,
    Normalizer,
    Storage,
    TenantApi,
    Broadcaster,
    Coordinator,
}

impl Persona {
    pub const ALL: [Persona; 6] = [
        Persona::Correlator,
        Persona::Normalizer,
        Persona::Storage,
        Persona::TenantApi,
        Persona::Broadcaster,
        Persona::Coordinator,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Persona::Correlator => "correlator",
            Persona::Normalizer => "normalizer",
            Persona::Storage => "storage",
            Persona::TenantApi => "tenant-api",
            Persona::Broadcaster => "broadcaster",
            Persona::Coordinator => "coordinator",
        }
    }

    /// Parses a persona name as `--persona` takes it.
    pub fn parse(name: &str) -> Option<Persona> {
        Persona::ALL
            .into_iter()
            .find(|persona| persona.name() == name)
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A worker's id, given by the coordinator when it pairs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub String);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerStatus {
    Online,
    /// Reported down by several workers, or silent past the heartbeat timeout: no route
    /// sends to it until it is heard from again.
    Offline,
}

/// One worker as the routes show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteEntry {
    pub id: WorkerId,
    /// Where other workers reach it (`host:port`).
    pub address: String,
    pub personas: Vec<Persona>,
    pub status: WorkerStatus,
    /// A storage worker on its way out (a scale-down): it takes no new tenants' events and
    /// hands what it holds to the storage workers the routes give its tenants, while queries
    /// still read it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
}

impl RouteEntry {
    /// A normalizer of its own (the `normalizer` persona without `correlator`): a hop between
    /// correlators and storage that takes links. A `correlator,normalizer` worker normalizes
    /// what it ingests itself and takes no links.
    pub fn is_normalizer_hop(&self) -> bool {
        self.personas.contains(&Persona::Normalizer)
            && !self.personas.contains(&Persona::Correlator)
    }
}

/// The grid's routes at one version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Routes {
    pub version: u64,
    pub workers: Vec<RouteEntry>,
    /// Storage workers per tenant (the grid's default; at least 1).
    pub storage_copies: usize,
}

impl Routes {
    /// The worker `id`, online or not; `None` once it has left the grid.
    pub fn worker(&self, id: &WorkerId) -> Option<&RouteEntry> {
        self.workers.iter().find(|worker| &worker.id == id)
    }

    /// Online workers with `persona`, in id order.
    pub fn online(&self, persona: Persona) -> impl Iterator<Item = &RouteEntry> {
        self.workers.iter().filter(move |worker| {
            worker.status == WorkerStatus::Online && worker.personas.contains(&persona)
        })
    }

    /// The storage workers that hold `tenant`: the online ones that rank highest for it,
    /// `storage_copies` of them (fewer when fewer are online), best first. Draining workers
    /// are not among them.
    pub fn storage_for(&self, tenant: &str) -> Vec<&RouteEntry> {
        let mut ranked = rank(
            self.online(Persona::Storage)
                .filter(|worker| !worker.draining),
            tenant,
        );
        ranked.truncate(self.storage_copies.max(1));
        ranked
    }

    /// Every storage worker the grid knows, online or not, best first for `tenant`: where a
    /// correlator spools a tenant's records while no storage worker is online (a partition
    /// between correlators and storage looks like that to the coordinator), so they are sent
    /// on when one returns instead of the publish being refused. Draining workers come last:
    /// they would only have to hand the records on.
    pub fn storage_known_for(&self, tenant: &str) -> Vec<&RouteEntry> {
        let mut known = rank(
            self.workers
                .iter()
                .filter(|worker| worker.personas.contains(&Persona::Storage)),
            tenant,
        );
        known.sort_by_key(|worker| worker.draining);
        known
    }

    /// The normalizer hops a correlator sends `key`'s records to, best first: the online ones
    /// or, while none is online, every known one (records wait in a spool rather than skip
    /// normalization). Empty when the grid has no normalizer hop: correlators send straight
    /// to storage.
    pub fn normalizers_for(&self, key: &str) -> Vec<&RouteEntry> {
        let hops = || {
            self.workers
                .iter()
                .filter(|worker| worker.is_normalizer_hop())
        };
        let online = rank(
            hops().filter(|worker| worker.status == WorkerStatus::Online),
            key,
        );
        if online.is_empty() {
            rank(hops(), key)
        } else {
            online
        }
    }

    /// Online workers with `persona`, best first for `key` by rendezvous hashing: a tenant's
    /// storage workers, or the broadcasters a worker tries in turn, so that keys spread over
    /// the workers and a worker joining or leaving moves only the keys it must.
    pub fn ranked(&self, persona: Persona, key: &str) -> Vec<&RouteEntry> {
        rank(self.online(persona), key)
    }
}

/// `workers`, highest rendezvous score for `key` first.
fn rank<'a>(workers: impl Iterator<Item = &'a RouteEntry>, key: &str) -> Vec<&'a RouteEntry> {
    let mut ranked: Vec<(u64, &RouteEntry)> = workers
        .map(|worker| (rendezvous_score(key, &worker.id.0), worker))
        .collect();
    // Highest score first; ids break the (vanishingly unlikely) ties the same way everywhere.
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    ranked.into_iter().map(|(_, worker)| worker).collect()
}

/// How much `worker` wants `tenant`. Every process must compute the same number for the same
/// pair, in every version, so it is spelled out here (FNV-1a over both names, then the
/// 64-bit finaliser of MurmurHash3) rather than taken from a hasher whose output may change.
pub fn rendezvous_score(tenant: &str, worker: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = tenant
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(worker.bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn worker(id: &str, personas: &[Persona]) -> RouteEntry {
        RouteEntry {
            id: WorkerId(id.into()),
            address: format!("{id}:7000"),
            personas: personas.to_vec(),
            status: WorkerStatus::Online,
            draining: false,
        }
    }

    fn storage(count: usize) -> Routes {
        Routes {
            version: 1,
            workers: (0..count)
                .map(|index| worker(&format!("storage-{index}"), &[Persona::Storage]))
                .collect(),
            storage_copies: 2,
        }
    }

    fn placement(routes: &Routes, tenants: usize) -> Vec<BTreeSet<String>> {
        (0..tenants)
            .map(|index| {
                routes
                    .storage_for(&format!("tenant-{index}"))
                    .into_iter()
                    .map(|worker| worker.id.0.clone())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn scores_are_fixed_numbers() {
        // Changing the function would move every tenant of every running grid.
        assert_eq!(
            rendezvous_score("acme", "storage-0"),
            rendezvous_score("acme", "storage-0")
        );
        assert_ne!(
            rendezvous_score("acme", "storage-0"),
            rendezvous_score("acme", "storage-1")
        );
        assert_ne!(rendezvous_score("ab", "c"), rendezvous_score("a", "bc"));
        assert_eq!(rendezvous_score("acme", "storage-0"), 0x4a74_8541_c332_b65e);
    }

    #[test]
    fn adding_or_losing_a_storage_worker_moves_only_the_tenants_it_must() {
        let before = storage(10);
        let old = placement(&before, 2000);
        assert!(old.iter().all(|copies| copies.len() == 2));
        // Spread: every worker holds some tenants, none a large share.
        for index in 0..10 {
            let held = old
                .iter()
                .filter(|copies| copies.contains(&format!("storage-{index}")))
                .count();
            assert!(
                (250..=550).contains(&held),
                "storage-{index} holds {held} of 4000 copies"
            );
        }

        let mut grown = before.clone();
        grown
            .workers
            .push(worker("storage-10", &[Persona::Storage]));
        let new = placement(&grown, 2000);
        let moved: Vec<usize> = (0..2000)
            .filter(|&index| old[index] != new[index])
            .collect();
        for &index in &moved {
            assert!(
                new[index].contains("storage-10"),
                "tenant-{index} moved without reason"
            );
            assert_eq!(
                old[index].intersection(&new[index]).count(),
                1,
                "one copy stays"
            );
        }
        // About copies / n of the tenants (2/11 of 2000 = 364).
        assert!((250..=480).contains(&moved.len()), "{} moved", moved.len());

        let mut shrunk = before.clone();
        shrunk.workers[3].status = WorkerStatus::Offline;
        let after = placement(&shrunk, 2000);
        for index in 0..2000 {
            if old[index].contains("storage-3") {
                assert!(!after[index].contains("storage-3"));
                assert_eq!(old[index].intersection(&after[index]).count(), 1);
            } else {
                assert_eq!(
                    old[index], after[index],
                    "tenant-{index} moved without reason"
                );
            }
        }
    }

    #[test]
    fn only_online_workers_of_a_persona_are_routed_to() {
        let mut routes = storage(1);
        routes
            .workers
            .push(worker("both", &[Persona::Correlator, Persona::Storage]));
        routes.workers.push(worker("corr", &[Persona::Correlator]));
        routes.storage_copies = 5;
        assert_eq!(
            routes.storage_for("acme").len(),
            2,
            "fewer online than copies"
        );
        routes.workers[0].status = WorkerStatus::Offline;
        let ids: Vec<&str> = routes
            .online(Persona::Correlator)
            .map(|w| w.id.0.as_str())
            .collect();
        assert_eq!(ids, ["both", "corr"]);
        assert_eq!(routes.storage_for("acme")[0].id.0, "both");
        assert_eq!(Persona::parse("tenant-api"), Some(Persona::TenantApi));
        assert_eq!(Persona::parse("nope"), None);
    }

    #[test]
    fn correlators_send_to_normalizer_hops_online_first_then_any_known() {
        let mut routes = storage(2);
        routes.workers.push(worker(
            "inline",
            &[Persona::Correlator, Persona::Normalizer],
        ));
        assert!(
            routes.normalizers_for("acme").is_empty(),
            "a correlator that normalizes itself is no hop"
        );
        routes.workers.push(worker("n1", &[Persona::Normalizer]));
        routes.workers.push(worker("n2", &[Persona::Normalizer]));
        let ranked: Vec<String> = routes
            .normalizers_for("acme")
            .into_iter()
            .map(|worker| worker.id.0.clone())
            .collect();
        assert_eq!(ranked.len(), 2);
        let first = routes
            .workers
            .iter_mut()
            .find(|worker| worker.id.0 == ranked[0])
            .unwrap();
        first.status = WorkerStatus::Offline;
        let online: Vec<&str> = routes
            .normalizers_for("acme")
            .into_iter()
            .map(|worker| worker.id.0.as_str())
            .collect();
        assert_eq!(online, [ranked[1].as_str()], "only the online one");
        for worker in &mut routes.workers {
            worker.status = WorkerStatus::Offline;
        }
        let known: Vec<String> = routes
            .normalizers_for("acme")
            .into_iter()
            .map(|worker| worker.id.0.clone())
            .collect();
        assert_eq!(
            known, ranked,
            "all offline: every known hop, in the same order"
        );
    }

    #[test]
    fn a_draining_storage_worker_takes_no_tenant_but_stays_known_last() {
        let mut routes = storage(3);
        let before = placement(&routes, 200);
        routes.workers[1].draining = true;
        let after = placement(&routes, 200);
        for (old, new) in before.iter().zip(&after) {
            assert!(!new.contains("storage-1"));
            if !old.contains("storage-1") {
                assert_eq!(old, new, "only the draining worker's tenants move");
            }
        }
        for worker in &mut routes.workers {
            worker.status = WorkerStatus::Offline;
        }
        let known = routes.storage_known_for("acme");
        assert_eq!(known.len(), 3);
        assert_eq!(known[2].id.0, "storage-1", "the draining worker last");
    }

    #[test]
    fn with_every_storage_worker_offline_the_known_ones_are_still_ranked() {
        let mut routes = storage(3);
        routes.workers.push(worker("corr", &[Persona::Correlator]));
        let online: Vec<WorkerId> = routes
            .ranked(Persona::Storage, "acme")
            .into_iter()
            .map(|worker| worker.id.clone())
            .collect();
        for worker in &mut routes.workers {
            worker.status = WorkerStatus::Offline;
        }
        assert!(routes.storage_for("acme").is_empty());
        let known: Vec<WorkerId> = routes
            .storage_known_for("acme")
            .into_iter()
            .map(|worker| worker.id.clone())
            .collect();
        assert_eq!(known, online, "the same order as when they were online");
    }
}
