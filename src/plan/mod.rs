//! Resolve before acting: the scenario file and the flags become a validated
//! `Plan` (absolute paths, parsed durations, detected dump format, scanned
//! migrations, chosen backend, room for the restore) before any side effect,
//! so a bad input fails in a second with nothing to clean up. Bad input is
//! checked before the environment, so a typo is reported as such even on a
//! machine that could not run the rehearsal.

pub mod abort;
mod budgets;
pub mod drift;
mod hazards;
mod load;
mod migrations;
pub mod physical;
pub mod platform;
pub mod production;
mod race;
mod report;
pub mod rollback;
pub mod scenario;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::cache::SnapshotCache;
use crate::backend::choose::NamedOnCommandLine;
use crate::backend::{BackendKind, BackendPlan, BackendRequest, ClonePlan, Throwaway};
use crate::compat::Corpus;
use crate::error::{Error, ErrorKind, Result};
use crate::estimate::{Estimator, ProductionStats};
use crate::gate::Budgets;
use crate::migrations::sources::SourcePlan;
use crate::observe::{ObserveOptions, StandbyOptions};
use crate::pg::DumpFormat;
use crate::pipeline::runner::until_stopped;
use crate::report::ReportFormat;
use crate::restore::space::{self, Room};
pub use report::ReportPlan;
use scenario::Scenario;

/// Everything a run needs, validated.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub scenario_path: PathBuf,
    /// The dump to restore; None on the clone backend, whose data is already on the server.
    pub dump: Option<DumpFile>,
    /// Production's physical backup, recovered instead of a dump (`physical:`).
    pub physical: Option<physical::PhysicalPlan>,
    pub backend: BackendPlan,
    pub restore_jobs: u32,
    /// The scenario's prod-like settings, in file order (sorted by name).
    pub settings: Vec<(String, String)>,
    /// The migration sources, in apply order (one, or one per app).
    pub migrations: Vec<SourcePlan>,
    pub observe: ObserveOptions,
    pub budgets: Budgets,
    /// Hazard rules set aside (`hazards.ignore`).
    pub hazard_ignore: crate::findings::ignore::HazardIgnore,
    pub report: ReportPlan,
    pub keep: bool,
    /// The snapshot cache, unless `--no-cache` or the backend cannot use one.
    pub cache: Option<SnapshotCache>,
    /// The exact server version the rehearsal runs on (part of the cache key).
    pub server_version: String,
    /// Where the restored data goes and how much room it has (local and docker backends).
    pub room: Option<Room>,
    /// Things the user should know before the run starts (a restore that may not fit).
    pub warnings: Vec<String>,
    /// Production's statistics, to estimate each migration at its scale (`estimate:`).
    pub estimate: Option<Estimator>,
    /// How the migration tool is launched, and what it runs with.
    pub launch: Option<crate::report::LaunchInfo>,
    /// The running app's queries, checked after each migration (`compat.queries`).
    pub compat: Option<Corpus>,
    /// Replicas racing to run the full upgrade at start-up (`race:`).
    pub race: Option<crate::race::RacePlan>,
    /// Production plus the release against the history built from empty (`drift:`, `rehearse drift`).
    pub drift: Option<drift::DriftPlan>,
    /// The app's traffic during each migration (`load:`).
    pub load: Option<crate::load::LoadPlan>,
    /// Migrations cancelled part-way on a fresh copy (`abort:`).
    pub abort: Option<abort::AbortPlan>,
    /// The release that undoes this one, rehearsed after it (`rollback:`).
    pub rollback: Option<rollback::RollbackPlan>,
    /// Production's migration role and settings on the copy (`production:`).
    pub production: Option<production::ProductionPlan>,
    /// The managed platform whose limits the copy reproduces (`postgres.platform`).
    pub platform: Option<platform::PlatformPlan>,
}

/// A dump file and its format, detected from its content.
#[derive(Debug, Clone)]
pub struct DumpFile {
    pub path: PathBuf,
    pub format: DumpFormat,
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
    /// `--no-trace` (internal): Alembic's statements untraced, to measure what tracing costs.
    pub no_trace: bool,
    /// `--baseline FILE.json`: wins over `report.baseline`.
    pub baseline: Option<PathBuf>,
    /// `rehearse drift`: the drift check on, whatever the scenario says, and no budgets.
    pub drift: bool,
}

pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// The scenario file's path and folder, as messages and relative paths use them.
struct Origin {
    /// Absolute path of the scenario file.
    path: PathBuf,
    /// Its folder: relative paths in the scenario start here.
    base: PathBuf,
    /// The current directory: relative paths on the command line start here.
    cwd: PathBuf,
}

impl Origin {
    fn new(scenario_path: &Path) -> Origin {
        let cwd = std::env::current_dir().unwrap_or_default();
        let path = absolute(scenario_path, &cwd);
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Origin { path, base, cwd }
    }

    /// The scenario file, as messages name it.
    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// A path from the scenario file.
    fn in_scenario(&self, path: &str) -> PathBuf {
        absolute(Path::new(path), &self.base)
    }

    /// A path from the command line.
    fn on_command_line(&self, path: &Path) -> PathBuf {
        absolute(path, &self.cwd)
    }
}

/// How long the up-front checks get to stop by themselves after a signal:
/// their children (version checks, the interpreter's imports, `docker
/// inspect`) get SIGTERM at once and are gone in well under this; after it,
/// they are killed with their process groups. Nothing has been made yet,
/// so there is nothing to clean up.
const WIND_DOWN: Duration = Duration::from_secs(1);

impl Plan {
    pub async fn resolve(scenario_path: &Path, overrides: &Overrides, cancel: &CancellationToken) -> Result<Plan> {
        let scenario = scenario::load(scenario_path)?;
        Plan::from_scenario(scenario, scenario_path, overrides, cancel).await
    }

    /// The plan, or what is wrong; `Error::Interrupted` within [`WIND_DOWN`]
    /// of a signal, whatever check was running.
    pub async fn from_scenario(
        s: Scenario,
        scenario_path: &Path,
        overrides: &Overrides,
        cancel: &CancellationToken,
    ) -> Result<Plan> {
        let resolved = until_stopped(resolve(s, scenario_path, overrides, cancel), cancel, WIND_DOWN).await;
        // An error after a signal is the signal's doing (a check whose child was stopped).
        match cancel.is_cancelled() {
            true => Err(Error::Interrupted),
            false => resolved,
        }
    }
}

async fn resolve(s: Scenario, scenario_path: &Path, overrides: &Overrides, cancel: &CancellationToken) -> Result<Plan> {
    // Bad input first, so it is reported before any environment check. On
    // a blocking thread: reading a large file (the app's queries,
    // production's statistics, a folder of migrations) must not keep a
    // signal waiting, and a signal leaves it behind unfinished.
    let (origin, o, c) = (Origin::new(scenario_path), overrides.clone(), cancel.clone());
    let inputs = tokio::task::spawn_blocking(move || Inputs::read(s, origin, &o, &c))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    environment(inputs, overrides, cancel).await
}

/// What the scenario and the flags say, checked without asking this machine
/// for anything but the files they name.
struct Inputs {
    s: Scenario,
    origin: Origin,
    name: String,
    clone: Option<ClonePlan>,
    dump: Option<DumpFile>,
    physical: Option<physical::PhysicalPlan>,
    migrations: Vec<SourcePlan>,
    report: ReportPlan,
    settings: Vec<(String, String)>,
    observe: ObserveOptions,
    estimate: Option<Estimator>,
    compat: Option<Corpus>,
    race: Option<crate::race::RacePlan>,
    drift: Option<drift::DriftPlan>,
    load: Option<crate::load::LoadPlan>,
    abort: Option<abort::AbortPlan>,
    rollback: Option<rollback::RollbackPlan>,
    production: Option<production::ProductionPlan>,
    platform: Option<platform::PlatformPlan>,
    hazard_ignore: crate::findings::ignore::HazardIgnore,
}

