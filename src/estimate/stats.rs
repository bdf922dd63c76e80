//! Production's size statistics (`rehearse.stats/v1`): what `rehearse stats`
//! reads from production's catalog and writes as JSON, and what an estimate
//! scales the rehearsal by. Sizes only: no row data leaves production.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::catalog::{MigrationRole, RelationStats};
use crate::error::{ErrorKind, Result};
use crate::sys::json::{read_versioned, Refusal};

pub const STATS_SCHEMA: &str = "rehearse.stats/v1";

/// The server settings that change a migration's time or outcome, recorded
/// for `production.settings` (`data_checksums` is fixed at initdb: recorded,
/// never applied).
pub const MIGRATION_SETTINGS: [&str; 9] = [
    "maintenance_work_mem",
    "max_parallel_maintenance_workers",
    "work_mem",
    "max_wal_size",
    "wal_compression",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "data_checksums",
];

/// The settings that drive how fast DDL runs, read with the statistics:
/// `hash_mem_multiplier` with `work_mem` is a hash's memory before it
/// spills (PostgreSQL 13+; see `limits.rs`).
pub const DDL_SETTINGS: [&str; 5] =
    ["maintenance_work_mem", "max_parallel_maintenance_workers", "work_mem", "hash_mem_multiplier", "shared_buffers"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductionStats {
    /// Always `rehearse.stats/v1`.
    pub schema: String,
    /// When they were read (RFC 3339, UTC).
    pub taken_at: String,
    /// `server_version` of the server they were read from, e.g. "15.18".
    pub server_version: String,
    /// The database they describe.
    pub database: String,
    /// Whether they were read on a hot standby.
    #[serde(default)]
    pub in_recovery: bool,
    /// The settings of [`DDL_SETTINGS`], as the server shows them.
    pub settings: BTreeMap<String, String>,
    /// Every table, index, materialized view and TOAST table.
    pub relations: Vec<RelationStats>,
    /// What `--activity` saw of production's transactions; absent without it
    /// (and in files written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    /// The migration role (`--role`, default the connecting user); absent
    /// in files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<MigrationRole>,
    /// The server-level values of [`MIGRATION_SETTINGS`] (empty in older files).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server_settings: BTreeMap<String, String>,
}

/// Production's long transactions, sampled from pg_stat_activity and
/// pg_locks by `rehearse stats --activity`: per table, the oldest
/// transaction seen holding a lock on it. Tables and ages only: no query
/// text, role or application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// How long the sampling ran (seconds; a sample a second).
    pub sampled_seconds: f64,
    /// Each table some session held a lock on, the longest-held first.
    pub long_transactions: Vec<LongTransaction>,
}

/// A table and the longest transaction seen holding a lock on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongTransaction {
    /// `schema.name`, as `format('%I.%I')` writes it.
    pub table: String,
    /// The oldest age (`now() - xact_start`) of a transaction seen holding
    /// a lock on it, in milliseconds.
    pub max_age_ms: i64,
    /// How many sessions (by pid) were seen holding a lock on it.
    pub sessions_seen: usize,
}

impl Activity {
    /// The activity of `samples`, each what [`crate::catalog::table_lock_holders`] returned once.
    pub fn from_samples<'a>(
        sampled_seconds: f64,
        samples: impl IntoIterator<Item = &'a [crate::catalog::TableLockHolder]>,
    ) -> Activity {
        let mut tables: BTreeMap<&str, (i64, std::collections::BTreeSet<i32>)> = BTreeMap::new();
        for holder in samples.into_iter().flatten() {
            let (age, pids) = tables.entry(&holder.table).or_default();
            *age = (*age).max(holder.xact_age_ms);
            pids.insert(holder.pid);
        }
        let mut long_transactions: Vec<LongTransaction> = tables
            .into_iter()
            .map(|(table, (max_age_ms, pids))| LongTransaction {
                table: table.to_string(),
                max_age_ms,
                sessions_seen: pids.len(),
            })
            .collect();
        long_transactions.sort_by(|a, b| b.max_age_ms.cmp(&a.max_age_ms).then_with(|| a.table.cmp(&b.table)));
        Activity { sampled_seconds, long_transactions }
    }
}

