//! The scenario file (`scenarios/*.yaml`): the user's contract, parsed strictly.
//!
//! Every struct denies unknown keys, so a typo is an error with line and
//! column rather than a silently ignored setting. Strings that may hold
//! `${VAR}` are `EnvString`s and are expanded while parsing, so a missing
//! variable is reported at the place that uses it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use super::values::{expand_env, ByteRate, ByteSize, EnvString, SettingValue};
pub use crate::backend::BackendKind;
use crate::error::{ErrorKind, Result};
pub use crate::findings::hazards::Rule;
pub use crate::migrations::MigrationTool;
pub use crate::report::{BudgetsApplyTo, OnExceed, ReportFormat};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in reports; defaults to the file's stem.
    pub name: Option<String>,
    /// The dump to restore; `--dump` overrides it.
    pub dump: Option<EnvString>,
    /// Production's physical backup, recovered instead of restoring a dump (`docs/restore.md`).
    pub physical: Option<PhysicalSection>,
    /// The database to rehearse on a physical copy (it holds all of production's).
    pub database: Option<String>,
    #[serde(default)]
    pub postgres: PostgresSection,
    /// One source, or a list of apps' sources on the same database.
    pub migrations: MigrationsList,
    #[serde(default)]
    pub observe: ObserveSection,
    #[serde(default)]
    pub budgets: BudgetsSection,
    /// Hazard rules set aside, everywhere or for some migrations.
    #[serde(default)]
    pub hazards: HazardsSection,
    #[serde(default)]
    pub report: ReportSection,
    /// Production-scale estimates from production's statistics.
    pub estimate: Option<EstimateSection>,
    /// The running app version's queries, checked after each migration.
    pub compat: Option<CompatSection>,
    /// N copies of the full upgrade at once on a fresh copy, as replicas
    /// running it at start-up would. `race:` alone (or `race: {}`) takes every default.
    #[serde(default, deserialize_with = "present")]
    pub race: Option<RaceSection>,
    /// Compare production plus the release with the schema the whole
    /// history builds from empty: `drift: true`, or `drift: { role, ignore }`.
    #[serde(default)]
    pub drift: Option<DriftSection>,
    /// The app's traffic and production's long transactions during each migration.
    pub load: Option<LoadSection>,
    /// Cancel a migration part-way, as an operator would, on a fresh copy:
    /// what is left behind and what brings the database back.
    pub abort: Option<AbortSection>,
    /// The forward rollback release rehearsed after the release: `migrations:`
    /// (the shapes of the top-level key) or `downgrade: true` (Alembic).
    #[serde(default, deserialize_with = "present")]
    pub rollback: Option<RollbackSection>,
    /// Production's migration role and settings (`rehearse stats --role`), reproduced on the copy.
    pub production: Option<ProductionSection>,
}

/// `physical:`: a base backup (or a backup tool's restore) and how far to recover it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicalSection {
    /// A `pg_basebackup` output: a `-Fp` directory, or a `-Ft` directory or `base.tar[.gz]`.
    pub basebackup: Option<EnvString>,
    /// A command that fills `{datadir}` with a backup (pgBackRest, WAL-G).
    pub restore: Option<EnvString>,
    /// The archive's `restore_command` (`%f`, `%p`), for WAL beyond the backup's own.
    pub restore_command: Option<EnvString>,
    /// Recover up to this time (`recovery_target_time`), then promote.
    pub target_time: Option<String>,
    /// Recover up to this WAL location (`recovery_target_lsn`), then promote.
    pub target_lsn: Option<String>,
    /// `latest`: recover to the end of the archive (the default with a `restore_command`).
    pub target: Option<String>,
}

/// `production:`: what `rehearse stats --role` recorded, and what of it the copy takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductionSection {
    /// `rehearse stats --role NAME` of production (a path, relative to the scenario).
    pub stats: EnvString,
    /// Run the migrations as the recorded role, with its login settings.
    #[serde(default)]
    pub as_role: bool,
    /// Apply the recorded server settings to the throwaway server.
    #[serde(default)]
    pub settings: bool,
}

/// `abort:`: which migrations are cancelled, and when.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortSection {
    /// A list of migration ids, or `longest` (the longest rehearsed migration).
    pub migrations: AbortMigrationsSection,
    /// `50%` (of its rehearsed time), `lock_granted`, or a duration (`10s`).
    pub at: String,
}