impl Inputs {
    fn read(s: Scenario, origin: Origin, overrides: &Overrides, cancel: &CancellationToken) -> Result<Inputs> {
        let name = s.name.clone().unwrap_or_else(|| {
            origin.path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "rehearsal".into())
        });
        let clone = clone_plan(&s, &origin)?;
        let dump = dump_file(&s, overrides, &origin)?;
        let physical = physical::plan(&s, &origin, overrides.pg_bin.is_some() || s.postgres.pg_bin.is_some())?;
        let migrations = migrations::scan_all(&s.migrations, &origin)?;
        let estimate = estimator(&s, &origin)?;
        let settings: Vec<(String, String)> =
            s.postgres.settings.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        let production = production::plan(s.production.as_ref(), &origin, &settings)?;
        let platform = platform::plan(s.postgres.platform, production.as_ref(), &origin)?;
        Ok(Inputs {
            clone,
            dump,
            physical,
            report: report::plan(&s.report, &name, overrides, &origin)?,
            settings: match &production {
                Some(p) => p.merged_settings(&settings),
                None => settings,
            },
            production,
            platform,
            observe: observe_options(&s, overrides, &origin)?,
            load: load::plan(&s, &origin, estimate.as_ref())?,
            estimate,
            compat: app_queries(&s, &origin, cancel)?,
            race: race::plan(&s, &migrations, &origin)?,
            drift: drift::plan(&s, overrides.drift, &origin)?,
            abort: abort::plan(&s, &origin)?,
            rollback: rollback::plan(&s, &migrations, &origin)?,
            hazard_ignore: hazards::ignore(&s.hazards, &origin)?,
            migrations,
            name,
            s,
            origin,
        })
    }
}

/// Then the environment: the backend, the migration tool, room for the
/// restore and for the reports.
async fn environment(i: Inputs, overrides: &Overrides, cancel: &CancellationToken) -> Result<Plan> {
    let (s, origin) = (&i.s, &i.origin);
    let dump = i.dump.as_ref();
    let mut backend = choose_backend(s, overrides, origin, dump, i.clone, &i.settings, cancel).await?;
    if i.physical.is_some() && !matches!(backend, BackendPlan::Local { .. }) {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{}: `physical:` is recovered by the local backend, and this run would use the {} backend: \
             drop --url/--image, or install PostgreSQL's server binaries (`make deps`)",
            origin.shown(),
            backend.name()
        )));
    }
    if let (BackendPlan::Url(p), Some(command)) = (&mut backend, &s.postgres.password_command) {
        let server = p.server.clone();
        p.server =
            crate::backend::url::with_password_command(server, Some(command.as_str()), "postgres.password_command");
    }
    let observe = ObserveOptions { standby: standby_options(s, &backend, origin)?, ..i.observe };
    if let (BackendPlan::Docker(p), Some(_)) = (&mut backend, &observe.standby) {
        p.standby = true;
    }
    let (migrations, launch) = migrations::check_all(i.migrations, cancel).await?;
    let rollback = match i.rollback {
        Some(rollback::RollbackPlan::Forward(plans)) => {
            let checked = migrations::check_all(plans, cancel).await.map_err(|e| e.context("rollback.migrations"))?;
            Some(rollback::RollbackPlan::Forward(checked.0))
        }
        other => other,
    };
    let (room, mut warnings) = match dump {
        Some(d) => room_for_restore(&backend, &d.path, d.format, cancel).await?,
        None => (None, Vec::new()),
    };
    if let (Some(p), BackendPlan::Local { bin }) = (&i.platform, &backend) {
        p.check_version(&bin.version, origin)?;
    }
    // Last: a report directory that does not exist yet is made, and only for a run that starts.
    report::check_room(&i.report)?;
    // A physical copy is keyed by the backup's identity (run/physical_cache.rs), when it has one before the copy.
    let uncached = i.physical.as_ref().and_then(|p| p.uncached()).filter(|_| !overrides.no_cache);
    warnings.extend(uncached.map(|why| format!("the snapshot cache is off for this run: {why}")));
    let cache = (!overrides.no_cache && uncached.is_none() && Throwaway::caches(&backend)).then(SnapshotCache::locate);
    let server_version = match &backend {
        BackendPlan::Local { bin } => bin.version.clone(),
        // The docker backend keys its cache by the image's id, read when the run starts.
        _ => String::new(),
    };
    Ok(Plan {
        name: i.name,
        scenario_path: i.origin.path.clone(),
        dump: i.dump,
        physical: i.physical,
        backend,
        restore_jobs: s.postgres.restore_jobs.unwrap_or_else(default_restore_jobs).max(1),
        settings: i.settings,
        migrations,
        observe,
        // `rehearse drift` judges no budgets.
        budgets: match overrides.drift {
            true => crate::gate::Budgets::default(),
            false => budgets::budgets(&s.budgets),
        },
        hazard_ignore: i.hazard_ignore,
        report: i.report,
        keep: overrides.keep,
        cache,
        server_version,
        room,
        warnings,
        estimate: i.estimate,
        launch,
        compat: i.compat,
        race: i.race,
        drift: i.drift,
        load: i.load,
        abort: i.abort,
        rollback,
        production: i.production,
        platform: i.platform,
    })
}

