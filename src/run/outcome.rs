//! The end of a run: the report stage (totals, the gate's verdict, the
//! checklist, the formats rendered), the exit code, and the files written.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use super::millis;
use super::snapshot::DumpIdentity;
use crate::error::{exit, Error};
use crate::migrations::{Migration, OfflineSql};
use crate::pipeline::{Pipeline, Stopped};
use crate::plan::Plan;
use crate::report::{
    self, End, Judgement, Planned, PlannedMigration, Rehearsal, Report, ReportFormat, RunStatus, Setting, Stage,
    StopError, StoppedAt,
};

/// What a run produced: the report, the files written, and the exit code.
pub struct Outcome {
    pub report: Report,
    pub exit_code: i32,
    /// The terminal table, when the `table` format was asked for.
    pub table: Option<String>,
    pub files: Vec<PathBuf>,
    /// How to reach the server left running by `--keep`.
    pub kept: Option<String>,
    /// Why the run stopped early, if it did.
    pub error: Option<Error>,
}

/// The report stage, then the files: always, however the run ended.
pub async fn finish(
    plan: &Plan,
    mut p: Pipeline<'_>,
    dump: DumpIdentity,
    stopped: Option<Stopped>,
    kept: Option<String>,
    started: Instant,
) -> Outcome {
    if let Some((bytes, sha)) = dump.get().await {
        p.facts.dump_file = Some((*bytes, sha.clone()));
    }
    let stopped_at = stopped.as_ref().map(|s| StoppedAt {
        stage: s.stage,
        error: (!matches!(s.error, Error::Interrupted))
            .then(|| StopError { kind: s.error.kind(), message: s.error.with_causes() }),
    });
    p.facts.end = Some(End { finished_at: SystemTime::now(), run: started.elapsed(), stopped: stopped_at });
    // The report stage: the gate's judgement, and the formats that do not
    // show the stages' times. Those that do (Markdown, JSON) show this
    // stage's too, so they are rendered once its clock has stopped. Each
    // format is rendered once and written as rendered.
    let formats: Vec<&str> = plan.report.formats.iter().map(|f| f.as_str()).collect();
    let facts = p.facts.clone();
    let mut rendered = report::Rendered::new(&plan.report.formats, &plan.report.output);
    let judged = p.always(Stage::Report, formats.join(", "), async || {
        let judgement = judge(plan, &facts);
        let report = shown(plan, report::build(&Rehearsal { judgement: judgement.clone(), ..facts }));
        rendered.render(&report, |format| !format.lists_stages());
        Ok(Judged(judgement))
    });
    p.facts.judgement = judged.await.expect("judging cannot fail").0;
    let report = shown(plan, report::build(&p.facts));
    rendered.render(&report, |_| true);
    let mut error = stopped.map(|s| s.error);
    let files = match rendered.write(&plan.report.dir) {
        Ok(files) => files,
        Err(e) => {
            error.get_or_insert(e);
            Vec::new()
        }
    };
    let exit_code = match &error {
        Some(e) => e.exit_code(),
        None => match report.status {
            RunStatus::Passed => exit::OK,
            RunStatus::BudgetExceeded => exit::BUDGET_BREACHED,
            RunStatus::Failed => exit::MIGRATION_FAILED,
            RunStatus::Interrupted => exit::INTERRUPTED,
        },
    };
    let table = rendered.text(ReportFormat::Table).map(str::to_string);
    Outcome { exit_code, report, table, files, kept, error }
}

/// The report as every format shows it: with production's row values taken
/// out (`report.redact`, the default). The gate judges the report as built.
fn shown(plan: &Plan, report: Report) -> Report {
    match plan.report.redact {
        true => report::redacted(&report),
        false => report,
    }
}

struct Judged(Judgement);

impl crate::pipeline::Summary for Judged {}

/// The gate: every budget judged once, against the rehearsal as the report
/// shows it, with the release at production's scale and the hazard ignores
/// that named no pending migration.
fn judge(plan: &Plan, facts: &Rehearsal) -> Judgement {
    let mut draft = report::build(facts);
    draft.totals.estimate = plan.estimate.as_ref().and_then(|e| e.totals(&draft.migrations));
    let mut judgement =
        crate::gate::judge(&plan.budgets, plan.report.baseline.as_ref(), &plan.report.regression, &draft);
    judgement.unused_ignores = plan.hazard_ignore.unused(&draft.migrations);
    judgement
}

/// What the plan says, as the report shows it.
pub fn planned(plan: &Plan) -> Planned {
    Planned {
        scenario: plan.name.clone(),
        backend: plan.backend.name(),
        scenario_settings: plan
            .settings
            .iter()
            // Production's are in report.production.
            .filter(|(n, _)| !plan.production.as_ref().is_some_and(|p| p.sets(n)))
            .map(|(n, v)| Setting { name: n.clone(), value: v.clone() })
            .collect(),
        dump_path: plan.dump.as_ref().map(|d| d.path.display().to_string()).unwrap_or_default(),
        dump_format: plan.dump.as_ref().map(|d| d.format),
        sample_interval_ms: millis(plan.observe.interval),
        budgets: plan.budgets.0.clone(),
        hazard_ignores: plan.hazard_ignore.info().ignore,
        estimate: plan.estimate.as_ref().map(|e| e.info(plan.budgets.0.apply_to)),
        launch: plan.launch.clone(),
        checklist: plan.report.checklist.clone(),
        machine: report::MachineInfo {
            cpus: crate::sys::machine::cpus(),
            memory_bytes: crate::sys::machine::memory_bytes(),
        },
    }
}

/// A pending migration as discovery found it.
pub fn planned_migration(m: &Migration) -> PlannedMigration {
    let (offline_sql, offline_sql_unavailable) = match &m.offline_sql {
        Some(OfflineSql::Sql(sql)) => (Some(sql.clone()), None),
        Some(OfflineSql::Unavailable(why)) => (None, Some(why.clone())),
        None => (None, None),
    };
    PlannedMigration {
        id: m.shown_id(),
        app: m.app.clone(),
        kind: m.kind,
        description: m.description.clone(),
        version: m.version.clone(),
        file: m.file.as_ref().map(|f| f.display().to_string()),
        offline_sql,
        offline_sql_unavailable,
    }
}