/// `abort.migrations`: ids, or a keyword.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AbortMigrationsSection {
    Ids(Vec<String>),
    Keyword(String),
}

/// `rollback:`: the release that undoes this one, applied after it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackSection {
    /// The rollback release, in the shapes of the top-level `migrations:`.
    pub migrations: Option<MigrationsList>,
    /// Alembic only: `alembic downgrade` from the release's heads back to production's revision.
    pub downgrade: Option<bool>,
}

/// `load:`: the app's statements replayed while each migration runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    /// The workload: what `rehearse queries` exports, or a `.sql` script (relative to the scenario).
    pub queries: EnvString,
    /// `production` (default), a multiple of it (`2x`), or statements per second (`50/s`).
    pub rate: Option<String>,
    /// The low-traffic window's rate, in the same forms: a migration over
    /// the app's budgets at `rate` may still be fine in the window.
    pub window_rate: Option<String>,
    /// Sessions replaying the workload (default 8): production's connection pool.
    pub clients: Option<u32>,
    /// Transactions held open on a table during each migration: a list of
    /// `{table, duration}`, or `production` (what `rehearse stats --activity` saw).
    #[serde(default)]
    pub long_transactions: Option<LongTransactionsSection>,
    /// The workload alone right before each migration (default 2s).
    #[serde(default, with = "humantime_serde")]
    pub baseline: Option<Duration>,
    /// A statement waiting longer than this is the app stalling (default 1s).
    #[serde(default, with = "humantime_serde")]
    pub stall_threshold: Option<Duration>,
}

