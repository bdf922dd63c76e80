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
    /// Observers on (locks, probes, statement statistics); off with `--no-observe`.
    pub observe: bool,
    /// The snapshot cache, unless `--no-cache` or the backend cannot use one.
    pub cache: Option<crate::cache::SnapshotCache>,
    /// The exact server version the rehearsal runs on (part of the cache key).
    pub server_version: String,
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
    Alembic(AlembicPlan),
    Command(CommandPlan),
}

#[derive(Debug, Clone)]
pub struct AlembicPlan {
    /// The folder holding alembic.ini; Alembic runs with it as working directory.
    pub dir: PathBuf,
    pub config: PathBuf,
    pub target: String,
    /// The interpreter of the user's environment, with Alembic importable.
    pub python: PathBuf,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct CommandPlan {
    /// Working directory for `list` and `apply`: the scenario's folder, or `dir`.
    pub dir: PathBuf,
    pub list: Option<String>,
    pub revisions: Option<Vec<String>>,
    pub apply: String,
    pub env: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct ReportPlan {
    pub dir: PathBuf,
    pub formats: Vec<ReportFormat>,
    /// The previous report to compare with, read and checked up front.
    pub baseline: Option<crate::baseline::Baseline>,
    pub regression: crate::report::RegressionThresholds,
    /// Time a `pg_dump -Fc` of the rehearsal database before cleanup.
    pub measure_backup: bool,
    pub checklist: crate::report::checklist::ChecklistSettings,
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
    pub no_cache: bool,
    pub no_observe: bool,
    /// `--baseline FILE.json`: wins over `report.baseline`.
    pub baseline: Option<PathBuf>,
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
            MigrationTool::Alembic => {
                MigrationsPlan::Alembic(alembic_plan(&s.migrations, &base, &shown, cancel).await?)
            }
            MigrationTool::Command => {
                let m = &s.migrations;
                let apply = m.apply.as_ref().ok_or_else(|| {
                    Error::bad_input(format!(
                        "{shown}: migrations.apply is required when migrations.tool is command, e.g. \
                         `apply: ./migrate.sh up {{rev}} --url {{url}}`"
                    ))
                })?;
                if m.list.is_none() && m.revisions.is_none() {
                    return Err(Error::bad_input(format!(
                        "{shown}: migrations.tool command needs `list:` (a command printing pending ids, one per line) \
                         or `revisions: [...]`"
                    )));
                }
                MigrationsPlan::Command(CommandPlan {
                    dir: m.dir.as_ref().map(|d| absolute(Path::new(d.as_str()), &base)).unwrap_or_else(|| base.clone()),
                    list: m.list.as_ref().map(|l| l.0.clone()),
                    revisions: m.revisions.clone(),
                    apply: apply.0.clone(),
                    env: m.env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
                })
            }
        };

        let budgets = crate::budget::Budgets::from_scenario(&s.budgets);
        let settings: Vec<(String, String)> =
            s.postgres.settings.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        let baseline = match (&overrides.baseline, &s.report.baseline) {
            (Some(p), _) => Some(absolute(p, &std::env::current_dir().unwrap_or_default())),
            (None, Some(p)) => Some(absolute(Path::new(p.as_str()), &base)),
            (None, None) => None,
        };
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
            baseline: baseline.map(|p| crate::baseline::Baseline::load(&p)).transpose()?,
            regression: crate::baseline::thresholds(s.report.regression.as_ref()),
            measure_backup: s.report.measure_backup,
            checklist: crate::report::checklist::ChecklistSettings::from_scenario(&s.report),
        };

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

        let sample_interval = s.observe.sample_interval.unwrap_or(DEFAULT_SAMPLE_INTERVAL);
        if sample_interval < Duration::from_millis(1) {
            return Err(Error::bad_input(format!(
                "{shown}: observe.sample_interval must be at least 1ms (10ms is the default)"
            )));
        }
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        let cache = (!overrides.no_cache && crate::backend::Throwaway::caches(&backend))
            .then(crate::cache::SnapshotCache::locate);
        let server_version = match &backend {
            BackendPlan::Local { bin } => bin.version.clone(),
            // No snapshot cache for these backends, so no key to make.
            _ => String::new(),
        };
        Ok(Plan {
            name,
            scenario_path,
            dump,
            dump_format,
            backend,
            restore_jobs: s
                .postgres
                .restore_jobs
                .unwrap_or_else(|| default_restore_jobs(cores, total_memory_gib()))
                .max(1),
            settings,
            migrations,
            sample_interval,
            hot_tables: s.observe.hot_tables.clone(),
            budgets,
            report,
            keep: overrides.keep,
            observe: !overrides.no_observe,
            cache,
            server_version,
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

/// Resolves an Alembic project: its alembic.ini, the target, and a Python
/// that can import Alembic (asked once here, so a missing one fails fast).
async fn alembic_plan(
    m: &crate::scenario::MigrationsSection,
    base: &Path,
    shown: &str,
    cancel: &CancellationToken,
) -> Result<AlembicPlan> {
    let dir = m.dir.as_ref().ok_or_else(|| {
        Error::bad_input(format!(
            "{shown}: migrations.dir (the folder holding alembic.ini) is required when migrations.tool is alembic"
        ))
    })?;
    let dir = absolute(Path::new(dir.as_str()), base);
    let config = dir.join("alembic.ini");
    if !config.is_file() {
        return Err(Error::bad_input(format!(
            "{shown}: migrations.dir {} holds no alembic.ini: point it at the folder you run `alembic upgrade` in",
            dir.display()
        )));
    }
    let python = match &m.python {
        Some(p) if p.as_str().contains('/') => absolute(Path::new(p.as_str()), base),
        Some(p) => PathBuf::from(p.as_str()),
        None => crate::migrations::alembic::default_python(),
    };
    crate::migrations::alembic::check_python(&python, cancel).await?;
    Ok(AlembicPlan {
        dir,
        config,
        target: m.target.clone().unwrap_or_else(|| "head".into()),
        python,
        env: m.env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
    })
}

/// The default `pg_restore --jobs`: two per core, since each job is a
/// pg_restore process and a server backend taking turns (decompressing and
/// sending, then parsing and writing), so one per core leaves cores idle.
/// make bench's 1 GB database on 2 cores restored in 21-23 s with 2 jobs and
/// 19 s with 3, 4 or 6. At most one job per 2 GiB of RAM beyond one per
/// core, since each index build may use `maintenance_work_mem` (1GB).
fn default_restore_jobs(cores: u32, memory_gib: Option<u64>) -> u32 {
    let by_memory = memory_gib.map_or(cores, |gib| (gib / 2).min(u64::from(u32::MAX)) as u32);
    (cores * 2).min(by_memory.max(cores)).max(1)
}

/// Total RAM in GiB from /proc/meminfo (Linux); None elsewhere.
fn total_memory_gib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 =
        info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / (1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_jobs_default_to_two_per_core_within_memory() {
        assert_eq!(default_restore_jobs(2, Some(23)), 4);
        assert_eq!(default_restore_jobs(64, Some(64)), 64, "never fewer than one per core");
        assert_eq!(default_restore_jobs(8, Some(24)), 12, "one job per 2 GiB beyond the cores");
        assert_eq!(default_restore_jobs(4, None), 4);
        assert_eq!(default_restore_jobs(0, Some(1)), 1);
        assert!(total_memory_gib().is_some_and(|g| g > 0), "this test runs on Linux");
    }
}
