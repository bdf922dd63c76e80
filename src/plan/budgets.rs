//! The scenario's `budgets:` as the gate's limits: per-migration limits
//! with their overrides merged in, run-wide limits.

use std::time::Duration;

use super::scenario::{BudgetsSection, MigrationBudget};
use crate::gate::Budgets;
use crate::report::{BudgetsInfo, MigrationLimits, TotalLimits};

fn ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| d.as_millis() as u64)
}

fn limits(m: &MigrationBudget) -> MigrationLimits {
    MigrationLimits {
        max_runtime_ms: ms(m.max_runtime),
        on_exceed: m.on_exceed.unwrap_or_default(),
        max_exclusive_lock_ms: ms(m.max_exclusive_lock),
        max_write_block_ms: ms(m.max_write_block),
        max_wal_bytes: m.max_wal.map(|b| b.0),
        max_probe_wait_ms: ms(m.max_probe_wait),
        max_standby_lag_ms: ms(m.max_standby_lag),
        max_standby_read_wait_ms: ms(m.max_standby_read_wait),
        max_app_p99_ms: ms(m.max_app_p99),
        max_app_stall_ms: ms(m.max_app_stall),
        max_app_errors: m.max_app_errors,
    }
}

/// An override replaces the keys it sets and inherits the others.
fn merge(base: &MigrationLimits, over: &MigrationBudget) -> MigrationLimits {
    let o = limits(over);
    MigrationLimits {
        max_runtime_ms: o.max_runtime_ms.or(base.max_runtime_ms),
        on_exceed: over.on_exceed.unwrap_or(base.on_exceed),
        max_exclusive_lock_ms: o.max_exclusive_lock_ms.or(base.max_exclusive_lock_ms),
        max_write_block_ms: o.max_write_block_ms.or(base.max_write_block_ms),
        max_wal_bytes: o.max_wal_bytes.or(base.max_wal_bytes),
        max_probe_wait_ms: o.max_probe_wait_ms.or(base.max_probe_wait_ms),
        max_standby_lag_ms: o.max_standby_lag_ms.or(base.max_standby_lag_ms),
        max_standby_read_wait_ms: o.max_standby_read_wait_ms.or(base.max_standby_read_wait_ms),
        max_app_p99_ms: o.max_app_p99_ms.or(base.max_app_p99_ms),
        max_app_stall_ms: o.max_app_stall_ms.or(base.max_app_stall_ms),
        max_app_errors: o.max_app_errors.or(base.max_app_errors),
    }
}

pub fn budgets(section: &BudgetsSection) -> Budgets {
    let migration = limits(&section.migration.clone().unwrap_or_default());
    let total = section.total.clone().unwrap_or_default();
    Budgets(BudgetsInfo {
        overrides: section.overrides.iter().map(|(id, o)| (id.clone(), merge(&migration, o))).collect(),
        migration,
        total: TotalLimits { max_runtime_ms: ms(total.max_runtime), max_wal_bytes: total.max_wal.map(|b| b.0) },
        fail_on_regression: section.fail_on_regression,
        unused_overrides: Vec::new(),
        apply_to: section.apply_to,
        fail_on_incompatible: section.fail_on_incompatible,
        fail_on_race: section.fail_on_race,
        fail_on_drift: section.fail_on_drift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::scenario::parse;
    use crate::report::OnExceed;

    fn from_yaml(yaml: &str) -> Budgets {
        let s = parse(&format!("migrations: {{tool: sql}}\nbudgets:\n{yaml}"), std::path::Path::new("s.yaml")).unwrap();
        budgets(&s.budgets)
    }

    #[test]
    fn an_override_replaces_the_keys_it_sets_and_inherits_the_rest() {
        let b = from_yaml(
            "  migration: {max_runtime: 5m, max_wal: 1GB, max_probe_wait: 500ms}\n  overrides:\n    0007_big: {max_runtime: 2h, on_exceed: continue}\n",
        );
        let (l, overridden) = b.for_migration("0007_big");
        assert!(overridden);
        assert_eq!(l.max_runtime_ms, Some(7_200_000));
        assert_eq!(l.max_wal_bytes, Some(1 << 30));
        assert_eq!(l.max_probe_wait_ms, Some(500));
        assert_eq!(l.on_exceed, OnExceed::Continue);
        assert_eq!(b.deadline("0007_big"), None, "continue: never cancelled");
        assert_eq!(b.deadline("0008_other"), Some(Duration::from_secs(300)), "cancel is the default");
        assert!(!b.for_migration("0008_other").1);
    }

    #[test]
    fn an_override_names_a_migration_as_app_slash_revision_or_by_its_revision_alone() {
        let b = from_yaml("  migration: {max_runtime: 5m}\n  overrides:\n    billing/b2: {max_runtime: 1h}\n    a1: {max_runtime: 2h}\n    gone: {max_runtime: 1s}\n");
        assert_eq!(b.for_migration("billing/b2").0.max_runtime_ms, Some(3_600_000));
        assert!(!b.for_migration("orders/b2").1, "app/revision names that app's revision only");
        assert_eq!(b.for_migration("orders/a1").0.max_runtime_ms, Some(7_200_000), "a bare revision, in any app");
        assert_eq!(b.for_migration("a1").0.max_runtime_ms, Some(7_200_000));
        let report: crate::report::Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).unwrap();
        let mut report = report;
        for (m, id) in report.migrations.iter_mut().zip(["billing/b2", "orders/a1"]) {
            m.id = id.into();
        }
        assert_eq!(b.unused_overrides(&report), vec!["gone".to_string()]);
    }

    #[test]
    fn unknown_override_keys_are_errors() {
        let err = parse(
            "migrations: {tool: sql}\nbudgets:\n  overrides:\n    x: {max_runtim: 1s}\n",
            std::path::Path::new("s.yaml"),
        )
        .unwrap_err()
        .render();
        assert!(err.contains("s.yaml:4:") && err.contains("max_runtim"), "{err}");
    }
}
