//! Fixtures and assertions shared by the integration tests, by concern.

mod docker;
mod dumps;
mod outputs;
mod owned_server;
mod sandbox;
mod signals;

pub use docker::*;
pub use dumps::*;
pub use outputs::*;
pub use owned_server::*;
pub use sandbox::*;
pub use signals::*;