/// The dump to restore (`--dump` wins over `dump:`), its format detected;
/// none, and none allowed, on the clone backend: the clone holds the data.
fn dump_file(s: &Scenario, overrides: &Overrides, origin: &Origin) -> Result<Option<DumpFile>> {
    let path = match (&overrides.dump, &s.dump) {
        (Some(d), _) => Some(origin.on_command_line(d)),
        (None, Some(d)) => Some(origin.in_scenario(d.as_str())),
        (None, None) => None,
    };
    if s.physical.is_some() {
        return match path {
            None => Ok(None),
            Some(path) => Err(ErrorKind::ScenarioInvalid.error(format!(
                "{}: `physical:` is the data to rehearse on, so the dump {} would be unused: remove `dump:` \
                 (or --dump), or `physical:`",
                origin.shown(),
                path.display()
            ))),
        };
    }
    let clone = s.postgres.backend == BackendKind::Clone;
    match (path, clone) {
        (Some(path), false) => Ok(Some(DumpFile { format: DumpFormat::detect(&path)?, path })),
        (None, true) => Ok(None),
        (None, false) => Err(ErrorKind::ScenarioInvalid
            .error(format!("{}: no dump to restore: set `dump:` in the scenario or pass --dump PATH", origin.shown()))),
        (Some(path), true) => Err(ErrorKind::ScenarioInvalid.error(format!(
            "{}: postgres.backend is clone, so the data comes from the clone postgres.clone.create makes and \
             the dump {} would be unused: remove `dump:` (or --dump), or use another backend to restore it",
            origin.shown(),
            path.display()
        ))),
    }
}

/// `postgres.clone`, checked: for the clone backend only, both commands
/// given, a timeout above zero.
fn clone_plan(s: &Scenario, origin: &Origin) -> Result<Option<ClonePlan>> {
    let Some(c) = &s.postgres.clone else { return Ok(None) };
    let shown = origin.shown();
    if s.postgres.backend != BackendKind::Clone {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: postgres.clone names the commands of the clone backend, but postgres.backend is not clone: \
             set `backend: clone`, or remove postgres.clone"
        )));
    }
    for (key, command) in [("create", &c.create), ("destroy", &c.destroy)] {
        if command.as_str().trim().is_empty() {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: postgres.clone.{key} is empty: give the shell command that {} (see docs/clones.md)",
                if key == "create" { "makes the clone and prints its URL" } else { "removes the clone" }
            )));
        }
    }
    let timeout = c.timeout.unwrap_or(crate::backend::clone::DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(ErrorKind::ScenarioInvalid
            .error(format!("{shown}: postgres.clone.timeout must be above zero (30m is the default)")));
    }
    Ok(Some(ClonePlan {
        create: c.create.0.clone(),
        destroy: c.destroy.0.clone(),
        timeout,
        dir: origin.base.clone(),
        lazy_load: c.lazy_load,
        bin: None,
        password_command: c.password_command.as_ref().map(|p| p.as_str().to_string()),
    }))
}

/// The scenario's `compat.queries`, loaded and checked (a signal stops a
/// long read); `budgets.fail_on_incompatible` needs them.
fn app_queries(s: &Scenario, origin: &Origin, cancel: &CancellationToken) -> Result<Option<Corpus>> {
    match &s.compat {
        Some(c) => Corpus::load(&origin.in_scenario(c.queries.as_str()), cancel)
            .map(|corpus| Some(Corpus { redact_constants: report::redact(&s.report), ..corpus })),
        None if s.budgets.fail_on_incompatible => Err(ErrorKind::ScenarioInvalid.error(format!(
            "{}: budgets.fail_on_incompatible is true, but the scenario has no `compat:` section: add \
             `compat: {{ queries: app-queries.sql }}` (the running app's queries, or what `rehearse queries` \
             exports), or remove fail_on_incompatible",
            origin.shown()
        ))),
        None => Ok(None),
    }
}

