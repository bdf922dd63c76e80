//! Budgets from the scenario: limits a migration or the whole run must stay
//! within. A breach is a finding recorded in the report and makes the run
//! exit 1; it is not an error. A migration cancelled at its `max_runtime`
//! (`on_exceed: cancel`) is a breach too: the budget did its job.

use std::time::Duration;

use crate::report::{
    format_bytes, format_ms, summary, Breach, BudgetKey, BudgetsApplyTo, BudgetsInfo, Estimate, LoadInfo, LoadVerdict,
    MigrationLimits, MigrationReport, MigrationStatus, OnExceed, RaceVerdict, Report, Unit,
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
        // With `apply_to: estimate`, time, lock holds and WAL are judged at
        // production's scale (the estimate's mid); a timeout and probe waits
        // are what happened here.
        let estimate = m.estimate.as_ref().filter(|_| self.0.apply_to == BudgetsApplyTo::Estimate);
        let mut found: Vec<Over> = Vec::new();
        found.extend(runtime(l, m, estimate));
        found.extend(blocks(l, m, estimate));
        found.extend(wal(l, m, estimate));
        found.extend(probe_wait(l, m));
        found.extend(standby_breaches(l, m));
        found.extend(app_load(l, m));
        found.extend(statement_timeout(m));
        let note = if overridden { " (override for this migration)" } else { "" };
        let mut out: Vec<Breach> = found
            .into_iter()
            .map(|o| Breach {
                budget: o.budget,
                figure: o.figure,
                limit: o.limit,
                unit: o.unit,
                relation: o.relation,
                overridden,
                message: format!("{}: {}{note}", o.budget, o.text),
            })
            .collect();
        out.extend(self.check_compat(m));
        out
    }

    /// Whether the migration can run while the app runs, from its
    /// `max_app_*` budgets; None without `load:` or without any such budget.
    /// At the window's rate only the errors are scaled down (a stall and a
    /// statement's latency come from the locks, not from how many statements
    /// arrive; judged as measured, which is the conservative side).
    pub fn load_verdict(&self, m: &MigrationReport, info: Option<&LoadInfo>) -> Option<LoadVerdict> {
        let (l, _) = self.for_migration(&m.id);
        let load = m.load.as_ref()?;
        if l.max_app_p99_ms.is_none() && l.max_app_stall_ms.is_none() && l.max_app_errors.is_none() {
            return None;
        }
        let over = app_load(l, m);
        if over.is_empty() {
            return Some(LoadVerdict::NormalHours);
        }
        let factor = info.and_then(|i| Some(i.window_rate? / i.rate_asked.max(f64::MIN_POSITIVE)));
        let within_at_window = |o: &Over| {
            o.budget == BudgetKey::MaxAppErrors
                && factor.is_some_and(|f| (load.error_count() as f64 * f).floor() as u64 <= o.limit)
        };
        match factor.is_some() && over.iter().all(within_at_window) {
            true => Some(LoadVerdict::Window),
            false => Some(LoadVerdict::Unsafe),
        }
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
/// A figure of one migration over its budget.
struct Over {
    budget: BudgetKey,
    figure: u64,
    limit: u64,
    unit: Unit,
    relation: Option<String>,
    /// What happened, against the budget, for the breach's message.
    text: String,
}

/// " at production scale (estimate)" when the figures are the estimate's.
fn at_scale(estimate: Option<&Estimate>) -> &'static str {
    if estimate.is_some() {
        " at production scale (estimate)"
    } else {
        ""
    }
}

/// `max_runtime`: cancelled at it (`on_exceed: cancel`), or over it.
fn runtime(l: &MigrationLimits, m: &MigrationReport, estimate: Option<&Estimate>) -> Option<Over> {
    let limit = l.max_runtime_ms?;
    let over = |figure: u64, text: String| Over {
        budget: BudgetKey::MaxRuntime,
        figure,
        limit,
        unit: Unit::Ms,
        relation: None,
        text,
    };
    if m.status == MigrationStatus::TimedOut {
        let text =
            format!("cancelled after {}, budget {} (on_exceed: cancel)", format_ms(m.duration_ms), format_ms(limit));
        return Some(over(m.duration_ms, text));
    }
    let duration = estimate.map_or(m.duration_ms, |e| e.duration_ms.mid);
    let text = format!("took {}{}, budget {}", format_ms(duration), at_scale(estimate), format_ms(limit));
    (duration > limit).then(|| over(duration, text))
}

/// Production's statement_timeout: a statement whose estimated mid at
/// production's scale reaches it would be cancelled there (57014), so the
/// migration fails as a budget breach does, whatever `apply_to` says. A
/// statement whose high end only reaches it is a warning in the estimate
/// (`over_statement_timeout` with `fails: false`), not a breach.
fn statement_timeout(m: &MigrationReport) -> Vec<Over> {
    let Some(e) = &m.estimate else { return Vec::new() };
    e.over_statement_timeout
        .iter()
        .filter(|o| o.fails)
        .map(|o| Over {
            budget: BudgetKey::StatementTimeout,
            figure: o.estimate_ms.mid,
            limit: o.timeout_ms,
            unit: Unit::Ms,
            relation: None,
            text: format!(
                "`{}`{} takes {} ({}–{}) at production scale, over production's statement_timeout {} ({}): \
                 production cancels it (SQLSTATE 57014); {}",
                crate::sys::text::one_line(&o.statement, 80),
                o.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
                format_ms(o.estimate_ms.mid),
                format_ms(o.estimate_ms.low),
                format_ms(o.estimate_ms.high),
                format_ms(o.timeout_ms),
                o.timeout_from,
                o.fix
            ),
        })
        .collect()
}

