//! Fixtures and assertions shared by the integration tests, by concern.

mod app_watch;
mod certs;
mod containers;
mod docker;
mod dumps;
mod load;
mod outputs;
mod owned_server;
mod production;
mod review_server;
mod sandbox;
mod signals;
mod standby;

pub use app_watch::*;
pub use certs::*;
pub use containers::*;
pub use docker::*;
pub use dumps::*;
pub use load::*;
pub use outputs::*;
pub use owned_server::*;
pub use production::*;
pub use review_server::*;
pub use sandbox::*;
pub use signals::*;
pub use standby::*;
