//! Resolve before acting: the scenario file and the flags become a validated
//! `Plan` (absolute paths, parsed durations, detected dump format, chosen
//! backend) before any side effect, so a bad input fails in a second with
//! nothing to clean up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::local::PgBin;
use crate::backend::{BackendRequest, DockerPlan, UrlPlan};
use crate::error::{Error, Result};
use crate::restore::DumpFormat;
use crate::scenario::{self, MigrationTool, ReportFormat, Scenario};

/// Everything a run needs, validated.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub scenario_path: PathBuf,
    pub dump: PathBuf,
    pub dump_format: DumpFormat,
    pub backend: BackendPlan,
    pub restore_jobs: u32,
    /// The scenario's prod-like settings, in file order (sorted by name).
    pub settings: Vec<(String, String)>,
    pub migrations: MigrationsPlan,
    pub sample_interval: Duration,
    /// Tables the probes time reads and writes on; empty: the largest five.
    pub hot_tables: Vec<String>,
    pub budgets: crate::budget::Budgets,
    pub report: ReportPlan,
    pub keep: bool,
}

#[derive(Debug)]
pub enum BackendPlan {
    Local { bin: PgBin },
    Docker(DockerPlan),
    Url(UrlPlan),
}

#[derive(Debug)]
pub enum MigrationsPlan {
    Sql { dir: PathBuf, table: Option<String> },
}

#[derive(Debug)]
pub struct ReportPlan {
    pub dir: PathBuf,
    pub formats: Vec<ReportFormat>,
}

/// What the command line adds to or overrides in the scenario.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub dump: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub formats: Option<Vec<ReportFormat>>,
    pub pg_bin: Option<PathBuf>,
    /// Docker image (`--image`), instead of `postgres.image`.
    pub image: Option<String>,
    /// Server URL (`--url`), instead of `postgres.url`.
    pub url: Option<String>,
    pub keep: bool,
}

pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

impl Plan {
    pub async fn resolve(scenario_path: &Path, overrides: &Overrides, cancel: &CancellationToken) -> Result<Plan> {
        let scenario = scenario::load(scenario_path)?;
        Plan::from_scenario(scenario, scenario_path, overrides, cancel).await
    }

    pub async fn from_scenario(
        s: Scenario,
        scenario_path: &Path,
        overrides: &Overrides,
        cancel: &CancellationToken,
    ) -> Result<Plan> {
        let scenario_path = absolute(scenario_path, &std::env::current_dir().unwrap_or_default());
        let base = scenario_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let shown = scenario_path.display().to_string();
        let name = s.name.clone().unwrap_or_else(|| {
            scenario_path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "rehearsal".into())
        });

        // Bad input first, so it is reported before any environment check.
        let dump = match (&overrides.dump, &s.dump) {
            (Some(d), _) => absolute(d, &std::env::current_dir().unwrap_or_default()),
            (None, Some(d)) => absolute(Path::new(d.as_str()), &base),
            (None, None) => {
                return Err(Error::bad_input(format!(
                    "{shown}: no dump to restore: set `dump:` in the scenario or pass --dump PATH"
                )))
            }
        };
        let dump_format = DumpFormat::detect(&dump)?;

        let migrations = match s.migrations.tool {
            MigrationTool::Sql => {
                let dir = s.migrations.dir.as_ref().ok_or_else(|| {
                    Error::bad_input(format!("{shown}: migrations.dir is required when migrations.tool is sql"))
                })?;
                let dir = absolute(Path::new(dir.as_str()), &base);
                if !dir.is_dir() {
                    return Err(Error::bad_input(format!(
                        "{shown}: migrations.dir {} is not a directory: create it or fix the path (relative paths start at the scenario's folder)",
                        dir.display()
                    )));
                }
                MigrationsPlan::Sql { dir, table: s.migrations.table.clone() }
            }
            other => {
                return Err(Error::bad_input(format!(
                    "{shown}: migrations.tool {} is not supported by this version of rehearse yet; use `tool: sql`",
                    format!("{other:?}").to_lowercase()
                )))
            }
        };

        let budgets = crate::budget::Budgets::from_scenario(&s.budgets);
        let settings: Vec<(String, String)> =
            s.postgres.settings.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        let report = ReportPlan {
            dir: match (&overrides.out, &s.report.dir) {
                (Some(d), _) => absolute(d, &std::env::current_dir().unwrap_or_default()),
                (None, Some(d)) => absolute(Path::new(d.as_str()), &base),
                (None, None) => std::env::current_dir().unwrap_or_default().join("reports").join(&name),
            },
            formats: overrides
                .formats
                .clone()
                .or_else(|| s.report.formats.clone())
                .unwrap_or_else(|| vec![ReportFormat::Table, ReportFormat::Markdown, ReportFormat::Json]),
        };
        if s.report.baseline.is_some() {
            return Err(Error::bad_input(format!(
                "{shown}: report.baseline is not supported by this version of rehearse yet; remove it"
            )));
        }

        // Then the environment.
        let pg_bin = overrides
            .pg_bin
            .clone()
            .or_else(|| s.postgres.pg_bin.as_ref().map(|p| absolute(Path::new(p.as_str()), &base)));
        let backend = crate::backend::choose(
            &BackendRequest {
                kind: s.postgres.backend,
                version: s.postgres.version.as_ref().map(|v| v.as_str()),
                image: overrides.image.as_deref().or(s.postgres.image.as_ref().map(|i| i.as_str())),
                url: overrides.url.as_deref().or(s.postgres.url.as_ref().map(|u| u.as_str())),
                pg_bin: pg_bin.as_deref(),
                dump: &dump,
                settings: &settings,
                shown: &shown,
            },
            cancel,
        )
        .await?;

        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        Ok(Plan {
            name,
            scenario_path,
            dump,
            dump_format,
            backend,
            restore_jobs: s.postgres.restore_jobs.unwrap_or(cores).max(1),
            settings,
            migrations,
            sample_interval: s.observe.sample_interval.unwrap_or(DEFAULT_SAMPLE_INTERVAL),
            hot_tables: s.observe.hot_tables.clone(),
            budgets,
            report,
            keep: overrides.keep,
        })
    }
}

/// `path` made absolute against `base`, with `.` and `..` folded lexically
/// so messages and reports show `/repo/reports/demo`, not `/repo/scenarios/../reports/demo`.
fn absolute(path: &Path, base: &Path) -> PathBuf {
    use std::path::Component;
    let joined = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