/// `max_exclusive_lock` and `max_write_block`: the longest block of reads and of writes.
fn blocks(l: &MigrationLimits, m: &MigrationReport, estimate: Option<&Estimate>) -> Vec<Over> {
    let reads = (BudgetKey::MaxExclusiveLock, l.max_exclusive_lock_ms, &m.longest_read_block, "reads");
    let writes = (BudgetKey::MaxWriteBlock, l.max_write_block_ms, &m.longest_write_block, "writes");
    let scaled = |budget| match budget {
        BudgetKey::MaxExclusiveLock => estimate.map(|e| e.longest_read_block_ms.mid),
        _ => estimate.map(|e| e.longest_write_block_ms.mid),
    };
    let mut out = Vec::new();
    for (budget, limit, block, what) in [reads, writes] {
        let (Some(limit), Some(b)) = (limit, block) else { continue };
        let held = scaled(budget).unwrap_or(b.held_ms);
        if held > limit {
            let (scale, limit_shown) = (at_scale(estimate), format_ms(limit));
            let text = format!(
                "{} on {} blocked {what} for {}{scale}, budget {limit_shown}",
                b.mode,
                b.relation,
                format_ms(held)
            );
            out.push(Over { budget, figure: held, limit, unit: Unit::Ms, relation: Some(b.relation.clone()), text });
        }
    }
    out
}

/// `max_wal`.
fn wal(l: &MigrationLimits, m: &MigrationReport, estimate: Option<&Estimate>) -> Option<Over> {
    let limit = l.max_wal_bytes?;
    let wal = estimate.map_or(m.wal.bytes, |e| e.wal_bytes.mid);
    let text = format!("wrote {} of WAL{}, budget {}", format_bytes(wal), at_scale(estimate), format_bytes(limit));
    (wal > limit).then_some(Over {
        budget: BudgetKey::MaxWal,
        figure: wal,
        limit,
        unit: Unit::Bytes,
        relation: None,
        text,
    })
}

/// `max_probe_wait`: the longest wait of a read or write probe.
fn probe_wait(l: &MigrationLimits, m: &MigrationReport) -> Option<Over> {
    let limit = l.max_probe_wait_ms?;
    let waits = m.probes.iter().flat_map(|p| [(p, "read", p.reads.max_ms), (p, "write", p.writes.max_ms)]);
    let (p, kind, max) = waits.max_by(|a, b| a.2.total_cmp(&b.2))?;
    let waited = max.round() as u64;
    let text = format!("a {kind} on {} waited {}, budget {}", p.relation, format_ms(waited), format_ms(limit));
    let relation = Some(p.relation.clone());
    (waited > limit).then_some(Over {
        budget: BudgetKey::MaxProbeWait,
        figure: waited,
        limit,
        unit: Unit::Ms,
        relation,
        text,
    })
}

/// `max_app_p99`, `max_app_stall` and `max_app_errors`: what the app's
/// traffic felt while the migration ran (`load:`).
fn app_load(l: &MigrationLimits, m: &MigrationReport) -> Vec<Over> {
    let Some(load) = &m.load else { return Vec::new() };
    let mut out = Vec::new();
    let p99 = load.latency_ms.p99.round() as u64;
    if let Some(limit) = l.max_app_p99_ms.filter(|limit| p99 > *limit) {
        let text = format!(
            "the app's p99 was {} (baseline {}), budget {}",
            format_ms(p99),
            format_ms(load.baseline_ms.p99.round() as u64),
            format_ms(limit)
        );
        out.push(Over { budget: BudgetKey::MaxAppP99, figure: p99, limit, unit: Unit::Ms, relation: None, text });
    }
    if let Some(limit) = l.max_app_stall_ms.filter(|limit| load.stall_ms > *limit) {
        let table = load.stall_table.clone();
        let on = table.as_deref().map(|t| format!(" on {t}")).unwrap_or_default();
        let text = format!("the app stalled{on} for {}, budget {}", format_ms(load.stall_ms), format_ms(limit));
        let (figure, unit) = (load.stall_ms, Unit::Ms);
        out.push(Over { budget: BudgetKey::MaxAppStall, figure, limit, unit, relation: table, text });
    }
    let errors = load.error_count();
    if let Some(limit) = l.max_app_errors.filter(|limit| errors > *limit) {
        let codes: Vec<String> = load.errors.iter().map(|(code, n)| format!("{code} x{n}")).collect();
        let text = format!("{errors} of the app's statements failed ({}), budget {limit}", codes.join(", "));
        out.push(Over {
            budget: BudgetKey::MaxAppErrors,
            figure: errors,
            limit,
            unit: Unit::Errors,
            relation: None,
            text,
        });
    }
    out
}

/// `max_standby_lag` and `max_standby_read_wait`.
fn standby_breaches(l: &MigrationLimits, m: &MigrationReport) -> Vec<Over> {
    let Some(s) = &m.standby else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(limit) = l.max_standby_lag_ms.filter(|limit| s.max_lag_ms > *limit) {
        let text = format!(
            "the standby fell {} behind ({}), budget {}",
            format_ms(s.max_lag_ms),
            format_bytes(s.max_lag_bytes),
            format_ms(limit)
        );
        out.push(Over {
            budget: BudgetKey::MaxStandbyLag,
            figure: s.max_lag_ms,
            limit,
            unit: Unit::Ms,
            relation: None,
            text,
        });
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
            let relation = Some(w.relation.clone());
            out.push(Over {
                budget: BudgetKey::MaxStandbyReadWait,
                figure: waited,
                limit,
                unit: Unit::Ms,
                relation,
                text,
            });
        }
    }
    out
}
