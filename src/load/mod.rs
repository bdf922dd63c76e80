pub mod fill;
pub mod workload;
