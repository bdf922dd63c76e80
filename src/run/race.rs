//! The race's two stages: the fresh copy of the restored database, made
//! right after `prepare` (nobody may be connected to a template), and the
//! race on it once the sequential rehearsal applied every migration.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::Throwaway;
use crate::error::Result;
use crate::migrations::network::ToolNetwork;
use crate::migrations::MigrationSource;
use crate::pipeline::{EventSink, Pipeline, Stopped, Summary};
use crate::race::{race, RaceInputs, RacePlan};
use crate::report::Stage;
use crate::sys::db::ConnInfo;

/// The race's database.
pub struct RaceDatabase(pub ConnInfo);

impl Summary for RaceDatabase {
    fn summary(&self) -> String {
        self.0.dbname.clone()
    }
}

/// Copies the restored database for the race, before anything connects to it.
pub async fn copy(p: &mut Pipeline<'_>, server: &mut Throwaway) -> Result<RaceDatabase, Stopped> {
    let detail = format!("{} as the template of a fresh database for the race", server.conn().dbname);
    p.stage(Stage::RaceCopy, detail, async || {
        Ok(RaceDatabase(server.copy_database("race", crate::backend::copy::Template::Rehearsal).await?))
    })
    .await
}

/// Races the replicas, when the sequential rehearsal applied everything;
/// otherwise says why not.
pub async fn run(
    p: &mut Pipeline<'_>,
    plan: &RacePlan,
    server: &Throwaway,
    source: &MigrationSource,
    database: &RaceDatabase,
    network: &ToolNetwork,
) -> Result<(), Stopped> {
    let unapplied = p.facts.unapplied();
    if !unapplied.is_empty() {
        p.note(format!(
            "race skipped: the sequential rehearsal did not apply {}, so there is no end state to race to",
            unapplied.join(", ")
        ));
        return Ok(());
    }
    let sequential = Duration::from_millis(p.facts.stage_ms(Stage::Rehearse).unwrap_or(0));
    let applied = p.facts.migrations.len();
    let detail = format!("{} replicas of `{}` at once on {}", plan.replicas, plan.command.shown(), database.0.dbname);
    let (events, cancel): (&dyn EventSink, CancellationToken) = (p.events(), p.cancel().clone());
    let raced = p.stage(Stage::Race, detail, async || {
        let inputs = RaceInputs {
            plan,
            rehearsed: server.conn(),
            copy: &database.0,
            source,
            sequential,
            applied,
            events,
            network,
            cancel: &cancel,
        };
        race(inputs).await.map(super::Fact)
    });
    let raced = raced.await?;
    p.facts.race = Some(raced.0);
    Ok(())
}
