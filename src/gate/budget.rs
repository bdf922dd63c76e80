//! Budgets from the scenario: limits a migration or the whole run must stay
//! within. A breach is a finding recorded in the report and makes the run
//! exit 1; it is not an error. A migration cancelled at its `max_runtime`
//! (`on_exceed: cancel`) is a breach too: the budget did its job.

use std::time::Duration;

use crate::report::{
    format_bytes, format_ms, summary, Breach, BudgetKey, BudgetsApplyTo, BudgetsInfo, MigrationLimits, MigrationReport,
    MigrationStatus, OnExceed, RaceVerdict, Report, Unit,
};

/// The budgets of a run, resolved: per-migration limits with their
/// overrides merged in, run-wide limits.
#[derive(Debug, Default, Clone)]
pub struct Budgets(pub BudgetsInfo);

impl Budgets {
    /// The limits for one migration, and whether they are an override: keyed
    /// by the report's id (`app/revision` with several apps) or by the bare
    /// revision, which then applies in every app that has it.
    pub fn for_migration(&self, id: &str) -> (&MigrationLimits, bool) {
        let bare = || id.split_once('/').and_then(|(_, rev)| self.0.overrides.get(rev));
        match self.0.overrides.get(id).or_else(bare) {
            Some(l) => (l, true),
            None => (&self.0.migration, false),
        }
    }

    /// When to cancel a migration: its `max_runtime` with `on_exceed: cancel`.
    pub fn deadline(&self, id: &str) -> Option<Duration> {
        let (l, _) = self.for_migration(id);
        match l.on_exceed {
            OnExceed::Cancel => l.max_runtime_ms.map(Duration::from_millis),
            OnExceed::Continue => None,
        }
    }

    /// The overrides that name no migration of the report, in either form.
    pub fn unused_overrides(&self, report: &Report) -> Vec<String> {
        let used = |key: &str| report.migrations.iter().any(|m| m.answers_to(key));
        self.0.overrides.keys().filter(|key| !used(key)).cloned().collect()
    }

    /// The breaches of one migration, each naming the figure and the budget.
    pub fn check_migration(&self, m: &MigrationReport) -> Vec<Breach> {
        let (l, overridden) = self.for_migration(&m.id);
        let mut out = Vec::new();
        let mut push =
            |budget: BudgetKey, figure: u64, limit: u64, unit: Unit, relation: Option<&str>, text: String| {
                let note = if overridden { " (override for this migration)" } else { "" };
                out.push(Breach {
                    budget,
                    figure,
                    limit,
                    unit,
                    relation: relation.map(String::from),
                    overridden,
                    message: format!("{budget}: {text}{note}"),
                });
            };
        // With `apply_to: estimate`, time, lock holds and WAL are judged at
        // production's scale (the estimate's mid); a timeout and probe waits
        // are what happened here.
        let estimate = m.estimate.as_ref().filter(|_| self.0.apply_to == BudgetsApplyTo::Estimate);
        let at_scale = if estimate.is_some() { " at production scale (estimate)" } else { "" };
        if let Some(limit) = l.max_runtime_ms {
            let duration = estimate.map_or(m.duration_ms, |e| e.duration_ms.mid);
            if m.status == MigrationStatus::TimedOut {
                let text = format!(
                    "cancelled after {}, budget {} (on_exceed: cancel)",
                    format_ms(m.duration_ms),
                    format_ms(limit)
                );
                push(BudgetKey::MaxRuntime, m.duration_ms, limit, Unit::Ms, None, text);
            } else if duration > limit {
                let text = format!("took {}{at_scale}, budget {}", format_ms(duration), format_ms(limit));
                push(BudgetKey::MaxRuntime, duration, limit, Unit::Ms, None, text);
            }
        }
        for (key, limit, block, scaled, what) in [
            (
                BudgetKey::MaxExclusiveLock,
                l.max_exclusive_lock_ms,
                &m.longest_read_block,
                estimate.map(|e| e.longest_read_block_ms.mid),
                "reads",
            ),
            (
                BudgetKey::MaxWriteBlock,
                l.max_write_block_ms,
                &m.longest_write_block,
                estimate.map(|e| e.longest_write_block_ms.mid),
                "writes",
            ),
        ] {
            if let (Some(limit), Some(b)) = (limit, block) {
                let held = scaled.unwrap_or(b.held_ms);
                if held > limit {
                    let text = format!(
                        "{} on {} blocked {what} for {}{at_scale}, budget {}",
                        b.mode,
                        b.relation,
                        format_ms(held),
                        format_ms(limit)
                    );
                    push(key, held, limit, Unit::Ms, Some(&b.relation), text);
                }
            }
        }
        if let Some(limit) = l.max_wal_bytes {
            let wal = estimate.map_or(m.wal.bytes, |e| e.wal_bytes.mid);
            if wal > limit {
                let text = format!("wrote {} of WAL{at_scale}, budget {}", format_bytes(wal), format_bytes(limit));
                push(BudgetKey::MaxWal, wal, limit, Unit::Bytes, None, text);
            }
        }
        if let Some(limit) = l.max_probe_wait_ms {
            let waits = m.probes.iter().flat_map(|p| [(p, "read", p.reads.max_ms), (p, "write", p.writes.max_ms)]);
            if let Some((p, kind, max)) = waits.max_by(|a, b| a.2.total_cmp(&b.2)) {
                let waited = max.round() as u64;
                if waited > limit {
                    let text =
                        format!("a {kind} on {} waited {}, budget {}", p.relation, format_ms(waited), format_ms(limit));
                    push(BudgetKey::MaxProbeWait, waited, limit, Unit::Ms, Some(&p.relation), text);
                }
            }
        }
        for (key, figure, limit, relation, text) in standby_breaches(l, m) {
            push(key, figure, limit, Unit::Ms, relation.as_deref(), text);
        }
        out.extend(self.check_compat(m));
        out
    }

