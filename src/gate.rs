//! The gate: once every migration is judged against its own budgets, the
//! run as a whole is judged — run-wide budgets, the comparison with the
//! baseline, and `fail_on_regression` — so the report's status, and with it
//! the exit code, says whether the night's job passes.

use crate::plan::Plan;
use crate::report::{Breach, Report};

/// Fills the run-wide breaches, the baseline comparison and the unused overrides.
pub fn judge(plan: &Plan, report: &mut Report) {
    let mut breaches = plan.budgets.check_total(report);
    if let Some(baseline) = &plan.report.baseline {
        let comparison = baseline.compare(report, &plan.report.regression);
        let count = comparison.regressions.len() as u64;
        if plan.budgets.0.fail_on_regression && count > 0 {
            breaches.push(Breach {
                budget: "fail_on_regression".into(),
                figure: count,
                limit: 0,
                unit: "regressions".into(),
                relation: None,
                overridden: false,
                message: format!("fail_on_regression: {count} regression(s) against the baseline {}", comparison.path),
            });
        }
        report.baseline = Some(comparison);
    }
    report.budget_breaches = breaches.iter().map(|b| b.message.clone()).collect();
    report.breaches = breaches;
    report.budgets.unused_overrides =
        plan.budgets.0.overrides.keys().filter(|id| !report.migrations.iter().any(|m| &m.id == *id)).cloned().collect();
}
