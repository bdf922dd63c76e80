//! Budgets from the scenario: limits a migration or the whole run must stay
//! within. A breach is a finding recorded in the report and makes the run
//! exit 1; it is not an error. A migration cancelled at its `max_runtime`
//! (`on_exceed: cancel`) is a breach too: the budget did its job.

use std::time::Duration;

use crate::report::{
    format_bytes, format_ms, Breach, BudgetsInfo, MigrationLimits, MigrationReport, MigrationStatus, Report,
    TotalLimits,
};
use crate::scenario::{BudgetsSection, MigrationBudget};

/// The budgets of a run, resolved: per-migration limits with their
/// overrides merged in, run-wide limits.
#[derive(Debug, Default, Clone)]
pub struct Budgets(pub BudgetsInfo);

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
    }
}

impl Budgets {
    pub fn from_scenario(section: &BudgetsSection) -> Budgets {
        let migration = limits(&section.migration.clone().unwrap_or_default());
        let total = section.total.clone().unwrap_or_default();
        Budgets(BudgetsInfo {
            overrides: section.overrides.iter().map(|(id, o)| (id.clone(), merge(&migration, o))).collect(),
            migration,
            total: TotalLimits { max_runtime_ms: ms(total.max_runtime), max_wal_bytes: total.max_wal.map(|b| b.0) },
            fail_on_regression: section.fail_on_regression,
            unused_overrides: Vec::new(),
        })
    }

    /// The limits for one migration, and whether they are an override.
    pub fn for_migration(&self, id: &str) -> (&MigrationLimits, bool) {
        match self.0.overrides.get(id) {
            Some(l) => (l, true),
            None => (&self.0.migration, false),
        }
    }

    /// When to cancel a migration: its `max_runtime` with `on_exceed: cancel`.
    pub fn deadline(&self, id: &str) -> Option<Duration> {
        let (l, _) = self.for_migration(id);
        match l.on_exceed {
            crate::scenario::OnExceed::Cancel => l.max_runtime_ms.map(Duration::from_millis),
            crate::scenario::OnExceed::Continue => None,
        }
    }

    /// Records a migration's breaches, as data and as messages.
    pub fn judge_migration(&self, m: &mut MigrationReport) {
        m.breaches = self.check_migration(m);
        m.budget_breaches = m.breaches.iter().map(|b| b.message.clone()).collect();
    }

    /// The breaches of one migration, each naming the figure and the budget.
    pub fn check_migration(&self, m: &MigrationReport) -> Vec<Breach> {
        let (l, overridden) = self.for_migration(&m.id);
        let mut out = Vec::new();
        let mut push = |budget: &str, figure: u64, limit: u64, unit: &str, relation: Option<&str>, text: String| {
            let note = if overridden { " (override for this migration)" } else { "" };
            out.push(Breach {
                budget: budget.into(),
                figure,
                limit,
                unit: unit.into(),
                relation: relation.map(String::from),
                overridden,
                message: format!("{budget}: {text}{note}"),
            });
        };
        if let Some(limit) = l.max_runtime_ms {
            if m.status == MigrationStatus::TimedOut {
                let text = format!(
                    "cancelled after {}, budget {} (on_exceed: cancel)",
                    format_ms(m.duration_ms),
                    format_ms(limit)
                );
                push("max_runtime", m.duration_ms, limit, "ms", None, text);
            } else if m.duration_ms > limit {
                let text = format!("took {}, budget {}", format_ms(m.duration_ms), format_ms(limit));
                push("max_runtime", m.duration_ms, limit, "ms", None, text);
            }
        }
        for (key, limit, block, what) in [
            ("max_exclusive_lock", l.max_exclusive_lock_ms, &m.longest_read_block, "reads"),
            ("max_write_block", l.max_write_block_ms, &m.longest_write_block, "writes"),
        ] {
            if let (Some(limit), Some(b)) = (limit, block) {
                if b.held_ms > limit {
                    let text = format!(
                        "{} on {} blocked {what} for {}, budget {}",
                        b.mode,
                        b.relation,
                        format_ms(b.held_ms),
                        format_ms(limit)
                    );
                    push(key, b.held_ms, limit, "ms", Some(&b.relation), text);
                }
            }
        }
        if let Some(limit) = l.max_wal_bytes {
            if m.wal.bytes > limit {
                let text = format!("wrote {} of WAL, budget {}", format_bytes(m.wal.bytes), format_bytes(limit));
                push("max_wal", m.wal.bytes, limit, "bytes", None, text);
            }
        }
        if let Some(limit) = l.max_probe_wait_ms {
            let waits = m.probes.iter().flat_map(|p| [(p, "read", p.reads.max_ms), (p, "write", p.writes.max_ms)]);
            if let Some((p, kind, max)) = waits.max_by(|a, b| a.2.total_cmp(&b.2)) {
                let waited = max.round() as u64;
                if waited > limit {
                    let text =
                        format!("a {kind} on {} waited {}, budget {}", p.relation, format_ms(waited), format_ms(limit));
                    push("max_probe_wait", waited, limit, "ms", Some(&p.relation), text);
                }
            }
        }
        out
    }

    /// The breaches of the run as a whole.
    pub fn check_total(&self, r: &Report) -> Vec<Breach> {
        let mut out = Vec::new();
        let ms: u64 = r.migrations.iter().map(|m| m.duration_ms).sum();
        let wal: u64 = r.migrations.iter().map(|m| m.wal.bytes).sum();
        let total = &self.0.total;
        let mut push = |budget: &str, figure: u64, limit: u64, unit: &str, text: String| {
            out.push(Breach {
                budget: budget.into(),
                figure,
                limit,
                unit: unit.into(),
                relation: None,
                overridden: false,
                message: format!("total {}: {text}", budget.trim_start_matches("total.")),
            })
        };
        if let Some(limit) = total.max_runtime_ms.filter(|l| ms > *l) {
            push(
                "total.max_runtime",
                ms,
                limit,
                "ms",
                format!("migrations took {}, budget {}", format_ms(ms), format_ms(limit)),
            );
        }
        if let Some(limit) = total.max_wal_bytes.filter(|l| wal > *l) {
            push(
                "total.max_wal",
                wal,
                limit,
                "bytes",
                format!("wrote {} of WAL, budget {}", format_bytes(wal), format_bytes(limit)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{parse, OnExceed};

    fn budgets(yaml: &str) -> Budgets {
        let s = parse(&format!("migrations: {{tool: sql}}\nbudgets:\n{yaml}"), std::path::Path::new("s.yaml")).unwrap();
        Budgets::from_scenario(&s.budgets)
    }

    #[test]
    fn an_override_replaces_the_keys_it_sets_and_inherits_the_rest() {
        let b = budgets(
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
    fn unknown_override_keys_are_errors() {
        let err = parse(
            "migrations: {tool: sql}\nbudgets:\n  overrides:\n    x: {max_runtim: 1s}\n",
            std::path::Path::new("s.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("s.yaml:4:") && err.contains("max_runtim"), "{err}");
    }
}