/// `load.long_transactions`: a list, or `production`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum LongTransactionsSection {
    List(Vec<LongTransactionEntry>),
    Named(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongTransactionEntry {
    pub table: String,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSectionKeys {
    /// The role the history is built as (default: the owner of the history table in the dump).
    pub role: Option<String>,
    /// Differences to leave out: a kind (`privileges`) or `kind:pattern` (`index:public.legacy_*`).
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// `drift:` as `true`/`false`, empty, or a map of [`DriftSectionKeys`] (read
/// with serde's map deserializer, so a typo is reported at its line).
#[derive(Debug, Default)]
pub struct DriftSection {
    pub enabled: bool,
    pub keys: DriftSectionKeys,
}

impl<'de> Deserialize<'de> for DriftSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = DriftSection;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false, or a map with role and ignore")
            }
            fn visit_bool<E: serde::de::Error>(self, enabled: bool) -> Result<DriftSection, E> {
                Ok(DriftSection { enabled, keys: DriftSectionKeys::default() })
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<DriftSection, E> {
                Ok(DriftSection { enabled: true, keys: DriftSectionKeys::default() })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<DriftSection, A::Error> {
                let keys = DriftSectionKeys::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(DriftSection { enabled: true, keys })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A section that is there, even when empty (`race:` parses as null).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaceSection {
    /// How many copies start at once (default 3, at least 2).
    pub replicas: Option<u32>,
    /// What each replica runs at start-up; default: Alembic's `alembic upgrade <target>`.
    pub command: Option<EnvString>,
    /// Each copy starts after a random delay up to this (default 200ms).
    #[serde(default, with = "humantime_serde")]
    pub jitter: Option<Duration>,
    /// How long the race may take before copies still running count as a hang
    /// (default 10 × the sequential rehearsal, at least 30s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// SIGKILL one copy while it holds the lock or runs a statement, then start a fresh one.
    #[serde(default)]
    pub kill_one: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatSection {
    /// A `.sql` file of the app's queries, or `rehearse queries`' JSON (a path, relative to the scenario).
    pub queries: EnvString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateSection {
    /// `rehearse stats` of production (a path, relative to the scenario).
    pub production: EnvString,
    /// How much faster production's server is than this one (`rehearse calibrate`); default 1.0.
    pub speed: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    #[serde(default)]
    pub backend: BackendKind,
    /// Major version wanted; checked against the local binaries.
    pub version: Option<EnvString>,
    pub image: Option<EnvString>,
    pub url: Option<EnvString>,
    /// A command printing the password for `url` (`--url`), run before each connection (docs/connections.md).
    pub password_command: Option<EnvString>,
    /// Directory holding `initdb`, `pg_ctl`, `pg_restore`, `psql`.
    pub pg_bin: Option<EnvString>,
    /// `pg_restore -j`; defaults to two jobs per core (see `plan::restore_jobs`).
    pub restore_jobs: Option<u32>,
    /// Prod-like server settings for the rehearsal phase.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingValue>,
    /// `backend: clone`: the commands that make and remove a clone of production.
    pub clone: Option<CloneSection>,
    /// The managed platform production runs on, whose limits the copy reproduces (docs/production.md).
    pub platform: Option<crate::kinds::Platform>,
}

/// `postgres.clone`: a clone of production made by another engine (Database
/// Lab, Neon, a volume snapshot, a cloud snapshot restore), which rehearse
/// rehearses on instead of restoring a dump.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneSection {
    /// Makes the clone; prints its connection URL on stdout (and, optionally, `id=<...>` on another line).
    pub create: EnvString,
    /// Removes it; `{url}` and `{id}` are replaced (also in REHEARSE_CLONE_URL and REHEARSE_CLONE_ID).
    pub destroy: EnvString,
    /// How long `create` (and `destroy`) may take (default 30m).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// The clone's volumes load their blocks lazily from a snapshot (first reads slow): the report says so.
    #[serde(default)]
    pub lazy_load: bool,
    /// A command printing the password for the URL `create` prints, run before each connection.
    pub password_command: Option<EnvString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationsSection {
    /// The app's name, when `migrations:` lists several (ids become `name/revision`).
    pub name: Option<String>,
    pub tool: MigrationTool,
    pub dir: Option<EnvString>,
    /// SQL: the tracking table (default `rehearse_schema_migrations`).
    pub table: Option<String>,
    /// SQL: values of Flyway's `${name}` placeholders.
    #[serde(default)]
    pub placeholders: BTreeMap<String, EnvString>,
    /// Alembic: the ini file, relative to `dir` (default `alembic.ini`), as `alembic -c` takes it.
    pub config: Option<EnvString>,
    /// Alembic: the version table the app's env.py configures (default `alembic_version`).
    pub version_table: Option<String>,
    /// Alembic: the schema of that table, when env.py sets `version_table_schema`.
    pub version_table_schema: Option<String>,
    /// Alembic: the revision to upgrade to.
    pub target: Option<String>,
    /// Alembic: `one` process for the release (default), or `per_revision`.
    pub process: Option<crate::migrations::AlembicProcess>,
    pub python: Option<EnvString>,
    /// Alembic and command: the SQLAlchemy driver of the URL given to the app
    /// (`psycopg`, `psycopg2`, ...): `postgresql+<driver>://`.
    pub driver: Option<String>,
    /// `{url}` and `{sqlalchemy_url}` in values are the throwaway database's URLs.
    #[serde(default)]
    pub env: BTreeMap<String, EnvString>,
    /// Command: prints pending ids, one per line.
    pub list: Option<EnvString>,
    /// Command: applies one id; `{rev}` and `{url}` are replaced.
    pub apply: Option<EnvString>,
    /// Command: builds the whole history from empty (`drift:`); `{url}` is replaced.
    pub build: Option<EnvString>,
    pub revisions: Option<Vec<String>>,
    /// Django: the settings module (DJANGO_SETTINGS_MODULE).
    pub settings: Option<String>,
    /// Django: the alias in settings.DATABASES the migrations run on (default `default`).
    pub database: Option<String>,
    /// Alembic and command: run the tool in a container of the app's image.
    pub image: Option<EnvString>,
    /// Alembic and command: a Kubernetes Job manifest (after `helm template`)
    /// whose container's image, env and working directory the tool runs with.
    pub job: Option<EnvString>,
    /// The Job's container that runs the migrations, when it has several.
    pub job_container: Option<String>,
    /// Pull the image before the run (never pulled otherwise).
    #[serde(default)]
    pub pull: bool,
    /// The network the migration tool runs on: `isolated` (the default: a
    /// namespace of its own, reaching the copy only) or `host`.
    pub network: Option<crate::migrations::launch::Network>,
    /// Run each migration's statements under `lock_timeout` and retry one
    /// that failed on it (SQLSTATE 55P03) after a backoff.
    pub retry: Option<RetrySection>,
}

/// `migrations.retry`: the safe-migration guides' lock_timeout with retries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    /// Required: how long a statement may wait for a lock before it fails.
    #[serde(default, with = "humantime_serde")]
    pub lock_timeout: Option<Duration>,
    /// Tries in all, the first included (default 5).
    pub attempts: Option<u32>,
    /// The first pause between two tries (default 1s), doubled after each, up to 30s.
    #[serde(default, with = "humantime_serde")]
    pub backoff: Option<Duration>,
}

/// `migrations:` as a single source (a map) or several apps' sources (a
/// list), read with serde's own map and sequence deserializers so a typo in
/// either form is reported at its line and column.
#[derive(Debug)]
pub struct MigrationsList {
    pub sources: Vec<MigrationsSection>,
    /// Whether the scenario wrote a list (each source then needs a name).
    pub listed: bool,
}

impl<'de> Deserialize<'de> for MigrationsList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = MigrationsList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a migration source (tool, dir, ...) or a list of apps' sources, each with a name")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<MigrationsList, A::Error> {
                let one = MigrationsSection::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(MigrationsList { sources: vec![one], listed: false })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<MigrationsList, A::Error> {
                let sources = Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(MigrationsList { sources, listed: true })
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveSection {
    #[serde(default, with = "humantime_serde")]
    pub sample_interval: Option<Duration>,
    #[serde(default)]
    pub hot_tables: Vec<String>,
    /// Start a streaming hot standby of the throwaway primary (local and
    /// docker backends) and measure its lag and what its readers wait.
    #[serde(default)]
    pub standby: bool,
    /// The url backend: an existing hot standby of the server `postgres.url` names.
    pub standby_url: Option<EnvString>,
    /// A command printing the password for `standby_url`, run before each connection.
    pub standby_password_command: Option<EnvString>,
    /// How often the standby's lag is read (default 100ms).
    #[serde(default, with = "humantime_serde")]
    pub standby_interval: Option<Duration>,
    /// Lag above this counts as "over threshold" (default 1s).
    #[serde(default, with = "humantime_serde")]
    pub standby_lag_threshold: Option<Duration>,
    /// Settings of the standby as rehearsed (max_standby_streaming_delay,
    /// hot_standby_feedback, ...), the shape of `postgres.settings`.
    #[serde(default)]
    pub standby_settings: BTreeMap<String, SettingValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetsSection {
    pub migration: Option<MigrationBudget>,
    pub total: Option<TotalBudget>,
    /// Per migration id: budgets that replace `migration`'s, key by key, for a
    /// migration the team accepted as a maintenance-window job.
    #[serde(default)]
    pub overrides: BTreeMap<String, MigrationBudget>,
    /// A regression against the baseline fails the run (exit 1).
    #[serde(default)]
    pub fail_on_regression: bool,
    /// What the per-migration budgets judge: the measured figures (default)
    /// or the production-scale estimate (needs `estimate:`).
    #[serde(default)]
    pub apply_to: BudgetsApplyTo,
    /// A migration that breaks a query of the running app fails the run (exit 1; needs `compat:`).
    #[serde(default)]
    pub fail_on_incompatible: bool,
    /// A race of replicas that is unsafe or inconclusive fails the run (exit 1; needs `race:`).
    #[serde(default)]
    pub fail_on_race: bool,
    /// A drift finding fails the run (exit 1; needs `drift:`).
    #[serde(default)]
    pub fail_on_drift: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationBudget {
    #[serde(default, with = "humantime_serde")]
    pub max_runtime: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_exclusive_lock: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_write_block: Option<Duration>,
    pub max_wal: Option<ByteSize>,
    /// Longest wait of a probe session on a hot table.
    #[serde(default, with = "humantime_serde")]
    pub max_probe_wait: Option<Duration>,
    /// Longest time the standby was behind the primary (needs a standby).
    #[serde(default, with = "humantime_serde")]
    pub max_standby_lag: Option<Duration>,
    /// Longest wait of a probe read on the standby (needs a standby).
    #[serde(default, with = "humantime_serde")]
    pub max_standby_read_wait: Option<Duration>,
    /// What a migration running past `max_runtime` gets: cancelled (default) or left to finish.
    pub on_exceed: Option<OnExceed>,
    /// The app's p99 latency while it runs (`load:`).
    #[serde(default, with = "humantime_serde")]
    pub max_app_p99: Option<Duration>,
    /// The app's longest stall on a table while it runs (`load:`).
    #[serde(default, with = "humantime_serde")]
    pub max_app_stall: Option<Duration>,
    /// How many of the app's statements may fail while it runs (`load:`).
    pub max_app_errors: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotalBudget {
    #[serde(default, with = "humantime_serde")]
    pub max_runtime: Option<Duration>,
    pub max_wal: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HazardsSection {
    /// Rule ids, each alone (every migration) or as `{rule, migrations}`.
    #[serde(default)]
    pub ignore: Vec<HazardIgnoreItem>,
}

/// An entry of `hazards.ignore`: a rule id, or a map of [`HazardIgnoreKeys`]
/// (read with serde's map deserializer, so a typo is reported at its line).
#[derive(Debug)]
pub struct HazardIgnoreItem(pub HazardIgnoreKeys);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HazardIgnoreKeys {
    pub rule: Rule,
    /// Migration ids (or bare revisions with several apps); absent: every migration.
    pub migrations: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for HazardIgnoreItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HazardIgnoreItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a hazard rule id, or a map with rule and migrations")
            }
            fn visit_str<E: serde::de::Error>(self, id: &str) -> Result<HazardIgnoreItem, E> {
                let rule = Rule::deserialize(serde::de::value::StrDeserializer::<E>::new(id))?;
                Ok(HazardIgnoreItem(HazardIgnoreKeys { rule, migrations: None }))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<HazardIgnoreItem, A::Error> {
                let keys = HazardIgnoreKeys::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(HazardIgnoreItem(keys))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    pub dir: Option<EnvString>,
    pub formats: Option<Vec<ReportFormat>>,
    pub baseline: Option<EnvString>,
    /// What counts as a regression against the baseline.
    pub regression: Option<RegressionSection>,
    /// Time a `pg_dump -Fc` of the rehearsal database for the backup item of the checklist.
    #[serde(default)]
    pub measure_backup: bool,
    /// How fast a replica replays WAL, per second (`50MB` or `50MB/s`), for the replica lag estimate.
    pub replica_apply_rate: Option<ByteRate>,
    /// Total time or blocking lock beyond which ops should be told.
    #[serde(default, with = "humantime_serde")]
    pub ops_threshold: Option<Duration>,
    /// A migration longer than this should not run on the deploy's critical path.
    #[serde(default, with = "humantime_serde")]
    pub deploy_window: Option<Duration>,
    /// Take production's row values out of every artifact and the terminal
    /// (default true; `false` only for a copy that holds no real data).
    pub redact: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionSection {
    /// Growth in percent beyond which a change is a regression (default 25).
    pub percent: Option<f64>,
    /// ... and by at least this much, for time and lock holds (default 1s).
    #[serde(default, with = "humantime_serde")]
    pub min_time: Option<Duration>,
    /// ... and by at least this much, for WAL (default 16MB).
    pub min_wal: Option<ByteSize>,
}

/// Reads and parses a scenario file. Errors name the file, line and column.
pub fn load(path: &Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ErrorKind::ScenarioInvalid.because(
            format!(
                "cannot read scenario file {}: check the path (scenarios live in scenarios/*.yaml)",
                path.display()
            ),
            e,
        )
    })?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Scenario> {
    serde_yaml::from_str(text).map_err(|e| {
        let location = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
        ErrorKind::ScenarioInvalid
            .because(format!("invalid scenario {}{location} (every key is in docs/scenario.md)", path.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Scenario> {
        parse(text, Path::new("s.yaml"))
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse_str("dump: a.dump\nmigrations:\n  tool: sql\n  dri: x\n").unwrap_err().render();
        assert!(err.contains("s.yaml:4:3"), "{err}");
        assert!(err.contains("unknown field `dri`"), "{err}");
    }

    #[test]
    fn bad_duration_names_line() {
        let err = parse_str("migrations: {tool: sql}\nobserve:\n  sample_interval: fast\n").unwrap_err().render();
        assert!(err.contains("s.yaml:3:"), "{err}");
    }

    #[test]
    fn full_example_parses() {
        let s = parse_str(
            "name: n\ndump: d.dump\npostgres:\n  backend: local\n  restore_jobs: 2\n  settings:\n    maintenance_work_mem: 1GB\n    work_mem: 64\n    jit: false\nmigrations:\n  tool: sql\n  dir: m\nobserve:\n  sample_interval: 10ms\nbudgets:\n  migration:\n    max_runtime: 5m\n    max_wal: 2GB\nreport:\n  formats: [markdown, json]\n",
        )
        .unwrap();
        assert_eq!(s.postgres.settings["jit"].0, "off");
        assert_eq!(s.postgres.settings["work_mem"].0, "64");
        assert_eq!(s.observe.sample_interval, Some(Duration::from_millis(10)));
        assert_eq!(s.budgets.migration.unwrap().max_wal, Some(ByteSize(2 << 30)));
    }

    #[test]
    fn a_clone_section_parses_and_a_typo_in_it_names_its_line() {
        let s = parse_str(
            "postgres:\n  backend: clone\n  clone:\n    create: ./make.sh\n    destroy: ./rm.sh \"$REHEARSE_CLONE_ID\"\n    timeout: 10m\n    lazy_load: true\nmigrations: {tool: sql}\n",
        )
        .unwrap();
        assert_eq!(s.postgres.backend, BackendKind::Clone);
        let clone = s.postgres.clone.unwrap();
        assert_eq!(clone.destroy.as_str(), "./rm.sh \"$REHEARSE_CLONE_ID\"", "$VAR without braces is the shell's");
        assert_eq!((clone.timeout, clone.lazy_load), (Some(Duration::from_secs(600)), true));
        let err = parse_str(
            "postgres:\n  clone:\n    create: a\n    destroy: b\n    lazyload: true\nmigrations: {tool: sql}\n",
        )
        .unwrap_err()
        .render();
        assert!(err.contains("s.yaml:5:5") && err.contains("lazyload"), "{err}");
    }

    #[test]
    fn hazards_ignore_takes_a_rule_id_or_a_rule_with_migrations_and_names_the_line_of_a_mistake() {
        let s = parse_str(
            "migrations: {tool: sql}\nhazards:\n  ignore:\n    - no-lock-timeout\n    - rule: set-not-null\n      migrations: [a1, app/b2]\n",
        )
        .unwrap();
        let ignore: Vec<_> = s.hazards.ignore.iter().map(|i| (i.0.rule, i.0.migrations.clone())).collect();
        assert_eq!(
            ignore,
            [(Rule::NoLockTimeout, None), (Rule::SetNotNull, Some(vec!["a1".to_string(), "app/b2".to_string()]))]
        );
        let unknown =
            parse_str("migrations: {tool: sql}\nhazards:\n  ignore:\n    - no-lock-timout\n").unwrap_err().render();
        assert!(unknown.contains("s.yaml:4:") && unknown.contains("unknown hazard rule `no-lock-timout`"), "{unknown}");
        let in_map =
            parse_str("migrations: {tool: sql}\nhazards:\n  ignore:\n    - rule: set-not-nul\n").unwrap_err().render();
        assert!(in_map.contains("s.yaml:4:") && in_map.contains("`set-not-nul`"), "{in_map}");
        let typo =
            parse_str("migrations: {tool: sql}\nhazards:\n  ignore:\n    - rule: set-not-null\n      migration: [a]\n")
                .unwrap_err()
                .render();
        assert!(typo.contains("s.yaml:5:7") && typo.contains("unknown field `migration`"), "{typo}");
    }

    #[test]
    fn an_empty_race_section_is_there_with_its_defaults() {
        let bare = parse_str("migrations: {tool: sql}\nrace:\n").unwrap();
        assert!(bare.race.is_some_and(|r| r.replicas.is_none() && !r.kill_one));
        assert!(parse_str("migrations: {tool: sql}\n").unwrap().race.is_none());
        let full = parse_str("migrations: {tool: sql}\nrace: {replicas: 4, jitter: 1s, kill_one: true}\n").unwrap();
        let race = full.race.unwrap();
        assert_eq!((race.replicas, race.jitter, race.kill_one), (Some(4), Some(Duration::from_secs(1)), true));
    }
}
