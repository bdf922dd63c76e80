//! Production-scale estimates: a rehearsal on a smaller (or sampled) copy,
//! scaled by production's own size statistics into a range per migration
//! and per lock, with the basis of every figure.

pub mod stats;

pub use stats::{ProductionStats, RelationStats, STATS_SCHEMA};
