//! The end of a run: the report stage (totals, the gate's verdict, the
//! checklist, the formats rendered), the exit code, and the files written.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::millis;
use super::snapshot::DumpIdentity;
use crate::error::{exit, Error};
use crate::migrations::{Migration, OfflineSql};
use crate::pipeline::{Pipeline, Stopped};
use crate::plan::Plan;
use crate::report::{self, MigrationReport, MigrationStatus, Report, ReportFormat, RunStatus, Setting, Stage, Wal};

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
        p.report.dump.bytes = *bytes;
        p.report.dump.sha256 = Some(sha.clone());
    }
    // The report stage: the model, and the formats that do not show the
    // stages' times. Those that do (Markdown, JSON) show this stage's too,
    // so they are rendered once its clock has stopped. Each format is
    // rendered once and written as rendered.
    let t = Instant::now();
    let formats: Vec<&str> = plan.report.formats.iter().map(|f| f.as_str()).collect();
    p.events().emit(crate::pipeline::Event::StageStarted { stage: Stage::Report, detail: formats.join(", ") });
    finish_report(plan, &mut p.report, stopped.as_ref(), started.elapsed());
    let mut rendered = report::Rendered::new(&plan.report.formats, &plan.report.output);
    rendered.render(&p.report, |format| !format.lists_stages());
    p.finished(Stage::Report, t, String::new());
    let report = p.report;
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

/// The report as a run starts: what the plan says, nothing measured yet.
pub fn new_report(plan: &Plan) -> Report {
    Report {
        schema: report::SCHEMA.into(),
        rehearse_version: env!("CARGO_PKG_VERSION").into(),
        scenario: plan.name.clone(),
        status: RunStatus::Passed,
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        finished_at: None,
        stopped_at_stage: None,
        error: None,
        postgres: report::PostgresInfo {
            version: None,
            backend: plan.backend.name().into(),
            settings: Vec::new(),
            scenario_settings: plan
                .settings
                .iter()
                .map(|(n, v)| Setting { name: n.clone(), value: v.clone() })
                .collect(),
        },
        machine: report::MachineInfo {
            cpus: crate::sys::machine::cpus(),
            memory_bytes: crate::sys::machine::memory_bytes(),
        },
        dump: report::DumpInfo {
            path: plan.dump.as_ref().map(|d| d.path.display().to_string()).unwrap_or_default(),
            format: plan.dump.as_ref().map(|d| d.format),
            ..Default::default()
        },
        restore: Default::default(),
        stages: Vec::new(),
        migrations: Vec::new(),
        totals: Default::default(),
        budget_breaches: Vec::new(),
        observation: report::ObservationInfo {
            sample_interval_ms: millis(plan.observe.interval),
            hot_tables: Vec::new(),
            limitations: Vec::new(),
        },
        baseline: None,
        breaches: Vec::new(),
        budgets: plan.budgets.0.clone(),
        hazards: plan.hazard_ignore.info(),
        backup: None,
        checklist: Default::default(),
        estimate: plan.estimate.as_ref().map(|e| e.info(plan.budgets.0.apply_to)),
        standby: None,
        launch: plan.launch.clone(),
        isolation: None,
        compat: None,
        race: None,
        sources: Vec::new(),
        drift: None,
    }
}

/// A migration's report before it runs: skipped until it is applied.
pub fn new_migration_report(m: &Migration) -> MigrationReport {
    let (offline_sql, offline_sql_unavailable) = match &m.offline_sql {
        Some(OfflineSql::Sql(sql)) => (Some(sql.clone()), None),
        Some(OfflineSql::Unavailable(why)) => (None, Some(why.clone())),
        None => (None, None),
    };
    MigrationReport {
        id: m.shown_id(),
        app: m.app.clone(),
        kind: m.kind,
        description: m.description.clone(),
        version: m.version.clone(),
        file: m.file.as_ref().map(|f| f.display().to_string()),
        status: MigrationStatus::Skipped,
        duration_ms: 0,
        wal: Wal::default(),
        statements: Vec::new(),
        locks: Vec::new(),
        longest_read_block: None,
        longest_write_block: None,
        probes: Vec::new(),
        rewrites: Vec::new(),
        size_changes: Vec::new(),
        progress: Vec::new(),
        top_statements: Vec::new(),
        hazards: Vec::new(),
        ignored_hazards: Vec::new(),
        budget_breaches: Vec::new(),
        error: None,
        startup_ms: None,
        offline_sql,
        offline_sql_unavailable,
        recovery: None,
        breaches: Vec::new(),
        destructive_changes: Vec::new(),
        estimate: None,
        standby: None,
        compat: None,
    }
}

/// Totals, the gate's verdict, the run's status and the checklist.
fn finish_report(plan: &Plan, report: &mut Report, stopped: Option<&Stopped>, elapsed: Duration) {
    report.finished_at = Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string());
    let ms = &report.migrations;
    let count = |status: MigrationStatus| ms.iter().filter(|m| m.status == status).count();
    report.totals = report::Totals {
        duration_ms: ms.iter().map(|m| m.duration_ms).sum(),
        wal_bytes: ms.iter().map(|m| m.wal.bytes).sum(),
        applied: count(MigrationStatus::Applied),
        failed: count(MigrationStatus::Failed),
        skipped: count(MigrationStatus::Skipped),
        run_duration_ms: millis(elapsed),
        timed_out: count(MigrationStatus::TimedOut),
        interrupted: count(MigrationStatus::Interrupted),
        estimate: plan.estimate.as_ref().and_then(|e| e.totals(ms)),
    };
    crate::gate::judge(&plan.budgets, plan.report.baseline.as_ref(), &plan.report.regression, report);
    report.hazards.unused_ignores = plan.hazard_ignore.unused(&report.migrations);
    let migration_failed = report.migrations.iter().any(|m| m.status == MigrationStatus::Failed);
    let breached =
        !report.budget_breaches.is_empty() || report.migrations.iter().any(|m| !m.budget_breaches.is_empty());
    report.status = match stopped {
        Some(s) => {
            report.stopped_at_stage = Some(s.stage);
            if matches!(s.error, Error::Interrupted) {
                RunStatus::Interrupted
            } else {
                report.error = Some(s.error.with_causes());
                RunStatus::Failed
            }
        }
        None if migration_failed => {
            report.stopped_at_stage = Some(Stage::Rehearse);
            RunStatus::Failed
        }
        None if breached => RunStatus::BudgetExceeded,
        None => RunStatus::Passed,
    };
    report.checklist = report::checklist::fill(report, &plan.report.checklist);
}
