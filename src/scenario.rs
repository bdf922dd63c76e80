//! The scenario file (`scenarios/*.yaml`): the user's contract, parsed strictly.
//!
//! Every struct denies unknown keys, so a typo is an error with line and
//! column rather than a silently ignored setting. Strings that may hold
//! `${VAR}` are `EnvString`s and are expanded while parsing, so a missing
//! variable is reported at the place that uses it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in reports; defaults to the file's stem.
    pub name: Option<String>,
    /// The dump to restore; `--dump` overrides it.
    pub dump: Option<EnvString>,
    #[serde(default)]
    pub postgres: PostgresSection,
    pub migrations: MigrationsSection,
    #[serde(default)]
    pub observe: ObserveSection,
    #[serde(default)]
    pub budgets: BudgetsSection,
    #[serde(default)]
    pub report: ReportSection,
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
    /// Directory holding `initdb`, `pg_ctl`, `pg_restore`, `psql`.
    pub pg_bin: Option<EnvString>,
    /// `pg_restore -j`; defaults to two jobs per core (see `plan::default_restore_jobs`).
    pub restore_jobs: Option<u32>,
    /// Prod-like server settings for the rehearsal phase.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingValue>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Auto,
    Local,
    Docker,
    Url,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationsSection {
    pub tool: MigrationTool,
    pub dir: Option<EnvString>,
    /// SQL: the tracking table (default `rehearse_schema_migrations`).
    pub table: Option<String>,
    /// Alembic: the revision to upgrade to.
    pub target: Option<String>,
    pub python: Option<EnvString>,
    #[serde(default)]
    pub env: BTreeMap<String, EnvString>,
    /// Command: prints pending ids, one per line.
    pub list: Option<EnvString>,
    /// Command: applies one id; `{rev}` and `{url}` are replaced.
    pub apply: Option<EnvString>,
    pub revisions: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationTool {
    Sql,
    Alembic,
    Command,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveSection {
    #[serde(default, with = "humantime_serde")]
    pub sample_interval: Option<Duration>,
    #[serde(default)]
    pub hot_tables: Vec<String>,
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
    /// What a migration running past `max_runtime` gets: cancelled (default) or left to finish.
    pub on_exceed: Option<OnExceed>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExceed {
    /// Cancel the migration at `max_runtime`, skip the rest, clean up, report.
    #[default]
    Cancel,
    /// Let it finish; the overrun is a breach like any other.
    Continue,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// A table on the terminal (stdout).
    Table,
    /// `report.md`, for humans and release tickets.
    Markdown,
    /// `report.json`, for machines (schema `rehearse.report/v1`).
    Json,
    /// `junit.xml`, for CI test views (GitHub, GitLab, Jenkins).
    Junit,
}

/// A string in which `${VAR}` was replaced by the environment variable's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvString(pub String);

impl EnvString {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        expand_env(&raw, |name| std::env::var(name).ok()).map(EnvString).map_err(de::Error::custom)
    }
}

/// Replaces every `${NAME}` in `raw` with `lookup(NAME)`; `$$` stands for a literal `$`.
pub fn expand_env(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {raw:?}: write `${{NAME}}`, or `$$` for a literal `$`"))?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid environment variable reference"));
            }
            let value = lookup(name).ok_or_else(|| {
                format!("environment variable {name} is not set (referenced as ${{{name}}}); export it before running rehearse")
            })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A setting value: YAML scalars of any type, kept as the text Postgres parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingValue(pub String);

impl<'de> Deserialize<'de> for SettingValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = SettingValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a setting value such as 1GB, 200, on or 'off'")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SettingValue, E> {
                expand_env(v, |n| std::env::var(n).ok()).map(SettingValue).map_err(E::custom)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<SettingValue, E> {
                Ok(SettingValue(if v { "on" } else { "off" }.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SettingValue, E> {
                Ok(SettingValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SettingValue, E> {
                Ok(SettingValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SettingValue, E> {
                Ok(SettingValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A size such as `512MB` or `2GB`. Units are Postgres's: 1kB = 1024 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = (&t[..split], t[split..].trim());
        let value: f64 = num
            .parse()
            .map_err(|_| format!("invalid size {text:?}: expected a number and a unit, like 512MB or 2GB"))?;
        let factor: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "kib" | "k" => 1 << 10,
            "mb" | "mib" | "m" => 1 << 20,
            "gb" | "gib" | "g" => 1 << 30,
            "tb" | "tib" | "t" => 1 << 40,
            _ => return Err(format!("invalid size {text:?}: unknown unit {unit:?}; use B, kB, MB, GB or TB")),
        };
        Ok(ByteSize((value * factor as f64).round() as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 512MB or 2GB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A rate in bytes per second: a size, optionally followed by `/s` (`50MB/s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRate(pub u64);

impl<'de> Deserialize<'de> for ByteRate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RateVisitor;
        impl Visitor<'_> for RateVisitor {
            type Value = ByteRate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rate such as 50MB/s")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteRate, E> {
                let size = v.trim().strip_suffix("/s").unwrap_or(v);
                match ByteSize::parse(size) {
                    Ok(ByteSize(0)) => Err(E::custom("a rate must be more than 0 bytes per second")),
                    Ok(b) => Ok(ByteRate(b.0)),
                    Err(e) => Err(E::custom(e)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteRate, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteRate, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(RateVisitor)
    }
}

/// Reads and parses a scenario file. Errors name the file, line and column.
pub fn load(path: &Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::bad_input_because(
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
        Error::bad_input(format!(
            "invalid scenario {}{location}: {e}\n  (the scenario reference is in README.md)",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Scenario> {
        parse(text, Path::new("s.yaml"))
    }

    #[test]
    fn sizes_use_postgres_units() {
        assert_eq!(ByteSize::parse("512MB").unwrap().0, 512 << 20);
        assert_eq!(ByteSize::parse("2GB").unwrap().0, 2 << 30);
        assert_eq!(ByteSize::parse("1.5kB").unwrap().0, 1536);
        assert!(ByteSize::parse("12 parsecs").is_err());
    }

    #[test]
    fn env_references_expand_and_missing_ones_are_named() {
        let lookup = |n: &str| (n == "HOST").then(|| "db".to_string());
        assert_eq!(expand_env("postgres://${HOST}/x $$5", lookup).unwrap(), "postgres://db/x $5");
        let err = expand_env("${NOPE}", lookup).unwrap_err();
        assert!(err.contains("NOPE is not set"), "{err}");
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse_str("dump: a.dump\nmigrations:\n  tool: sql\n  dri: x\n").unwrap_err().to_string();
        assert!(err.contains("s.yaml:4:3"), "{err}");
        assert!(err.contains("unknown field `dri`"), "{err}");
    }

    #[test]
    fn bad_duration_names_line() {
        let err = parse_str("migrations: {tool: sql}\nobserve:\n  sample_interval: fast\n").unwrap_err().to_string();
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
}
