//! The stage runner: owns what every stage shares, so a stage is only its
//! work. It emits StageStarted and StageFinished, times the stage into the
//! rehearsal's `stages`, stops at a signal, and tags an error with the stage
//! it happened in. A stage is an async function from its typed input
//! (captured) to its typed output, the facts it established, which the
//! caller keeps in the [`Rehearsal`]; `run` is their list.
//!
//! Cancellation is cooperative first: when a signal arrives, the stage gets
//! [`WIND_DOWN`] to finish by itself (its children get SIGTERM and their
//! grace period, its running query is cancelled, a migration records that it
//! was interrupted); a second signal cuts the children's grace, and the
//! stage gets a second more. Only then is the stage dropped (the children's
//! process groups are killed, and the servers' Drop backstops run).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::events::{Event, EventSink};
use crate::error::{Error, Result};
use crate::report::{Rehearsal, Stage, StageTime};

/// How long a stage may take to stop by itself after a signal: longer than
/// a child's grace period (`sys::process::GRACE`), so a child that ignores
/// SIGTERM is killed by its own supervision and the stage still records
/// what was interrupted.
pub const WIND_DOWN: Duration = Duration::from_secs(5);
/// After a second signal, children are killed at once; the stage gets this
/// long to record it.
const AFTER_SECOND_SIGNAL: Duration = Duration::from_secs(1);

/// Why the run stopped before its end, and in which stage.
#[derive(Debug)]
pub struct Stopped {
    pub stage: Stage,
    pub error: Error,
}

impl Stopped {
    pub fn interrupted(stage: Stage) -> Stopped {
        Stopped { stage, error: Error::Interrupted }
    }
}

/// What a stage's output adds to its "done" line ("8 pending", "cache hit").
pub trait Summary {
    fn summary(&self) -> String {
        String::new()
    }
}

impl Summary for () {}

/// The run in progress: the facts it gathered, where events go, the signal token.
pub struct Pipeline<'a> {
    events: &'a dyn EventSink,
    cancel: CancellationToken,
    pub facts: Rehearsal,
}

impl<'a> Pipeline<'a> {
    pub fn new(events: &'a dyn EventSink, cancel: CancellationToken, facts: Rehearsal) -> Pipeline<'a> {
        Pipeline { events, cancel, facts }
    }

    pub fn events(&self) -> &'a dyn EventSink {
        self.events
    }

    /// Cancelled by the first signal.
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Something the user should know that is not an error.
    pub fn note(&self, text: impl Into<String>) {
        self.events.emit(Event::Note(text.into()));
    }

    /// Runs one stage: not at all when a signal already arrived; its error,
    /// or an interruption during it, tagged with `stage`.
    pub async fn stage<T: Summary>(
        &mut self,
        stage: Stage,
        detail: impl Into<String>,
        work: impl AsyncFnOnce() -> Result<T>,
    ) -> Result<T, Stopped> {
        let cancel = self.cancel.clone();
        if cancel.is_cancelled() {
            return Err(Stopped::interrupted(stage));
        }
        self.events.emit(Event::StageStarted { stage, detail: detail.into() });
        let started = Instant::now();
        let result = until_stopped(work(), &cancel, WIND_DOWN).await;
        let output = match result {
            _ if cancel.is_cancelled() => return Err(Stopped::interrupted(stage)),
            Err(error) => return Err(Stopped { stage, error }),
            Ok(output) => output,
        };
        self.finished(stage, started, output.summary());
        Ok(output)
    }

    /// Runs a stage that runs whatever stopped the run (cleanup, the
    /// report): after a signal too, to its end; its error is its own, for
    /// the caller to note, and it is timed only when it succeeds.
    pub async fn always<T: Summary>(
        &mut self,
        stage: Stage,
        detail: impl Into<String>,
        work: impl AsyncFnOnce() -> Result<T>,
    ) -> Result<T> {
        self.events.emit(Event::StageStarted { stage, detail: detail.into() });
        let started = Instant::now();
        let output = work().await?;
        self.finished(stage, started, output.summary());
        Ok(output)
    }

    /// Records a stage that finished: its time in the facts, its "done" line.
    fn finished(&mut self, stage: Stage, started: Instant, detail: String) {
        let elapsed = started.elapsed();
        self.facts.stages.push(StageTime { stage, duration_ms: elapsed.as_millis() as u64 });
        self.events.emit(Event::StageFinished { stage, elapsed, detail });
    }
}

/// Runs `work`; after a signal, lets it wind down for `wind_down` (or
/// until a second signal, then [`AFTER_SECOND_SIGNAL`]), then drops it:
/// its children's process groups are killed as their futures drop.
pub async fn until_stopped<T>(
    work: impl Future<Output = Result<T>>,
    cancel: &CancellationToken,
    wind_down: Duration,
) -> Result<T> {
    tokio::pin!(work);
    tokio::select! {
        r = &mut work => return r,
        _ = cancel.cancelled() => {}
    }
    let hurry = crate::sys::interrupt::hurry();
    tokio::select! {
        r = &mut work => return r,
        _ = tokio::time::sleep(wind_down) => return Err(Error::Interrupted),
        _ = hurry.cancelled() => {}
    }
    tokio::select! {
        r = &mut work => r,
        _ = tokio::time::sleep(AFTER_SECOND_SIGNAL) => Err(Error::Interrupted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::events::Silent;

    fn facts() -> Rehearsal {
        crate::report::Rehearsal::new(crate::report::Planned::example())
    }

    #[tokio::test]
    async fn a_stage_is_timed_and_its_error_tagged() {
        let mut p = Pipeline::new(&Silent, CancellationToken::new(), facts());
        p.stage(Stage::Discover, "x", async || Ok::<(), Error>(())).await.unwrap();
        assert_eq!(p.facts.stages.len(), 1);
        let e = p.stage(Stage::Prepare, "y", async || Err::<(), _>(Error::bad_input("no"))).await;
        let stopped = e.unwrap_err();
        assert_eq!(stopped.stage, Stage::Prepare);
        assert_eq!(stopped.error.exit_code(), crate::error::exit::BAD_INPUT);
        assert_eq!(p.facts.stages.len(), 1, "a failed stage is not timed as finished");
    }

    #[tokio::test]
    async fn a_signal_stops_the_stage_after_its_wind_down_and_skips_the_next() {
        let cancel = CancellationToken::new();
        let mut p = Pipeline::new(&Silent, cancel.clone(), facts());
        let c = cancel.clone();
        let started = Instant::now();
        let stopped = p
            .stage(Stage::Restore, "slow", async move || {
                c.cancel();
                // A stage that ignores the signal is dropped after the wind-down.
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<(), Error>(())
            })
            .await
            .unwrap_err();
        assert!(matches!(stopped.error, Error::Interrupted) && stopped.stage == Stage::Restore);
        assert!(started.elapsed() < WIND_DOWN + Duration::from_secs(2));
        assert!(started.elapsed() >= WIND_DOWN, "a stage gets its whole wind-down");
        let next = p.stage(Stage::Analyze, "never", async || Ok::<(), Error>(())).await.unwrap_err();
        assert_eq!(next.stage, Stage::Analyze);
    }
}
