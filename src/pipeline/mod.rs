//! The pipeline's machinery, shared by every stage: the stage runner, the
//! events it emits and the progress display that renders them, the signal
//! supervisor, and a migration's deadline. The stages themselves live in
//! their own modules; `run` lists them.

pub mod deadline;
pub mod events;
pub mod progress;
pub mod runner;
pub mod signals;

pub use deadline::Deadline;
pub use events::{Event, EventSink, Redacting, Silent};
pub use progress::Progress;
pub use runner::{Pipeline, Stopped, Summary};
pub use signals::Supervisor;
