//! Low-traffic window or normal hours: answered by the rehearsal under the
//! app's traffic (`load:`), migration by migration.

use super::*;
use crate::report::LoadVerdict;

pub(super) fn traffic_window(f: &Facts) -> ChecklistItem {
    let item = Item::new(ChecklistId::TrafficWindow, "Low-traffic window or normal hours");
    let Some(info) = &f.r.load else {
        return item.verdict(Some(
            "Not rehearsed under the app's traffic: decide by hand which migrations need a low-traffic window, or \
             add `load:` (the app's queries with production's rates and its long transactions) to measure it."
                .into(),
        ));
    };
    let mut item = item.evidence(format!(
        "Rehearsed under {} statements/s of the app's workload ({} reached){}.",
        info.rate_asked,
        info.rate_reached,
        match info.long_transactions.as_slice() {
            [] => String::new(),
            list => format!(
                " with long transactions on {}",
                list.iter()
                    .map(|t| format!("`{}` ({})", t.table, format_ms(t.duration_ms)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    ));
    let with = |verdict: LoadVerdict| -> Vec<&MigrationReport> {
        f.ran.iter().copied().filter(|m| m.load.as_ref().and_then(|l| l.verdict) == Some(verdict)).collect()
    };
    let ids = |ms: &[&MigrationReport]| ms.iter().map(|m| format!("`{}`", m.id)).collect::<Vec<_>>().join(", ");
    let (normal, window, unsafe_) =
        (with(LoadVerdict::NormalHours), with(LoadVerdict::Window), with(LoadVerdict::Unsafe));
    if !normal.is_empty() {
        item = item.evidence(format!("Normal hours: {}.", ids(&normal)));
    }
    if !window.is_empty() {
        item = item.evidence(format!("Low-traffic window only: {}.", ids(&window)));
    }
    for m in &unsafe_ {
        let l = m.load.as_ref().expect("has a verdict");
        let stall = l
            .stall_table
            .as_ref()
            .map(|t| format!("stalled `{t}` for {}, ", format_ms(l.stall_ms)))
            .unwrap_or_default();
        item = item.evidence(format!(
            "Unsafe even in a window: `{}` ({stall}p99 {} against {} before it, {} failed statements).",
            m.id,
            format_ms(l.latency_ms.p99.round() as u64),
            format_ms(l.baseline_ms.p99.round() as u64),
            l.error_count()
        ));
    }
    let judged = normal.len() + window.len() + unsafe_.len();
    item.verdict(if !unsafe_.is_empty() {
        let (stall, fail) = if unsafe_.len() == 1 { ("stalls", "fails") } else { ("stall", "fail") };
        Some(format!(
            "{} {stall} the app or {fail} its statements past the `max_app_*` budgets even at the window's rate: \
             bound the lock wait (`migrations.retry` with a `lock_timeout`), end or move the long transactions, or \
             split the migration.",
            ids(&unsafe_)
        ))
    } else if !window.is_empty() {
        Some(format!("Run {} in the low-traffic window.", ids(&window)))
    } else if judged == 0 {
        Some("No `max_app_*` budget judged the app's figures: set max_app_p99, max_app_stall or max_app_errors.".into())
    } else {
        f.unless_incomplete(|u| format!("{u}, so not every migration was judged under load: fix and re-run."))
    })
}
