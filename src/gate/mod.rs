//! The gate: once every migration is judged against its own budgets, the
//! run as a whole is judged — run-wide budgets, the race of replicas under
//! `fail_on_race`, the comparison with the baseline, and `fail_on_regression` — so the report's status, and with it
//! the exit code, says whether the night's job passes.

pub mod baseline;
pub mod budget;

pub use baseline::Baseline;
pub use budget::Budgets;

use crate::report::{Breach, BudgetKey, RegressionThresholds, Report, Unit};

/// Fills the run-wide breaches, the baseline comparison and the unused overrides.
pub fn judge(budgets: &Budgets, baseline: Option<&Baseline>, thresholds: &RegressionThresholds, report: &mut Report) {
    let mut breaches = budgets.check_total(report);
    breaches.extend(budgets.check_race(report));
    breaches.extend(budgets.check_drift(report));
    if let Some(baseline) = baseline {
        let comparison = baseline.compare(report, thresholds);
        let count = comparison.regressions.len() as u64;
        if budgets.0.fail_on_regression && count > 0 {
            breaches.push(Breach {
                budget: BudgetKey::FailOnRegression,
                figure: count,
                limit: 0,
                unit: Unit::Regressions,
                relation: None,
                overridden: false,
                message: format!("fail_on_regression: {count} regression(s) against the baseline {}", comparison.path),
            });
        }
        report.baseline = Some(comparison);
    }
    report.budget_breaches = breaches.iter().map(|b| b.message.clone()).collect();
    report.breaches = breaches;
    report.budgets.unused_overrides = budgets.unused_overrides(report);
}
