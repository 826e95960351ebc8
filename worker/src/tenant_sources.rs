//! Where standalone's tenants come from: the configuration file (reloaded on SIGHUP) and,
//! when an admin credential is given, the tenant registry of the coordinator standalone
//! embeds, edited while it runs through the admin API on the ops address — the same calls
//! and the same state file as a grid's coordinator.
//!
//! The tenants in force are both sets. A tenant the file names is the file's: the admin API
//! answers 409 for it (two sources editing one tenant would silently undo each other's
//! changes), and an admin-API tenant the file takes over later (by a reload, or at start) is
//! shadowed, with a warning, until the file drops it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use meniscus_coordinator::state::Rules;
use meniscus_coordinator::{http as coordinator_http, Coordinator, Secrets};
use meniscus_grid::tenant::{TenantRegistry, TenantSpec};
use meniscus_metrics::Registry;
use parking_lot::Mutex;
use serde_json::json;

use crate::correlator::Correlator;

pub struct TenantSources {
    /// The configuration file's tenants (with the demo tenant when it names none).
    file: Mutex<Vec<TenantSpec>>,
    /// The embedded coordinator, when an admin credential was given.
    coordinator: Option<Arc<Coordinator>>,
}

impl TenantSources {
    /// The file's tenants, and the embedded coordinator's (its state in
    /// `DATA_DIR/coordinator/state.json`) when `admin_credential` is given.
    pub fn open(
        data_dir: &std::path::Path,
        file: Vec<TenantSpec>,
        admin_credential: Option<String>,
        metrics: &Registry,
    ) -> anyhow::Result<Arc<TenantSources>> {
        let coordinator = match admin_credential {
            Some(admin) => {
                // Nothing pairs with a standalone coordinator: no pairing route is served,
                // and the secret is one nobody knows.
                let mut pairing = [0u8; 32];
                getrandom::fill(&mut pairing)
                    .map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
                let secrets = Secrets {
                    pairing: pairing.iter().map(|byte| format!("{byte:02x}")).collect(),
                    admin,
                };
                let state = data_dir.join("coordinator").join("state.json");
                Some(Coordinator::open(
                    &state,
                    Rules::default(),
                    secrets,
                    metrics,
                )?)
            }
            None => None,
        };
        Ok(Arc::new(TenantSources {
            file: Mutex::new(file),
            coordinator,
        }))
    }

    /// Whether the admin API has any tenant (standalone then makes no demo tenant).
    pub fn has_admin_tenants(&self) -> bool {
        self.coordinator.as_ref().is_some_and(|coordinator| {
            coordinator.with_state(|state| !state.tenants.specs.is_empty())
        })
    }

    /// Whether tenants can be added without the file (the admin API is on).
    pub fn has_admin_api(&self) -> bool {
        self.coordinator.is_some()
    }

    /// The file's tenants at start, before anything is in force.
    pub fn set_file_tenants(&self, specs: Vec<TenantSpec>) {
        *self.file.lock() = specs;
    }

    /// The file's tenants as reloaded: in force in `correlator` at once, or, when the
    /// tenants in force would not build, none of it.
    pub fn reload_file(
        &self,
        specs: Vec<TenantSpec>,
        correlator: &Correlator,
    ) -> anyhow::Result<usize> {
        let previous = std::mem::replace(&mut *self.file.lock(), specs);
        self.apply(correlator).inspect_err(|_| {
            *self.file.lock() = previous;
        })
    }

    /// The tenants in force: the file's, then the admin API's that the file does not name.
    pub fn registry(&self) -> anyhow::Result<TenantRegistry> {
        let mut specs: BTreeMap<String, TenantSpec> = self
            .file
            .lock()
            .iter()
            .map(|spec| (spec.id.as_str().to_string(), spec.clone()))
            .collect();
        if let Some(coordinator) = &self.coordinator {
            for spec in coordinator.with_state(|state| state.tenants.specs.clone()) {
                match specs.entry(spec.id.as_str().to_string()) {
                    std::collections::btree_map::Entry::Occupied(file) => {
                        tracing::warn!(tenant = %file.key(), "the configuration file names this tenant: its admin-API version is not used until the file drops it");
                    }
                    std::collections::btree_map::Entry::Vacant(free) => {
                        free.insert(spec);
                    }
                }
            }
        }
        Ok(TenantRegistry::from_specs(specs.into_values().collect())?)
    }

    /// Puts the tenants in force into `correlator`; a registry that does not build keeps
    /// the one in force (the admin API checks every spec, so only a reload can cause it).
    pub fn apply(&self, correlator: &Correlator) -> anyhow::Result<usize> {
        let registry = self.registry()?;
        let count = registry.ids().count();
        correlator.accept.replace_registry(registry);
        Ok(count)
    }

