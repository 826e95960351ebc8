//! The custom resources (group `meniscus.io`, version `v1alpha1`): [`grid::MeniscusGrid`] and
//! [`tenant::Tenant`]. Their schemas, CEL rules, printer columns and short names come from these
//! types; `crdgen` writes them to `crds/`, and a test fails when the committed files drift.

pub mod common;
pub mod grid;
pub mod tenant;

use kube::CustomResourceExt;

/// Every CRD, as `crdgen` writes it: (file name, YAML).
pub fn all() -> Vec<(&'static str, String)> {
    let yaml = |crd| serde_yaml::to_string(&crd).expect("a CRD serializes");
    vec![
        (
            "meniscusgrids.meniscus.io.yaml",
            yaml(grid::MeniscusGrid::crd()),
        ),
        ("tenants.meniscus.io.yaml", yaml(tenant::Tenant::crd())),
    ]
}
