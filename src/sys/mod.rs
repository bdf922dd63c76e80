//! What every stage stands on: child processes (and the network namespace
//! a migration tool runs in), connections to the throwaway server (and the
//! relay a tool in a namespace reaches it through), the machine, and small text helpers.

pub mod conn_string;
pub mod db;
pub mod forward;
mod interactive;
pub mod interrupt;
pub mod json;
#[cfg(test)]
mod literals;
pub mod machine;
pub mod netns;
pub mod password;
pub mod process;
pub mod redact;
pub mod refusal;
pub mod text;
pub mod tls;
pub mod tree;