    /// Follows the admin API's changes into `correlator` for as long as the process runs.
    pub fn follow(self: &Arc<Self>, correlator: Arc<Correlator>) {
        let Some(coordinator) = self.coordinator.clone() else {
            return;
        };
        let sources = self.clone();
        tokio::spawn(async move {
            let mut seen = coordinator.with_state(|state| state.tenants.version);
            loop {
                // Standalone's routes never change: only the tenants' version is followed.
                let route = coordinator.with_state(|state| state.route_version);
                let (_, tenants) = coordinator
                    .wait_newer((route, seen), Duration::from_secs(30))
                    .await;
                if tenants == seen {
                    continue;
                }
                seen = tenants;
                match sources.apply(&correlator) {
                    Ok(count) => {
                        tracing::info!(
                            tenants = count,
                            version = seen,
                            "tenants changed through the admin API"
                        )
                    }
                    Err(error) => {
                        tracing::error!(error = %format!("{error:#}"), "admin-API tenants not applied; the ones in force stay")
                    }
                }
            }
        });
    }

    /// The admin API's tenant calls, for the ops listener; none without an admin credential.
    pub fn admin_router(self: &Arc<Self>) -> Router {
        let Some(coordinator) = self.coordinator.clone() else {
            return Router::new();
        };
        coordinator_http::tenant_admin_router(coordinator).layer(
            axum::middleware::from_fn_with_state(self.clone(), refuse_file_tenants),
        )
    }

    fn in_file(&self, id: &str) -> bool {
        self.file.lock().iter().any(|spec| spec.id.as_str() == id)
    }
}

/// 409 for a change to a tenant the configuration file names.
async fn refuse_file_tenants(
    State(sources): State<Arc<TenantSources>>,
    request: Request,
    next: Next,
) -> Response {
    let id = request
        .uri()
        .path()
        .strip_prefix("/v1/admin/tenants/")
        .and_then(|rest| rest.split('/').next())
        .map(str::to_string);
    if let Some(id) = id {
        if request.method() != axum::http::Method::GET && sources.in_file(&id) {
            return (
                StatusCode::CONFLICT,
                Json(json!({
                    "error": format!("tenant {id:?} is defined in the configuration file: edit the file and reload it (SIGHUP)")
                })),
            )
                .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, token: &str) -> TenantSpec {
        serde_json::from_value(json!({"id": id, "tokens": [{"value": token}]})).unwrap()
    }

    fn token_of(registry: &TenantRegistry, id: &str) -> Option<String> {
        registry
            .get(id)
            .map(|tenant| tenant.spec.tokens[0].value.clone())
    }

    #[test]
    fn the_file_keeps_its_tenants_and_the_admin_api_adds_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let sources = TenantSources::open(
            dir.path(),
            Vec::new(),
            Some("admin".into()),
            &Registry::new(),
        )
        .unwrap();
        assert!(!sources.has_admin_tenants());
        let coordinator = sources.coordinator.clone().unwrap();
        coordinator
            .put_tenant(spec("acme", "from-the-api"))
            .unwrap();
        coordinator.put_tenant(spec("beta", "beta-token")).unwrap();
        sources.set_file_tenants(vec![spec("acme", "from-the-file")]);
        let registry = sources.registry().unwrap();
        assert_eq!(
            token_of(&registry, "acme").as_deref(),
            Some("from-the-file")
        );
        assert_eq!(token_of(&registry, "beta").as_deref(), Some("beta-token"));
        assert!(sources.has_admin_tenants());

        // The file drops acme: the admin API's acme comes into force.
        sources.set_file_tenants(Vec::new());
        let registry = sources.registry().unwrap();
        assert_eq!(token_of(&registry, "acme").as_deref(), Some("from-the-api"));

        // Kept across a restart, in the data dir.
        drop((sources, coordinator));
        let reopened = TenantSources::open(
            dir.path(),
            Vec::new(),
            Some("admin".into()),
            &Registry::new(),
        )
        .unwrap();
        assert_eq!(reopened.registry().unwrap().ids().count(), 2);
    }

    #[test]
    fn without_an_admin_credential_only_the_file_counts() {
        let dir = tempfile::tempdir().unwrap();
        let sources = TenantSources::open(dir.path(), Vec::new(), None, &Registry::new()).unwrap();
        sources.set_file_tenants(vec![spec("acme", "t")]);
        assert!(!sources.has_admin_api() && !sources.has_admin_tenants());
        assert_eq!(
            sources.registry().unwrap().ids().collect::<Vec<_>>(),
            ["acme"]
        );
        assert!(
            !dir.path().join("coordinator").exists(),
            "no state file made"
        );
    }
}
