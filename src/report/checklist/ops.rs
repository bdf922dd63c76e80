//! Telling whoever watches production.

use super::*;

pub(super) fn ops_comm(f: &Facts) -> ChecklistItem {
    let (r, ops) = (f.r, f.ops_ms());
    let mut long = Vec::new();
    let total = f.total_ms();
    if total > ops {
        long.push(format!("the migrations take {}{} in total", format_ms(total), f.at_scale()));
    }
    if let Some(m) = f.blocker.filter(|m| longest_block(m) > ops) {
        long.push(format!("`{}` blocks the app for {}{}", m.id, format_ms(longest_block(m)), f.at_scale()));
    }
    if let Some((m, lag, how)) = f.replica_lag().filter(|(_, lag, _)| *lag > ops) {
        long.push(format!("`{}` lags replicas by about {}{how}", m.id, format_ms(lag)));
    }
    for m in r.migrations.iter().filter(|m| m.status == MigrationStatus::TimedOut) {
        long.push(format!("`{}` ran past its max_runtime and was cancelled", m.id));
    }
    let blocker = f
        .blocker
        .map(|m| {
            let what = super::summary::longest_block_of(m)
                .map(|(b, what)| format!(" ({} on {}, blocking {what})", b.mode, b.relation))
                .unwrap_or_default();
            format!("{}{what} in `{}`", format_ms(longest_block(m)), m.id)
        })
        .unwrap_or_else(|| "none on existing tables".into());
    let item = Item::new(ChecklistId::OpsComm, "Comm to ops if long").evidence(format!(
        "Total {}; longest blocking lock {blocker}{}; threshold {} (`report.ops_threshold`).",
        format_ms(f.total_ms()),
        f.at_scale(),
        format_ms(ops)
    ));
    item.verdict(match long.is_empty() {
        false => Some(format!(
            "Tell ops before the release: {}. Agree a low-traffic window and who watches it.",
            long.join("; ")
        )),
        true => f.unless_incomplete(|u| format!("{u}, so the figures are lower bounds: fix and re-run.")),
    })
}
