//! What every stage stands on: child processes, connections to the
//! throwaway server, the machine, and small text helpers.

pub mod conn_string;
pub mod db;
mod interactive;
pub mod interrupt;
pub mod json;
#[cfg(test)]
mod literals;
pub mod machine;
pub mod process;
pub mod refusal;
pub mod text;
pub mod tree;
