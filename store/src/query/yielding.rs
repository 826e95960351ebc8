//! Joins yield to the scheduler, so a query stopped at its deadline stops working.
//!
//! A query's deadline aborts its task, and an aborted task stops at its next yield. DataFusion
//! makes data sources yield (its `EnsureCooperative` rule), but a join turns one input batch
//! into as many output batches as the other side has rows: `count(*)` over a cross join of two
//! 100,000-row series polled its join for minutes without once reaching a source, so the
//! aborted query kept a core and its tenant's query slot long after the 422 (tests/isolation.rs).
//! Wrapping every join (and unnest, which multiplies rows too) in a `CooperativeExec` spends
//! Tokio's task budget per output batch: the task yields every 128 batches, and an abort
//! takes effect within milliseconds.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::ExecutionPlan;

/// Puts a [`CooperativeExec`] above every operator that multiplies rows.
#[derive(Debug, Default)]
pub struct YieldAfterJoins;

fn multiplies_rows(plan: &dyn ExecutionPlan) -> bool {
    let name = plan.name();
    name.contains("Join") || name == "UnnestExec"
}

impl PhysicalOptimizerRule for YieldAfterJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if multiplies_rows(node.as_ref()) {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
                Ok(Transformed::yes(wrapped))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "yield_after_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
