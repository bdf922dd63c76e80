//! The gate: once every fact is in, each migration is judged against its
//! own budgets and the run as a whole against run-wide ones, the race of
//! replicas under `fail_on_race`, drift under `fail_on_drift`, the
//! comparison with the baseline and `fail_on_regression`, all in one
//! place, so the report's status, and with it the exit code, says whether
//! the night's job passes.

pub mod baseline;
pub mod budget;

pub use baseline::Baseline;
pub use budget::Budgets;

use crate::report::{Breach, BudgetKey, Judgement, RegressionThresholds, Report, Unit};

/// Judges every budget once, against the rehearsal as the report shows it
/// (`draft`: built from the facts, nothing judged yet): each migration's,
/// the run-wide ones, the race, drift and the baseline comparison.
pub fn judge(
    budgets: &Budgets,
    baseline: Option<&Baseline>,
    thresholds: &RegressionThresholds,
    draft: &Report,
) -> Judgement {
    let migrations = draft.migrations.iter().map(|m| budgets.check_migration(m)).collect();
    let mut breaches = budgets.check_total(draft);
    breaches.extend(budgets.check_race(draft));
    breaches.extend(budgets.check_drift(draft));
    let baseline = baseline.map(|baseline| baseline.compare(draft, thresholds));
    let regressions = baseline.as_ref().map_or(0, |c| c.regressions.len() as u64);
    if let (Some(comparison), true) = (&baseline, budgets.0.fail_on_regression && regressions > 0) {
        breaches.push(Breach {
            budget: BudgetKey::FailOnRegression,
            figure: regressions,
            limit: 0,
            unit: Unit::Regressions,
            relation: None,
            overridden: false,
            message: format!(
                "fail_on_regression: {regressions} regression(s) against the baseline {}",
                comparison.path
            ),
        });
    }
    Judgement {
        breaches,
        migrations,
        baseline,
        unused_overrides: budgets.unused_overrides(draft),
        unused_ignores: Vec::new(),
        estimate: draft.totals.estimate.clone(),
        load_verdicts: draft.migrations.iter().map(|m| budgets.load_verdict(m, draft.load.as_ref())).collect(),
    }
}
