//! How the personas' stages are wired, in one place.
//!
//! Every persona is a stage (`meniscus_record::Stage`) or a transform applied before the next
//! stage; none of them knows what follows it. Standalone wires them in process here; the grid
//! wires the same stages with a network link between them, by changing only this module.

use std::sync::Arc;

use meniscus_record::stage::Then;
use meniscus_record::Stage;
use meniscus_store::Store;

use crate::normalizer::Normalizer;

/// Standalone: correlator -> normalizer -> storage, all in this process. Returns the stage
/// the correlator hands its batches to.
pub fn standalone(normalizer: Arc<Normalizer>, store: Arc<Store>) -> Arc<dyn Stage> {
    Arc::new(Then {
        transform: normalizer,
        next: store,
    })
}
