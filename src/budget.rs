//! Budgets from the scenario: limits a migration or the whole run must stay
//! within. A breach is a finding recorded in the report and makes the run
//! exit 1; it is not an error.

use std::time::Duration;

use crate::report::{format_bytes, format_ms, MigrationReport, Report};
use crate::scenario::BudgetsSection;

#[derive(Debug, Default, Clone)]
pub struct Budgets {
    pub migration_runtime: Option<Duration>,
    pub migration_wal: Option<u64>,
    /// Longest hold of a lock that blocks reads (`max_exclusive_lock`).
    pub migration_read_block: Option<Duration>,
    /// Longest hold of a lock that blocks writes (`max_write_block`).
    pub migration_write_block: Option<Duration>,
    pub total_runtime: Option<Duration>,
    pub total_wal: Option<u64>,
}

impl Budgets {
    pub fn from_scenario(section: &BudgetsSection) -> Budgets {
        let migration = section.migration.clone().unwrap_or_default();
        let total = section.total.clone().unwrap_or_default();
        Budgets {
            migration_runtime: migration.max_runtime,
            migration_wal: migration.max_wal.map(|b| b.0),
            migration_read_block: migration.max_exclusive_lock,
            migration_write_block: migration.max_write_block,
            total_runtime: total.max_runtime,
            total_wal: total.max_wal.map(|b| b.0),
        }
    }

    /// The breaches of one migration, each naming the figure and the budget.
    pub fn check_migration(&self, m: &MigrationReport) -> Vec<String> {
        let mut breaches = Vec::new();
        if let Some(limit) = self.migration_runtime {
            if m.duration_ms > limit.as_millis() as u64 {
                breaches.push(format!(
                    "max_runtime: took {}, budget {}",
                    format_ms(m.duration_ms),
                    format_ms(limit.as_millis() as u64)
                ));
            }
        }
        for (key, limit, block, what) in [
            ("max_exclusive_lock", self.migration_read_block, &m.longest_read_block, "reads"),
            ("max_write_block", self.migration_write_block, &m.longest_write_block, "writes"),
        ] {
            if let (Some(limit), Some(b)) = (limit, block) {
                if b.held_ms > limit.as_millis() as u64 {
                    breaches.push(format!(
                        "{key}: {} on {} blocked {what} for {}, budget {}",
                        b.mode,
                        b.relation,
                        format_ms(b.held_ms),
                        format_ms(limit.as_millis() as u64)
                    ));
                }
            }
        }
        if let Some(limit) = self.migration_wal {
            if m.wal.bytes > limit {
                breaches.push(format!(
                    "max_wal: wrote {} of WAL, budget {}",
                    format_bytes(m.wal.bytes),
                    format_bytes(limit)
                ));
            }
        }
        breaches
    }

    /// The breaches of the run as a whole.
    pub fn check_total(&self, r: &Report) -> Vec<String> {
        let mut breaches = Vec::new();
        let ms: u64 = r.migrations.iter().map(|m| m.duration_ms).sum();
        let wal: u64 = r.migrations.iter().map(|m| m.wal.bytes).sum();
        if let Some(limit) = self.total_runtime {
            if ms > limit.as_millis() as u64 {
                breaches.push(format!(
                    "total max_runtime: migrations took {}, budget {}",
                    format_ms(ms),
                    format_ms(limit.as_millis() as u64)
                ));
            }
        }
        if let Some(limit) = self.total_wal {
            if wal > limit {
                breaches.push(format!(
                    "total max_wal: wrote {} of WAL, budget {}",
                    format_bytes(wal),
                    format_bytes(limit)
                ));
            }
        }
        breaches
    }
}
