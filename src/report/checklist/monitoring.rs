//! Monitoring during the release.

use super::*;

pub(super) fn monitoring(f: &Facts) -> ChecklistItem {
    let mut item = Item::new(ChecklistId::Monitoring, "Monitoring active");
    if !f.r.observation.hot_tables.is_empty() {
        item = item.evidence(format!("Probed here: reads and writes on {}.", f.r.observation.hot_tables.join(", ")));
    }
    item.verdict(Some(
        "Watch lock waits (`pg_stat_activity.wait_event`), replication lag, and the app's error rate and latency \
         while the migrations run, and know who cancels a migration that blocks (`pg_cancel_backend`)."
            .into(),
    ))
}
