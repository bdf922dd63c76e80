//! The scenario's `race:` as the race stage's plan: how many replicas, what
//! each runs (Alembic's full upgrade unless `race.command` says otherwise;
//! required where rehearse cannot tell what a replica runs), the jitter,
//! the deadline, kill_one. `budgets.fail_on_race` needs a race to judge.

use std::time::Duration;

use super::migrations::needs_driver_for_sqlalchemy_url;
use super::scenario::Scenario;
use super::Origin;
use crate::error::{ErrorKind, Result};
use crate::migrations::launch::Launch;
use crate::migrations::sources::SourcePlan;
use crate::migrations::{Driver, MigrationsPlan};
use crate::race::{CopyCommand, Program, RacePlan};

/// `race.replicas` when the scenario does not say.
const DEFAULT_REPLICAS: u32 = 3;
/// More copies than this is a load test, not replicas starting up.
const MAX_REPLICAS: u32 = 32;
/// `race.jitter` when the scenario does not say.
const DEFAULT_JITTER: Duration = Duration::from_millis(200);

pub(super) fn plan(s: &Scenario, sources: &[SourcePlan], origin: &Origin) -> Result<Option<RacePlan>> {
    let shown = origin.shown();
    let Some(race) = &s.race else {
        if s.budgets.fail_on_race {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: budgets.fail_on_race is true, but the scenario has no `race:` section: add `race: {{}}` \
                 (three replicas running the full upgrade at once), or remove fail_on_race"
            )));
        }
        return Ok(None);
    };
    let [SourcePlan { plan: migrations, .. }] = sources else {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: a race runs one app's start-up upgrade, and migrations: lists {} apps: rehearse the race in a \
             scenario of its own with that app alone",
            sources.len()
        )));
    };
    let replicas = race.replicas.unwrap_or(DEFAULT_REPLICAS);
    if !(2..=MAX_REPLICAS).contains(&replicas) {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: race.replicas is {replicas}: a race needs at least 2 replicas and at most {MAX_REPLICAS} \
             (3 is the default)"
        )));
    }
    if race.timeout.is_some_and(|t| t < Duration::from_secs(1)) {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: race.timeout must be at least 1s (the default is 10 × the sequential rehearsal, at least 30s)"
        )));
    }
    let command = race.command.as_ref().map(|c| c.0.trim().to_string());
    if command.as_deref() == Some("") {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: race.command is empty: write the command a replica runs at start-up, or remove it"
        )));
    }
    Ok(Some(RacePlan {
        replicas: replicas as usize,
        command: copy_command(command, migrations, s.migrations.sources[0].network, origin)?,
        jitter: race.jitter.unwrap_or(DEFAULT_JITTER),
        timeout: race.timeout,
        kill_one: race.kill_one,
    }))
}

/// What each replica runs, in the migration tool's folder with its environment.
fn copy_command(
    command: Option<String>,
    migrations: &MigrationsPlan,
    network: Option<crate::migrations::launch::Network>,
    origin: &Origin,
) -> Result<CopyCommand> {
    let shown = origin.shown();
    let shell = |dir, env: &Vec<(String, String)>, launch: &Launch, driver: &Option<Driver>, script| CopyCommand {
        program: Program::Shell(script),
        dir,
        env: env.clone(),
        driver: driver.clone(),
        launch: launch.clone(),
    };
    Ok(match (migrations, command) {
        (MigrationsPlan::Alembic(a), None) => CopyCommand {
            program: Program::Alembic { python: a.python.clone(), config: a.config.clone(), target: a.target.clone() },
            dir: a.dir.clone(),
            env: a.env.clone(),
            driver: a.driver.clone(),
            launch: a.launch.clone(),
        },
        (MigrationsPlan::Alembic(a), Some(script)) => {
            needs_driver_for_sqlalchemy_url(&a.env, &a.driver, "race.command", origin)?;
            shell(a.dir.clone(), &a.env, &a.launch, &a.driver, script)
        }
        (MigrationsPlan::Command(c), Some(script)) => shell(c.dir.clone(), &c.env, &c.launch, &c.driver, script),
        (MigrationsPlan::Django(d), Some(script)) => shell(d.dir.clone(), &d.env, &d.launch, &None, script),
        (MigrationsPlan::Django(_), None) => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: race.command is required when migrations.tool is django: write what each replica runs \
                 at start-up, e.g. `race: {{ command: python manage.py migrate --no-input }}`; its settings must \
                 read DATABASE_URL (or the PG* variables), which hold the copy (rehearse's own DATABASES override \
                 is for the sequential rehearsal)"
            )))
        }
        (MigrationsPlan::Sql(dir), Some(_)) if dir.table().is_none() => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: a race with migrations.tool sql needs migrations.table: the history table your tool \
                 records applied migrations in (flyway_schema_history, schema_migrations, _sqlx_migrations), so \
                 where the replicas leave it can be compared with the sequential rehearsal"
            )))
        }
        (MigrationsPlan::Sql(_), Some(script)) => {
            shell(origin.base.clone(), &Vec::new(), &Launch::Here(network.unwrap_or_default()), &None, script)
        }
        (MigrationsPlan::Command(_), None) => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: race.command is required when migrations.tool is command: migrations.apply runs one \
                 migration ({{rev}}), not the full upgrade a replica runs at start-up; write that, e.g. \
                 `race: {{ command: ./migrate.sh up }}`"
            )))
        }
        (MigrationsPlan::Sql(_), None) => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: race.command is required when migrations.tool is sql: rehearse applies the files itself, \
                 but replicas run your migration tool; write what they run at start-up, e.g. \
                 `race: {{ command: flyway migrate }}` or `migrate -path migrations -database \"$DATABASE_URL\" up`"
            )))
        }
    })
}