/// The scenario's `estimate:`: production's statistics read and checked,
/// the speed positive; `budgets.apply_to: estimate` needs them.
fn estimator(s: &Scenario, origin: &Origin) -> Result<Option<Estimator>> {
    let shown = origin.shown();
    let Some(e) = &s.estimate else {
        if s.budgets.apply_to == crate::report::BudgetsApplyTo::Estimate {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: budgets.apply_to is estimate, but the scenario has no `estimate:` section: add \
                 `estimate: {{ production: prod-stats.json }}` (made by `rehearse stats`), or remove apply_to"
            )));
        }
        return Ok(None);
    };
    let speed = e.speed.unwrap_or(1.0);
    if !(speed.is_finite() && speed > 0.0) {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: estimate.speed is {speed}: it must be a positive number, how many times faster production's \
             server is than this one (1.0 = the same; `rehearse calibrate --url URL` measures it)"
        )));
    }
    let path = origin.in_scenario(e.production.as_str());
    let stats = ProductionStats::load(&path)?;
    let sample = s.observe.sample_interval.unwrap_or(DEFAULT_SAMPLE_INTERVAL);
    let progress_step_ms = (sample * crate::observe::progress::EVERY).as_millis() as u64;
    Ok(Some(Estimator { stats, path, speed, progress_step_ms }))
}

fn observe_options(s: &Scenario, overrides: &Overrides, origin: &Origin) -> Result<ObserveOptions> {
    let interval = s.observe.sample_interval.unwrap_or(DEFAULT_SAMPLE_INTERVAL);
    if interval < Duration::from_millis(1) {
        return Err(ErrorKind::ScenarioInvalid
            .error(format!("{}: observe.sample_interval must be at least 1ms (10ms is the default)", origin.shown())));
    }
    Ok(ObserveOptions {
        interval,
        hot_tables: s.observe.hot_tables.clone(),
        enabled: !overrides.no_observe,
        trace: !overrides.no_trace,
        standby: None,
    })
}

/// Default `observe.standby_interval`.
const DEFAULT_STANDBY_INTERVAL: Duration = Duration::from_millis(100);
/// Default `observe.standby_lag_threshold`.
const DEFAULT_STANDBY_THRESHOLD: Duration = Duration::from_secs(1);

/// The scenario's standby, checked against the backend chosen: the local
/// and docker backends start one; the url backend observes the one
/// `observe.standby_url` names, and can change none of its settings.
fn standby_options(s: &Scenario, backend: &BackendPlan, origin: &Origin) -> Result<Option<StandbyOptions>> {
    let o = &s.observe;
    let shown = origin.shown();
    let budgets = [s.budgets.migration.iter().collect::<Vec<_>>(), s.budgets.overrides.values().collect()].concat();
    let standby_budget = budgets.iter().any(|b| b.max_standby_lag.is_some() || b.max_standby_read_wait.is_some());
    let url = match (&o.standby_url, backend) {
        (Some(u), BackendPlan::Url(_)) => Some(crate::backend::url::with_password_command(
            crate::backend::url::parse_as(u.as_str(), "observe.standby_url")?,
            o.standby_password_command.as_ref().map(|c| c.as_str()),
            "observe.standby_password_command",
        )),
        (Some(_), other) => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: observe.standby_url names an existing standby, which only the url backend uses \
                 (this run uses the {} backend): use `observe.standby: true` to have it start one, or \
                 `postgres.backend: url` with the primary's postgres.url",
                other.name()
            )))
        }
        (_, BackendPlan::Clone(_)) if o.standby || o.standby_url.is_some() => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: observe.standby and observe.standby_url are not available on the clone backend: \
                 rehearse cannot start a standby of a clone it does not run; remove them (or rehearse with the \
                 local or docker backend to measure a standby)"
            )))
        }
        (None, BackendPlan::Url(_)) if o.standby => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: observe.standby with the url backend: rehearse cannot start a standby of a server it \
                 does not own; name an existing hot standby of it with observe.standby_url"
            )))
        }
        (None, _) => None,
    };
    if url.is_none() && !o.standby {
        if !o.standby_settings.is_empty() || standby_budget {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: observe.standby_settings and the max_standby_* budgets need a standby: set \
                 `observe.standby: true` (or observe.standby_url with the url backend)"
            )));
        }
        return Ok(None);
    }
    if url.is_some() && !o.standby_settings.is_empty() {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: observe.standby_settings cannot be applied to a standby rehearse does not own \
             (observe.standby_url): set them on that standby, or remove them"
        )));
    }
    let interval = o.standby_interval.unwrap_or(DEFAULT_STANDBY_INTERVAL);
    if interval < Duration::from_millis(10) {
        return Err(ErrorKind::ScenarioInvalid
            .error(format!("{shown}: observe.standby_interval must be at least 10ms (100ms is the default)")));
    }
    Ok(Some(StandbyOptions {
        url,
        interval,
        threshold: o.standby_lag_threshold.unwrap_or(DEFAULT_STANDBY_THRESHOLD),
        settings: o.standby_settings.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
    }))
}