    /// `fail_on_incompatible`: the migration broke queries of the running
    /// app. Run-wide, so never an override's.
    fn check_compat(&self, m: &MigrationReport) -> Option<Breach> {
        let broken = &m.compat.as_ref().filter(|_| self.0.fail_on_incompatible)?.broken;
        let more = match broken.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        Some(Breach {
            budget: BudgetKey::FailOnIncompatible,
            figure: broken.len() as u64,
            limit: 0,
            unit: Unit::Queries,
            relation: None,
            overridden: false,
            message: format!(
                "fail_on_incompatible: breaks {} of the running app: {}{more}",
                summary::queries(broken.len()),
                summary::broken_line(broken.first()?, 80, true),
            ),
        })
    }

    /// `fail_on_race`: racing the replicas was unsafe, or proved nothing
    /// (inconclusive: the gate fails closed, as for drift). Run-wide.
    pub fn check_race(&self, r: &Report) -> Option<Breach> {
        let race = r.race.as_ref().filter(|race| self.0.fail_on_race && race.verdict != RaceVerdict::Safe)?;
        Some(Breach {
            budget: BudgetKey::FailOnRace,
            figure: race.reasons.len() as u64,
            limit: 0,
            unit: Unit::Findings,
            relation: None,
            overridden: false,
            message: format!("fail_on_race: {}", summary::race_line(race, false)),
        })
    }

    /// `fail_on_drift`: production plus the release differs from what the
    /// history builds, or the history could not be built to tell (the gate
    /// fails closed). Run-wide.
    pub fn check_drift(&self, r: &Report) -> Option<Breach> {
        let drift =
            r.drift.as_ref().filter(|d| self.0.fail_on_drift && (!d.findings.is_empty() || d.error.is_some()))?;
        Some(Breach {
            budget: BudgetKey::FailOnDrift,
            figure: drift.findings.len() as u64,
            limit: 0,
            unit: Unit::Findings,
            relation: None,
            overridden: false,
            message: format!("fail_on_drift: {}", summary::drift_line(drift)),
        })
    }

    /// The breaches of the run as a whole.
    pub fn check_total(&self, r: &Report) -> Vec<Breach> {
        let mut out = Vec::new();
        let estimate = r.totals.estimate.as_ref().filter(|_| self.0.apply_to == BudgetsApplyTo::Estimate);
        let at_scale = if estimate.is_some() { " at production scale (estimate)" } else { "" };
        let ms: u64 = estimate.map_or_else(|| r.migrations.iter().map(|m| m.duration_ms).sum(), |e| e.duration_ms.mid);
        let wal: u64 = estimate.map_or_else(|| r.migrations.iter().map(|m| m.wal.bytes).sum(), |e| e.wal_bytes.mid);
        let total = &self.0.total;
        let mut push = |budget: BudgetKey, figure: u64, limit: u64, unit: Unit, text: String| {
            out.push(Breach {
                budget,
                figure,
                limit,
                unit,
                relation: None,
                overridden: false,
                message: format!("total {}: {text}", budget.as_str().trim_start_matches("total.")),
            })
        };
        if let Some(limit) = total.max_runtime_ms.filter(|l| ms > *l) {
            push(
                BudgetKey::TotalMaxRuntime,
                ms,
                limit,
                Unit::Ms,
                format!("migrations took {}{at_scale}, budget {}", format_ms(ms), format_ms(limit)),
            );
        }
        if let Some(limit) = total.max_wal_bytes.filter(|l| wal > *l) {
            push(
                BudgetKey::TotalMaxWal,
                wal,
                limit,
                Unit::Bytes,
                format!("wrote {} of WAL{at_scale}, budget {}", format_bytes(wal), format_bytes(limit)),
            );
        }
        out
    }
}

/// `max_standby_lag` and `max_standby_read_wait`, judged on what the
/// standby measured: (budget, figure, limit, relation, text) of each breach.
fn standby_breaches(l: &MigrationLimits, m: &MigrationReport) -> Vec<(BudgetKey, u64, u64, Option<String>, String)> {
    let Some(s) = &m.standby else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(limit) = l.max_standby_lag_ms.filter(|limit| s.max_lag_ms > *limit) {
        let text = format!(
            "the standby fell {} behind ({}), budget {}",
            format_ms(s.max_lag_ms),
            format_bytes(s.max_lag_bytes),
            format_ms(limit)
        );
        out.push((BudgetKey::MaxStandbyLag, s.max_lag_ms, limit, None, text));
    }
    let longest = s.read_waits.iter().max_by(|a, b| a.max_ms.total_cmp(&b.max_ms));
    if let (Some(limit), Some(w)) = (l.max_standby_read_wait_ms, longest) {
        let waited = w.max_ms.round() as u64;
        if waited > limit {
            let text = format!(
                "a read on {} waited {} on the standby, budget {}",
                w.relation,
                format_ms(waited),
                format_ms(limit)
            );
            out.push((BudgetKey::MaxStandbyReadWait, waited, limit, Some(w.relation.clone()), text));
        }
    }
    out
}
