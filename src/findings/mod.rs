//! Findings about a rehearsed migration, as data: hazards (measured lock
//! holds, rewrites and scans with the safe alternative), destructive
//! changes the running app may depend on, and how to recover from a failure;
//! and the hazard rules the scenario sets aside (`hazards.ignore`).

pub mod destructive;
pub mod hazards;
pub mod ignore;
pub mod recovery;
