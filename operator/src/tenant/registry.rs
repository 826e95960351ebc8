//! A tenant in its grid's coordinator (served by this process, see
//! `crate::coordinator_host`). What the coordinator holds reaches every worker through the
//! broadcasters, without restarts.

use kube::ResourceExt;
use meniscus_grid::{TenantId, TenantSpec};
use serde_json::json;

use crate::context::Context;
use crate::crd::grid::MeniscusGrid;
use crate::crd::tenant::Tenant;
use crate::grid::children;
use crate::tenant::token::Token;

/// Why a tenant could not be registered, each with its condition reason.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the grid's coordinator is not running here (the grid has not been reconciled yet, or this replica does not lead)")]
    NotRunning,
    #[error("the spec does not make a tenant: {0}")]
    InvalidSpec(String),
    #[error("the coordinator refused it: {0}")]
    Refused(String),
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NotRunning => "CoordinatorNotRunning",
            Refused::InvalidSpec(_) => "InvalidSpec",
            Refused::Refused(_) => "CoordinatorRefused",
        }
    }
}

/// What the coordinator should hold for `tenant`: its tokens, producers, retention (the
/// grid's where the tenant sets none) and limits.
pub fn spec_for(
    tenant: &Tenant,
    grid: &MeniscusGrid,
    token: &Token,
    identities: &[String],
) -> Result<TenantSpec, Refused> {
    let mut tokens = vec![json!({"value": token.current})];
    if let Some((previous, until)) = &token.previous {
        tokens.push(json!({"value": previous, "notAfter": until.to_rfc3339()}));
    }
    let retention = tenant.spec.retention.as_ref();
    let short_term = retention
        .and_then(|retention| retention.short_term.clone())
        .unwrap_or_else(|| grid.spec.retention.short_term.clone());
    let long_term = retention
        .and_then(|retention| retention.long_term.clone())
        .or_else(|| grid.spec.retention.long_term.clone());
    let mut spec = json!({
        "id": tenant.name_any(),
        "tokens": tokens,
        "producers": tenant.spec.producers,
        "retention": {"shortTerm": short_term},
        "tlsClientIdentities": identities,
    });
    if let Some(long_term) = long_term {
        spec["retention"]["longTerm"] = json!(long_term);
    }
    if let Some(limits) = &tenant.spec.limits {
        spec["limits"] = json!({
            "eventsPerSecond": limits.events_per_second,
            "burstEvents": limits.burst_events,
        });
        let limits = spec["limits"].as_object_mut().expect("an object");
        limits.retain(|_, value| !value.is_null());
    }
    serde_json::from_value(spec).map_err(|error| Refused::InvalidSpec(error.to_string()))
}

/// Which of `tenant`'s `tlsClientIdentities` are its own (what the coordinator gets), and
/// which an older Tenant of the grid holds already (`all`: the namespace's Tenants).
pub fn client_identities(
    tenant: &Tenant,
    grid: &MeniscusGrid,
    all: &[Tenant],
) -> (Vec<String>, Vec<String>) {
    let mut held = std::collections::HashSet::new();
    for older in children::in_claim_order(grid, all) {
        if older.name_any() == tenant.name_any() {
            break;
        }
        held.extend(older.spec.tls_client_identities.iter().map(String::as_str));
    }
    tenant
        .spec
        .tls_client_identities
        .iter()
        .cloned()
        .partition(|name| !held.contains(name.as_str()))
}

/// Puts the tenant, with the client `identities` it holds, into its grid's coordinator unless
/// it already holds exactly that.
pub fn register(
    tenant: &Tenant,
    grid: &MeniscusGrid,
    token: &Token,
    identities: &[String],
    context: &Context,
) -> Result<(), Refused> {
    let spec = spec_for(tenant, grid, token, identities)?;
    let coordinator =
        crate::coordinator_api::coordinator_of(grid, context).ok_or(Refused::NotRunning)?;
    if coordinator.snapshot().tenants.specs.contains(&spec) {
        return Ok(());
    }
    coordinator
        .put_tenant(spec)
        .map_err(|error| Refused::Refused(error.to_string()))?;
    tracing::info!(tenant = %tenant.name_any(), grid = %grid.name_any(), "tenant registered with the coordinator");
    Ok(())
}