impl ProductionStats {
    /// Reads and checks a stats file; anything but a `rehearse.stats/v1`
    /// file with its relations is bad input naming the file.
    pub fn load(path: &Path) -> Result<ProductionStats> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ErrorKind::StatisticsInvalid.because(
                format!(
                    "cannot read production statistics {shown}: make them with `rehearse stats --url URL --out FILE` \
                     and point estimate.production at that file"
                ),
                e,
            )
        })?;
        let kind = ErrorKind::StatisticsInvalid;
        let value: serde_json::Value = read_versioned(&text, STATS_SCHEMA, kind, |refusal| match refusal {
            Refusal::NotJson => {
                format!("production statistics {shown} are not JSON: make them again with `rehearse stats`")
            }
            Refusal::OtherSchema(other) => format!(
                "{shown} is not {STATS_SCHEMA} (its schema is {}): make it with this version's `rehearse stats`",
                other.map(|s| format!("`{s}`")).unwrap_or_else(|| "missing".into())
            ),
            Refusal::Incomplete => incomplete(&shown),
        })?;
        if let Some(relations) = value.get("relations").and_then(|r| r.as_array()) {
            check_relations(relations).map_err(|problem| {
                kind.error(format!(
                    "production statistics {shown}: {problem}; make them again with `rehearse stats` (or correct \
                     that entry)"
                ))
            })?;
        }
        let stats = ProductionStats::deserialize(value).map_err(|e| kind.because(incomplete(&shown), e))?;
        if stats.relations.is_empty() {
            return Err(kind.error(format!(
                "production statistics {shown} list no relations: were they read from the right database?"
            )));
        }
        Ok(stats)
    }

    /// A relation by its `schema.name`.
    pub fn relation(&self, name: &str) -> Option<&RelationStats> {
        self.relations.iter().find(|r| r.relation == name)
    }
}

fn incomplete(shown: &impl std::fmt::Display) -> String {
    format!("production statistics {shown} lack what an estimate needs: make them again with `rehearse stats`")
}

/// The largest count or size a statistics file may hold: 2^53 - 1, the
/// largest integer every JSON reader keeps exactly. Far above any real
/// relation (a fork is at most 2^32 blocks of at most 32 kB: 2^47 bytes).
const MAX_FIGURE: i64 = (1 << 53) - 1;

/// The figures of a relation: (key, smallest value, what it is). `rows` is
/// `reltuples`, -1 for a relation never vacuumed or analyzed (PostgreSQL
/// 14+); `pages` is `relpages`, -1 for a partitioned table analyzed since it
/// had partitions (it has no storage of its own; PostgreSQL 14+, as the
/// server's own pg_restore_relation_stats accepts for that kind only).
const FIGURES: [(&str, i64, &str); 4] = [
    ("rows", -1, "a row count: a whole number from -1 (never analyzed)"),
    ("pages", -1, "a page count: a whole number from -1 (a partitioned table)"),
    ("bytes", 0, "a size in bytes: a whole number from 0"),
    ("total_bytes", 0, "a size in bytes: a whole number from 0"),
];

/// What is wrong with the first relation that is wrong, by its name (or its
/// place in the list when it has none): a figure of the wrong type, not
/// whole, negative or out of range; an unknown kind; a relation listed
/// twice. Scaled by, any of these would change an estimate silently.
fn check_relations(relations: &[serde_json::Value]) -> std::result::Result<(), String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, entry) in relations.iter().enumerate() {
        let place = format!("relation {} of {}", i + 1, relations.len());
        let Some(name) = entry.get("relation").and_then(|n| n.as_str()).filter(|n| !n.is_empty()) else {
            return Err(format!("{place} has no `relation` (its schema.name)"));
        };
        if let Some(first) = seen.insert(name, i + 1) {
            return Err(format!(
                "{name} is listed twice (relations {first} and {}), so which size counts is unknowable",
                i + 1
            ));
        }
        check_relation(name, entry)?;
    }
    Ok(())
}

