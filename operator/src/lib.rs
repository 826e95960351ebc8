//! The Meniscus operator (kube-rs). So far: the custom resources, [`crd`]. The reconcilers, the
//! coordinator service and the autoscaler are the rest of issue 13. Never depends on the store.
#![forbid(unsafe_code)]

pub mod crd;
