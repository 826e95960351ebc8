//! What both resources use: conditions (the shape of `metav1.Condition`) and human durations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One condition of a resource's status (`Ready`, `Progressing`, `Degraded`), as
/// `metav1.Condition` has it, so `kubectl wait --for=condition=Ready` works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason a program can act on.
    pub reason: String,
    /// What a person should know.
    #[serde(default)]
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A duration as Meniscus writes them everywhere: a number and a unit (`s`, `m`, `h`, `d`),
/// e.g. `90d`, `36h`.
pub const DURATION_PATTERN: &str = r"^[0-9]+(s|m|h|d)$";