fn check_relation(name: &str, entry: &serde_json::Value) -> std::result::Result<(), String> {
    let kind = entry.get("kind").cloned().unwrap_or_default();
    if crate::pg::RelationKind::deserialize(&kind).is_err() {
        return Err(format!("{name} has kind {kind}, which is not a relation kind (table, index, toast table, ...)"));
    }
    match entry.get("table") {
        None | Some(serde_json::Value::Null | serde_json::Value::String(_)) => {}
        Some(other) => return Err(format!("{name} has table {other}: it must be a schema.name or null")),
    }
    for (key, min, what) in FIGURES {
        let Some(value) = entry.get(key) else { return Err(format!("{name} has no {key}")) };
        // JSON has no NaN or infinity (serde_json refuses them as not JSON).
        let wrong = match (value.as_i64(), value.as_f64()) {
            (Some(n), _) if (min..=MAX_FIGURE).contains(&n) => continue,
            (Some(n), _) if n < min => format!("below {min}"),
            (_, Some(x)) if x.fract() != 0.0 => "not a whole number".into(),
            (_, Some(x)) if x.abs() <= MAX_FIGURE as f64 && value.is_f64() => "written as a decimal".into(),
            (_, Some(_)) => "out of range".into(),
            (_, None) => "not a number".into(),
        };
        return Err(format!("{name} has {key} {value}, {wrong} ({what} to {MAX_FIGURE})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableLockHolder;

    #[test]
    fn activity_keeps_the_oldest_age_and_counts_sessions_per_table() {
        let holder = |table: &str, pid, xact_age_ms| TableLockHolder { table: table.into(), pid, xact_age_ms };
        let first = [holder("public.t", 10, 1000), holder("public.u", 11, 50)];
        let second = [holder("public.t", 10, 2000), holder("public.t", 12, 10), holder("public.u", 11, 1050)];
        let activity = Activity::from_samples(2.0, [&first[..], &second[..]]);
        let rows: Vec<(&str, i64, usize)> =
            activity.long_transactions.iter().map(|l| (l.table.as_str(), l.max_age_ms, l.sessions_seen)).collect();
        assert_eq!(rows, [("public.t", 2000, 2), ("public.u", 1050, 1)]);
        assert_eq!(Activity::from_samples(1.0, []).long_transactions, []);
    }

    #[test]
    fn foreign_and_incomplete_files_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let p = dir.path().join("stats.json");
            std::fs::write(&p, text).unwrap();
            p
        };
        let check = |text: &str, expected: &str| {
            let err = ProductionStats::load(&write(text)).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
            assert!(err.render().contains(expected), "{}", err.render());
        };
        check(r#"{"schema": "rehearse.stats/v2"}"#, "is not rehearse.stats/v1 (its schema is `rehearse.stats/v2`)");
        check(r#"{"schema": "rehearse.report/v1"}"#, "its schema is `rehearse.report/v1`");
        check(
            r#"{"schema": "rehearse.stats/v1", "taken_at": "x", "server_version": "15", "database": "d", "settings": {}}"#,
            "relations",
        );
        check("not json", "are not JSON");
        let relations = r#"[{"relation": "public.t", "kind": "table", "table": null, "rows": 1, "pages": 1,
            "bytes": 8192, "total_bytes": 8192}]"#;
        let head = r#""schema": "rehearse.stats/v1", "taken_at": "x", "server_version": "15", "database": "d""#;
        let old = ProductionStats::load(&write(&format!(r#"{{{head}, "settings": {{}}, "relations": {relations}}}"#)));
        assert_eq!(old.unwrap().activity, None, "files without activity load");
        let activity = r#"{"sampled_seconds": 2.0, "long_transactions":
            [{"table": "public.t", "max_age_ms": 2400, "sessions_seen": 1}]}"#;
        let new = ProductionStats::load(&write(&format!(
            r#"{{{head}, "settings": {{}}, "relations": {relations}, "activity": {activity}}}"#
        )));
        assert_eq!(new.unwrap().activity.unwrap().long_transactions[0].max_age_ms, 2400);
        assert!(ProductionStats::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .render()
            .contains("rehearse stats"));
    }
}