async fn choose_backend(
    s: &Scenario,
    overrides: &Overrides,
    origin: &Origin,
    dump: Option<&DumpFile>,
    clone: Option<ClonePlan>,
    settings: &[(String, String)],
    cancel: &CancellationToken,
) -> Result<BackendPlan> {
    let pg_bin = match (&overrides.pg_bin, &s.postgres.pg_bin) {
        (Some(p), _) => Some(origin.on_command_line(p)),
        (None, Some(p)) => Some(origin.in_scenario(p.as_str())),
        (None, None) => None,
    };
    let shown = origin.shown();
    crate::backend::choose(
        &BackendRequest {
            kind: s.postgres.backend,
            version: s.postgres.version.as_ref().map(|v| v.as_str()),
            image: overrides.image.as_deref().or(s.postgres.image.as_ref().map(|i| i.as_str())),
            url: overrides.url.as_deref().or(s.postgres.url.as_ref().map(|u| u.as_str())),
            pg_bin: pg_bin.as_deref(),
            flags: NamedOnCommandLine {
                url: overrides.url.is_some(),
                image: overrides.image.is_some(),
                pg_bin: overrides.pg_bin.is_some(),
            },
            dump: dump.map(|d| d.path.as_path()),
            settings,
            clone,
            shown: &shown,
        },
        cancel,
    )
    .await
}

/// Where the backend keeps the restored data, and whether the dump fits
/// there; None for a server that is not on this machine (url backend).
async fn room_for_restore(
    backend: &BackendPlan,
    dump: &Path,
    format: DumpFormat,
    cancel: &CancellationToken,
) -> Result<(Option<Room>, Vec<String>)> {
    let (dir, what) = match backend {
        BackendPlan::Local { .. } => (std::env::temp_dir(), "TMPDIR"),
        BackendPlan::Docker(_) => match crate::backend::docker::data_root(cancel).await {
            Some(dir) => (dir, "Docker's data root"),
            None => return Ok((None, Vec::new())),
        },
        BackendPlan::Url(_) | BackendPlan::Clone(_) => return Ok((None, Vec::new())),
    };
    let (room, warning) = space::check(dump, format, &dir, what)?;
    Ok((Some(room), warning.into_iter().collect()))
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

/// The default `pg_restore --jobs` on this machine (see [`restore_jobs`]).
fn default_restore_jobs() -> u32 {
    let cores = crate::sys::machine::cpus() as u32;
    restore_jobs(cores, crate::sys::machine::memory_bytes().map(|b| b >> 30))
}

/// Two `pg_restore` jobs per core, since each job is a pg_restore process
/// and a server backend taking turns (decompressing and sending, then
/// parsing and writing), so one per core leaves cores idle. make bench's
/// 1 GB database on 2 cores restored in 21-23 s with 2 jobs and 19 s with
/// 3, 4 or 6. At most one job per 2 GiB of RAM beyond one per core, since
/// each index build may use `maintenance_work_mem` (1GB).
fn restore_jobs(cores: u32, memory_gib: Option<u64>) -> u32 {
    let by_memory = memory_gib.map_or(cores, |gib| (gib / 2).min(u64::from(u32::MAX)) as u32);
    (cores * 2).min(by_memory.max(cores)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_jobs_default_to_two_per_core_within_memory() {
        assert_eq!(restore_jobs(2, Some(23)), 4);
        assert_eq!(restore_jobs(64, Some(64)), 64, "never fewer than one per core");
        assert_eq!(restore_jobs(8, Some(24)), 12, "one job per 2 GiB beyond the cores");
        assert_eq!(restore_jobs(4, None), 4);
        assert_eq!(restore_jobs(0, Some(1)), 1);
        assert!(default_restore_jobs() >= 1);
    }

    #[test]
    fn paths_fold_dot_dot() {
        assert_eq!(absolute(Path::new("../reports/x"), Path::new("/repo/scenarios")), PathBuf::from("/repo/reports/x"));
        assert_eq!(absolute(Path::new("/abs"), Path::new("/repo")), PathBuf::from("/abs"));
    }
}