/// Takes the tenant out of its grid's coordinator (gone already is fine).
pub fn unregister(tenant: &Tenant, grid: &MeniscusGrid, context: &Context) -> Result<(), Refused> {
    let coordinator =
        crate::coordinator_api::coordinator_of(grid, context).ok_or(Refused::NotRunning)?;
    let Ok(id) = TenantId::parse(&tenant.name_any()) else {
        return Ok(());
    };
    match coordinator.delete_tenant(&id) {
        Ok(()) => Ok(()),
        Err(meniscus_coordinator::Error::Refused(
            meniscus_coordinator::state::Refused::UnknownTenant(_),
        )) => Ok(()),
        Err(error) => Err(Refused::Refused(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn the_coordinator_gets_the_tokens_producers_and_the_grids_retention_by_default() {
        let grid: MeniscusGrid = serde_json::from_value(json!({
            "metadata": {"name": "main", "namespace": "logs"},
            "spec": {"image": "m", "retention": {"shortTerm": "3d", "longTerm": "90d"}}
        }))
        .unwrap();
        let tenant: Tenant = serde_json::from_value(json!({
            "metadata": {"name": "acme", "namespace": "logs"},
            "spec": {
                "gridRef": "main",
                "producers": [{"name": "web", "durable": true}, {"name": "sshd", "pattern": "sshd"}],
                "retention": {"shortTerm": "1d"},
                "limits": {"eventsPerSecond": 500}
            }
        }))
        .unwrap();
        let until = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let token = Token {
            secret_name: "acme-token".into(),
            current: "new".into(),
            previous: Some(("old".into(), until)),
            next_rotation: None,
        };
        let spec = spec_for(&tenant, &grid, &token, &["gw-1.acme.example".into()]).unwrap();
        let spec = serde_json::to_value(&spec).unwrap();
        assert_eq!(spec["id"], "acme");
        assert_eq!(spec["tokens"][0]["value"], "new");
        assert_eq!(spec["tokens"][1]["value"], "old");
        assert!(spec["tokens"][1]["notAfter"]
            .as_str()
            .unwrap()
            .starts_with("2030-01-01"));
        assert_eq!(spec["producers"][0]["durable"], true);
        assert_eq!(spec["producers"][1]["pattern"], "sshd");
        // The tenant's own short term, the grid's long term.
        assert_eq!(spec["retention"]["shortTerm"], "1d");
        assert_eq!(spec["retention"]["longTerm"], "90d");
        assert_eq!(spec["limits"]["eventsPerSecond"], 500);
        assert!(spec["limits"].get("burstEvents").is_none());
        assert_eq!(spec["tlsClientIdentities"], json!(["gw-1.acme.example"]));
    }

    #[test]
    fn a_client_identity_stays_with_the_oldest_tenant_naming_it() {
        let grid: MeniscusGrid = serde_json::from_value(json!({
            "metadata": {"name": "main", "namespace": "logs"}, "spec": {"image": "m"}
        }))
        .unwrap();
        let tenant = |name: &str, created: &str, identities: &[&str]| -> Tenant {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "logs", "creationTimestamp": created},
                "spec": {"gridRef": "main", "tlsClientIdentities": identities}
            }))
            .unwrap()
        };
        let all = [
            tenant("newer", "2026-02-01T00:00:00Z", &["gw-1", "gw-2"]),
            tenant("older", "2026-01-01T00:00:00Z", &["gw-1"]),
        ];
        assert_eq!(
            client_identities(&all[0], &grid, &all),
            (vec!["gw-2".to_string()], vec!["gw-1".to_string()])
        );
        assert_eq!(
            client_identities(&all[1], &grid, &all),
            (vec!["gw-1".to_string()], vec![])
        );
    }
}
